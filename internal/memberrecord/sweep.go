package memberrecord

import (
	"cmp"
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/metadata"
)

// A Segment's record ConfigMap goes with it (Records.Drop, in its finalizer). One
// whose Segment is gone without the finalizer running (removed by hand, or the CRD deleted
// with no manager) would stay in the manager's namespace for good: the sweep deletes it.
const (
	// DefaultSweepInterval is how often the leader looks for records of Segments gone.
	DefaultSweepInterval = time.Hour
	// DefaultSweepMinAge spares a record younger than this, whatever the cache says: a
	// record is written only by a reconcile of its Segment, from the same cache, so a young
	// one is never an orphan that cannot wait for the next sweep.
	DefaultSweepMinAge = 10 * time.Minute
)

// orphanRecords returns the record ConfigMaps of cms whose Segment, by the UID in their
// name, is not among segments, that no Segment's status names (referenced: a Segment
// restored with its status has a new UID), and that are older than minAge at now.
func orphanRecords(cms []metav1.PartialObjectMetadata, segments sets.Set[types.UID], referenced sets.Set[string], now time.Time, minAge time.Duration) []metav1.PartialObjectMetadata {
	var out []metav1.PartialObjectMetadata
	for _, cm := range cms {
		uid, ok := strings.CutPrefix(cm.Name, recordName(""))
		if !ok || uid == "" || cm.Labels[usersv1alpha1.MemberRecordLabel] != "true" || cm.DeletionTimestamp != nil {
			continue
		}
		if segments.Has(types.UID(uid)) || referenced.Has(cm.Name) || now.Sub(cm.CreationTimestamp.Time) < minAge {
			continue
		}
		out = append(out, cm)
	}
	return out
}

// Sweeper deletes, every interval, the record ConfigMaps in namespace whose Segment
// is gone. It runs on the leader only. Segments come from the cache; the records, which
// the cache does not hold (it keeps only spec.membersFrom's ConfigMaps), from a paged
// metadata list of the manager's own namespace, which no tenant can write.
type Sweeper struct {
	namespace string
	cache     client.Reader
	api       client.Reader
	writer    client.Writer
	interval  time.Duration
	minAge    time.Duration
	// released is told of each record deleted: its Segment's namespace and UID.
	released func(namespace string, uid types.UID)
}

// Sweeper returns the sweep of m's records whose Segment is gone, for the manager to run:
// Segments are read from cache; every interval (default an hour), records older than
// minAge (default 10 minutes).
func (m *Records) Sweeper(cache client.Reader, interval, minAge time.Duration) *Sweeper {
	return &Sweeper{namespace: m.namespace, cache: cache, api: m.reader, writer: m.writer,
		interval: cmp.Or(interval, DefaultSweepInterval), minAge: cmp.Or(minAge, DefaultSweepMinAge), released: m.Release}
}

// NeedLeaderElection says that the sweep runs on the leader only.
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps every interval until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("record-sweep")
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		n, err := s.sweep(ctx)
		if err != nil {
			log.Error(err, "sweeping member records of deleted Segments", "namespace", s.namespace)
		} else if n > 0 {
			log.Info("deleted member records of deleted Segments", "namespace", s.namespace, "count", n)
		}
	}, s.interval)
	return nil
}

// sweep deletes the orphan records and returns how many it deleted. The records are listed
// before the Segments: a record is written by a reconcile of its Segment, after the Segment
// is in the cache, so any record listed has its Segment in the later list unless the
// Segment is gone.
func (s *Sweeper) sweep(ctx context.Context) (int, error) {
	var records []metav1.PartialObjectMetadata
	err := metadata.Each(ctx, s.api, "ConfigMapList", 500, func(m *metav1.PartialObjectMetadata) bool {
		records = append(records, *m)
		return true
	}, client.InNamespace(s.namespace), client.MatchingLabels{usersv1alpha1.MemberRecordLabel: "true"})
	if err != nil {
		return 0, err
	}
	if len(records) == 0 {
		return 0, nil
	}
	var segs usersv1alpha1.SegmentList
	if err := s.cache.List(ctx, &segs, client.UnsafeDisableDeepCopy); err != nil { // read only
		return 0, err
	}
	uids, referenced := sets.New[types.UID](), sets.New[string]()
	for i := range segs.Items {
		uids.Insert(segs.Items[i].UID)
		if rec := segs.Items[i].Status.MemberRecord; rec != nil && rec.ConfigMap != "" {
			referenced.Insert(rec.ConfigMap)
		}
	}
	deleted := 0
	for _, cm := range orphanRecords(records, uids, referenced, time.Now(), s.minAge) {
		// Only the version listed: a record written since is not deleted.
		obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm.Name, Namespace: cm.Namespace}}
		err := s.writer.Delete(ctx, obj, client.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion})
		switch {
		case err == nil:
			deleted++
			if s.released != nil {
				ns, _, _ := strings.Cut(cm.Annotations[recordOwnerAnnotation], "/")
				s.released(ns, types.UID(strings.TrimPrefix(cm.Name, recordName(""))))
			}
		case apierrors.IsNotFound(err), apierrors.IsConflict(err): // gone, or written since: left
		default:
			return deleted, err
		}
	}
	return deleted, nil
}
