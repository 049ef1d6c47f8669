package metrics

import (
	"maps"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// Reasons of the segments gauge that are not Ready reasons: the gauge keeps a small, fixed
// set of label values whatever the conditions say.
const (
	// reasonPending: no Ready condition about the Segment's current generation yet (new, or
	// its spec changed since the last reconcile).
	reasonPending = "Pending"
	// reasonOther: a Ready reason this package does not know, so as not to make a series of it.
	reasonOther = "Other"
)

// readyReasons are the reasons the controller gives Ready, from api/v1alpha1 (a test checks
// that every Reason constant there is here).
var readyReasons = map[string]bool{
	usersv1alpha1.ReasonSynced: true, usersv1alpha1.ReasonCreating: true,
	usersv1alpha1.ReasonRemoteError: true, usersv1alpha1.ReasonRateLimited: true,
	usersv1alpha1.ReasonUnauthorized: true, usersv1alpha1.ReasonRemoteRejected: true,
	usersv1alpha1.ReasonEndpointNotFound: true, usersv1alpha1.ReasonCredentialsError: true,
	usersv1alpha1.ReasonMembersSourceError: true, usersv1alpha1.ReasonMemberRecordTooLarge: true,
	usersv1alpha1.ReasonMemberRecordQuotaExceeded: true, usersv1alpha1.ReasonMemberRecordNamespaceMissing: true, usersv1alpha1.ReasonDeleting: true,
	usersv1alpha1.ReasonRemovedFromSpec: true, usersv1alpha1.ReasonRemovedOutside: true, usersv1alpha1.ReasonRecreated: true,
	usersv1alpha1.ReasonSuspended: true, usersv1alpha1.ReasonConflict: true,
	usersv1alpha1.ReasonCreateUncertain: true, usersv1alpha1.ReasonAccountChanged: true,
	usersv1alpha1.ReasonRemoteNotFound: true, usersv1alpha1.ReasonAdoptionAmbiguous: true,
	usersv1alpha1.ReasonObserved: true, usersv1alpha1.ReasonDriftDetected: true,
}

// segmentLabels are the ready and reason labels a Segment is counted under: its Ready
// condition's status and reason when that condition is about its current generation.
// Otherwise it is Unknown, as kstatus would have it: with reason Suspended when it is
// suspended (a suspended Segment has no Ready condition), else Pending.
func segmentLabels(seg *usersv1alpha1.Segment) (ready, reason string) {
	if cond := currentCondition(seg, usersv1alpha1.ConditionReady); cond != nil {
		reason = cond.Reason
		if !readyReasons[reason] {
			reason = reasonOther
		}
		return string(cond.Status), reason
	}
	if cond := currentCondition(seg, usersv1alpha1.ConditionSuspended); cond != nil && cond.Status == metav1.ConditionTrue {
		return string(metav1.ConditionUnknown), usersv1alpha1.ReasonSuspended
	}
	return string(metav1.ConditionUnknown), reasonPending
}

// currentCondition is the Segment's condition of the type when it is about the current
// generation: one about an older generation says nothing about the current spec.
func currentCondition(seg *usersv1alpha1.Segment, condType string) *metav1.Condition {
	cond := meta.FindStatusCondition(seg.Status.Conditions, condType)
	if cond == nil || cond.ObservedGeneration != seg.Generation {
		return nil
	}
	return cond
}

// Reasons are the values of the segments gauge's reason label, sorted; a check of the rules
// in config/prometheus matches them against these.
func Reasons() []string {
	out := make([]string, 0, 2+len(readyReasons))
	out = append(out, reasonPending, reasonOther)
	for r := range readyReasons {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// segmentState is the labels of a segments series.
type segmentState struct{ ready, reason string }

// segmentCounts counts Segments by their labels (segmentLabels) as the Segment informer
// sees them change: each event moves one Segment from the count of its labels before (the
// informer's old object, the one counted last) to the count of its labels now. A pair of
// labels some Segment had since the manager started stays, at 0, so that a graph of
// Stalled Segments falls to 0 rather than stops; not every reason times every status,
// which would be mostly zeros. The reasons being a fixed set, so are the pairs.
type segmentCounts struct {
	// owns says which Segments of the cache this manager reconciles (its shard's); nil: all.
	owns func(metav1.Object) bool

	mu     sync.Mutex
	counts map[segmentState]int
}

func newSegmentCounts(owns func(metav1.Object) bool) *segmentCounts {
	return &segmentCounts{owns: owns, counts: map[segmentState]int{}}
}

// handler keeps the counts as Segments are added, changed (relabelled to another shard
// among others) and deleted.
func (c *segmentCounts) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.move(nil, obj) },
		UpdateFunc: func(old, obj any) { c.move(old, obj) },
		DeleteFunc: func(obj any) {
			if gone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = gone.Obj
			}
			c.move(obj, nil)
		},
	}
}

// move counts a Segment no more under its labels as was, and under its labels as now
// (nil: none; another shard's counts under none: that shard counts it).
func (c *segmentCounts) move(was, now any) {
	from, counted := c.state(was)
	to, counts := c.state(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if counted {
		c.counts[from]--
	}
	if counts {
		c.counts[to]++
	}
}

// state is obj's labels, if it is a Segment this manager counts.
func (c *segmentCounts) state(obj any) (segmentState, bool) {
	seg, ok := obj.(*usersv1alpha1.Segment)
	if !ok || (c.owns != nil && !c.owns(seg)) {
		return segmentState{}, false
	}
	ready, reason := segmentLabels(seg)
	return segmentState{ready, reason}, true
}

// each calls f with each pair of labels seen so far and its count.
func (c *segmentCounts) each(f func(segmentState, int)) {
	c.mu.Lock()
	counts := maps.Clone(c.counts)
	c.mu.Unlock()
	for s, n := range counts {
		f(s, n)
	}
}
