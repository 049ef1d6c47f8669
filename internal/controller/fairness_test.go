package controller_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// One manager serves every account: an account whose API stops answering holds no more
// than its share of the workers, and another account's Segment goes on as if it were alone.
var _ = Describe("Fairness between accounts", func() {
	var stuckNS, otherNS string

	BeforeEach(func() {
		stuckNS, otherNS = freshNamespace("stuck-"), freshNamespace("other-")
	})
	AfterEach(func() {
		releaseStuck() // its calls end (404): nothing was made there, so deletion is free
		cleanUp(stuckNS)
		cleanUp(otherNS)
	})

	It("keeps a Segment of one account from waiting on accounts whose API hangs, however many a tenant names", func() {
		// Two Secrets, two tokens: two accounts to the manager, each with a share of its own;
		// the namespace's share bounds them together.
		for _, name := range []string{"hung-a", "hung-b"} {
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: stuckNS, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
				StringData: map[string]string{"token": name, "apiURL": stuckURL},
			})).To(Succeed())
		}
		for i := range 8 { // twice the manager's workers
			create(stuckNS, fmt.Sprintf("hung-%d", i), usersv1alpha1.SegmentSpec{Members: []string{"u1"},
				CredentialsRef: &usersv1alpha1.CredentialsReference{Name: []string{"hung-a", "hung-b"}[i%2]}})
		}
		Eventually(stuckInFlight.Load, timeout, poll).Should(BeNumerically(">", 0))

		start := time.Now()
		seg := create(otherNS, "unhindered", usersv1alpha1.SegmentSpec{Name: "Unhindered", Members: []string{"m1"}})
		Eventually(func(g Gomega) {
			c := readyCondition(get(seg))
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}, 10*time.Second, poll).Should(Succeed(), "the other account's Segment waited for the hung one")
		GinkgoWriter.Printf("Ready after %s while the other account hung\n", time.Since(start).Round(time.Millisecond))
		Expect(stuckInFlight.Load()).To(BeNumerically(">", 0), "the hung account's calls were still hanging")
		Expect(stuckMaxInFlight.Load()).To(BeNumerically("<=", accountShare))
	})
})
