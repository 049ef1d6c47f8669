package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/plan"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/text"
)

// claim looks for an existing remote segment the Segment should own instead of creating
// one, in this order: what its pending create made; the one spec.id names; the one it
// observed before it managed (status.id); under AdoptByName, the only unowned one with the
// desired name. A claim passes the ownership check and is recorded at once. Finding none is
// not an error: the caller creates.
func (r *SegmentReconciler) claim(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, st *statusWriter) error {
	if intent := seg.PendingCreate(); intent != nil {
		if forgetRequested(seg) {
			forgetCreate(r.Recorder, seg)
		} else {
			id, err := r.resolve(ctx, seg, acct, intent, seg.Spec.ID)
			if err != nil {
				return err
			}
			seg.Status.Ownership.CreatePending = nil // resolved: recorded with the next write
			if id != "" {
				return r.adopt(ctx, seg, acct, st, id, "")
			}
		}
	}
	// A listing begun after the Segment was made (creationTimestamp is whole seconds), so
	// that a segment made just before it is seen; one listing serves every Segment applied
	// together.
	sinceCreation := seg.CreationTimestamp.Add(time.Second)
	if id := seg.Spec.ID; id != "" {
		if err := acct.ListAfter(ctx, sinceCreation, r.DriftInterval); err != nil {
			return err
		}
		if _, found := acct.Lookup(id); !found {
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist", id)
		}
		return r.adopt(ctx, seg, acct, st, id, "spec.id")
	}
	if id := seg.Status.ID; id != "" {
		// Not found, it is forgotten and another made: absence is confirmed first.
		if _, found, err := acct.Observe(ctx, id, r.DriftInterval, goneAfter(seg)); err != nil {
			return err
		} else if found {
			return r.adopt(ctx, seg, acct, st, id, "status.id, observed before this Segment managed it")
		}
		resetRemote(seg) // gone: look again as a new Segment would
	}
	if seg.Spec.AdoptionPolicy != usersv1alpha1.AdoptionPolicyAdoptByName {
		return nil
	}
	if err := acct.ListAfter(ctx, sinceCreation, r.DriftInterval); err != nil {
		return err
	}
	unlock, err := r.owners.LockName(ctx, seg, acct.AccountID(), seg.RemoteName())
	if err != nil {
		return err
	}
	defer unlock()
	id, err := uniqueByName(ctx, r.owners, seg, acct)
	if err != nil || id == "" {
		return err
	}
	return r.adopt(ctx, seg, acct, st, id, "name")
}

// adopt records id as the segment the Segment owns: under the claim lock, the ownership
// check (unless the Segment's own create made it, which resolve claimed), the finalizer,
// then one conditional status write. how says why, for the event; "" for the Segment's own
// create.
func (r *SegmentReconciler) adopt(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, st *statusWriter, id, how string) error {
	bind := func(record func()) error {
		if err := ensureFinalizer(ctx, r.Client, seg); err != nil {
			return err
		}
		if id != seg.Status.ID {
			resetRemote(seg)
		}
		seg.Status.ID = id
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: id, Account: acct.AccountID()}
		if observed, ok := acct.Lookup(id); ok {
			plan.Record(seg, observed)
		}
		record()
		if err := st.write(ctx, seg); err != nil { // the claim: one conditional write
			if !apierrors.IsConflict(err) {
				// Not recorded: the next reconcile claims it again. A conflict is kept: the copy
				// was stale, and the stored Segment may own it already.
				r.owners.Release(ctx, seg, id)
			}
			return fmt.Errorf("record remote segment %s as managed: %w", id, err)
		}
		return nil
	}
	if how == "" {
		if err := bind(func() { r.owners.Record(seg, id) }); err != nil {
			return err
		}
		note(r.Recorder, seg, "Created", "Create", "Found remote segment %s, made by this Segment's interrupted create", id)
		return nil
	}
	var listed *chatbot.Segment
	if s, ok := acct.Lookup(id); ok {
		listed = &s
	}
	if owner, err := r.owners.ClaimWith(ctx, seg, acct.AccountID(), id, listed, bind); err != nil {
		return err
	} else if owner != "" {
		return stall(usersv1alpha1.ReasonConflict, "Remote segment %s is already managed by %s; this Segment leaves it alone", id, owner)
	}
	note(r.Recorder, seg, "Adopted", "Adopt", "Now managing existing remote segment %s (found by %s)", id, how)
	return nil
}

// resolve finds what the Segment's pending create made: "" if nothing (or, with keep, if
// nothing besides keep), its ID if one segment, CreateUncertain if it cannot tell. A
// segment found is claimed for the Segment in this process before the locks are released.
func (r *SegmentReconciler) resolve(ctx context.Context, seg *usersv1alpha1.Segment, acct remote.External, intent *usersv1alpha1.CreateIntent, keep string) (string, error) {
	way := fmt.Sprintf("or, if none is this Segment's, annotate it %s=%s", usersv1alpha1.AnnotationForgetCreate, intentTime(intent))
	if intent.Account != "" && intent.Account != acct.AccountID() {
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"A create of a segment named %q was attempted at %s with other credentials (account %s; this Segment now uses account %s), "+
				"and its outcome is unknown. Look in that account for a segment of that name created then: if it is the same ChatBot "+
				"account (only the token changed), set spec.id to it; %s", intent.Name, intentTime(intent), intent.Account, acct.AccountID(), way)
	}
	if r.owners.MadeNothing(seg.UID, intent.At.Time) {
		return "", nil // this process saw it refused or never sent: it made nothing
	}
	// The create ended when this process saw it end; else (a restart, another leader that
	// may still be sending it) no later than its deadline, by a clock that may be
	// CreateSkew off: until then nothing can be concluded.
	ended, seen := r.owners.Ended(seg.UID, intent.At.Time)
	if !seen {
		ended = r.owners.Deadline(intent).Add(ownership.CreateSkew)
		if wait := time.Until(ended); wait > 0 {
			return "", &waitError{after: wait, msg: fmt.Sprintf("A create of a segment named %q was attempted at %s by another run "+
				"of the operator; its outcome is looked for once it can no longer be sent (in %s)", intent.Name, intentTime(intent),
				wait.Round(time.Second))}
		}
	}
	if err := acct.ListAfter(ctx, ended, r.DriftInterval); err != nil {
		return "", err
	}
	unlock, err := r.owners.LockName(ctx, seg, acct.AccountID(), intent.Name)
	if err != nil {
		return "", err
	}
	defer unlock()
	var choice createdChoice
	if _, err := r.owners.Choose(ctx, seg, func(ownedByOther func(string) bool) string {
		choice = chooseCreated(acct.Segments(), intent, r.owners.Deadline(intent), ownedByOther, keep)
		if len(choice.uncertain) > 0 {
			return ""
		}
		return choice.id
	}); err != nil {
		return "", err
	}
	switch {
	case len(choice.uncertain) > 0 && keep != "":
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"spec.id names %s, but a create for this Segment was interrupted at %s and may have made %s (named %q, created since). "+
				"Delete it in ChatBot, then %s is adopted; %s", keep, intentTime(intent), text.Sample(choice.uncertain), intent.Name, keep, way)
	case len(choice.uncertain) > 0:
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"A create for this Segment was interrupted at %s and %d segments named %q have been created since (%s). "+
				"Delete the others in ChatBot and set spec.id to the one to adopt; %s",
			intentTime(intent), len(choice.uncertain), intent.Name, text.Sample(choice.uncertain), way)
	}
	r.owners.Resolved(seg.UID)
	return choice.id, nil
}

// upgrade finishes what migrate found of an earlier version: it turns that version's hold
// into the ownership record, in memory, unless another Segment owns the segment (then the
// Segment owns nothing, and its status.id is an observation that its next claim checks
// again), and reports that version's create-pending annotation, which is never trusted.
func upgrade(ctx context.Context, owners *ownership.Registry, rec events.EventRecorder, seg *usersv1alpha1.Segment, old legacy) error {
	if old.intent != "" {
		warn(rec, seg, "CreateIntentIgnored", "Upgrade", "The annotation %s (%q) is not read: an earlier version of the operator may "+
			"have attempted a create then, and if it made a segment that no Segment manages, that segment is left in ChatBot. "+
			"The annotation can be removed", usersv1alpha1.AnnotationCreatePending, text.Cut(old.intent, 200))
	}
	if old.hold == "" {
		return nil
	}
	owner, err := owners.Claim(ctx, seg, old.hold)
	if err != nil {
		return err
	}
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
	if owner == "" {
		seg.Status.Ownership.ID = old.hold
		note(rec, seg, "Adopted", "Upgrade", "Now managing remote segment %s, held under an earlier version of the operator", old.hold)
	}
	return nil
}

// rebind records the account the owned segment was found in, where the record names
// another (a rotated token) or none (an earlier version's record). Under other credentials
// the same ID may be another segment, so it is checked as a claim is: another Segment that
// owns it keeps it (Conflict), whatever an API answered this Segment's create with.
func rebind(ctx context.Context, owners *ownership.Registry, seg *usersv1alpha1.Segment, account string) error {
	o := seg.Status.Ownership
	if o.Account == account {
		return nil
	}
	if o.Account != "" {
		if owner, err := owners.Check(ctx, seg, o.ID); err != nil {
			return err
		} else if owner != "" {
			return stall(usersv1alpha1.ReasonConflict, "Remote segment %s was recorded in account %s; this Segment's credentials "+
				"now name account %s, where %s manages a segment of that ID: this Segment leaves it alone", o.ID, o.Account, account, owner)
		}
	}
	o.Account = account
	return nil
}

// find locates the remote segment an observe-only Segment shows: the one it owns, else
// the one spec.id names, else the one it showed before, else under AdoptByName the only
// unowned one with the desired name.
func find(ctx context.Context, owners *ownership.Registry, seg *usersv1alpha1.Segment, acct remote.External, maxAge time.Duration) (*chatbot.Segment, error) {
	id := seg.OwnedID()
	if id == "" {
		id = seg.Spec.ID
	}
	if id == "" {
		id = seg.Status.ID
	}
	if id != "" {
		observed, found, err := acct.Observe(ctx, id, maxAge, time.Time{})
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
	if err := acct.ListAfter(ctx, seg.CreationTimestamp.Add(time.Second), maxAge); err != nil {
		return nil, err
	}
	id, err := uniqueByName(ctx, owners, seg, acct)
	if err != nil || id == "" {
		return nil, err
	}
	observed, _ := acct.Lookup(id)
	return &observed, nil
}

// uniqueByName returns the one remote segment with the desired name that no other Segment
// owns or may have made, "" if there is none, and stops if there are several.
func uniqueByName(ctx context.Context, owners *ownership.Registry, seg *usersv1alpha1.Segment, acct remote.External) (string, error) {
	var candidates []string
	for _, s := range acct.Segments() {
		if s.Name != seg.RemoteName() {
			continue
		}
		if owner, err := owners.TakenBy(ctx, seg, acct.AccountID(), s); err != nil {
			return "", err
		} else if owner == "" {
			candidates = append(candidates, s.ID)
		}
	}
	slices.Sort(candidates) // a stable message: a status write only when something changed
	switch len(candidates) {
	case 0:
		return "", nil
	case 1:
		return candidates[0], nil
	}
	return "", stall(usersv1alpha1.ReasonAdoptionAmbiguous,
		"%d remote segments are named %q and not managed by any Segment (%s): set spec.id to the one to adopt",
		len(candidates), seg.RemoteName(), text.Sample(candidates))
}
