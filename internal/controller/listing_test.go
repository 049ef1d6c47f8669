package controller_test

import (
	"fmt"

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
})
