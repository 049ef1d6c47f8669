package shard

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// Key is the label that assigns an object to a shard, Flux's.
const Key = "sharding.fluxcd.io/key"

// Shard is the Segments one manager reconciles: those whose labels match its selector. A
// nil *Shard is every Segment (one manager, no sharding).
type Shard struct {
	selector labels.Selector
	// keys are the labels the selector reads: all that View keeps of another shard's
	// Segment's labels, so that Owns can still be asked of it.
	keys map[string]bool
}

// Parse reads a label selector (--watch-label-selector); "" is nil: no sharding.
func Parse(s string) (*Shard, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--watch-label-selector %q: %w", s, err)
	}
	reqs, selectable := sel.Requirements()
	if !selectable || len(reqs) == 0 {
		return nil, fmt.Errorf("--watch-label-selector %q selects every Segment: leave it empty for one manager", s)
	}
	sh := &Shard{selector: sel, keys: map[string]bool{}}
	for _, r := range reqs {
		sh.keys[r.Key()] = true
	}
	return sh, nil
}

// String is the selector, "" for every Segment.
func (s *Shard) String() string {
	if s == nil {
		return ""
	}
	return s.selector.String()
}

// Owns reports whether the shard reconciles o.
func (s *Shard) Owns(o metav1.Object) bool {
	return s == nil || s.selector.Matches(labels.Set(o.GetLabels()))
}

// LeaderElectionID is the leader election lease of the shard: one of its own for each
// selector, so that each shard has a leader (and replicas of one shard share it); but base,
// as for one manager, for the main shard, the one whose selector takes the Segments with no
// shard label (!sharding.fluxcd.io/key, or notin a list of shards). So the main manager keeps
// its lease whatever shards are added or removed (which changes its selector), and takes
// over from a manager of one shard, not beside it.
func (s *Shard) LeaderElectionID(base string) string {
	if s == nil || s.selector.Matches(labels.Set{}) {
		return base
	}
	return "shard-" + hash(s.selector.String()) + "." + base
}

// Predicate passes the events changed passes of the shard's own Segments, and the change
// that moves a Segment in or out of the shard (a relabelling), which no generation or
// annotation change shows: moved in, it is the shard's to reconcile; moved out, Reconcile
// lets go of what this manager remembers of it, after any reconcile of it under way.
func (s *Shard) Predicate(changed predicate.Predicate) predicate.Predicate {
	if s == nil {
		return changed
	}
	owns := predicate.NewPredicateFuncs(func(o client.Object) bool { return s.Owns(o) })
	moved := predicate.NewPredicateFuncs(func(client.Object) bool { return false }) // a move is an update only
	moved.UpdateFunc = func(e event.UpdateEvent) bool { return s.Owns(e.ObjectOld) != s.Owns(e.ObjectNew) }
	return predicate.Or(predicate.And(owns, changed), moved)
}

// View is the cache's transform of Segments: the shard's own whole (but for managedFields,
// which nothing reads), and every other one cut down to what the ownership check, the
// credentials-in-use finalizer and the member record sweep read of it (Cut).
func (s *Shard) View() toolscache.TransformFunc {
	return func(in any) (any, error) {
		seg, ok := in.(*usersv1alpha1.Segment)
		if !ok {
			return in, nil
		}
		seg.ManagedFields = nil
		if s.Owns(seg) {
			return seg, nil
		}
		return s.Cut(seg), nil
	}
}

// Cut returns what every shard keeps of a Segment another shard reconciles: its identity;
// of its labels, those the selector reads; of its finalizers, the operator's; its
// credentials Secret and management policy; its ownership record and remote ID, with what
// says whether an earlier version held it (its Ready condition, generations); and the name
// of its member record. Not its members, its other labels or annotations, or its plan:
// another tenant's Segment costs every shard a few hundred bytes, whatever its size.
func (s *Shard) Cut(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	out := &usersv1alpha1.Segment{
		TypeMeta: seg.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: seg.Name, Namespace: seg.Namespace, UID: seg.UID, ResourceVersion: seg.ResourceVersion,
			Generation: seg.Generation, CreationTimestamp: seg.CreationTimestamp, DeletionTimestamp: seg.DeletionTimestamp},
		Spec: usersv1alpha1.SegmentSpec{CredentialsRef: seg.Spec.CredentialsRef, ManagementPolicy: seg.Spec.ManagementPolicy},
		Status: usersv1alpha1.SegmentStatus{ID: seg.Status.ID, Ownership: seg.Status.Ownership,
			ObservedGeneration: seg.Status.ObservedGeneration},
	}
	for k, v := range seg.Labels {
		if s != nil && s.keys[k] {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			out.Labels[k] = v
		}
	}
	for _, f := range seg.Finalizers {
		if f == usersv1alpha1.SegmentFinalizer {
			out.Finalizers = []string{f}
		}
	}
	for _, c := range seg.Status.Conditions {
		if c.Type == usersv1alpha1.ConditionReady {
			out.Status.Conditions = []metav1.Condition{{Type: c.Type, Status: c.Status, Reason: c.Reason,
				ObservedGeneration: c.ObservedGeneration, LastTransitionTime: c.LastTransitionTime}}
		}
	}
	if r := seg.Status.MemberRecord; r != nil && r.ConfigMap != "" {
		out.Status.MemberRecord = &usersv1alpha1.MemberRecord{ConfigMap: r.ConfigMap}
	}
	return out
}

// hash is a short, stable name for s.
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
