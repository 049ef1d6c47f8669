package controller_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// The specs run in order: the first must not find a listing another spec's request forced
// on its account in the seconds before.
var _ = Describe("Reconcile on request", Ordered, func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("requested-") })
	AfterEach(func() { cleanUp(ns) })

	It("renames back at once a segment renamed out of band, with one listing, and records the request handled", func() {
		seg := waitReady(create(ns, "asked", usersv1alpha1.SegmentSpec{Name: "Asked"}))
		id := seg.Status.ID

		// The account is listed now, so that the drift check (every 2s here) cannot see the
		// rename before driftInterval has passed: only a listing forced by the request can.
		listedAt := time.Now()
		_, err := sharedAccount(simURL, simToken).Observations.Refresh(ctx)
		Expect(err).NotTo(HaveOccurred())
		lists, renames := sim.Counts().Requests[simulator.EndpointList], sim.Counts().Requests[simulator.EndpointRename]
		Expect(sim.Rename(id, "Renamed out of band")).To(BeTrue())
		requestReconcile(seg, "1700000000")

		Eventually(func() string { return remoteSegment(id).Name }, timeout, 10*time.Millisecond).Should(Equal("Asked"))
		listed := sim.Counts().Requests[simulator.EndpointList] - lists
		Expect(time.Since(listedAt)).To(BeNumerically("<", driftInterval), "renamed back by the drift check, not on request")
		Expect(listed).To(Equal(int64(1)))
		Expect(sim.Counts().Requests[simulator.EndpointRename] - renames).To(Equal(int64(1)))
		Eventually(func() string { return get(seg).Status.LastHandledReconcileAt }, timeout, poll).Should(Equal("1700000000"))
		Expect(readyCondition(get(seg)).Reason).To(Equal(usersv1alpha1.ReasonSynced))
	})

	It("lists an account once for 20 of its Segments asked at once", func() {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "account-two", Namespace: ns, Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
			StringData: map[string]string{"token": sim2Token, "apiURL": sim2URL},
		})).To(Succeed())
		var segs []*usersv1alpha1.Segment
		for i := range 20 {
			segs = append(segs, create(ns, fmt.Sprintf("asked-%02d", i), usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Asked %02d", i),
				CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "account-two"}}))
		}
		ids := make([]string, len(segs))
		for i, seg := range segs {
			ids[i] = waitReady(seg).Status.ID
		}

		_, err := sharedAccount(sim2URL, sim2Token).Observations.Refresh(ctx)
		Expect(err).NotTo(HaveOccurred())
		lists := sim2.Counts().Requests[simulator.EndpointList]
		for _, id := range ids {
			Expect(sim2.Rename(id, "Renamed out of band")).To(BeTrue())
		}
		asked := time.Now()
		for _, seg := range segs {
			requestReconcile(seg, "burst")
		}
		Eventually(func(g Gomega) {
			for i, seg := range segs {
				g.Expect(get(seg).Status.LastHandledReconcileAt).To(Equal("burst"), seg.Name)
				s, _ := sim2.Segment(ids[i])
				g.Expect(s.Name).To(Equal(fmt.Sprintf("Asked %02d", i)))
			}
		}, timeout, poll).Should(Succeed())
		// Requests force at most one listing per 5 seconds (those seen after a forced listing
		// began wait for the next, or for any listing begun after them); the drift check lists
		// too, each drift interval, while the 20 reconciles (and their renames, at the suite's
		// 50 calls a second) go on. Without the spacing, each of the 20 would list.
		elapsed := time.Since(asked)
		Expect(sim2.Counts().Requests[simulator.EndpointList]-lists).To(BeNumerically("<=",
			2+int(elapsed/(5*time.Second))+int(elapsed/driftInterval)), "in %s", elapsed)
	})

	It("records a request with a failure as with a success, and none while suspended", func() {
		missing := create(ns, "asked-missing", usersv1alpha1.SegmentSpec{ID: "nosuchsegmentasked"})
		waitReason(missing, usersv1alpha1.ReasonRemoteNotFound)
		requestReconcile(missing, "failing")
		Eventually(func() string { return get(missing).Status.LastHandledReconcileAt }, timeout, poll).Should(Equal("failing"))
		Expect(readyCondition(get(missing)).Reason).To(Equal(usersv1alpha1.ReasonRemoteNotFound))

		paused := create(ns, "asked-paused", usersv1alpha1.SegmentSpec{Name: "Asked paused", Suspend: true})
		waitSuspended(paused)
		requestReconcile(paused, "paused")
		Consistently(func() string { return get(paused).Status.LastHandledReconcileAt }, 2*driftInterval, poll).Should(BeEmpty())
		update(paused, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		Eventually(func() string { return get(paused).Status.LastHandledReconcileAt }, timeout, poll).Should(Equal("paused"))
		waitReady(paused)
	})
})

// requestReconcile sets the Segment's reconcile request annotation, as
// `kubectl annotate --overwrite segment NAME reconcile.fluxcd.io/requestedAt=value` does.
func requestReconcile(seg *usersv1alpha1.Segment, value string) {
	update(seg, func(s *usersv1alpha1.Segment) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[usersv1alpha1.ReconcileRequestAnnotation] = value
	})
}

// sharedAccount is the manager's account for these credentials, which its Segments have used.
func sharedAccount(baseURL, token string) *remote.Account {
	id := remote.Credentials{BaseURL: baseURL, Token: token}.AccountID()
	for _, a := range accounts.All() {
		if a.ID == id {
			return a
		}
	}
	Fail("the manager has no account " + id)
	return nil
}
