package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// createSkew is how much earlier than the recorded intent a remote createdAt may be and
// still count as the interrupted create: our clock and ChatBot's are not the same clock.
const createSkew = 5 * time.Second

// newIntent records a create of the Segment's desired name in acct, about to be attempted.
func newIntent(seg *usersv1alpha1.Segment, acct *remote.Account) *usersv1alpha1.CreateIntent {
	// To the microsecond, as the API server keeps it: the in-process memos compare this
	// time with the one read back.
	at := time.Now().UTC().Truncate(time.Microsecond)
	return &usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(at), Name: seg.RemoteName(), Account: acct.ID}
}

// intentTime is how messages quote an intent's time, and what the forget-create
// annotation must say to forget it.
func intentTime(i *usersv1alpha1.CreateIntent) string {
	return i.At.UTC().Format(metav1.RFC3339Micro)
}

// forgetRequested reports whether the Segment's forget-create annotation names its
// pending create.
func forgetRequested(seg *usersv1alpha1.Segment) bool {
	i := seg.PendingCreate()
	return i != nil && strings.TrimSpace(seg.Annotations[usersv1alpha1.AnnotationForgetCreate]) == intentTime(i)
}

// forgetCreate drops the pending create at the user's request, and says what may be left.
func (r *SegmentReconciler) forgetCreate(seg *usersv1alpha1.Segment) {
	i := seg.PendingCreate()
	r.warn(seg, "CreateForgotten", "Create", "Forgot the create of a segment named %q attempted at %s (annotation %s): "+
		"any segment it made, named so and created then, is left in ChatBot", i.Name, intentTime(i), usersv1alpha1.AnnotationForgetCreate)
	seg.Status.Ownership.CreatePending = nil
}

// createdChoice is what a pending create made, as far as a listing tells.
type createdChoice struct {
	// id is the segment it made, when exactly one segment can be it.
	id string
	// uncertain lists the segments it may have made when the operator cannot tell: several
	// candidates, or, when spec.id names a segment to adopt, any candidate besides that one.
	uncertain []string
}

// mayHaveMade reports whether the create of intent, never sent after deadline, may have
// made segment s: it has the intent's name (not the spec's: it may have changed since),
// and ChatBot's clock, which may be createSkew off ours, dates it within the call.
func mayHaveMade(intent *usersv1alpha1.CreateIntent, deadline time.Time, s chatbot.Segment) bool {
	return s.Name == intent.Name && !s.CreatedAt.Before(intent.At.Add(-createSkew)) && !s.CreatedAt.After(deadline.Add(createSkew))
}

// createDeadline is when a create of intent is sent at the latest: CreateTimeout after it.
func (r *SegmentReconciler) createDeadline(intent *usersv1alpha1.CreateIntent) time.Time {
	return intent.At.Add(r.createTimeout())
}

// chooseCreated decides which segment a pending create made, from a listing that began
// after the create call ended: one it may have made (mayHaveMade) that no other Segment
// owns. keep is the segment spec.id names, if any: the create's segment must not
// be forgotten in favour of it.
func chooseCreated(listed []chatbot.Segment, intent *usersv1alpha1.CreateIntent, deadline time.Time, ownedByOther func(id string) bool, keep string) createdChoice {
	var candidates []string
	for _, s := range listed {
		if mayHaveMade(intent, deadline, s) && !ownedByOther(s.ID) {
			candidates = append(candidates, s.ID)
		}
	}
	slices.Sort(candidates) // a stable message: a status write only when something changed
	if keep != "" {
		return createdChoice{uncertain: slices.DeleteFunc(candidates, func(id string) bool { return id == keep })}
	}
	if len(candidates) == 1 {
		return createdChoice{id: candidates[0]}
	}
	return createdChoice{uncertain: candidates}
}

// resolve finds what the Segment's pending create made: "" if nothing (or, with keep, if
// nothing besides keep), its ID if one segment, CreateUncertain if it cannot tell. A
// segment found is claimed for the Segment in this process before the locks are released.
func (r *SegmentReconciler) resolve(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, intent *usersv1alpha1.CreateIntent, keep string) (string, error) {
	way := fmt.Sprintf("or, if none is this Segment's, annotate it %s=%s", usersv1alpha1.AnnotationForgetCreate, intentTime(intent))
	if intent.Account != "" && intent.Account != acct.ID {
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"A create of a segment named %q was attempted at %s with other credentials (account %s; this Segment now uses account %s), "+
				"and its outcome is unknown. Look in that account for a segment of that name created then: if it is the same ChatBot "+
				"account (only the token changed), set spec.id to it; %s", intent.Name, intentTime(intent), intent.Account, acct.ID, way)
	}
	if at, ok := r.createsNoEffect.Load(seg.UID); ok && at.(time.Time).Equal(intent.At.Time) {
		return "", nil // this process saw it refused or never sent: it made nothing
	}
	// The create ended when this process saw it end; else (a restart, another leader that
	// may still be sending it) no later than its deadline, by a clock that may be
	// createSkew off: until then nothing can be concluded.
	ended := r.createDeadline(intent).Add(createSkew)
	if t, ok := r.createsEnded.Load(seg.UID); ok {
		ended = t.(time.Time)
	} else if wait := time.Until(ended); wait > 0 {
		return "", &waitError{after: wait, msg: fmt.Sprintf("A create of a segment named %q was attempted at %s by another run "+
			"of the operator; its outcome is looked for once it can no longer be sent (in %s)", intent.Name, intentTime(intent),
			wait.Round(time.Second))}
	}
	if err := r.listAfter(ctx, acct, ended); err != nil {
		return "", err
	}
	key := nameKey(acct, intent.Name)
	r.names.LockKey(key)
	defer func() { _ = r.names.UnlockKey(key) }()
	r.claimMu.Lock()
	defer r.claimMu.Unlock()

	var ownerErr error
	choice := chooseCreated(acct.Observations.Segments(), intent, r.createDeadline(intent), func(id string) bool {
		owner, err := r.owner(ctx, seg, id)
		if ownerErr == nil {
			ownerErr = err
		}
		return owner != ""
	}, keep)
	switch {
	case ownerErr != nil:
		return "", ownerErr
	case len(choice.uncertain) > 0 && keep != "":
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"spec.id names %s, but a create for this Segment was interrupted at %s and may have made %s (named %q, created since). "+
				"Delete it in ChatBot, then %s is adopted; %s", keep, intentTime(intent), sample(choice.uncertain), intent.Name, keep, way)
	case len(choice.uncertain) > 0:
		return "", stall(usersv1alpha1.ReasonCreateUncertain,
			"A create for this Segment was interrupted at %s and %d segments named %q have been created since (%s). "+
				"Delete the others in ChatBot and set spec.id to the one to adopt; %s",
			intentTime(intent), len(choice.uncertain), intent.Name, sample(choice.uncertain), way)
	case choice.id != "":
		r.recordClaim(choice.id, seg)
	}
	r.createsEnded.Delete(seg.UID)
	return choice.id, nil
}
