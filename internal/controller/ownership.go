package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// legacy is what an earlier version, which kept no status.ownership, left on a Segment.
type legacy struct {
	// hold is the status.id the Segment held by that version's rule (status.id and the
	// finalizer): it is claimed with the ownership check like any adoption, and counts as
	// held (in the index, and for deletion) until that claim is decided.
	hold string
	// intent is that version's create-pending annotation. It is never trusted, because
	// anyone who may edit the Segment may have written it; it is reported instead.
	intent string
}

// migrate gives a Segment its ownership record in memory (written with its next status
// write), and returns what an earlier version left. A Segment with a legacy hold gets its
// record from claimLegacy, which checks the hold first.
func migrate(seg *usersv1alpha1.Segment) legacy {
	if seg.Status.Ownership != nil {
		return legacy{}
	}
	var l legacy
	if controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		l.intent = seg.Annotations[usersv1alpha1.AnnotationCreatePending]
	}
	if l.hold = legacyHold(seg); l.hold == "" {
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
	}
	return l
}

// claimLegacy turns a hold an earlier version recorded into the ownership record, in
// memory (the next status write, whatever it is, records it), unless another Segment
// owns the segment; then the Segment owns nothing, and its status.id is an observation
// that its next claim checks again.
func (r *SegmentReconciler) claimLegacy(ctx context.Context, seg *usersv1alpha1.Segment, id string) error {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	owner, err := r.owner(ctx, seg, id)
	if err != nil {
		return err
	}
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
	if owner == "" {
		seg.Status.Ownership.ID = id
		r.recordClaim(id, seg)
		r.event(seg, "Adopted", "Upgrade", "Now managing remote segment %s, held under an earlier version of the operator", id)
	}
	return nil
}

// legacyHold returns the status.id a Segment held under an earlier version: one whose
// status that version wrote (no ownership record) saying Ready, reason Synced, for the
// Segment's current generation, with the finalizer on. Only a Segment that version managed
// in sync gets that status, and status is the manager's: an editor cannot stage it. An
// observation (ObserveOnly writes Observed or DriftDetected), a claim it refused, a
// suspended Segment, or a spec changed since, hold nothing here; their status.id is
// claimed with the ownership check like any observed one.
func legacyHold(seg *usersv1alpha1.Segment) string {
	ready := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady)
	current := seg.Status.ObservedGeneration == seg.Generation ||
		// deletion bumps the generation once, and must not drop the hold
		!seg.DeletionTimestamp.IsZero() && seg.Status.ObservedGeneration == seg.Generation-1
	if seg.Status.Ownership != nil || seg.Status.ID == "" || seg.ObserveOnly() || !current ||
		ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != usersv1alpha1.ReasonSynced ||
		!controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return ""
	}
	return seg.Status.ID
}

// claim looks for an existing remote segment the Segment should own instead of creating
// one, in this order: what its pending create made; the one spec.id names; the one it
// observed before it managed (status.id); under AdoptByName, the only unowned one with the
// desired name. A claim passes the ownership check and is recorded at once. Finding none is
// not an error: the caller creates.
func (r *SegmentReconciler) claim(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	if intent := seg.PendingCreate(); intent != nil {
		if forgetRequested(seg) {
			r.forgetCreate(seg)
		} else {
			id, err := r.resolve(ctx, seg, acct, intent, seg.Spec.ID)
			if err != nil {
				return err
			}
			seg.Status.Ownership.CreatePending = nil // resolved: recorded with the next write
			if id != "" {
				return r.bind(ctx, seg, acct, st, id, "")
			}
		}
	}
	if id := seg.Spec.ID; id != "" {
		// A listing begun after the Segment was made, so that a segment made just before
		// it is seen; later checks use the shared listing.
		if err := r.listSinceCreation(ctx, seg, acct); err != nil {
			return err
		}
		if _, found := acct.Observations.Lookup(id); !found {
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist", id)
		}
		return r.claimID(ctx, seg, acct, st, id, "spec.id")
	}
	if id := seg.Status.ID; id != "" {
		// Not found, it is forgotten and another made: absence is confirmed first.
		if _, found, err := r.observe(ctx, acct, id, goneAfter(seg)); err != nil {
			return err
		} else if found {
			return r.claimID(ctx, seg, acct, st, id, "status.id, observed before this Segment managed it")
		}
		resetRemote(seg) // gone: look again as a new Segment would
	}
	if seg.Spec.AdoptionPolicy != usersv1alpha1.AdoptionPolicyAdoptByName {
		return nil
	}
	if err := r.listSinceCreation(ctx, seg, acct); err != nil {
		return err
	}
	key := nameKey(acct, seg.RemoteName())
	r.names.LockKey(key)
	defer func() { _ = r.names.UnlockKey(key) }()
	id, err := r.uniqueByName(ctx, seg, acct)
	if err != nil || id == "" {
		return err
	}
	return r.claimID(ctx, seg, acct, st, id, "name")
}

// claimID records id as owned unless another Segment owns it, or may have made it with
// a create not yet resolved (Conflict).
func (r *SegmentReconciler) claimID(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter, id, how string) error {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	if owner, err := r.takenBy(ctx, seg, acct, id); err != nil {
		return err
	} else if owner != "" {
		return stall(usersv1alpha1.ReasonConflict, "Remote segment %s is already managed by %s; this Segment leaves it alone", id, owner)
	}
	return r.bind(ctx, seg, acct, st, id, how)
}

// bind records id as the segment the Segment owns: the finalizer first, then one
// conditional status write. how says why, for the event; "" for the Segment's own create.
func (r *SegmentReconciler) bind(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter, id, how string) error {
	if err := r.ensureFinalizer(ctx, seg); err != nil {
		return err
	}
	if id != seg.Status.ID {
		resetRemote(seg)
	}
	seg.Status.ID = id
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: id, Account: acct.ID}
	if observed, ok := acct.Observations.Lookup(id); ok {
		recordObserved(seg, observed)
	}
	r.recordClaim(id, seg)
	if err := st.write(ctx, seg); err != nil {
		if !apierrors.IsConflict(err) {
			// Not recorded: the next reconcile claims it again. A conflict is kept: the copy
			// was stale, and the stored Segment may own it already.
			r.releaseClaim(id)
		}
		return fmt.Errorf("record remote segment %s as managed: %w", id, err)
	}
	if how == "" {
		r.event(seg, "Created", "Create", "Found remote segment %s, made by this Segment's interrupted create", id)
	} else {
		r.event(seg, "Adopted", "Adopt", "Now managing existing remote segment %s (found by %s)", id, how)
	}
	return nil
}

// listSinceCreation makes sure the account's listing began after the Segment was created
// (creationTimestamp is whole seconds, hence the second added), so that a segment made just
// before it is seen; one listing serves every Segment applied together.
func (r *SegmentReconciler) listSinceCreation(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	return r.listAfter(ctx, acct, seg.CreationTimestamp.Add(time.Second))
}

// listAfter makes sure the account's listing began after t, and is no older than the drift
// interval: a decision re-checked each interval (a stall) must see what changed since.
func (r *SegmentReconciler) listAfter(ctx context.Context, acct *remote.Account, t time.Time) error {
	fetchedAt, err := acct.Observations.Ensure(ctx, r.DriftInterval)
	if err == nil && !fetchedAt.After(t) {
		_, err = acct.Observations.ListedAfter(ctx, t)
	}
	if err != nil {
		return listErr(err)
	}
	return nil
}

// uniqueByName returns the one remote segment with the desired name that no Segment
// owns, "" if there is none, and stops if there are several.
func (r *SegmentReconciler) uniqueByName(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) (string, error) {
	candidates, err := r.unowned(ctx, seg, acct, func(s chatbot.Segment) bool { return s.Name == seg.RemoteName() })
	if err != nil || len(candidates) <= 1 {
		return first(candidates), err
	}
	return "", stall(usersv1alpha1.ReasonAdoptionAmbiguous,
		"%d remote segments are named %q and not managed by any Segment (%s): set spec.id to the one to adopt",
		len(candidates), seg.RemoteName(), sample(candidates))
}

// unowned returns the sorted IDs of the account's segments that match and that no other
// Segment owns or may have made.
func (r *SegmentReconciler) unowned(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, match func(chatbot.Segment) bool) ([]string, error) {
	var out []string
	for _, s := range acct.Observations.Segments() {
		if !match(s) {
			continue
		}
		owner, err := r.takenBy(ctx, seg, acct, s.ID)
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

// owner describes the other Segment that owns remote segment id, or returns "".
func (r *SegmentReconciler) owner(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	if other, ok := r.claimedBy(id); ok && other.uid != seg.UID {
		return describe(seg, other.name), nil
	}
	var list usersv1alpha1.SegmentList
	if err := r.List(ctx, &list, client.MatchingFields{indexRemoteID: id}); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		if other.UID != seg.UID {
			return describe(seg, client.ObjectKeyFromObject(&other)), nil
		}
	}
	return "", nil
}

// takenBy is owner, or else describes another Segment whose pending create in acct may
// have made remote segment id: that create is resolved first (it may be a manager
// restarted between a create and its record), so nobody else may claim the segment. Only
// segments made within a create's deadline are held so: a Segment whose create stays
// unresolved (suspended, uncertain) cannot hold its name against later segments.
func (r *SegmentReconciler) takenBy(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, id string) (string, error) {
	if owner, err := r.owner(ctx, seg, id); err != nil || owner != "" {
		return owner, err
	}
	s, ok := acct.Observations.Lookup(id)
	if !ok {
		return "", nil
	}
	var list usersv1alpha1.SegmentList
	if err := r.List(ctx, &list, client.MatchingFields{indexPendingCreate: s.Name}); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		i := other.PendingCreate()
		if other.UID != seg.UID && i != nil && (i.Account == "" || i.Account == acct.ID) && mayHaveMade(i, r.createDeadline(i), s) {
			return describe(seg, client.ObjectKeyFromObject(&other)) + ", whose interrupted create may have made it,", nil
		}
	}
	return "", nil
}

// describe names other to a Segment of the same namespace only: whoever can read seg's
// status may not be allowed to read Segments elsewhere.
func describe(seg *usersv1alpha1.Segment, other types.NamespacedName) string {
	if other.Namespace == seg.Namespace {
		return "Segment " + other.String()
	}
	return "a Segment in another namespace"
}

// claimant is a Segment that recorded a remote ID in this process.
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

// nameKey is the key of the name lock of one remote name in one account.
func nameKey(acct *remote.Account, name string) string {
	return acct.ID + "\x00" + name
}

func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// sample names up to three items, for messages.
func sample(items []string) string {
	if len(items) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
	}
	return strings.Join(items, ", ")
}

// Field indexes on Segments by what they own.
const (
	indexRemoteID      = "status.ownership.id"
	indexPendingCreate = "status.ownership.createPending"
)

// indexByRemoteID indexes Segments by the remote segment they own (status.ownership.id,
// or a hold an earlier version recorded and not yet claimed): one that only observes a
// segment does not keep another from managing it.
func indexByRemoteID(o client.Object) []string {
	seg := o.(*usersv1alpha1.Segment)
	if id := cmp.Or(seg.OwnedID(), legacyHold(seg)); id != "" {
		return []string{id}
	}
	return nil
}

// indexByPendingCreate indexes Segments by the name of their pending create: a segment
// such a create may have made is not free for others to claim.
func indexByPendingCreate(o client.Object) []string {
	if i := o.(*usersv1alpha1.Segment).PendingCreate(); i != nil {
		return []string{i.Name}
	}
	return nil
}
