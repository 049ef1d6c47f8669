package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// observe finds the remote segment in the account's shared listing. The API has no
// get-by-id, so this lists the account, at most once per DriftInterval for all its
// Segments. Creating a segment anew is not a step to take on a listing that may predate the
// segment: a segment missing from the listing is looked for again in one begun after
// confirmAfter (zero: not looked for again), which the current listing usually is already.
func (r *SegmentReconciler) observe(ctx context.Context, acct *remote.Account, id string, confirmAfter time.Time) (chatbot.Segment, bool, error) {
	if _, err := acct.Observations.Ensure(ctx, r.DriftInterval); err != nil {
		return chatbot.Segment{}, false, listErr(err)
	}
	if seg, ok := acct.Observations.Lookup(id); ok || confirmAfter.IsZero() {
		return seg, ok, nil
	}
	if err := r.listAfter(ctx, acct, confirmAfter); err != nil {
		return chatbot.Segment{}, false, err
	}
	seg, ok := acct.Observations.Lookup(id)
	return seg, ok, nil
}

// goneAfter is when a listing must have begun for the Segment's remote segment, missing
// from it, to be gone: after the segment was made (status.createdAt, in whole seconds, by
// ChatBot's clock, which may be createSkew off ours). Every Segment whose segment went
// missing takes the same listing as proof, rather than each one listing again. When
// createdAt is not known: now.
func goneAfter(seg *usersv1alpha1.Segment) time.Time {
	if c := seg.Status.CreatedAt; c != nil {
		return c.Add(time.Second + createSkew)
	}
	return time.Now()
}

// listErr says that listing failed, unless the error (the client's) says so already.
func listErr(err error) error {
	if _, ok := chatbot.AsAPIError(err); ok {
		return err
	}
	return fmt.Errorf("list segments: %w", err)
}

// apply carries out a plan for the Segment's owned segment.
func (r *SegmentReconciler) apply(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter,
	p remotePlan, added *ledger.Ledger, desired []string) error {
	created, reason := "", "Created"
	switch {
	case p.create:
		if err := r.create(ctx, seg, acct, st, ""); err != nil {
			return err
		}
		added = ledger.New()
		created = fmt.Sprintf("Created remote segment %s named %q", seg.OwnedID(), seg.RemoteName())
	case p.recreate:
		old := seg.OwnedID()
		if err := r.delete(ctx, seg, acct, old); err != nil {
			return err
		}
		// Released: should the create not follow, the Segment owns nothing, rather than a
		// segment that would look deleted outside the operator.
		resetRemote(seg)
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
		why := fmt.Sprintf("Deleted remote segment %s to remove %s (memberRemovalPolicy Recreate)", old, plural(p.notRemovable, "member"))
		if err := r.create(ctx, seg, acct, st, why); err != nil {
			return err
		}
		added = ledger.New()
		created, reason = fmt.Sprintf("%s and created %s", why, seg.OwnedID()), "RecreatedToRemoveMembers"
	case p.renameTo != "":
		if err := r.rename(ctx, seg, acct, p.renameFrom, p.renameTo); err != nil {
			return err
		}
	}
	n, err := r.addMembers(ctx, seg, acct, added, p.add)
	switch {
	case created != "": // one event for a create and its first members
		r.event(seg, reason, "Create", "%s, with %s", created, plural(n, "member"))
	case n > 0:
		r.event(seg, "MembersAdded", "AddMembers", "Added %s to remote segment %s", plural(n, "member"), seg.OwnedID())
	}
	if err != nil {
		return err
	}
	r.reportNotRemovable(seg, added.NotIn(desired))
	return nil
}

// create creates the remote segment. The create call is not idempotent, so the attempt is
// recorded first (status.ownership.createPending, in the same write that forgets a segment
// it replaces): if the ID never reaches status, because the manager died or the response
// was lost, the next reconcile resolves what the call made instead of making another. The
// new ID replaces the intent with the reconcile's final status write; a create that
// certainly had no effect removes the intent in that write instead. why says why a segment
// is replaced, if one is. The name lock is held from the call until the new ID is claimed,
// so that no Segment choosing a segment by this name meanwhile can take it.
func (r *SegmentReconciler) create(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter, why string) error {
	if err := acct.Client.CheckPause(chatbot.OpCreate); err != nil {
		return err // no intent to record for a call that cannot go
	}
	if err := r.ensureFinalizer(ctx, seg); err != nil {
		return err
	}
	intent := newIntent(seg, acct)
	if replaced := seg.OwnedID(); replaced != "" && why == "" {
		why = fmt.Sprintf("Remote segment %s is gone", replaced)
	}
	msg := fmt.Sprintf("Creating remote segment %q", intent.Name)
	if why != "" {
		msg = why + "; creating a new one"
	}
	resetRemote(seg)
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{CreatePending: intent}
	setOutcome(seg, outcome{reason: usersv1alpha1.ReasonCreating, msg: msg, progress: reconciling})
	if err := st.write(ctx, seg); err != nil {
		return fmt.Errorf("record create intent: %w", err)
	}

	key := nameKey(acct, intent.Name)
	r.names.LockKey(key)
	unlock := sync.OnceFunc(func() { _ = r.names.UnlockKey(key) })
	defer unlock()
	// No create is sent later than CreateTimeout after its intent: a process that did not
	// see it end (a restart, a new leader) waits that long before it resolves it.
	cctx, cancel := context.WithDeadline(ctx, intent.At.Add(r.createTimeout()))
	defer cancel()
	created, err := acct.Client.CreateSegment(cctx, intent.Name)
	if apiErr, ok := chatbot.AsAPIError(err); ok && apiErr.NoEffect() {
		seg.Status.Ownership.CreatePending = nil // certainly made nothing
		// Should the write that clears it fail (a conflict with the Segment's deletion, say),
		// the next reconcile still knows, without a listing that may never succeed.
		r.createsNoEffect.Store(seg.UID, intent.At.Time)
		return err
	}
	r.createsEnded.Store(seg.UID, time.Now())
	if err != nil {
		return err
	}
	acct.Observations.Created(created)
	// An API is trusted with its answer only for a segment no other Segment owns: one a
	// tenant runs (an allowed apiURL) could answer with another namespace's segment ID.
	r.claimMu.Lock()
	owner, err := r.owner(ctx, seg, created.ID)
	if err == nil && owner == "" {
		r.recordClaim(created.ID, seg)
	}
	r.claimMu.Unlock()
	if err != nil {
		return err // the pending create stays, and is resolved from a listing
	}
	if owner != "" {
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
		return stall(usersv1alpha1.ReasonConflict, "The API answered this Segment's create with remote segment %s, which %s "+
			"manages: this Segment leaves it alone", created.ID, owner)
	}
	unlock()
	seg.Status.ID = created.ID
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: created.ID, Account: acct.ID}
	recordObserved(seg, created)
	logf.FromContext(ctx).Info("created remote segment", "remoteID", created.ID)
	return nil
}

// rename gives the owned remote segment the desired name; its ID and members stay.
func (r *SegmentReconciler) rename(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, from, to string) error {
	id := seg.OwnedID()
	if err := acct.Client.RenameSegment(ctx, id, to); err != nil {
		if chatbot.IsNotFound(err) {
			acct.Observations.Deleted(id)
		}
		return fmt.Errorf("segment %s: %w", id, err)
	}
	acct.Observations.Renamed(id, to)
	seg.Status.Name = to
	r.event(seg, "Renamed", "Rename", "Renamed remote segment %s from %q to %q", id, from, to)
	logf.FromContext(ctx).Info("renamed remote segment", "from", from, "to", to)
	return nil
}

// addMembers adds users (sorted, so that identical sets of several Segments merge) to the
// owned segment, records them in added, and returns how many were added. What was added is
// recorded even when a later batch fails, so no member is sent twice and none is
// forgotten; nothing is sent that the record could not keep.
func (r *SegmentReconciler) addMembers(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, added *ledger.Ledger,
	users []string) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	next := added.Clone()
	next.Add(users...)
	if err := r.records.Reserve(ctx, seg, next); err != nil {
		return 0, err
	}
	id := seg.OwnedID()
	n, err := acct.Members.Add(ctx, id, users)
	if n > 0 {
		added.Add(users[:n]...)
		acct.Observations.MembersAdded(id, added.Len())
		if observed, ok := acct.Observations.Lookup(id); ok {
			seg.Status.RemoteMembers = int32(observed.Users)
		}
		logf.FromContext(ctx).Info("added members", "count", n)
		// Recorded even when the reconcile is being cancelled (a shutdown, a lost lease): the
		// members are in ChatBot, and would be sent again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		saveErr := r.records.Save(sctx, seg, added)
		cancel()
		if saveErr != nil {
			return n, saveErr
		}
	}
	if err != nil {
		if chatbot.IsNotFound(err) {
			acct.Observations.Deleted(id)
		}
		return n, fmt.Errorf("segment %s: %w", id, err)
	}
	return n, nil
}

// reportMissing reports members the count says are missing, and records a re-add of the
// desired members made for it (apply made it when drift.readd).
func (r *SegmentReconciler) reportMissing(seg *usersv1alpha1.Segment, observed *chatbot.Segment, drift memberDrift) {
	if drift.unknown {
		return // the count says what we added: the last report stands until a listing says otherwise
	}
	rec := seg.Status.MemberRecord
	switch {
	case drift.readd && rec != nil:
		rec.Readded = &usersv1alpha1.MembersReadded{Missing: int32(drift.missing), At: metav1.Now()}
	case drift.settled && rec != nil:
		rec.Readded = nil
	}
	before := seg.Status.MissingMembers
	seg.Status.MissingMembers = int32(drift.missing)
	if drift.missing == 0 {
		removeCondition(seg, usersv1alpha1.ConditionMembersMissing)
		return
	}
	what := "they were added again"
	if !drift.readd {
		what = "they were added again when the count first showed it, and are not again unless more go missing " +
			"(ChatBot may not take back users it deleted)"
	}
	msg := fmt.Sprintf("Remote segment %s counts %d members, fewer than the %s the operator added: members were removed, "+
		"or users deleted, outside the operator; %s. The count cannot tell which members, nor see a removal hidden by "+
		"members added outside the operator", seg.OwnedID(), observed.Users,
		plural(drift.missing+observed.Users, "desired member"), what)
	setCondition(seg, usersv1alpha1.ConditionMembersMissing, true, usersv1alpha1.ReasonRemovedOutside, msg)
	if drift.readd || int32(drift.missing) != before {
		r.warn(seg, usersv1alpha1.ConditionMembersMissing, "AddMembers", "%s", msg)
	}
}

// reportNotRemovable says, visibly, how many removals from the desired members the API
// cannot carry out: it has no remove-member endpoint. The record keeps digests, not IDs, so
// it counts them exactly but cannot name them.
func (r *SegmentReconciler) reportNotRemovable(seg *usersv1alpha1.Segment, extra int) {
	before := seg.Status.NotRemovableMembers
	seg.Status.NotRemovableMembers = int32(extra)
	if extra == 0 {
		removeCondition(seg, usersv1alpha1.ConditionMembersNotRemovable)
		return
	}
	msg := fmt.Sprintf("%s removed from spec.members or spec.membersFrom, but the ChatBot API cannot remove members: "+
		"they stay in remote segment %s until it is deleted (memberRemovalPolicy Recreate does that)",
		plural(extra, "member was", "members were"), seg.OwnedID())
	setCondition(seg, usersv1alpha1.ConditionMembersNotRemovable, true, usersv1alpha1.ReasonRemovedFromSpec, msg)
	if int32(extra) != before {
		r.warn(seg, usersv1alpha1.ConditionMembersNotRemovable, "RemoveMembers", "%s", msg)
	}
}

// delete deletes remote segment id; one that is already gone is fine.
func (r *SegmentReconciler) delete(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, id string) error {
	err := acct.Client.DeleteSegment(ctx, id)
	switch {
	case chatbot.IsNotFound(err):
		r.event(seg, "AlreadyDeleted", "Delete", "Remote segment %s was already gone", id)
	case err != nil:
		return fmt.Errorf("segment %s: %w", id, err)
	default:
		r.event(seg, "Deleted", "Delete", "Deleted remote segment %s", id)
		logf.FromContext(ctx).Info("deleted remote segment", "remoteID", id)
	}
	acct.Observations.Deleted(id)
	r.releaseClaim(id)
	return nil
}

// recordObserved copies what the API reports of the remote segment into status.
func recordObserved(seg *usersv1alpha1.Segment, observed chatbot.Segment) {
	seg.Status.Name = observed.Name
	seg.Status.RemoteMembers = int32(observed.Users)
	if !observed.CreatedAt.IsZero() {
		// metav1.Time is stored in whole seconds: keeping the API's milliseconds would make
		// every reconcile see a change, and send a status write, where there is none.
		t := metav1.NewTime(observed.CreatedAt.Truncate(time.Second))
		seg.Status.CreatedAt = &t
	}
}

// resetRemote forgets what status says of the remote segment: it is gone, or about to be
// created anew.
func resetRemote(seg *usersv1alpha1.Segment) {
	seg.Status.ID = ""
	seg.Status.Name = ""
	seg.Status.RemoteMembers = 0
	seg.Status.CreatedAt = nil
	seg.Status.AddedMembers = nil
	seg.Status.NotRemovableMembers = 0
	seg.Status.MissingMembers = 0
	memberrecord.Reset(seg)
}

// plural says "1 member" or "2 members"; with a second form, that form for other counts
// ("1 member was", "2 members were").
func plural(n int, one string, other ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(other) > 0 {
		return fmt.Sprintf("%d %s", n, other[0])
	}
	return fmt.Sprintf("%d %ss", n, one)
}
