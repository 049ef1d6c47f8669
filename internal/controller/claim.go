package controller

import (
	"cmp"
	"context"
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
	pending := seg.Annotations[usersv1alpha1.AnnotationCreatePending] != ""
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
		if _, err := acct.Observations.Refresh(ctx); err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
	case seg.Spec.AdoptionPolicy == usersv1alpha1.AdoptionPolicyAdoptByName:
		if err := r.listSinceCreation(ctx, seg, acct); err != nil {
			return err
		}
	default:
		return nil
	}

	defer r.lockName(acct, seg.RemoteName())()
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	var (
		id, how string
		err     error
	)
	switch {
	case seg.Spec.ID != "":
		id, how = seg.Spec.ID, "spec.id"
	case seg.Status.ID != "":
		id, how = seg.Status.ID, "status.id, observed before this Segment managed it"
	case pending:
		id, err = r.interruptedCreate(ctx, seg, acct)
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
	if _, err := acct.Observations.Refresh(ctx); err != nil {
		return "", fmt.Errorf("list segments: %w", err)
	}
	defer r.lockName(acct, seg.RemoteName())()
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	id, err := r.interruptedCreate(ctx, seg, acct)
	if id != "" {
		r.recordClaim(id, seg)
	}
	return id, err
}

// interruptedCreate picks, from a listing taken after the create was attempted, the segment
// an interrupted create made: the create-pending annotation says when it was attempted, and
// the one created since with the desired name and no other owner is it. None: the create did
// not happen. Several: the operator cannot tell which is its own, and stops.
func (r *SegmentReconciler) interruptedCreate(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (string, error) {
	pending := seg.Annotations[usersv1alpha1.AnnotationCreatePending]
	since, err := time.Parse(time.RFC3339Nano, pending)
	if err != nil {
		return "", nil // not ours to interpret; a create records a new one
	}
	candidates, err := r.unowned(ctx, seg, acct, func(s chatbot.Segment) bool {
		return s.Name == seg.RemoteName() && !s.CreatedAt.Before(since.Add(-createSkew))
	})
	if err != nil || len(candidates) <= 1 {
		return first(candidates), err
	}
	return "", stall(usersv1alpha1.ReasonCreateUncertain,
		"A create for this Segment was interrupted at %s and %d segments named %q have been created since (%s). "+
			"Set spec.id to the one to adopt, and delete the others in ChatBot", pending, len(candidates), seg.RemoteName(), strings.Join(candidates, ", "))
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
