package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// createSkew is how much earlier than the recorded intent a remote createdAt may be and
// still count as the interrupted create: our clock and ChatBot's are not the same clock.
const createSkew = 5 * time.Second

// claim looks for an existing remote segment the Segment should manage instead of creating
// one: the one spec.id names, the one status.id shows but the Segment does not hold yet
// (observed under managementPolicy ObserveOnly, or its finalizer was removed by hand), the
// one an interrupted create made, or, with adoptionPolicy AdoptByName, the only one with
// the desired name. It records the ID in status at once. Finding none is not an error: the
// caller creates.
//
// The listing is read first, without locks. The choice is made under the name lock (no
// create of this name is in flight in this process, so a segment it makes cannot be
// mistaken for an unowned one) and claimMu (no other Segment can claim the same segment
// between the ownership check and the record).
func (r *SegmentReconciler) claim(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	intent, pending := readIntent(seg)
	if pending {
		// A fresh listing: it must show what the interrupted create made.
		if _, err := acct.Observations.Refresh(ctx); err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
	}
	switch {
	case seg.Spec.ID != "" || seg.Status.ID != "":
		id := cmp.Or(seg.Spec.ID, seg.Status.ID)
		if _, found, err := r.observe(ctx, acct, id); err != nil {
			return err
		} else if !found && seg.Spec.ID != "" {
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist", id)
		} else if !found {
			resetRemote(seg) // the observed segment is gone: look again as a new Segment would
			return r.claim(ctx, seg, acct, st)
		}
	case pending:
	case seg.Spec.AdoptionPolicy == usersv1alpha1.AdoptionPolicyAdoptByName:
		if err := r.listSinceCreation(ctx, seg, acct); err != nil {
			return err
		}
	default:
		return nil
	}

	name := seg.RemoteName()
	if pending {
		name = intent.Name
	}
	defer r.lockName(acct, name)()
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	var (
		id, how string
		err     error
	)
	switch {
	case seg.Spec.ID != "":
		id, how = seg.Spec.ID, "spec.id"
		if pending {
			// The interrupted create may have made a segment before spec.id was set: it
			// must not be forgotten with the intent.
			err = r.othersCreated(ctx, seg, acct, intent, id)
		}
	case seg.Status.ID != "":
		id, how = seg.Status.ID, "status.id, observed before this Segment managed it"
	case pending:
		id, err = r.interruptedCreate(ctx, seg, acct, intent)
		how = "resolving an interrupted create"
	default:
		id, err = r.uniqueByName(ctx, seg, acct)
		how = "name"
	}
	if err != nil || id == "" {
		return err
	}
	if owner, err := r.owner(ctx, seg, id); err != nil {
		return err
	} else if owner != "" {
		return stall(usersv1alpha1.ReasonConflict, "Remote segment %s is already managed by Segment %s; this Segment leaves it alone", id, owner)
	}
	// With the finalizer on, a stored status.id counts as held: it must be this one.
	if err := r.forgetStoredID(ctx, seg, st, id); err != nil {
		return err
	}
	if err := r.ensureFinalizer(ctx, seg); err != nil {
		return err
	}
	if id != seg.Status.ID {
		resetRemote(seg)
		seg.Status.ID = id
	}
	if observed, ok := acct.Observations.Lookup(id); ok {
		recordObserved(seg, observed)
	}
	r.event(seg, "Adopted", "Adopt", "Now managing existing remote segment %s (found by %s)", id, how)
	r.recordClaim(id, seg)
	if err := st.write(ctx, seg); err != nil {
		return fmt.Errorf("record remote segment ID %s in status: %w", id, err)
	}
	return r.clearCreateIntent(ctx, seg)
}

// resolveCreate finds, for a Segment being deleted, the segment an interrupted create made,
// and holds it for the Segment so that nothing else claims it before it is deleted.
func (r *SegmentReconciler) resolveCreate(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (string, error) {
	intent, pending := readIntent(seg)
	if !pending {
		return "", nil
	}
	if _, err := acct.Observations.Refresh(ctx); err != nil {
		return "", fmt.Errorf("list segments: %w", err)
	}
	defer r.lockName(acct, intent.Name)()
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	id, err := r.interruptedCreate(ctx, seg, acct, intent)
	if id != "" {
		r.recordClaim(id, seg)
	}
	return id, err
}

// createIntent is what the create-pending annotation records: when a create was attempted,
// of which name, in which account. The name and account are kept because the spec or the
// credentials may change before the outcome is known.
type createIntent struct {
	At      time.Time `json:"at"`
	Name    string    `json:"name"`
	Account string    `json:"account,omitempty"`
}

// encodeIntent renders a create intent for the annotation.
func encodeIntent(i createIntent) string {
	b, _ := json.Marshal(i) // cannot fail: strings and a time
	return string(b)
}

// readIntent returns the Segment's create intent, if it has one. One that does not say
// when and which name comes back with a zero time: see createCandidates.
func readIntent(seg *usersv1alpha1.Segment) (createIntent, bool) {
	v := seg.Annotations[usersv1alpha1.AnnotationCreatePending]
	if v == "" {
		return createIntent{}, false
	}
	var i createIntent
	if err := json.Unmarshal([]byte(v), &i); err != nil || i.Name == "" {
		return createIntent{Name: seg.RemoteName()}, true
	}
	return i, true
}

// interruptedCreate picks, from a listing taken after the create was attempted, the segment
// an interrupted create made: the one created since the intent, with the intent's name, and
// no other owner. None: the create did not happen. Several: the operator cannot tell which
// is its own, and stops.
func (r *SegmentReconciler) interruptedCreate(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, intent createIntent) (string, error) {
	candidates, err := r.createCandidates(ctx, seg, acct, intent)
	if err != nil || len(candidates) <= 1 {
		return first(candidates), err
	}
	return "", stall(usersv1alpha1.ReasonCreateUncertain,
		"A create for this Segment was interrupted at %s and %d segments named %q have been created since (%s). "+
			"Delete the others in ChatBot and set spec.id to the one to adopt; or remove the annotation %s "+
			"if none of them is this Segment's", intent.At.Format(time.RFC3339Nano), len(candidates), intent.Name,
		strings.Join(candidates, ", "), usersv1alpha1.AnnotationCreatePending)
}

// othersCreated stops the adoption of keep (spec.id) while an interrupted create may have
// made another segment: forgetting the intent would leave that one behind unseen.
func (r *SegmentReconciler) othersCreated(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, intent createIntent, keep string) error {
	candidates, err := r.createCandidates(ctx, seg, acct, intent)
	if err != nil {
		return err
	}
	others := slices.DeleteFunc(candidates, func(id string) bool { return id == keep })
	if len(others) == 0 {
		return nil
	}
	return stall(usersv1alpha1.ReasonCreateUncertain,
		"spec.id names %s, but a create for this Segment was interrupted at %s and may have made %s (named %q, created since). "+
			"Delete it in ChatBot, or remove the annotation %s if it is not this Segment's; then %s is adopted",
		keep, intent.At.Format(time.RFC3339Nano), strings.Join(others, ", "), intent.Name, usersv1alpha1.AnnotationCreatePending, keep)
}

// createCandidates lists the segments an interrupted create may have made: named as the
// intent says, created at or after it, and managed by no other Segment. An intent recorded in
// another account (the credentials changed since) cannot be looked up here: it stops.
func (r *SegmentReconciler) createCandidates(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, intent createIntent) ([]string, error) {
	if intent.At.IsZero() {
		// Never ignored: a create may have happened.
		return nil, stall(usersv1alpha1.ReasonCreateUncertain,
			"The annotation %s does not say when and under which name a create was attempted (%q). If a create is pending, "+
				"find the segment it made in ChatBot and set spec.id to it; then, or if none is, remove the annotation", usersv1alpha1.AnnotationCreatePending,
			seg.Annotations[usersv1alpha1.AnnotationCreatePending])
	}
	if intent.Account != "" && intent.Account != acct.ID {
		return nil, stall(usersv1alpha1.ReasonCreateUncertain,
			"A create of a segment named %q was attempted at %s with other credentials (account %s; this Segment now uses account %s), "+
				"and its outcome is unknown. Look in that account for a segment of that name created then. If it is the same ChatBot "+
				"account (only the token changed) and the segment is there, set spec.id to it first; if it is another account, delete "+
				"or keep it there. Then remove the annotation %s", intent.Name, intent.At.Format(time.RFC3339Nano), intent.Account, acct.ID,
			usersv1alpha1.AnnotationCreatePending)
	}
	return r.unowned(ctx, seg, acct, func(s chatbot.Segment) bool {
		return s.Name == intent.Name && !s.CreatedAt.Before(intent.At.Add(-createSkew))
	})
}

// findByName lists the account if need be, then finds the one remote segment with the
// desired name that no Segment manages (see uniqueByName).
func (r *SegmentReconciler) findByName(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (string, error) {
	if err := r.listSinceCreation(ctx, seg, acct); err != nil {
		return "", err
	}
	return r.uniqueByName(ctx, seg, acct)
}

// listSinceCreation makes sure the account's listing began after the Segment was created
// (creationTimestamp is whole seconds, hence the second added), so that a segment made just
// before it is seen; one listing serves every Segment applied together.
func (r *SegmentReconciler) listSinceCreation(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	if _, err := acct.Observations.EnsureSince(ctx, seg.CreationTimestamp.Add(time.Second)); err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	return nil
}

// uniqueByName returns the one remote segment with the desired name that no Segment
// manages, "" if there is none, and stops if there are several.
func (r *SegmentReconciler) uniqueByName(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (string, error) {
	candidates, err := r.unowned(ctx, seg, acct, func(s chatbot.Segment) bool { return s.Name == seg.RemoteName() })
	if err != nil || len(candidates) <= 1 {
		return first(candidates), err
	}
	return "", stall(usersv1alpha1.ReasonAdoptionAmbiguous,
		"%d remote segments are named %q and not managed by any Segment (%s): set spec.id to the one to adopt",
		len(candidates), seg.RemoteName(), strings.Join(candidates, ", "))
}

// unowned returns the IDs of the account's segments that match and that no other Segment
// manages.
func (r *SegmentReconciler) unowned(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, match func(chatbot.Segment) bool) ([]string, error) {
	var out []string
	for _, s := range acct.Observations.Segments() {
		if !match(s) {
			continue
		}
		owner, err := r.owner(ctx, seg, s.ID)
		if err != nil {
			return nil, err
		}
		if owner == "" {
			out = append(out, s.ID)
		}
	}
	slices.Sort(out) // a stable message: a status write only when something changed
	return out, nil
}

// owner names the other Segment that manages remote segment id, or "".
func (r *SegmentReconciler) owner(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	if other, ok := r.claimedBy(id); ok && other.uid != seg.UID {
		return other.name.String(), nil
	}
	var list usersv1alpha1.SegmentList
	if err := r.List(ctx, &list, client.MatchingFields{indexRemoteID: id}); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		if other.UID != seg.UID {
			return client.ObjectKeyFromObject(&other).String(), nil
		}
	}
	return "", nil
}

// claimant is a Segment that recorded a remote ID in this process; the cache can lag behind
// such a write by a moment, in which another Segment must not claim the same ID.
type claimant struct {
	uid  types.UID
	name types.NamespacedName
}

func (r *SegmentReconciler) claimedBy(id string) (claimant, bool) {
	r.claimsMu.Lock()
	defer r.claimsMu.Unlock()
	c, ok := r.claims[id]
	return c, ok
}

func (r *SegmentReconciler) recordClaim(id string, seg *usersv1alpha1.Segment) {
	r.claimsMu.Lock()
	defer r.claimsMu.Unlock()
	if r.claims == nil {
		r.claims = map[string]claimant{}
	}
	r.claims[id] = claimant{uid: seg.UID, name: client.ObjectKeyFromObject(seg)}
}

func (r *SegmentReconciler) releaseClaim(id string) {
	r.claimsMu.Lock()
	defer r.claimsMu.Unlock()
	delete(r.claims, id)
}

// releaseClaimsOf forgets every remote ID recorded for the Segment with uid: it is going,
// and one whose status write failed must not keep its claim until the manager restarts.
func (r *SegmentReconciler) releaseClaimsOf(uid types.UID) {
	r.claimsMu.Lock()
	defer r.claimsMu.Unlock()
	for id, c := range r.claims {
		if c.uid == uid {
			delete(r.claims, id)
		}
	}
}

func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// nameLocks serialize, per account and remote name, creating a segment with recording its
// ID, and choosing a segment by name. Without them, a Segment resolving an interrupted
// create or adopting by name could take a segment another Segment's create has just made,
// before that create records it.
type nameLocks struct {
	mu sync.Mutex
	m  map[nameKey]*nameLock
}

type nameKey struct {
	acct *remote.Account
	name string
}

type nameLock struct {
	sync.Mutex
	refs int
}

// lockName locks acct's name and returns the unlock function.
func (r *SegmentReconciler) lockName(acct *remote.Account, name string) (unlock func()) {
	n := &r.names
	key := nameKey{acct, name}
	n.mu.Lock()
	if n.m == nil {
		n.m = map[nameKey]*nameLock{}
	}
	l := n.m[key]
	if l == nil {
		l = &nameLock{}
		n.m[key] = l
	}
	l.refs++
	n.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		n.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(n.m, key)
		}
		n.mu.Unlock()
	}
}
