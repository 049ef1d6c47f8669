package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("Crash-safe create", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("crash-") })
	AfterEach(func() { cleanUp(ns) })

	It("finds the segment a lost create response made instead of creating a second", func() {
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, LoseResponseRate: 1})).To(Succeed())
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		seg := waitReady(create(ns, "lost-response", usersv1alpha1.SegmentSpec{Name: "Lost response", Members: []string{"a"}}))
		Expect(countNamed("Lost response")).To(Equal(1))
		Expect(sim.Counts().Requests[simulator.EndpointCreate] - creates).To(BeEquivalentTo(1))
		Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf("a"))
		Expect(seg.Status.Ownership).To(And(HaveField("ID", seg.Status.ID), HaveField("Account", Not(BeEmpty())),
			HaveField("CreatePending", BeNil())))
	})

	It("forgets a create that certainly failed, and does not adopt a same-named segment made meanwhile", func() {
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate},
			FailNext: 1, ErrorCode: 429, RetryAfter: simulator.Duration(2 * time.Second)})).To(Succeed())
		seg := create(ns, "refused", usersv1alpha1.SegmentSpec{Name: "Refused once"})
		waitReason(seg, usersv1alpha1.ReasonRateLimited)
		Expect(get(seg).PendingCreate()).To(BeNil())

		// Someone else makes a segment with the same name while the Segment waits.
		theirs := sim.Create("Refused once")
		seg = waitReady(seg)
		Expect(seg.Status.ID).NotTo(Equal(theirs), "adopted a segment it did not make (adoptionPolicy None)")
		Expect(countNamed("Refused once")).To(Equal(2))
		sim.Delete(theirs)
	})

	It("survives a status write lost right after the create", func() {
		managerClient.failIDWrites.Store(true)
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		seg := create(ns, "crashed", usersv1alpha1.SegmentSpec{Name: "Crashed before recording"})
		Eventually(func() int { return countNamed("Crashed before recording") }, timeout, poll).Should(Equal(1))
		Expect(get(seg).Status.ID).To(BeEmpty())
		Expect(get(seg).PendingCreate()).NotTo(BeNil())

		managerClient.failIDWrites.Store(false)
		seg = waitReady(seg)
		Expect(countNamed("Crashed before recording")).To(Equal(1))
		Expect(sim.Counts().Requests[simulator.EndpointCreate] - creates).To(BeEquivalentTo(1))
		Expect(seg.PendingCreate()).To(BeNil())
	})

	It("makes exactly one segment per Segment when listings arrive late and create responses are lost", func() {
		// Every listing shows the account as it was 1.5 s before it arrives, and half the
		// create responses are lost: a listing begun before a lost create must never be
		// taken as proof that it made nothing.
		Expect(sim.SetFaults(simulator.Faults{Seed: 7, LoseResponseRate: 0.5, Endpoints: []simulator.Endpoint{
			simulator.EndpointCreate, simulator.EndpointList}, LateRate: 1, LateDelay: simulator.Duration(1500 * time.Millisecond)})).To(Succeed())
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		const n = 12
		var segs []*usersv1alpha1.Segment
		for i := range n {
			segs = append(segs, create(ns, fmt.Sprintf("late-%02d", i), usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Late %02d", i)}))
			time.Sleep(250 * time.Millisecond) // applied one by one, as a GitOps tool would
		}
		ids := map[string]bool{}
		for _, seg := range segs {
			ids[waitReady(seg).Status.ID] = true
		}
		Expect(ids).To(HaveLen(n))
		for i := range n {
			Expect(countNamed(fmt.Sprintf("Late %02d", i))).To(Equal(1), "Late %02d was made twice", i)
		}
		Expect(sim.Counts().Requests[simulator.EndpointCreate] - creates).To(BeEquivalentTo(n))
	})

	It("deletes what an interrupted create made when the Segment is deleted before the ID was recorded", func() {
		id := sim.Create("Half made")
		seg := pendingSegment(ns, "half-made", intentOf("Half made", ""), usersv1alpha1.SegmentSpec{Name: "Half made"})
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitGone(seg)
		_, exists := sim.Segment(id)
		Expect(exists).To(BeFalse(), "the segment made by the interrupted create was left in ChatBot")
	})

	It("finds what an interrupted create made under the name it was made with, after a rename in the spec", func() {
		made := sim.Create("Name at create time")
		seg := pendingSegment(ns, "renamed-while-pending", intentOf("Name at create time", ""), usersv1alpha1.SegmentSpec{Name: "Name now"})
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		Expect(waitReady(seg).Status.ID).To(Equal(made))
		Expect(remoteSegment(made).Name).To(Equal("Name now"))
		Expect(countNamed("Name at create time")+countNamed("Name now")).To(Equal(1), "the segment the create made was left behind")
	})

	It("does not forget an interrupted create when spec.id names another segment", func() {
		made, wanted := sim.Create("Made before spec.id"), sim.Create("Wanted")
		seg := pendingSegment(ns, "id-while-pending", intentOf("Made before spec.id", ""), usersv1alpha1.SegmentSpec{ID: wanted, Name: "Wanted"})
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitReason(seg, usersv1alpha1.ReasonCreateUncertain)
		Expect(readyCondition(get(seg)).Message).To(And(ContainSubstring(made), ContainSubstring("Delete it in ChatBot")))
		Expect(get(seg).PendingCreate()).NotTo(BeNil())

		sim.Delete(made)
		Expect(waitReady(seg).Status.ID).To(Equal(wanted))
		Expect(get(seg).PendingCreate()).To(BeNil())
	})

	It("stops on an intent from another account, and goes on once the forget-create annotation names it", func() {
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		intent := intentOf("Elsewhere", "0123456789ab")
		seg := pendingSegment(ns, "other-account", intent, usersv1alpha1.SegmentSpec{Name: "Elsewhere"})
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitReason(seg, usersv1alpha1.ReasonCreateUncertain)
		at := intent.At.UTC().Format(metav1.RFC3339Micro)
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring(usersv1alpha1.AnnotationForgetCreate + "=" + at))
		Expect(sim.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))

		By("ignoring a forget-create annotation that names another create")
		update(seg, func(s *usersv1alpha1.Segment) {
			s.Annotations = map[string]string{usersv1alpha1.AnnotationForgetCreate: "2020-01-01T00:00:00.000000Z"}
		})
		Consistently(func() string { return readyCondition(get(seg)).Reason }, driftInterval, poll).Should(Equal(usersv1alpha1.ReasonCreateUncertain))

		update(seg, func(s *usersv1alpha1.Segment) { s.Annotations[usersv1alpha1.AnnotationForgetCreate] = at })
		seg = waitReady(seg)
		Expect(seg.PendingCreate()).To(BeNil())
		Eventually(eventReasons(ns, "other-account"), timeout, poll).Should(ContainElement("CreateForgotten"))
	})

	It("keeps what an unresolved create may have made from other claimants", func() {
		made := sim.Create("Made before a restart")
		pending := pendingSegment(ns, "pending", intentOf("Made before a restart", ""), usersv1alpha1.SegmentSpec{Name: "Made before a restart"})
		for _, spec := range []usersv1alpha1.SegmentSpec{{ID: made}, {Name: "Made before a restart", AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName}} {
			other := create(ns, "claimant", spec)
			if spec.ID != "" {
				waitReason(other, usersv1alpha1.ReasonConflict)
				Expect(readyCondition(get(other)).Message).To(ContainSubstring("interrupted create may have made it"))
			} else {
				Expect(waitReady(other).Status.ID).NotTo(Equal(made), "adopted by name what another Segment's create made")
			}
			Expect(k8sClient.Delete(ctx, other)).To(Succeed())
			waitGone(other)
		}
		update(pending, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		Expect(waitReady(pending).Status.ID).To(Equal(made))
	})

	It("stops with CreateUncertain when it cannot tell which segment it made", func() {
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		a, b := sim.Create("Ambiguous"), sim.Create("Ambiguous")
		seg := pendingSegment(ns, "uncertain", intentOf("Ambiguous", ""), usersv1alpha1.SegmentSpec{Name: "Ambiguous"})
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		waitReason(seg, usersv1alpha1.ReasonCreateUncertain)
		msg := readyCondition(get(seg)).Message
		Expect(msg).To(ContainSubstring("set spec.id to the one to adopt"))
		ids := []string{a, b}
		slices.Sort(ids) // always in one order: the message, and so the status, do not change
		Expect(msg).To(ContainSubstring(strings.Join(ids, ", ")))
		Expect(sim.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))

		By("adopting the one the user names, once the others are deleted")
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.ID = b })
		Eventually(func() string { return readyCondition(get(seg)).Message }, timeout, poll).Should(ContainSubstring("may have made " + a))
		Expect(readyCondition(get(seg)).Reason).To(Equal(usersv1alpha1.ReasonCreateUncertain))
		sim.Delete(a)
		Expect(waitReady(seg).Status.ID).To(Equal(b))
	})
})

// pendingSegment makes a Segment as a manager killed right after a create call leaves it:
// finalizer on, status.ownership.createPending recorded. Suspended, so that nothing
// resolves it before the spec says what the spec should say.
func pendingSegment(ns, name string, intent *usersv1alpha1.CreateIntent, spec usersv1alpha1.SegmentSpec) *usersv1alpha1.Segment {
	return stagedSegment(ns, name, spec, func(s *usersv1alpha1.SegmentStatus) {
		s.Ownership = &usersv1alpha1.SegmentOwnership{CreatePending: intent}
	})
}

// intentOf is a create of name in account ("" for any) attempted now. The suite's manager
// cannot be restarted, so the intent is dated after the segment the spec made as the
// create's outcome (within the clock-skew margin): only then is a listing begun after the
// intent one begun after that create, as a restarted manager's first listing would be.
func intentOf(name, account string) *usersv1alpha1.CreateIntent {
	return &usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(time.Now().UTC()), Name: name, Account: account}
}
