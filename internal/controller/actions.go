package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// confirmGoneAfter is how old a listing may be before a segment missing from it is
// confirmed with a new listing, rather than taken as deleted.
const confirmGoneAfter = 2 * time.Second

// observe finds the remote segment in the account's shared listing. The API has no
// get-by-id, so this lists the account, at most once per DriftInterval for all its
// Segments. A segment missing from an older listing is confirmed with a fresh one before it
// is declared gone: recreating it is not a step to take on stale evidence.
func (r *SegmentReconciler) observe(ctx context.Context, acct *remote.Account, id string) (chatbot.Segment, bool, error) {
	fetchedAt, err := acct.Observations.Ensure(ctx, r.DriftInterval)
	if err != nil {
		return chatbot.Segment{}, false, fmt.Errorf("list segments: %w", err)
	}
	if seg, ok := acct.Observations.Lookup(id); ok {
		return seg, true, nil
	}
	if time.Since(fetchedAt) > confirmGoneAfter {
		if _, err := acct.Observations.Refresh(ctx); err != nil {
			return chatbot.Segment{}, false, fmt.Errorf("list segments: %w", err)
		}
	}
	seg, ok := acct.Observations.Lookup(id)
	return seg, ok, nil
}

// create creates the remote segment and records its ID in status at once. The create call
// is not idempotent, so the attempt is recorded first (the create-pending annotation): if
// the ID never reaches status, because the manager died or the response was lost, the next
// reconcile finds the segment made instead of making another (see claim). A create that
// certainly had no effect removes the record again. The name lock is held from the call
// until the new ID is recorded as this Segment's, so that no Segment choosing a segment by
// this name meanwhile can take it.
func (r *SegmentReconciler) create(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	if err := acct.Client.CheckPause(chatbot.OpCreate); err != nil {
		return fmt.Errorf("create segment: %w", err) // no intent to record for a call that cannot go
	}
	// The stored status must not name a segment this one replaces (deleted out of band, or
	// only observed) once the intent and the finalizer are on: the stale ID would pass for
	// the segment held, and the intent would never be resolved.
	if err := r.forgetStoredID(ctx, seg, st, ""); err != nil {
		return err
	}
	if err := r.setCreateIntent(ctx, seg, acct); err != nil {
		return fmt.Errorf("record create intent: %w", err)
	}
	name := seg.RemoteName()
	unlock := sync.OnceFunc(r.lockName(acct, name)) // until the new ID is recorded as ours
	defer unlock()
	created, err := acct.Client.CreateSegment(ctx, name)
	if err != nil {
		unlock()
		err = fmt.Errorf("create segment: %w", err)
		if apiErr, ok := chatbot.AsAPIError(err); ok && apiErr.NoEffect() {
			// Certainly nothing was created: forget the attempt, or a later reconcile would
			// take a same-named segment made since for the one this create made.
			if cerr := r.clearCreateIntent(ctx, seg); cerr != nil {
				return errors.Join(err, fmt.Errorf("clear create intent: %w", cerr))
			}
		}
		return err
	}
	id := created.ID
	acct.Observations.Created(created)
	r.recordClaim(id, seg)
	unlock()
	resetRemote(seg)
	recordObserved(seg, created)
	seg.Status.ID = id
	setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonCreating,
		fmt.Sprintf("Created remote segment %s; adding members", id))
	setCondition(seg, usersv1alpha1.ConditionReconciling, true, usersv1alpha1.ReasonCreating, "Adding members")
	r.event(seg, "Created", "Create", "Created remote segment %s named %q", id, name)
	logf.FromContext(ctx).Info("created remote segment", "remoteID", id)
	if err := st.write(ctx, seg); err != nil {
		return fmt.Errorf("record remote segment ID %s in status: %w", id, err)
	}
	return r.clearCreateIntent(ctx, seg)
}

// forgetStoredID writes the status in memory, which names no segment or keep, if the stored
// status names another segment. It runs before the finalizer or a create intent goes on,
// so that a Segment never looks as if it held a segment it is replacing.
func (r *SegmentReconciler) forgetStoredID(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter, keep string) error {
	if st.written.ID == "" || st.written.ID == keep {
		return nil
	}
	if seg.Status.ID != "" && seg.Status.ID != keep {
		resetRemote(seg)
	}
	if keep == "" {
		setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonCreating,
			fmt.Sprintf("Remote segment %s is gone; creating a new one", st.written.ID))
	}
	if err := st.writeLocked(ctx, seg); err != nil {
		return fmt.Errorf("forget remote segment %s in status: %w", st.written.ID, err)
	}
	return nil
}

// setCreateIntent records a create about to be attempted (when, which name, which account),
// and puts the finalizer on in the same write if it is not there yet. The patch is
// conditional on the Segment read: a reconcile working from a cached copy that predates the
// last write (which may have recorded a create) must not create again.
func (r *SegmentReconciler) setCreateIntent(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	intent := encodeIntent(createIntent{At: time.Now().UTC().Truncate(time.Millisecond), Name: seg.RemoteName(), Account: acct.ID})
	return r.patchMetadataWith(ctx, seg, client.MergeFromWithOptions(seg.DeepCopy(), client.MergeFromWithOptimisticLock{}),
		func(s *usersv1alpha1.Segment) {
			controllerutil.AddFinalizer(s, usersv1alpha1.SegmentFinalizer)
			metav1.SetMetaDataAnnotation(&s.ObjectMeta, usersv1alpha1.AnnotationCreatePending, intent)
		})
}

// patchMetadata patches seg's metadata and takes back only the metadata the API server
// returns. The status in memory may differ from the stored one (a remote segment found
// gone clears status.id) and must not be replaced by it before it is written: the stored
// ID of a deleted segment would hide the create just attempted, and leak what it made.
func (r *SegmentReconciler) patchMetadata(ctx context.Context, seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) error {
	return r.patchMetadataWith(ctx, seg, client.MergeFrom(seg.DeepCopy()), change)
}

// patchMetadataWith is patchMetadata with the patch built on seg as it was (MergeFrom, with
// or without an optimistic lock).
func (r *SegmentReconciler) patchMetadataWith(ctx context.Context, seg *usersv1alpha1.Segment, patch client.Patch, change func(*usersv1alpha1.Segment)) error {
	obj := seg.DeepCopy()
	change(obj)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return err
	}
	seg.ObjectMeta = obj.ObjectMeta
	return nil
}

// clearCreateIntent removes the create record once the ID is safely in status.
func (r *SegmentReconciler) clearCreateIntent(ctx context.Context, seg *usersv1alpha1.Segment) error {
	if _, ok := seg.Annotations[usersv1alpha1.AnnotationCreatePending]; !ok {
		return nil
	}
	return r.patchMetadata(ctx, seg, func(s *usersv1alpha1.Segment) {
		delete(s.Annotations, usersv1alpha1.AnnotationCreatePending)
	})
}

// recreateToRemoveMembers applies memberRemovalPolicy Recreate: the API cannot remove
// members, so a segment holding members no longer desired is deleted and created anew with
// exactly spec.members. Deleting first means nothing is ever left behind in ChatBot; for a
// moment, the segment does not exist. A segment adopted through spec.id is never recreated:
// its ID is fixed.
func (r *SegmentReconciler) recreateToRemoveMembers(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	extra := difference(seg.Status.AddedMembers, seg.Spec.Members)
	if seg.Spec.MemberRemovalPolicy != usersv1alpha1.MemberRemovalPolicyRecreate || len(extra) == 0 || seg.Spec.ID != "" {
		return nil
	}
	old := seg.Status.ID
	if err := r.delete(ctx, seg, acct); err != nil {
		return err
	}
	resetRemote(seg)
	// Not Ready while there is no segment: the write records that the old one is gone.
	msg := fmt.Sprintf("Deleted remote segment %s to remove %d members (memberRemovalPolicy Recreate); creating it anew", old, len(extra))
	setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonCreating, msg)
	setCondition(seg, usersv1alpha1.ConditionReconciling, true, usersv1alpha1.ReasonCreating, msg)
	if err := st.writeLocked(ctx, seg); err != nil {
		return err
	}
	if err := r.create(ctx, seg, acct, st); err != nil {
		return err
	}
	r.event(seg, "RecreatedToRemoveMembers", "Recreate",
		"Deleted remote segment %s and created %s to remove %d members (memberRemovalPolicy Recreate)", old, seg.Status.ID, len(extra))
	return nil
}

// rename gives the remote segment the desired name; its ID and members stay.
func (r *SegmentReconciler) rename(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	id, from, to := seg.Status.ID, seg.Status.Name, seg.RemoteName()
	if err := acct.Client.RenameSegment(ctx, id, to); err != nil {
		if chatbot.IsNotFound(err) {
			acct.Observations.Deleted(id)
		}
		return fmt.Errorf("rename segment %s: %w", id, err)
	}
	acct.Observations.Renamed(id, to)
	seg.Status.Name = to
	r.event(seg, "Renamed", "Rename", "Renamed remote segment %s from %q to %q", id, from, to)
	logf.FromContext(ctx).Info("renamed remote segment", "from", from, "to", to)
	return nil
}

// addMembers adds the desired members not yet added. What was added is recorded even when
// a later batch fails, so no member is sent twice and none is forgotten.
func (r *SegmentReconciler) addMembers(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	missing := difference(seg.Spec.Members, seg.Status.AddedMembers)
	if len(missing) == 0 {
		return nil
	}
	id := seg.Status.ID
	n, err := acct.Members.Add(ctx, id, missing) // missing is sorted, so identical sets merge
	if n > 0 {
		seg.Status.AddedMembers = union(seg.Status.AddedMembers, missing[:n])
		acct.Observations.MembersAdded(id, len(seg.Status.AddedMembers))
		if observed, ok := acct.Observations.Lookup(id); ok {
			seg.Status.RemoteMembers = int32(observed.Users)
		}
		r.event(seg, "MembersAdded", "AddMembers", "Added %d members to remote segment %s", n, id)
		logf.FromContext(ctx).Info("added members", "count", n)
	}
	if err != nil {
		if chatbot.IsNotFound(err) {
			acct.Observations.Deleted(id)
		}
		return fmt.Errorf("add members to segment %s: %w", id, err)
	}
	return nil
}

// reportNotRemovable says, visibly, which removals from spec.members the API cannot carry
// out: it has no remove-member endpoint.
func (r *SegmentReconciler) reportNotRemovable(seg *usersv1alpha1.Segment) {
	extra := difference(seg.Status.AddedMembers, seg.Spec.Members)
	before := seg.Status.NotRemovableMembers
	seg.Status.NotRemovableMembers = int32(len(extra))
	if len(extra) == 0 {
		removeCondition(seg, usersv1alpha1.ConditionMembersNotRemovable)
		return
	}
	msg := fmt.Sprintf("%d members were removed from spec.members, but the ChatBot API cannot remove members: "+
		"they stay in remote segment %s until it is deleted (for example %s)", len(extra), seg.Status.ID, sample(extra))
	setCondition(seg, usersv1alpha1.ConditionMembersNotRemovable, true, usersv1alpha1.ReasonRemovedFromSpec, msg)
	if int32(len(extra)) != before {
		r.warn(seg, usersv1alpha1.ConditionMembersNotRemovable, "RemoveMembers", "%s", msg)
	}
}

// delete deletes the remote segment; one that is already gone is fine.
func (r *SegmentReconciler) delete(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	id := seg.Status.ID
	err := acct.Client.DeleteSegment(ctx, id)
	switch {
	case chatbot.IsNotFound(err):
		r.event(seg, "AlreadyDeleted", "Delete", "Remote segment %s was already gone", id)
	case err != nil:
		return fmt.Errorf("delete segment %s: %w", id, err)
	default:
		r.event(seg, "Deleted", "Delete", "Deleted remote segment %s", id)
		logf.FromContext(ctx).Info("deleted remote segment")
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

// resetRemote forgets the remote segment: it is gone, or about to be created anew.
func resetRemote(seg *usersv1alpha1.Segment) {
	seg.Status.ID = ""
	seg.Status.Name = ""
	seg.Status.RemoteMembers = 0
	seg.Status.CreatedAt = nil
	seg.Status.AddedMembers = nil
	seg.Status.NotRemovableMembers = 0
}

// difference returns the items of a not in b, sorted.
func difference(a, b []string) []string {
	in := make(map[string]struct{}, len(b))
	for _, s := range b {
		in[s] = struct{}{}
	}
	var out []string
	for _, s := range a {
		if _, ok := in[s]; !ok {
			out = append(out, s)
			in[s] = struct{}{} // a is a set, but never send a duplicate
		}
	}
	slices.Sort(out)
	return out
}

// union returns the sorted union of two sets.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// sample names up to three items, for messages.
func sample(items []string) string {
	if len(items) > 3 {
		return fmt.Sprintf("%v and %d more", items[:3], len(items)-3)
	}
	return fmt.Sprint(items)
}
