package controller_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// Segments an earlier version wrote: status.id, the finalizer, and no status.ownership.
var _ = Describe("Upgrade from a version without status.ownership", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("upgrade-") })
	AfterEach(func() { cleanUp(ns) })

	// legacySegment makes a suspended Segment with the status an earlier version would
	// have written (the suite's admin client stands in for that version).
	legacySegment := func(name string, spec usersv1alpha1.SegmentSpec, id string, ready metav1.ConditionStatus, reason string) *usersv1alpha1.Segment {
		return stagedSegment(ns, name, spec, func(s *usersv1alpha1.SegmentStatus) {
			*s = usersv1alpha1.SegmentStatus{ID: id, ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: usersv1alpha1.ConditionReady, Status: ready, Reason: reason, Message: "written by an earlier version",
				LastTransitionTime: metav1.Now(), ObservedGeneration: 1}}}
		})
	}

	It("keeps an earlier version's hold, and refuses a Segment that version refused", func() {
		id := sim.Create("Legacy", "m")
		owner := legacySegment("legacy-owner", usersv1alpha1.SegmentSpec{Name: "Legacy", Members: []string{"m"}}, id,
			metav1.ConditionTrue, usersv1alpha1.ReasonSynced)
		refused := legacySegment("legacy-refused", usersv1alpha1.SegmentSpec{Name: "Hijack", Members: []string{"evil"}}, id,
			metav1.ConditionFalse, usersv1alpha1.ReasonConflict)

		By("resuming the refused one first: the unclaimed hold still counts")
		update(refused, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitReadyCondition(refused, func(g Gomega, c *metav1.Condition) { // written now, not staged
			g.Expect(c.Reason).To(Equal(usersv1alpha1.ReasonConflict))
		})
		Expect(get(refused).Status.Ownership).To(Equal(&usersv1alpha1.SegmentOwnership{}))
		Expect(remoteSegment(id)).To(And(HaveField("Name", "Legacy"), HaveField("Members", ConsistOf("m"))))

		update(owner, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		Expect(waitReady(owner).Status.Ownership).To(Equal(&usersv1alpha1.SegmentOwnership{ID: id}))
		Expect(get(refused).OwnedID()).To(BeEmpty())
		Expect(remoteSegment(id)).To(And(HaveField("Name", "Legacy"), HaveField("Members", ConsistOf("m"))))
	})

	It("deletes an earlier version's segment when its Segment is deleted before its first reconcile, through a failed delete", func() {
		id := sim.Create("Legacy doomed")
		seg := legacySegment("legacy-doomed", usersv1alpha1.SegmentSpec{Name: "Legacy doomed"}, id, metav1.ConditionTrue, usersv1alpha1.ReasonSynced)
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointDelete}, FailNext: 1, ErrorCode: 503})).To(Succeed())
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitGone(seg)
		_, exists := sim.Segment(id)
		Expect(exists).To(BeFalse(), "the segment an earlier version managed was left behind")
	})

	It("reports an earlier version's create-pending annotation and does not act on it", func() {
		uiMade := sim.Create("Pending before the upgrade")
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "legacy-intent", Namespace: ns,
			Finalizers: []string{usersv1alpha1.SegmentFinalizer}, Annotations: map[string]string{
				usersv1alpha1.AnnotationCreatePending: `{"at":"2020-01-01T00:00:00Z","name":"Pending before the upgrade"}`}},
			Spec: usersv1alpha1.SegmentSpec{Name: "Pending before the upgrade"}}
		Expect(k8sClient.Create(ctx, seg)).To(Succeed())
		Expect(waitReady(seg).Status.ID).NotTo(Equal(uiMade))
		Eventually(eventReasons(ns, "legacy-intent"), timeout, poll).Should(ContainElement("CreateIntentIgnored"))
		Expect(remoteSegment(uiMade).Name).To(Equal("Pending before the upgrade"))
		Expect(sim.Delete(uiMade)).To(BeTrue())
	})
})
