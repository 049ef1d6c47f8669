package controller_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("Credentials moved to another account", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("moved-") })
	AfterEach(func() { cleanUp(ns) })

	It("stops rather than create a second segment there or take a delete's 404 for success, and goes on when they come back", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "account-two", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": sim2Token, "apiURL": sim2URL},
		})).To(Succeed())
		seg := waitReady(create(ns, "moving", usersv1alpha1.SegmentSpec{Name: "Moving", Members: []string{"m1"}}))
		id := seg.Status.ID
		Expect(seg.Status.Ownership.Account).NotTo(BeEmpty())
		creates2, writes2 := sim2.Counts().Requests[simulator.EndpointCreate], sim2.Counts().Writes()

		update(seg, func(s *usersv1alpha1.Segment) {
			s.Spec.CredentialsRef = &usersv1alpha1.CredentialsReference{Name: "account-two"}
		})
		waitReason(seg, usersv1alpha1.ReasonAccountChanged)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(id))
		Eventually(eventReasons(ns, "moving"), timeout, poll).Should(ContainElement(usersv1alpha1.ReasonAccountChanged))

		By("deleting it: nothing is deleted in either account, and the Segment waits")
		Expect(k8sClient.Delete(ctx, get(seg))).To(Succeed())
		Eventually(func() string {
			c := meta.FindStatusCondition(get(seg).Status.Conditions, usersv1alpha1.ConditionStalled)
			if c == nil {
				return ""
			}
			return c.Reason
		}, timeout, poll).Should(Equal(usersv1alpha1.ReasonAccountChanged))
		Consistently(func() bool { _, ok := sim.Segment(id); return ok }, driftInterval, poll).Should(BeTrue())
		Expect(sim2.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates2))
		Expect(sim2.Counts().Writes()).To(Equal(writes2))

		By("putting the credentials back: the segment is deleted where it is")
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.CredentialsRef = nil })
		waitGone(seg)
		_, ok := sim.Segment(id)
		Expect(ok).To(BeFalse())
		Expect(sim2.Counts().Writes()).To(Equal(writes2))
	})
})
