package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// planSample is how many members to add status.plan names.
const planSample = 10

// remotePlan is what it takes to make the remote segment match the spec.
type remotePlan struct {
	// create: there is no segment; one is created with the desired name.
	create bool
	// recreate: memberRemovalPolicy Recreate, and members must go that the API cannot
	// remove: the segment is deleted and created anew.
	recreate bool
	// renameFrom and renameTo are set when the segment must be renamed.
	renameFrom, renameTo string
	// add are the desired members to add, sorted.
	add []string
	// notRemovable counts the members the operator added that are no longer desired.
	notRemovable int
}

// planFor decides what to do about the Segment's remote segment, observed as it is now
// (nil: there is none), for the desired members (sorted, unique; see desiredMembers), given
// the record of the members the operator added to it. Members count as present only if the
// operator added them: the API cannot list a segment's members. A segment adopted through
// spec.id is never recreated: its ID is fixed.
func planFor(seg *usersv1alpha1.Segment, added *ledger.Ledger, desired []string, observed *chatbot.Segment) remotePlan {
	if !slices.IsSorted(desired) {
		desired = slices.Compact(slices.Sorted(slices.Values(desired)))
	}
	if observed == nil {
		return remotePlan{create: true, add: desired}
	}
	p := remotePlan{add: added.Missing(desired), notRemovable: added.NotIn(desired)}
	if observed.Name != seg.RemoteName() {
		p.renameFrom, p.renameTo = observed.Name, seg.RemoteName()
	}
	if p.notRemovable > 0 && seg.Spec.MemberRemovalPolicy == usersv1alpha1.MemberRemovalPolicyRecreate && seg.Spec.ID == "" {
		return remotePlan{recreate: true, add: desired, notRemovable: p.notRemovable}
	}
	return p
}

// memberDrift is what the remote segment's member count, the only signal the API gives of
// its members, says of members removed outside the operator.
type memberDrift struct {
	// unknown: the count is not the API's (our adds raised it since the listing): judge
	// nothing, change nothing.
	unknown bool
	// missing is how many of the desired members the operator added are gone, at least.
	missing int
	// readd: add the desired members again (more are missing than at the last re-add).
	readd bool
	// settled: the API counts them all again; forget the last re-add.
	settled bool
}

// decideDrift judges users, the API's count of the segment's members (counted: not raised
// by the operator's own adds since the listing), against known, the desired members the
// operator added. It re-adds only when more are missing than at the last re-add: if the API
// does not take members back (users deleted from ChatBot), the shortfall stays, and so does
// the report, without a loop; members added meanwhile change nothing.
func decideDrift(known, users int, counted bool, readded *usersv1alpha1.MembersReadded) memberDrift {
	switch {
	case !counted:
		return memberDrift{unknown: true}
	case users >= known:
		return memberDrift{settled: readded != nil}
	}
	missing := known - users
	return memberDrift{missing: missing, readd: readded == nil || missing > int(readded.Missing)}
}

// observeOnly finds the remote segment without claiming it, and records in status.plan
// what Manage would change, like a plan. It never calls a write endpoint and never adds the
// finalizer. A Segment that owns a segment (it managed before) shows that one.
func (r *SegmentReconciler) observeOnly(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	desired, err := r.desiredMembers(ctx, seg)
	if err != nil {
		return err
	}
	observed, err := r.find(ctx, seg, acct)
	if err != nil {
		return err
	}
	if observed != nil {
		seg.Status.ID = observed.ID
		recordObserved(seg, *observed)
	} else {
		resetRemote(seg)
	}
	rec, err := r.records.Load(ctx, seg, desired)
	if err != nil {
		return err
	}
	p := planFor(seg, rec.Ledger, desired, observed)
	seg.Status.NotRemovableMembers = int32(p.notRemovable)
	summary := summarize(p)
	if summary == "" {
		seg.Status.Plan = nil
		setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonObserved,
			msg: fmt.Sprintf("ObserveOnly: remote segment %s matches the spec", observed.ID)})
		return nil
	}
	seg.Status.Plan = &usersv1alpha1.SegmentPlan{
		Create: p.create, Recreate: p.recreate, RenameFrom: p.renameFrom, RenameTo: p.renameTo,
		MembersToAdd: int32(len(p.add)), MembersToAddSample: p.add[:min(len(p.add), planSample)],
		MembersNotRemovable: int32(p.notRemovable),
	}
	// Ready: the observation is current. Observe-only never acts on drift, so it is a
	// settled state for GitOps tools, not work under way; the reason and status.plan say it.
	setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonDriftDetected, msg: "ObserveOnly: nothing is changed; managing would " + summary})
	return nil
}

// find locates the remote segment an observe-only Segment shows: the one it owns, else
// the one spec.id names, else the one it showed before, else under AdoptByName the only
// unowned one with the desired name.
func (r *SegmentReconciler) find(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (*chatbot.Segment, error) {
	id := seg.OwnedID()
	if id == "" {
		id = seg.Spec.ID
	}
	if id == "" {
		id = seg.Status.ID
	}
	if id != "" {
		observed, found, err := r.observe(ctx, acct, id, time.Time{})
		switch {
		case err != nil:
			return nil, err
		case found:
			return &observed, nil
		case id == seg.Spec.ID:
			return nil, stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist", id)
		}
	}
	if seg.Spec.AdoptionPolicy != usersv1alpha1.AdoptionPolicyAdoptByName {
		return nil, nil
	}
	if err := r.listSinceCreation(ctx, seg, acct); err != nil {
		return nil, err
	}
	id, err := r.uniqueByName(ctx, seg, acct)
	if err != nil || id == "" {
		return nil, err
	}
	observed, _ := acct.Observations.Lookup(id)
	return &observed, nil
}

// summarize says in words what a plan would change; "" when nothing.
func summarize(p remotePlan) string {
	var parts []string
	switch {
	case p.create:
		parts = append(parts, "create the segment")
	case p.recreate:
		parts = append(parts, fmt.Sprintf("delete the segment and create it anew to remove %s", plural(p.notRemovable, "member")))
	case p.renameTo != "":
		parts = append(parts, fmt.Sprintf("rename it from %q to %q", p.renameFrom, p.renameTo))
	}
	if len(p.add) > 0 {
		parts = append(parts, "add "+plural(len(p.add), "member"))
	}
	if p.notRemovable > 0 && !p.recreate {
		parts = append(parts, "report "+plural(p.notRemovable, "member")+" the API cannot remove")
	}
	return strings.Join(parts, ", ")
}
