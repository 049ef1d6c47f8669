package controller_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// Segments an earlier version wrote: status.id, the finalizer, and no status.ownership.
// The suite's admin client writes the status that version would have written.
var _ = Describe("Upgrade from a version without status.ownership", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("upgrade-") })
	AfterEach(func() { cleanUp(ns) })

	// legacyStatus is the status an earlier version wrote, for the Segment's generation.
	legacyStatus := func(id string, ready metav1.ConditionStatus, reason string) func(*usersv1alpha1.Segment) {
		return func(s *usersv1alpha1.Segment) {
			s.Status = usersv1alpha1.SegmentStatus{ID: id, ObservedGeneration: s.Generation, Conditions: []metav1.Condition{{
				Type: usersv1alpha1.ConditionReady, Status: ready, Reason: reason, Message: "written by an earlier version",
				LastTransitionTime: metav1.Now(), ObservedGeneration: s.Generation}}}
		}
	}
	// offline makes a Segment the manager cannot act on (its credentials Secret is
	// missing), gives it the status stage writes, and returns a function that brings the
	// Secret, and so the manager's attention.
	offline := func(name string, spec usersv1alpha1.SegmentSpec, stage func(*usersv1alpha1.Segment)) (*usersv1alpha1.Segment, func()) {
		spec.CredentialsRef = &usersv1alpha1.CredentialsReference{Name: name + "-creds"}
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Finalizers: []string{usersv1alpha1.SegmentFinalizer}}, Spec: spec}
		Expect(k8sClient.Create(ctx, seg)).To(Succeed())
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		Eventually(func() error {
			s := get(seg)
			stage(s)
			return k8sClient.Status().Update(ctx, s)
		}, timeout, poll).Should(Succeed())
		return seg, func() {
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-creds", Namespace: ns,
				Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
				StringData: map[string]string{usersv1alpha1.CredentialsTokenKey: simToken}})).To(Succeed())
		}
	}

	It("keeps an earlier version's hold against a Segment staged under that version's suspend", func() {
		id := sim.Create("Legacy", "m")
		owner, bringOwner := offline("legacy-owner", usersv1alpha1.SegmentSpec{Name: "Legacy", Members: []string{"m"}},
			legacyStatus(id, metav1.ConditionTrue, usersv1alpha1.ReasonSynced))
		// An editor's staging before the upgrade: an observation of the victim's segment,
		// switched to Manage, finalizer added and suspended in one update.
		staged := stagedSegment(ns, "staged", usersv1alpha1.SegmentSpec{Name: "Hijack", Members: []string{"evil"}}, func(s *usersv1alpha1.SegmentStatus) {
			*s = usersv1alpha1.SegmentStatus{ID: id, ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: usersv1alpha1.ReasonSuspended,
				Message: "written by an earlier version", LastTransitionTime: metav1.Now(), ObservedGeneration: 1}}}
		})

		By("resuming the staged one first: the unclaimed hold counts, the staged status does not")
		update(staged, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitReadyCondition(staged, func(g Gomega, c *metav1.Condition) { g.Expect(c.Reason).To(Equal(usersv1alpha1.ReasonConflict)) })
		Expect(get(staged).OwnedID()).To(BeEmpty())
		Expect(remoteSegment(id)).To(And(HaveField("Name", "Legacy"), HaveField("Members", ConsistOf("m"))))

		bringOwner()
		Eventually(func() *usersv1alpha1.SegmentOwnership { return get(owner).Status.Ownership }, timeout, poll).Should(
			And(HaveField("ID", id), HaveField("Account", Not(BeEmpty())), HaveField("CreatePending", BeNil())))
		waitReady(owner)
		Expect(get(staged).OwnedID()).To(BeEmpty())
		Expect(remoteSegment(id)).To(And(HaveField("Name", "Legacy"), HaveField("Members", ConsistOf("m"))))
	})

	It("deletes an earlier version's segment when its Segment is deleted before its first reconcile, through failures", func() {
		id := sim.Create("Legacy doomed")
		seg, bringCredentials := offline("legacy-doomed", usersv1alpha1.SegmentSpec{Name: "Legacy doomed"},
			legacyStatus(id, metav1.ConditionTrue, usersv1alpha1.ReasonSynced))
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		// Reconciles fail (no credentials yet), and must not lose the hold.
		Consistently(func() []string { return get(seg).Finalizers }, driftInterval, poll).Should(ContainElement(usersv1alpha1.SegmentFinalizer))
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointDelete}, FailNext: 1, ErrorCode: 503})).To(Succeed())
		bringCredentials()
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
