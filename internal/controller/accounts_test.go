package controller_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

var _ = Describe("Credentials moved by a tenant", func() {
	var victimNS, ns string

	BeforeEach(func() { victimNS, ns = freshNamespace("victim-"), freshNamespace("liar-") })
	AfterEach(func() {
		liarID.Store("")
		cleanUp(ns)
		cleanUp(victimNS)
	})

	It("do not hand over another namespace's segment whose ID an API of theirs made up", func() {
		victim := waitReady(create(victimNS, "crown-jewels", usersv1alpha1.SegmentSpec{Name: "Crown jewels", Members: []string{"v1"}}))
		liarID.Store(victim.Status.ID)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "own-api", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": "liar-token", "apiURL": liarURL},
		})).To(Succeed())
		writes := sim.Counts().Writes()
		seg := create(ns, "impostor", usersv1alpha1.SegmentSpec{Name: "Pwned", Members: []string{"evil"},
			CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "own-api"}})
		waitReason(seg, usersv1alpha1.ReasonConflict)
		Expect(get(seg).OwnedID()).To(BeEmpty(), "an ID another Segment owns is not recorded, whatever the API answered")
		// Eventually: the Secret's in-use finalizer, put on meanwhile, reconciles the Segment
		// again, and for a moment its status says Creating, before the same Conflict.
		Eventually(func() string { return readyCondition(get(seg)).Message }, timeout, poll).
			Should(And(ContainSubstring("a Segment in another namespace"), Not(ContainSubstring(victimNS))))

		By("switching to the manager's account, and deleting: nothing reaches the victim's segment")
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.CredentialsRef = nil; s.Spec.Suspend = true })
		waitSuspended(seg)
		Expect(k8sClient.Delete(ctx, get(seg))).To(Succeed())
		waitGone(seg)
		Expect(sim.Counts().Writes() - writes).To(BeZero())
		Expect(remoteSegment(victim.Status.ID)).To(And(HaveField("Name", "Crown jewels"), HaveField("Members", ConsistOf("v1"))))
		Expect(readyCondition(get(victim)).Status).To(Equal(metav1.ConditionTrue))
		Expect(get(victim).OwnedID()).To(Equal(victim.Status.ID))
	})
})

var _ = Describe("The manager's own credentials", func() {
	It("are refused to a namespace no administrator opted in, and granted once it is labelled", func() {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "not-granted-"}}
		Expect(k8sClient.Create(ctx, n)).To(Succeed())
		DeferCleanup(cleanUp, n.Name)
		unmanaged := sim.Create("Made in the ChatBot UI", "u1")
		adopter := create(n.Name, "adopter", usersv1alpha1.SegmentSpec{ID: unmanaged})
		seg := create(n.Name, "no-grant", usersv1alpha1.SegmentSpec{Name: "No grant"})
		for _, s := range []*usersv1alpha1.Segment{adopter, seg} {
			waitReason(s, usersv1alpha1.ReasonCredentialsError)
			Expect(readyCondition(get(s)).Message).To(ContainSubstring(usersv1alpha1.DefaultCredentialsLabel + "=true"))
			Expect(get(s).Status.ID).To(BeEmpty(), "nothing observed with the manager's token")
		}
		Expect(countNamed("No grant")).To(BeZero())

		By("an administrator labels the namespace")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(n), n)).To(Succeed())
		n.Labels = map[string]string{usersv1alpha1.DefaultCredentialsLabel: "true"}
		Expect(k8sClient.Update(ctx, n)).To(Succeed())
		waitReady(seg)
		waitReady(adopter)
		Expect(get(adopter).OwnedID()).To(Equal(unmanaged))
	})
})
