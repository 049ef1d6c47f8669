package ownership

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/keymutex"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Registry is this process's part of the ownership record: the claims it made that the
// cache may not show yet, the name locks, and what it saw of each Segment's last create.
type Registry struct {
	// reader is the manager's cache; store, when set (WithIndexer), its Segments with the
	// indexes of Indexes, read instead of reader's field indexes of the same names.
	reader client.Reader
	store  toolscache.Indexer
	// createTimeout bounds a create call from its intent to its answer (see Deadline).
	createTimeout time.Duration

	names keymutex.KeyMutex
	// peers are the other managers of the cluster, if any (WithPeers).
	peers Peers

	// claimMu makes a claim's check and its record one step, so that two Segments cannot
	// both take one segment between them.
	claimMu sync.Mutex
	// mu guards claims: the remote IDs this process recorded as owned, by Segment.
	mu     sync.Mutex
	claims map[string]claimant

	// ended is when each Segment's last create call of this process ended, and its intent,
	// by UID: its resolution needs a listing begun after.
	ended sync.Map // types.UID → createEnd
	// noEffect is the intent time of each Segment's last create of this process that
	// certainly made nothing (a 4xx, or never sent), by UID.
	noEffect sync.Map // types.UID → time.Time
	// memos counts the memos (ended, noEffect) stored: every pruneEvery, those no
	// resolution needs any more are dropped (prune).
	memos atomic.Int64
}

// pruneEvery is how many memos are stored between two prunes: the prune reads them all.
const pruneEvery = 1024

// claimant is a Segment that recorded a remote ID in this process.
type claimant struct {
	uid  types.UID
	name types.NamespacedName
}

// NewRegistry returns an empty registry that reads the Segments of reader, the manager's
// cache, by the field indexes of Indexes (or, WithIndexer, by the indexes IndexInformer added). createTimeout bounds a create call from its intent
// to its answer, in every process (0: 30s).
func NewRegistry(reader client.Reader, createTimeout time.Duration) *Registry {
	if createTimeout <= 0 {
		createTimeout = 30 * time.Second
	}
	return &Registry{
		reader: reader, createTimeout: createTimeout, claims: map[string]claimant{},
		names: keymutex.NewHashed(1024), // buckets: unrelated names rarely wait for each other
	}
}

// WithIndexer makes the registry find Segments by the indexes IndexInformer added to
// store, the Segment informer's.
func (r *Registry) WithIndexer(store toolscache.Indexer) *Registry {
	r.store = store
	return r
}

// find returns the Segments, of every namespace, whose index field has value. They may be
// the cache's own: read them, never change them.
func (r *Registry) find(ctx context.Context, field, value string) ([]*usersv1alpha1.Segment, error) {
	if r.store != nil {
		objs, err := r.store.ByIndex(field, value)
		if err != nil {
			return nil, err
		}
		out := make([]*usersv1alpha1.Segment, 0, len(objs))
		for _, o := range objs {
			if seg, ok := o.(*usersv1alpha1.Segment); ok {
				out = append(out, seg)
			}
		}
		return out, nil
	}
	var list usersv1alpha1.SegmentList
	if err := r.reader.List(ctx, &list, client.MatchingFields{field: value}); err != nil {
		return nil, err
	}
	out := make([]*usersv1alpha1.Segment, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// nameLockRetry is how soon a Segment waiting for a name another manager's Segment holds
// asks again, at the latest.
const nameLockRetry = 2 * time.Second

// WithPeers makes claims and name locks hold among the managers of peers too (shards).
func (r *Registry) WithPeers(peers Peers) *Registry {
	r.peers = peers
	return r
}

// Deadline is when the create of intent is sent at the latest.
func (r *Registry) Deadline(intent *usersv1alpha1.CreateIntent) time.Time {
	return intent.At.Add(r.createTimeout)
}

// LockName holds seg's lock of one remote name in one account until unlock is called (more
// than once is fine): no Segment choosing a segment by that name can take one another's
// create has just made. With peers, the lock holds among managers too: one another
// manager's Segment holds is a *BusyError, and nothing is held.
func (r *Registry) LockName(ctx context.Context, seg *usersv1alpha1.Segment, account, name string) (unlock func(), err error) {
	key := account + "\x00" + name
	r.names.LockKey(key)
	local := func() { _ = r.names.UnlockKey(key) }
	if r.peers == nil {
		return sync.OnceFunc(local), nil
	}
	across, holder, until, err := r.peers.LockName(ctx, seg, account, name)
	if err != nil || across == nil {
		local()
		if err != nil {
			return nil, err
		}
		// Asked again soon: the lock ends at until at the latest, but is most often let go
		// within a second (a create's call and claim).
		return nil, &BusyError{Holder: describe(seg, holder), Name: name, After: min(max(time.Until(until), time.Second), nameLockRetry)}
	}
	return sync.OnceFunc(func() { across(); local() }), nil
}

// Claim records id as seg's unless another Segment owns it; then it returns that one,
// described for seg's status (see Owner). With peers, the hold among managers is taken
// between the check and the record, outside the claim lock (it is a Kubernetes call, and
// every create claims): the hold itself keeps any other Segment, of any process, from the
// segment meanwhile.
func (r *Registry) Claim(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	if other, err := r.Check(ctx, seg, id); err != nil || other != "" {
		return other, err
	}
	if other, err := r.hold(ctx, seg, id); err != nil || other != "" {
		return other, err
	}
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	other, err := r.Owner(ctx, seg, id)
	if err == nil && other == "" {
		r.record(id, seg)
	} else if r.peers != nil {
		r.peers.Let(ctx, seg.UID, id) // the cache has caught up with another owner meanwhile
	}
	return other, err
}

// ClaimWith checks, under the claim lock, that no other Segment owns id or may have made
// it (TakenBy, for a segment of account the listing shows; Owner when listed is nil), and
// then runs bind, still under the lock, which makes the claim durable (the finalizer, the
// status write): it calls record once the claim is to count in this process, and Release
// if it was not written. It returns the Segment that holds id instead, or bind's error.
func (r *Registry) ClaimWith(ctx context.Context, seg *usersv1alpha1.Segment, account, id string, listed *chatbot.Segment,
	bind func(record func()) error) (string, error) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	var other string
	var err error
	if listed != nil {
		other, err = r.TakenBy(ctx, seg, account, *listed)
	} else {
		other, err = r.Owner(ctx, seg, id)
	}
	if err != nil || other != "" {
		return other, err
	}
	if other, err := r.hold(ctx, seg, id); err != nil || other != "" {
		return other, err
	}
	return "", bind(func() { r.record(id, seg) })
}

// Check describes the other Segment that owns id, as Owner does, under the claim lock: no
// claim is half made meanwhile.
func (r *Registry) Check(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	return r.Owner(ctx, seg, id)
}

// Record records id as seg's in this process, without a check: for a segment seg's own
// create made, which resolving the create claimed already.
func (r *Registry) Record(seg *usersv1alpha1.Segment, id string) { r.record(id, seg) }

// Choose lets choose pick, under the claim lock, a segment for seg among those no other
// Segment owns (ownedByOther), and records the one it returns ("": none) as seg's.
func (r *Registry) Choose(ctx context.Context, seg *usersv1alpha1.Segment, choose func(ownedByOther func(id string) bool) string) (string, error) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	var ownerErr error
	id := choose(func(id string) bool {
		other, err := r.Owner(ctx, seg, id)
		if ownerErr == nil {
			ownerErr = err
		}
		return other != ""
	})
	if ownerErr != nil {
		return "", ownerErr
	}
	if id == "" {
		return "", nil
	}
	if other, err := r.hold(ctx, seg, id); err != nil {
		return "", err
	} else if other != "" {
		return "", fmt.Errorf("remote segment %s is being claimed by %s: looking again", id, other)
	}
	r.record(id, seg)
	return id, nil
}

// Owner describes the other Segment that owns remote segment id, or returns "".
func (r *Registry) Owner(ctx context.Context, seg *usersv1alpha1.Segment, id string) (string, error) {
	if other, ok := r.claimedBy(id); ok && other.uid != seg.UID {
		return describe(seg, other.name), nil
	}
	others, err := r.find(ctx, IndexRemoteID, id)
	if err != nil {
		return "", err
	}
	for _, other := range others {
		if other.UID != seg.UID {
			return describe(seg, client.ObjectKeyFromObject(other)), nil
		}
	}
	return "", nil
}

// TakenBy is Owner, or else describes another Segment whose pending create in account may
// have made listed: that create is resolved first (it may be a manager restarted between a
// create and its record), so nobody else may claim the segment. Only segments made within a
// create's deadline are held so: a Segment whose create stays unresolved (suspended,
// uncertain) cannot hold its name against later segments.
func (r *Registry) TakenBy(ctx context.Context, seg *usersv1alpha1.Segment, account string, listed chatbot.Segment) (string, error) {
	if owner, err := r.Owner(ctx, seg, listed.ID); err != nil || owner != "" {
		return owner, err
	}
	others, err := r.find(ctx, IndexPendingCreate, listed.Name)
	if err != nil {
		return "", err
	}
	for _, other := range others {
		i := other.PendingCreate()
		if other.UID != seg.UID && i != nil && (i.Account == "" || i.Account == account) && MayHaveMade(i, r.Deadline(i), listed) {
			return describe(seg, client.ObjectKeyFromObject(other)) + ", whose interrupted create may have made it,", nil
		}
	}
	return "", nil
}

// Release forgets seg's claim of remote segment id, in this process and among managers: it
// was deleted, or its record was never written.
func (r *Registry) Release(ctx context.Context, seg *usersv1alpha1.Segment, id string) {
	r.mu.Lock()
	if c, ok := r.claims[id]; ok && c.uid == seg.UID {
		delete(r.claims, id)
	}
	r.mu.Unlock()
	if r.peers != nil {
		r.peers.Let(ctx, seg.UID, id)
	}
}

// Handover drops what this process knows of the Segment with uid, and only here: another
// manager (shard) reconciles it now, and holds what it holds among managers.
func (r *Registry) Handover(uid types.UID) {
	r.mu.Lock()
	for id, c := range r.claims {
		if c.uid == uid {
			delete(r.claims, id)
		}
	}
	r.mu.Unlock()
	r.Resolved(uid)
}

// Forget drops all the registry knows of the Segment: it is going, and one whose status
// write failed must not keep its claim until the manager restarts. Among managers, it lets
// go of the segment the Segment holds.
func (r *Registry) Forget(ctx context.Context, seg *usersv1alpha1.Segment) {
	r.Handover(seg.UID)
	if id := HeldID(seg); id != "" && r.peers != nil {
		r.peers.Let(ctx, seg.UID, id)
	}
}

func (r *Registry) claimedBy(id string) (claimant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.claims[id]
	return c, ok
}

func (r *Registry) record(id string, seg *usersv1alpha1.Segment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claims[id] = claimant{uid: seg.UID, name: client.ObjectKeyFromObject(seg)}
}

// CreateEnded notes that the Segment's create of the intent at intentAt ended now,
// whatever it made.
func (r *Registry) CreateEnded(uid types.UID, intentAt time.Time) {
	r.ended.Store(uid, createEnd{intentAt: intentAt, at: time.Now()})
	r.stored()
}

// stored counts a memo stored, and prunes them every pruneEvery.
func (r *Registry) stored() {
	if r.memos.Add(1)%pruneEvery == 0 {
		r.prune(time.Now())
	}
}

// prune drops the memos of creates whose intent is past its deadline by CreateSkew at now:
// resolving such an intent waits for nothing without them (it lists the account, as any
// process that did not see the create end does). Otherwise every Segment this process ever
// created would stay remembered here. A memo is not dropped sooner, when its Segment's
// status shows the create resolved: a reconcile reading a cached copy older than that
// status still finds it.
func (r *Registry) prune(now time.Time) {
	past := func(intentAt time.Time) bool { return now.After(intentAt.Add(r.createTimeout + CreateSkew)) }
	r.ended.Range(func(uid, e any) bool {
		if past(e.(createEnd).intentAt) {
			r.ended.CompareAndDelete(uid, e)
		}
		return true
	})
	r.noEffect.Range(func(uid, at any) bool {
		if past(at.(time.Time)) {
			r.noEffect.CompareAndDelete(uid, at)
		}
		return true
	})
}

// createEnd is when this process saw the create of one intent end.
type createEnd struct{ intentAt, at time.Time }

// CreateMadeNothing notes that the Segment's create of the intent at intentAt certainly
// made nothing (refused, or never sent). Should the write that clears the intent fail (a
// conflict with the Segment's deletion, say), the next reconcile still knows, without a
// listing that may never succeed.
func (r *Registry) CreateMadeNothing(uid types.UID, intentAt time.Time) {
	r.noEffect.Store(uid, intentAt)
	r.stored()
}

// Ended returns when this process saw the Segment's create of the intent at intentAt end,
// if it did: of that intent only, as a Segment moved to another manager and back may have
// had another create sent there since.
func (r *Registry) Ended(uid types.UID, intentAt time.Time) (time.Time, bool) {
	e, ok := r.ended.Load(uid)
	if !ok || !e.(createEnd).intentAt.Equal(intentAt) {
		return time.Time{}, false
	}
	return e.(createEnd).at, true
}

// MadeNothing reports whether this process saw the create of the intent at intentAt refused
// or never sent.
func (r *Registry) MadeNothing(uid types.UID, intentAt time.Time) bool {
	at, ok := r.noEffect.Load(uid)
	return ok && at.(time.Time).Equal(intentAt)
}

// Resolved drops what this process saw of the Segment's creates (CreateEnded,
// CreateMadeNothing), which only resolving a pending create reads: what it made is decided.
func (r *Registry) Resolved(uid types.UID) {
	r.ended.Delete(uid)
	r.noEffect.Delete(uid)
}
