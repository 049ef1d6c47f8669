package ownership

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Field indexes on Segments.
const (
	// IndexRemoteID indexes Segments by the remote segment they own.
	IndexRemoteID = "status.ownership.id"
	// IndexPendingCreate indexes Segments by the name of their pending create.
	IndexPendingCreate = "status.ownership.createPending"
)

// CreateSkew is how much our clock and ChatBot's may differ: a remote createdAt that much
// earlier than a recorded intent may still be the interrupted create's.
const CreateSkew = 5 * time.Second

// Index is a field index on Segments that the registry reads.
type Index struct {
	Field   string
	Extract client.IndexerFunc
}

// Indexes are the field indexes the registry reads, for a cache or a fake client.
func Indexes() []Index {
	return []Index{{IndexRemoteID, indexByRemoteID}, {IndexPendingCreate, indexByPendingCreate}}
}

// IndexInformer adds Indexes to the Segment informer of the manager's cache and returns
// its store, for the Registry to read (WithIndexer). The registry asks only across
// namespaces, and a field index of controller-runtime keeps each value twice (within its
// namespace, and across all): at 10,000 Segments that twice was 2.5 MB of the manager's
// memory.
func IndexInformer(ctx context.Context, informers cache.Informers) (toolscache.Indexer, error) {
	inf, err := informers.GetInformer(ctx, &usersv1alpha1.Segment{})
	if err != nil {
		return nil, err
	}
	withStore, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, fmt.Errorf("the Segment informer (%T) has no store to read", inf)
	}
	if err := inf.AddIndexers(indexers()); err != nil {
		return nil, err
	}
	return withStore.GetIndexer(), nil
}

// indexers are Indexes as client-go indexers, under their field names.
func indexers() toolscache.Indexers {
	out := toolscache.Indexers{}
	for _, i := range Indexes() {
		extract := i.Extract
		out[i.Field] = func(obj any) ([]string, error) {
			if seg, ok := obj.(*usersv1alpha1.Segment); ok {
				return extract(seg), nil
			}
			return nil, nil
		}
	}
	return out
}

// indexByRemoteID indexes Segments by the remote segment they own (status.ownership.id,
// or a hold an earlier version recorded and not yet claimed): one that only observes a
// segment does not keep another from managing it.
func indexByRemoteID(o client.Object) []string {
	if id := HeldID(o.(*usersv1alpha1.Segment)); id != "" {
		return []string{id}
	}
	return nil
}

// HeldID is the remote segment the Segment holds against every other Segment: the one it
// owns, or the hold an earlier version recorded and no claim has checked yet (LegacyHold);
// "" if none. It is what the ownership check reads (IndexRemoteID).
func HeldID(seg *usersv1alpha1.Segment) string {
	return cmp.Or(seg.OwnedID(), LegacyHold(seg))
}

// indexByPendingCreate indexes Segments by the name of their pending create: a segment
// such a create may have made is not free for others to claim.
func indexByPendingCreate(o client.Object) []string {
	if i := o.(*usersv1alpha1.Segment).PendingCreate(); i != nil {
		return []string{i.Name}
	}
	return nil
}

// LegacyHold returns the status.id a Segment held under an earlier version: one whose
// status that version wrote (no ownership record) saying Ready, reason Synced, for the
// Segment's current generation, with the finalizer on. Only a Segment that version managed
// in sync gets that status, and status is the manager's: an editor cannot stage it. An
// observation (ObserveOnly writes Observed or DriftDetected), a claim it refused, a
// suspended Segment, or a spec changed since, hold nothing here; their status.id is
// claimed with the ownership check like any observed one.
func LegacyHold(seg *usersv1alpha1.Segment) string {
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

// MayHaveMade reports whether the create of intent, never sent after deadline, may have
// made segment s: it has the intent's name (not the spec's: it may have changed since),
// and ChatBot's clock, which may be CreateSkew off ours, dates it within the call.
func MayHaveMade(intent *usersv1alpha1.CreateIntent, deadline time.Time, s chatbot.Segment) bool {
	return s.Name == intent.Name && !s.CreatedAt.Before(intent.At.Add(-CreateSkew)) && !s.CreatedAt.After(deadline.Add(CreateSkew))
}

// describe names other to a Segment of the same namespace only: whoever can read seg's
// status may not be allowed to read Segments elsewhere.
func describe(seg *usersv1alpha1.Segment, other types.NamespacedName) string {
	if other.Namespace == seg.Namespace {
		return "Segment " + other.String()
	}
	return "a Segment in another namespace"
}
