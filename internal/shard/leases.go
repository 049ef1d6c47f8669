package shard

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/ownership"
)

// Lock labels and annotations of the Leases.
const (
	// LockLabel marks the Leases of claims (claim) and name locks (name).
	LockLabel = "users.chatbot.com/lock"
	// holderAnnotation names the Segment that holds a Lease (namespace/name); its UID is
	// the holderIdentity.
	holderAnnotation = "users.chatbot.com/holder"
)

// claimGrace is how long a claim's Lease holds, whatever its holder's status says: the
// claim is recorded in status just after the Lease is taken (an adoption), or, for a
// create, at the end of the reconcile, while its pending create is in status.
const claimGrace = time.Minute

// Leases are the claims and name locks of every manager of the cluster, as Leases in the
// managers' namespace (see the package doc): ownership.Peers.
type Leases struct {
	client client.Client
	// live reads from the API server, not the cache: the Leases are not cached, and a
	// holder's status must be current.
	live      client.Reader
	namespace string
	// nameTTL is how long a name lock holds at most: a create's deadline, and the skew
	// between clocks.
	nameTTL time.Duration
	now     func() time.Time
}

var _ ownership.Peers = (*Leases)(nil)

// NewLeases keeps the locks in namespace, the managers' own. createTimeout bounds a create
// call from its intent to its answer (0: 30s).
func NewLeases(c client.Client, live client.Reader, namespace string, createTimeout time.Duration) *Leases {
	if createTimeout <= 0 {
		createTimeout = 30 * time.Second
	}
	return &Leases{client: c, live: live, namespace: namespace, nameTTL: createTimeout + 2*ownership.CreateSkew, now: time.Now}
}

// ClaimLease is the name of the Lease of a remote segment's claim: of the ID alone, as the
// ownership check is (an ID is held whatever account it was found in).
func ClaimLease(id string) string { return "segment-claim-" + hash(id) }

// NameLease is the name of the Lease of a remote name's lock in an account.
func NameLease(account, name string) string { return "segment-name-" + hash(account+"\x00"+name) }

// Hold takes seg's claim of remote segment id: it creates the claim's Lease, or takes over
// one whose holder no longer holds id.
func (l *Leases) Hold(ctx context.Context, seg *usersv1alpha1.Segment, id string) (types.NamespacedName, bool, error) {
	_, holder, held, err := l.take(ctx, seg, "claim", ClaimLease(id), id, 0, func(cur *coordinationv1.Lease) (bool, error) {
		return l.holdsClaim(ctx, cur, id)
	})
	return holder, err == nil && held == nil, err
}

// LockName takes seg's lock of name in account until unlock; a lock older than nameTTL
// has ended (its create cannot be sent any more).
func (l *Leases) LockName(ctx context.Context, seg *usersv1alpha1.Segment, account, name string) (func(), types.NamespacedName,
	time.Time, error) {
	taken, holder, held, err := l.take(ctx, seg, "name", NameLease(account, name), "", l.nameTTL, func(cur *coordinationv1.Lease) (bool, error) {
		return l.now().Before(ends(cur)), nil
	})
	if err != nil || held != nil {
		var until time.Time
		if held != nil {
			until = ends(held)
		}
		return nil, holder, until, err
	}
	return func() { _ = l.drop(ctx, taken) }, types.NamespacedName{}, time.Time{}, nil
}

// Let deletes the claim's Lease of id if the Segment with uid holds it.
func (l *Leases) Let(ctx context.Context, uid types.UID, id string) {
	cur := &coordinationv1.Lease{}
	if err := l.live.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: ClaimLease(id)}, cur); err != nil {
		return // none, or not now: a Lease left is taken over once its holder holds nothing
	}
	if ptr.Deref(cur.Spec.HolderIdentity, "") == string(uid) {
		_ = l.drop(ctx, cur)
	}
}

// take creates Lease name for seg, or takes it over when seg holds it already or holds
// reports that its holder no longer does. It returns the Lease taken; or the holder and
// the Lease it holds.
func (l *Leases) take(ctx context.Context, seg *usersv1alpha1.Segment, kind, name, id string, ttl time.Duration,
	holds func(*coordinationv1.Lease) (bool, error)) (taken *coordinationv1.Lease, holder types.NamespacedName, held *coordinationv1.Lease, err error) {
	now := metav1.NewMicroTime(l.now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: l.namespace, Labels: map[string]string{LockLabel: kind},
			Annotations: map[string]string{holderAnnotation: seg.Namespace + "/" + seg.Name}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: new(string(seg.UID)), AcquireTime: &now, RenewTime: &now},
	}
	if id != "" {
		lease.Annotations[remoteIDAnnotation] = id
	}
	if ttl > 0 {
		lease.Spec.LeaseDurationSeconds = new(int32((ttl + time.Second - 1) / time.Second))
	}
	err = l.client.Create(ctx, lease)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return lease, types.NamespacedName{}, nil, err
	}
	cur := &coordinationv1.Lease{}
	if err := l.live.Get(ctx, client.ObjectKeyFromObject(lease), cur); err != nil {
		return nil, types.NamespacedName{}, nil, err // gone meanwhile, say: the next try creates it
	}
	if ptr.Deref(cur.Spec.HolderIdentity, "") != string(seg.UID) {
		if still, err := holds(cur); err != nil {
			return nil, types.NamespacedName{}, nil, err
		} else if still {
			return nil, holderOf(cur), cur, nil
		}
		logf.FromContext(ctx).Info("taking over a lock its holder no longer holds", "lease", name, "holder", holderOf(cur).String())
	}
	cur.Annotations, cur.Labels = lease.Annotations, lease.Labels
	cur.Spec = lease.Spec
	if err := l.client.Update(ctx, cur); err != nil { // only the version read: a conflict is another's take
		return nil, types.NamespacedName{}, nil, fmt.Errorf("take lock %s: %w", name, err)
	}
	return cur, types.NamespacedName{}, nil, nil
}

// holdsClaim reports whether the holder of a claim's Lease still holds id: it took the
// Lease within claimGrace, or, read from the API server, it exists (the same UID), and owns
// id or has a pending create (which may have made id, and records it when resolved).
func (l *Leases) holdsClaim(ctx context.Context, cur *coordinationv1.Lease, id string) (bool, error) {
	if cur.Spec.AcquireTime != nil && l.now().Before(cur.Spec.AcquireTime.Add(claimGrace)) {
		return true, nil
	}
	seg := &usersv1alpha1.Segment{}
	err := l.live.Get(ctx, holderOf(cur), seg)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return string(seg.UID) == ptr.Deref(cur.Spec.HolderIdentity, "") &&
		(ownership.HeldID(seg) == id || seg.PendingCreate() != nil), nil
}

// drop deletes a Lease taken, only the version taken (a take since is another's), even
// when ctx is done: a lock left holds until it ends. It reports whether it deleted it.
func (l *Leases) drop(ctx context.Context, lease *coordinationv1.Lease) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := l.client.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: lease.Name, Namespace: lease.Namespace}},
		client.Preconditions{UID: &lease.UID, ResourceVersion: &lease.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		logf.FromContext(ctx).Info("could not let go of a lock; it is taken over once it ends", "lease", lease.Name, "error", err.Error())
	}
	return err == nil
}

// holderOf is the Segment that holds a Lease.
func holderOf(l *coordinationv1.Lease) types.NamespacedName {
	ns, name, _ := strings.Cut(l.Annotations[holderAnnotation], "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

// ends is when a name lock ends: its last take plus its duration.
func ends(l *coordinationv1.Lease) time.Time {
	var at time.Time
	if l.Spec.AcquireTime != nil {
		at = l.Spec.AcquireTime.Time
	}
	return at.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
}

// remoteIDAnnotation is the remote segment a claim's Lease is of (its name is a hash), for
// the sweep.
const remoteIDAnnotation = "users.chatbot.com/remote-id"

// Sweeper deletes, every interval, the Leases no Segment holds any more: a claim whose
// holder is gone from the cluster or holds another segment, past claimGrace (a holder
// deleted without its finalizer, a manager killed between a claim and its release); a
// name lock past its end. Segments are read from cache, which holds every Segment of the
// cluster. It runs on the leader.
func (l *Leases) Sweeper(cache client.Reader, interval time.Duration) *Sweeper {
	return &Sweeper{leases: l, cache: cache, interval: interval}
}

// Sweeper is the sweep of Leases left (Leases.Sweeper).
type Sweeper struct {
	leases   *Leases
	cache    client.Reader
	interval time.Duration
}

// NeedLeaderElection says that the sweep runs on the leader only.
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps every interval until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("lock-sweep")
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if n, err := s.sweep(ctx); err != nil {
			log.Error(err, "sweeping the claims and name locks no Segment holds")
		} else if n > 0 {
			log.Info("deleted claims and name locks no Segment holds", "count", n)
		}
	}, s.interval)
	return nil
}

// sweep deletes the Leases left, and returns how many.
func (s *Sweeper) sweep(ctx context.Context) (int, error) {
	var segs usersv1alpha1.SegmentList
	if err := s.cache.List(ctx, &segs, client.UnsafeDisableDeepCopy); err != nil { // read only
		return 0, err
	}
	holders := make(map[types.UID]*usersv1alpha1.Segment, len(segs.Items))
	for i := range segs.Items {
		holders[segs.Items[i].UID] = &segs.Items[i]
	}
	l, now, deleted := s.leases, s.leases.now(), 0
	var list coordinationv1.LeaseList
	for cont := ""; ; {
		if err := l.live.List(ctx, &list, client.InNamespace(l.namespace), client.HasLabels{LockLabel},
			client.Limit(500), client.Continue(cont)); err != nil {
			return deleted, err
		}
		for i := range list.Items {
			if left(&list.Items[i], holders, now) {
				if l.drop(ctx, &list.Items[i]) {
					deleted++
				}
			}
		}
		if cont = list.Continue; cont == "" {
			return deleted, nil
		}
	}
}

// left reports whether no Segment holds a lock any more, at now: a name lock past its end;
// a claim past claimGrace whose holder (by UID, among holders) is gone, or neither owns its
// segment nor has a pending create.
func left(lease *coordinationv1.Lease, holders map[types.UID]*usersv1alpha1.Segment, now time.Time) bool {
	if lease.Labels[LockLabel] == "name" {
		return !now.Before(ends(lease))
	}
	if lease.Spec.AcquireTime == nil || now.Before(lease.Spec.AcquireTime.Add(claimGrace)) {
		return false
	}
	id, named := lease.Annotations[remoteIDAnnotation]
	seg, ok := holders[types.UID(ptr.Deref(lease.Spec.HolderIdentity, ""))]
	// A claim that does not say its segment (not one of these Leases) is left to a claim's
	// takeover, which reads its holder.
	return named && (!ok || seg.PendingCreate() == nil && ownership.HeldID(seg) != id)
}
