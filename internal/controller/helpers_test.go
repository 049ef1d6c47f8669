package controller_test

import (
	"fmt"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// freshNamespace makes a namespace for one spec, with the simulator free of faults. Its
// Segments may use the manager's own credentials.
func freshNamespace(prefix string) string {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix,
		Labels: map[string]string{usersv1alpha1.DefaultCredentialsLabel: "true"}}}
	Expect(k8sClient.Create(ctx, n)).To(Succeed())
	Expect(sim.SetFaults(simulator.Faults{})).To(Succeed())
	return n.Name
}

// cleanUp undoes what a spec injected and deletes its Segments, waiting until they are gone.
func cleanUp(ns string) {
	managerClient.failIDWrites.Store(false)
	Expect(sim.SetFaults(simulator.Faults{})).To(Succeed())
	var list usersv1alpha1.SegmentList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for i := range list.Items {
		// Whatever a spec left suspended must be able to go.
		if list.Items[i].Spec.Suspend {
			update(&list.Items[i], func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		}
	}
	Expect(k8sClient.DeleteAllOf(ctx, &usersv1alpha1.Segment{}, client.InNamespace(ns))).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
	}, timeout, poll).Should(Succeed())
}

func create(ns, name string, spec usersv1alpha1.SegmentSpec) *usersv1alpha1.Segment {
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	ExpectWithOffset(1, k8sClient.Create(ctx, seg)).To(Succeed())
	return seg
}

func get(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	out := &usersv1alpha1.Segment{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), out)).To(Succeed())
	return out
}

func update(seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) {
	EventuallyWithOffset(1, func() error {
		s := get(seg)
		change(s)
		return k8sClient.Update(ctx, s)
	}, timeout, poll).Should(Succeed())
}

func readyCondition(seg *usersv1alpha1.Segment) *metav1.Condition {
	return meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady)
}

// waitReady waits until the Segment is Ready for its current generation.
func waitReady(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	return waitReadyCondition(seg, func(g Gomega, c *metav1.Condition) {
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready: %s %s", c.Reason, c.Message)
	})
}

// waitReadyCondition waits until the Segment has a status written for its current
// generation whose Ready condition passes check, and returns the Segment.
func waitReadyCondition(seg *usersv1alpha1.Segment, check func(Gomega, *metav1.Condition)) *usersv1alpha1.Segment {
	var out *usersv1alpha1.Segment
	EventuallyWithOffset(2, func(g Gomega) {
		out = &usersv1alpha1.Segment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), out)).To(Succeed())
		c := readyCondition(out)
		g.Expect(c).NotTo(BeNil())
		check(g, c)
		g.Expect(out.Status.ObservedGeneration).To(Equal(out.Generation))
	}, timeout, poll).Should(Succeed())
	return out
}

// stagedSegment makes a suspended Segment with the finalizer, waits for the manager's
// first status, then gives it the status stage writes, as the suite's admin: the state a
// killed manager, or an earlier version, leaves. Suspended, and a status write triggers no
// reconcile, so nothing acts on it until the spec changes.
func stagedSegment(ns, name string, spec usersv1alpha1.SegmentSpec, stage func(*usersv1alpha1.SegmentStatus)) *usersv1alpha1.Segment {
	spec.Suspend = true
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Finalizers: []string{usersv1alpha1.SegmentFinalizer}}, Spec: spec}
	ExpectWithOffset(1, k8sClient.Create(ctx, seg)).To(Succeed())
	waitSuspended(seg)
	EventuallyWithOffset(1, func() error {
		s := get(seg)
		stage(&s.Status)
		return k8sClient.Status().Update(ctx, s)
	}, timeout, poll).Should(Succeed())
	return seg
}

// waitReason waits until the Segment's Ready condition has reason: False, but for the
// observe-only reasons (Ready=True: the observation is current).
func waitReason(seg *usersv1alpha1.Segment, reason string) {
	want := metav1.ConditionFalse
	if reason == usersv1alpha1.ReasonDriftDetected || reason == usersv1alpha1.ReasonObserved {
		want = metav1.ConditionTrue
	}
	EventuallyWithOffset(1, func(g Gomega) {
		c := readyCondition(get(seg))
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(want))
		g.Expect(c.Reason).To(Equal(reason))
	}, timeout, poll).Should(Succeed())
}

// waitSuspended waits until the Segment says it is suspended: Suspended=True, no Ready.
func waitSuspended(seg *usersv1alpha1.Segment) {
	EventuallyWithOffset(1, func(g Gomega) {
		s := get(seg)
		g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, usersv1alpha1.ConditionSuspended)).To(BeTrue())
		g.Expect(readyCondition(s)).To(BeNil())
	}, timeout, poll).Should(Succeed())
}

func waitGone(seg *usersv1alpha1.Segment) {
	EventuallyWithOffset(1, func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), &usersv1alpha1.Segment{})
		return apierrors.IsNotFound(err)
	}, timeout, poll).Should(BeTrue())
}

func remoteSegment(id string) simulator.Segment {
	seg, ok := sim.Segment(id)
	ExpectWithOffset(1, ok).To(BeTrue(), "remote segment %s does not exist", id)
	return seg
}

func countNamed(name string) int {
	n := 0
	for _, s := range sim.Segments() {
		if s.Name == name {
			n++
		}
	}
	return n
}

func events(ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	ExpectWithOffset(2, k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func eventReasons(ns, name string) func() []string {
	return func() []string {
		var out []string
		for _, e := range events(ns, name) {
			out = append(out, e.Reason)
		}
		return out
	}
}

func warnings(ns, name string) func() []string {
	return func() []string {
		var out []string
		for _, e := range events(ns, name) {
			if e.Type == corev1.EventTypeWarning {
				out = append(out, e.Note)
			}
		}
		return out
	}
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	return out
}
