package plan

import (
	"fmt"
	"slices"
	"strings"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/text"
)

// sample is how many members to add status.plan names.
const sample = 10

// Plan is what it takes to make the remote segment match the spec.
type Plan struct {
	// Create: there is no segment; one is created with the desired name.
	Create bool
	// Recreate: memberRemovalPolicy Recreate, and members must go that the API cannot
	// remove: the segment is deleted and created anew.
	Recreate bool
	// RenameFrom and RenameTo are set when the segment must be renamed.
	RenameFrom, RenameTo string
	// Add are the desired members to add, sorted.
	Add []string
	// NotRemovable counts the members the operator added that are no longer desired.
	NotRemovable int
}

// For decides what to do about the Segment's remote segment, observed as it is now (nil:
// there is none), for the desired members (sorted, unique), given the record of the members
// the operator added to it. Members count as present only if the operator added them: the
// API cannot list a segment's members. A segment adopted through spec.id is never
// recreated: its ID is fixed.
func For(seg *usersv1alpha1.Segment, added *ledger.Ledger, desired []string, observed *chatbot.Segment) Plan {
	if !slices.IsSorted(desired) {
		desired = slices.Compact(slices.Sorted(slices.Values(desired)))
	}
	if observed == nil {
		return Plan{Create: true, Add: desired}
	}
	p := Plan{Add: added.Missing(desired), NotRemovable: added.NotIn(desired)}
	if observed.Name != seg.RemoteName() {
		p.RenameFrom, p.RenameTo = observed.Name, seg.RemoteName()
	}
	if p.NotRemovable > 0 && seg.Spec.MemberRemovalPolicy == usersv1alpha1.MemberRemovalPolicyRecreate && seg.Spec.ID == "" {
		return Plan{Recreate: true, Add: desired, NotRemovable: p.NotRemovable}
	}
	return p
}

// Manage is the plan a managed Segment carries out: For, and the desired members added
// again when the member count says more of them are missing than at the last re-add
// (JudgeDrift). counted says whether observed.Users is the API's own count, not one the
// operator's adds raised since the listing.
func Manage(seg *usersv1alpha1.Segment, added *ledger.Ledger, desired []string, observed *chatbot.Segment, counted bool) (Plan, Drift) {
	p := For(seg, added, desired, observed)
	if observed == nil || p.Recreate {
		return p, Drift{Unknown: true}
	}
	d := JudgeDrift(len(desired)-len(p.Add), observed.Users, counted, seg.Status.MemberRecord.Readd())
	if d.Readd {
		p.Add = desired
	}
	return p, d
}

// Drift is what the remote segment's member count, the only signal the API gives of its
// members, says of members removed outside the operator.
type Drift struct {
	// Unknown: the count is not the API's (our adds raised it since the listing), or there
	// is no segment to count: judge nothing, change nothing.
	Unknown bool
	// Missing is how many of the desired members the operator added are gone, at least.
	Missing int
	// Readd: add the desired members again (more are missing than at the last re-add).
	Readd bool
	// Settled: the API counts them all again; forget the last re-add.
	Settled bool
}

// JudgeDrift judges users, the API's count of the segment's members (counted: not raised
// by the operator's own adds since the listing), against known, the desired members the
// operator added. It re-adds only when more are missing than at the last re-add: if the API
// does not take members back (users deleted from ChatBot), the shortfall stays, and so does
// the report, without a loop; members added meanwhile change nothing.
func JudgeDrift(known, users int, counted bool, readded *usersv1alpha1.MembersReadded) Drift {
	switch {
	case !counted:
		return Drift{Unknown: true}
	case users >= known:
		return Drift{Settled: readded != nil}
	}
	missing := known - users
	return Drift{Missing: missing, Readd: readded == nil || missing > int(readded.Missing)}
}

// NotRemovableAfter is how many members the API cannot remove once the plan is carried
// out: a create or a recreate starts from a segment with only desired members, and adding
// desired members removes none of the others.
func (p Plan) NotRemovableAfter() int {
	if p.Create || p.Recreate {
		return 0
	}
	return p.NotRemovable
}

// Summary says in words what the plan would change; "" when nothing.
func (p Plan) Summary() string {
	var parts []string
	switch {
	case p.Create:
		parts = append(parts, "create the segment")
	case p.Recreate:
		parts = append(parts, fmt.Sprintf("delete the segment and create it anew to remove %s", text.Plural(p.NotRemovable, "member")))
	case p.RenameTo != "":
		parts = append(parts, fmt.Sprintf("rename it from %q to %q", p.RenameFrom, p.RenameTo))
	}
	if len(p.Add) > 0 {
		parts = append(parts, "add "+text.Plural(len(p.Add), "member"))
	}
	if p.NotRemovable > 0 && !p.Recreate {
		parts = append(parts, "report "+text.Plural(p.NotRemovable, "member")+" the API cannot remove")
	}
	return strings.Join(parts, ", ")
}

// Status is the plan as status.plan shows it: counts, and a sample of the members to add.
func (p Plan) Status() *usersv1alpha1.SegmentPlan {
	return &usersv1alpha1.SegmentPlan{
		Create: p.Create, Recreate: p.Recreate, RenameFrom: p.RenameFrom, RenameTo: p.RenameTo,
		MembersToAdd: int32(len(p.Add)), MembersToAddSample: p.Add[:min(len(p.Add), sample)],
		MembersNotRemovable: int32(p.NotRemovable),
	}
}
