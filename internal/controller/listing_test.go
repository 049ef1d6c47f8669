package controller_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("Shared listing", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("list-") })
	AfterEach(func() { cleanUp(ns) })

	It("lists once per drift interval while Segments wait for a segment spec.id names that does not exist", func() {
		var segs []*usersv1alpha1.Segment
		for i := range 5 {
			segs = append(segs, create(ns, fmt.Sprintf("missing-%d", i), usersv1alpha1.SegmentSpec{ID: fmt.Sprintf("nosuchsegment%d", i)}))
		}
		for _, seg := range segs {
			waitReason(seg, usersv1alpha1.ReasonRemoteNotFound)
		}
		lists := sim.Counts().Requests[simulator.EndpointList]
		// 3 intervals, plus one at the edge; each Segment is checked each interval.
		Consistently(func() int64 { return sim.Counts().Requests[simulator.EndpointList] - lists }, 3*driftInterval, poll).
			Should(BeNumerically("<=", 4))
	})

	It("confirms segments deleted out of band with one listing for all their Segments, not one each", func() {
		var segs []*usersv1alpha1.Segment
		for i := range 5 {
			segs = append(segs, create(ns, fmt.Sprintf("vanishing-%d", i), usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Vanishing %d", i)}))
		}
		ids := map[string]bool{}
		for _, seg := range segs {
			ids[waitReady(seg).Status.ID] = true
		}
		// In sync, nothing is written; and once older than the clock skew allowed for, a
		// listing of now proves whether they exist.
		writes := sim.Counts().Writes()
		Consistently(func() int64 { return sim.Counts().Writes() - writes }, 7*time.Second, poll).Should(BeZero())
		lists := sim.Counts().Requests[simulator.EndpointList]
		for id := range ids {
			Expect(sim.Delete(id)).To(BeTrue())
		}
		for _, seg := range segs {
			Eventually(func() bool { return !ids[get(seg).Status.ID] && readyCondition(get(seg)).Status == "True" }, timeout, poll).
				Should(BeTrue(), "%s is made again", seg.Name)
		}
		// One listing shows them gone; one more may fall due meanwhile (2 s interval).
		Expect(sim.Counts().Requests[simulator.EndpointList] - lists).To(BeNumerically("<=", 3))
		for i := range 5 {
			Expect(countNamed(fmt.Sprintf("Vanishing %d", i))).To(Equal(1))
		}
	})
})
