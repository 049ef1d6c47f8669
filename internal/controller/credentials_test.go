package controller_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

var _ = Describe("Credentials per namespace", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("creds-") })
	AfterEach(func() { cleanUp(ns) })

	secret := func(name string, labelled bool, data map[string]string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
		if labelled {
			s.Labels = map[string]string{usersv1alpha1.CredentialsLabel: "true"}
		}
		ExpectWithOffset(1, k8sClient.Create(ctx, s)).To(Succeed())
	}

	It("uses the account of the Secret named by credentialsRef, and only that account", func() {
		secret("team-a", true, map[string]string{"token": sim2Token, "apiURL": sim2URL})
		before := len(sim.Segments())
		seg := waitReady(create(ns, "other-account", usersv1alpha1.SegmentSpec{
			Name: "In account two", Members: []string{"u1"}, CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "team-a"},
		}))
		s, ok := sim2.Segment(seg.Status.ID)
		Expect(ok).To(BeTrue())
		Expect(s.Members).To(ConsistOf("u1"))
		Expect(sim.Segments()).To(HaveLen(before))
	})

	// envtest runs no namespace controller: the spec deletes what it would, in the order
	// that hung, the credentials Secret before the Segments that need it.
	It("lets a namespace go: its credentials Secret stays until its Segments have deleted their remote segments", func() {
		secret("ns-creds", true, map[string]string{"token": sim2Token, "apiURL": sim2URL})
		var ids []string
		for _, name := range []string{"one", "two", "three"} {
			seg := waitReady(create(ns, name, usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "ns-creds"}}))
			ids = append(ids, seg.Status.ID)
		}
		key := client.ObjectKey{Namespace: ns, Name: "ns-creds"}
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
		Expect(s.Finalizers).To(ContainElement(usersv1alpha1.CredentialsInUseFinalizer))

		Expect(k8sClient.Delete(ctx, &s)).To(Succeed())
		Expect(k8sClient.DeleteAllOf(ctx, &usersv1alpha1.Segment{}, client.InNamespace(ns))).To(Succeed())
		Eventually(func(g Gomega) {
			var list usersv1alpha1.SegmentList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(BeEmpty())
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, &s))).To(BeTrue(), "the Secret is gone once nothing needs it")
		}, timeout, poll).Should(Succeed())
		for _, id := range ids {
			_, ok := sim2.Segment(id)
			Expect(ok).To(BeFalse(), "remote segment %s deleted", id)
		}
	})

	It("takes the in-use finalizer off a Secret once no Segment needs it, or once it is no credentials Secret", func() {
		secret("used", true, map[string]string{"token": sim2Token, "apiURL": sim2URL})
		key := client.ObjectKey{Namespace: ns, Name: "used"}
		finalizers := func() []string {
			var s corev1.Secret
			Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
			return s.Finalizers
		}
		Consistently(finalizers, time.Second, poll).Should(BeEmpty(), "no Segment uses it yet")
		seg := waitReady(create(ns, "user", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "used"}}))
		Expect(finalizers()).To(ConsistOf(usersv1alpha1.CredentialsInUseFinalizer))
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		Eventually(finalizers, timeout, poll).Should(BeEmpty())

		By("unlabelled, it serves no Segment: the finalizer goes, the Secret is not read")
		seg = waitReady(create(ns, "user-again", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "used"}}))
		Eventually(finalizers, timeout, poll).Should(ConsistOf(usersv1alpha1.CredentialsInUseFinalizer))
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, key, &s)).To(Succeed())
		delete(s.Labels, usersv1alpha1.CredentialsLabel)
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		Eventually(finalizers, timeout, poll).Should(BeEmpty())
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.DeletionPolicy = usersv1alpha1.DeletionPolicyOrphan })
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		sim2.Delete(seg.Status.ID)
	})

	It("reports a missing Secret, and proceeds when it appears", func() {
		seg := create(ns, "waiting", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "later"}})
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(`Secret "later" not found`))
		Expect(meta.IsStatusConditionTrue(get(seg).Status.Conditions, usersv1alpha1.ConditionStalled)).To(BeTrue())

		secret("later", true, map[string]string{"token": sim2Token, "apiURL": sim2URL})
		seg = waitReady(seg)
		_, ok := sim2.Segment(seg.Status.ID)
		Expect(ok).To(BeTrue())
	})

	It("does not read a Secret without the credentials label", func() {
		secret("unlabelled", false, map[string]string{"token": sim2Token, "apiURL": sim2URL})
		seg := create(ns, "unlabelled", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "unlabelled"}})
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(usersv1alpha1.CredentialsLabel + "=true"))
	})

	It("refuses an apiURL the manager does not allow, without calling it, and proceeds with an allowed one", func() {
		secret("elsewhere", true, map[string]string{"token": simToken, "apiURL": "http://admin:hunter2@127.0.0.1:1/latest"})
		seg := create(ns, "elsewhere", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "elsewhere"}})
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		msg := readyCondition(get(seg)).Message
		Expect(msg).To(ContainSubstring("does not allow"))
		Expect(msg).To(ContainSubstring("--allowed-api-urls"))
		Expect(msg).NotTo(ContainSubstring("hunter2"))

		// The manager's own API URL is always allowed, trailing slash or not.
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "elsewhere"}, &s)).To(Succeed())
		s.Data["apiURL"] = []byte(simURL + "/")
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		seg = waitReady(seg)
		remoteSegment(seg.Status.ID)
	})

	It("stalls with EndpointNotFound on a base URL that answers 404, without calling it in a loop", func() {
		secret("wrong-path", true, map[string]string{"token": simToken, "apiURL": notFoundURL})
		seg := create(ns, "wrong-path", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "wrong-path"}})
		// Read together: each retry records its create intent (Creating) before the call.
		Eventually(func(g Gomega) {
			s := get(seg)
			c := readyCondition(s)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(usersv1alpha1.ReasonEndpointNotFound))
			g.Expect(c.Message).To(ContainSubstring("check the API base URL"))
			g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, usersv1alpha1.ConditionStalled)).To(BeTrue())
		}, timeout, poll).Should(Succeed())
		before := notFoundHits.Load()
		time.Sleep(2 * driftInterval)
		// Once per drift interval, give or take one.
		Expect(notFoundHits.Load() - before).To(BeNumerically("<=", 3))
	})

	It("reports a Secret without a token", func() {
		secret("no-token", true, map[string]string{"apiURL": sim2URL})
		seg := create(ns, "no-token", usersv1alpha1.SegmentSpec{CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "no-token"}})
		waitReason(seg, usersv1alpha1.ReasonCredentialsError)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(`has no key "token"`))
	})
})
