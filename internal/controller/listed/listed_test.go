package listed_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
)

var _ = Describe("Credentials Secrets in listed namespaces, with namespaced RBAC", Ordered, func() {
	It("has the manager read no Secret outside a listed namespace that granted it access", func() {
		for _, ns := range []string{late, "default"} {
			err := managerClient.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets in %s: %v", ns, err)
		}
		Expect(apierrors.IsForbidden(managerClient.List(ctx, &corev1.SecretList{}))).To(BeTrue(), "cluster-wide")
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: bound}}
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: rb.ObjectMeta,
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: credentialsRoleName},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "someone"}}})).To(Succeed())
		Expect(apierrors.IsForbidden(managerClient.Get(ctx, client.ObjectKeyFromObject(rb), rb))).To(BeTrue(),
			"the manager may read the one RoleBinding it keeps, no other")
	})

	It("serves a listed namespace although another listed namespace grants no access, and holds its RoleBinding", func() {
		secret(bound)
		seg := waitReady(segment(bound, "first"))
		_, ok := sim.Segment(seg.Status.ID)
		Expect(ok).To(BeTrue())
		Eventually(finalizers(&corev1.Secret{}, bound, "creds"), timeout, poll).Should(ConsistOf(usersv1alpha1.CredentialsInUseFinalizer))
		Expect(finalizers(&rbacv1.RoleBinding{}, bound, credentials.RoleBinding)()).To(
			ConsistOf(usersv1alpha1.CredentialsInUseFinalizer), "the RoleBinding is held before the Secret")
	})

	It("tells a listed namespace without the RoleBinding to make it, and proceeds once it is made", func() {
		secret(late)
		seg := segment(late, "waits")
		cond := waitReason(seg, usersv1alpha1.ReasonCredentialsError, timeout)
		Expect(cond.Message).To(ContainSubstring(`create the RoleBinding "segment-operator-credentials"`))
		Expect(finalizers(&corev1.Secret{}, late, "creds")()).To(BeEmpty())

		grantSecrets(late)
		waitReadyWithin(seg, syncTimeout)
		Eventually(finalizers(&rbacv1.RoleBinding{}, late, credentials.RoleBinding), timeout, poll).Should(
			ConsistOf(usersv1alpha1.CredentialsInUseFinalizer))
	})

	It("holds no Secret where the RoleBinding of that name does not let the manager keep it", func() {
		secret(odd)
		seg := segment(odd, "unsafe")
		cond := waitReason(seg, usersv1alpha1.ReasonCredentialsError, timeout)
		Expect(cond.Message).To(ContainSubstring(`granted by a RoleBinding named "segment-operator-credentials"`))
		Consistently(finalizers(&corev1.Secret{}, odd, "creds"), 2*time.Second, poll).Should(BeEmpty(),
			"a Secret held without its RoleBinding would hang the namespace's deletion")
		Expect(sim.Segments()).NotTo(ContainElement(HaveField("Name", "unsafe")))
		update := get(odd, "unsafe")
		update.Spec.DeletionPolicy = usersv1alpha1.DeletionPolicyOrphan
		Expect(k8sClient.Update(ctx, update)).To(Succeed())
		Expect(k8sClient.Delete(ctx, update)).To(Succeed())
		Eventually(func() bool { return gone(&usersv1alpha1.Segment{}, odd, "unsafe") }, timeout, poll).Should(BeTrue())
	})

	It("refuses credentialsRef in a namespace not listed, without reading its Secret, though its admin granted access", func() {
		secret(unlisted)
		seg := segment(unlisted, "refused")
		cond := waitReason(seg, usersv1alpha1.ReasonCredentialsError, timeout)
		Expect(cond.Message).To(ContainSubstring("--namespace-credentials"))
		Consistently(finalizers(&corev1.Secret{}, unlisted, "creds"), 2*time.Second, poll).Should(BeEmpty())
		Expect(finalizers(&rbacv1.RoleBinding{}, unlisted, credentials.RoleBinding)()).To(BeEmpty())
		Expect(sim.Segments()).NotTo(ContainElement(HaveField("Name", "refused")))
	})

	// envtest runs no namespace controller: the spec deletes what it would, in the order
	// that would hang, the RoleBinding and the Secret before the Segments that need them.
	It("lets a namespace go: its RoleBinding and Secret stay until its Segments have deleted their remote segments", func() {
		second := waitReady(segment(bound, "second"))
		first := get(bound, "first")
		ids := []string{first.Status.ID, second.Status.ID}

		Expect(k8sClient.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: credentials.RoleBinding, Namespace: bound}})).To(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: bound}})).To(Succeed())
		Expect(k8sClient.DeleteAllOf(ctx, &usersv1alpha1.Segment{}, client.InNamespace(bound))).To(Succeed())
		Eventually(func(g Gomega) {
			var list usersv1alpha1.SegmentList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(bound))).To(Succeed())
			g.Expect(list.Items).To(BeEmpty())
			g.Expect(gone(&corev1.Secret{}, bound, "creds")).To(BeTrue(), "the Secret is gone once nothing needs it")
			g.Expect(gone(&rbacv1.RoleBinding{}, bound, credentials.RoleBinding)).To(BeTrue(),
				"the RoleBinding is gone once no Secret is in use")
		}, timeout, poll).Should(Succeed())
		for _, id := range ids {
			_, ok := sim.Segment(id)
			Expect(ok).To(BeFalse(), "remote segment %s deleted", id)
		}
	})

	It("lets go of the RoleBinding once no Segment of the namespace uses a Secret", func() {
		seg := get(late, "waits")
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		Eventually(func() bool { return gone(&usersv1alpha1.Segment{}, late, "waits") }, timeout, poll).Should(BeTrue())
		Eventually(finalizers(&corev1.Secret{}, late, "creds"), timeout, poll).Should(BeEmpty())
		Eventually(finalizers(&rbacv1.RoleBinding{}, late, credentials.RoleBinding), timeout, poll).Should(BeEmpty())
	})
})

// secret creates the Secret "creds" in ns, labelled for use as credentials.
func secret(ns string) {
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
		StringData: map[string]string{usersv1alpha1.CredentialsTokenKey: simToken},
	})).To(Succeed())
}

// segment creates a Segment of one member that names the Secret "creds".
func segment(ns, name string) *usersv1alpha1.Segment {
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: usersv1alpha1.SegmentSpec{
		Members: []string{"u1"}, CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "creds"}}}
	ExpectWithOffset(1, k8sClient.Create(ctx, seg)).To(Succeed())
	return seg
}

func get(ns, name string) *usersv1alpha1.Segment {
	seg := &usersv1alpha1.Segment{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, seg)).To(Succeed())
	return seg
}

func waitReady(seg *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	return waitReadyWithin(seg, timeout)
}

func waitReadyWithin(seg *usersv1alpha1.Segment, within time.Duration) *usersv1alpha1.Segment {
	out := &usersv1alpha1.Segment{}
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), out)).To(Succeed())
		cond := meta.FindStatusCondition(out.Status.Conditions, usersv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), "%s: %s", cond.Reason, cond.Message)
		g.Expect(out.Status.ID).NotTo(BeEmpty())
	}, within, poll).Should(Succeed())
	return out
}

func waitReason(seg *usersv1alpha1.Segment, reason string, within time.Duration) *metav1.Condition {
	var cond *metav1.Condition
	EventuallyWithOffset(1, func(g Gomega) {
		out := &usersv1alpha1.Segment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), out)).To(Succeed())
		cond = meta.FindStatusCondition(out.Status.Conditions, usersv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(reason), cond.Message)
	}, within, poll).Should(Succeed())
	return cond
}

func finalizers(obj client.Object, ns, name string) func() []string {
	return func() []string {
		ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
		return obj.GetFinalizers()
	}
}

func gone(obj client.Object, ns, name string) bool {
	return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj))
}
