package controller_test

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

const (
	timeout = 30 * time.Second
	poll    = 50 * time.Millisecond
)

var _ = Describe("Segment controller", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("seg-") })
	AfterEach(func() { cleanUp(ns) })

	It("creates the remote segment with its members and reports Ready", func() {
		seg := create(ns, "vip", usersv1alpha1.SegmentSpec{Name: "VIP customers", Members: []string{"u1", "u2", "u3"}})
		seg = waitReady(seg)

		Expect(seg.Finalizers).To(ContainElement(usersv1alpha1.SegmentFinalizer))
		Expect(seg.Status.ID).To(MatchRegexp(`^[0-9a-z]{24}$`))
		Expect(seg.Status.Name).To(Equal("VIP customers"))
		Expect(seg.Status.AddedMembers).To(BeNil())
		Expect(seg.Status.MemberRecord).NotTo(BeNil())
		Expect(seg.Status.MemberRecord.Added).To(BeEquivalentTo(3))
		Expect(seg.Status.MemberRecord.ConfigMap).To(BeEmpty(), "3 members are recorded in status")
		Expect(seg.Status.ObservedGeneration).To(Equal(seg.Generation))
		remote := remoteSegment(seg.Status.ID)
		Expect(remote.Name).To(Equal("VIP customers"))
		Expect(remote.Members).To(ConsistOf("u1", "u2", "u3"))
		Eventually(eventReasons(ns, "vip"), timeout, poll).Should(ContainElement("Created"))
		Consistently(eventReasons(ns, "vip"), driftInterval, poll).Should(HaveLen(1), "one event for a create and its members")
		Expect(events(ns, "vip")[0].Note).To(ContainSubstring("with 3 members"))
		Eventually(func() int32 { return get(seg).Status.RemoteMembers }, timeout, poll).Should(BeEquivalentTo(3))
		// The finalizer came with admission: the pending create, then the result.
		Expect(managerClient.writesTo(seg)).To(BeEquivalentTo(2), "Segment writes for a plain create")
	})

	It("puts the finalizer on itself where no admission policy did, before the create", func() {
		seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "no-policy", Namespace: ns},
			Spec: usersv1alpha1.SegmentSpec{Name: "No policy", Suspend: true}}
		Expect(k8sClient.Create(ctx, seg)).To(Succeed())
		waitSuspended(seg)
		before := managerClient.writesTo(seg)
		update(seg, func(s *usersv1alpha1.Segment) {
			controllerutil.RemoveFinalizer(s, usersv1alpha1.SegmentFinalizer) // as on a cluster without the policy
			s.Spec.Suspend = false
		})
		seg = waitReady(seg)
		Expect(seg.Finalizers).To(ContainElement(usersv1alpha1.SegmentFinalizer))
		Expect(managerClient.writesTo(seg)-before).To(BeEquivalentTo(3), "the finalizer, the pending create, the result")
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		_, found := sim.Segment(seg.Status.ID)
		Expect(found).To(BeFalse(), "deleted through the finalizer the manager put on")
	})

	It("uses metadata.name when spec.name is omitted", func() {
		seg := waitReady(create(ns, "from-metadata", usersv1alpha1.SegmentSpec{}))
		Expect(remoteSegment(seg.Status.ID).Name).To(Equal("from-metadata"))
	})

	It("renames the remote segment in place", func() {
		seg := waitReady(create(ns, "rename-me", usersv1alpha1.SegmentSpec{Name: "Before", Members: []string{"a"}}))
		id := seg.Status.ID
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Name = "After" })
		Eventually(func() string { return remoteSegment(id).Name }, timeout, poll).Should(Equal("After"))
		seg = waitReady(seg)
		Expect(seg.Status.ID).To(Equal(id))
		Expect(seg.Status.Name).To(Equal("After"))
		Expect(remoteSegment(id).Members).To(ConsistOf("a"))
		Eventually(eventReasons(ns, "rename-me"), timeout, poll).Should(ContainElement("Renamed"))
	})

	It("adds more than 1000 members in API-sized batches, and only the new ones later", func() {
		members := userIDs("m", 2500)
		adds := sim.Counts().Succeeded[simulator.EndpointAdd]
		seg := waitReady(create(ns, "big", usersv1alpha1.SegmentSpec{Members: members}))
		Expect(remoteSegment(seg.Status.ID).Members).To(HaveLen(2500))
		Expect(sim.Counts().Succeeded[simulator.EndpointAdd] - adds).To(BeEquivalentTo(3))

		adds = sim.Counts().Succeeded[simulator.EndpointAdd]
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Members = append(s.Spec.Members, "newcomer") })
		Eventually(func() []string { return remoteSegment(seg.Status.ID).Members }, timeout, poll).Should(HaveLen(2501))
		waitReady(seg)
		Expect(sim.Counts().Succeeded[simulator.EndpointAdd] - adds).To(BeEquivalentTo(1))
	})

	It("gives Segments created at once exactly their own members, sharing calls only between identical sets", func() {
		adds := sim.Counts().Requests[simulator.EndpointAdd]
		setA, setB := []string{"a1", "a2", "a3"}, []string{"a1", "b2"}
		var segs []*usersv1alpha1.Segment
		for i := range 12 {
			members := setA
			if i%2 == 1 {
				members = setB
			}
			segs = append(segs, create(ns, fmt.Sprintf("crowd-%d", i), usersv1alpha1.SegmentSpec{Members: members}))
		}
		for i, seg := range segs {
			seg = waitReady(seg)
			want := setA
			if i%2 == 1 {
				want = setB
			}
			Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf(want), "segment %d", i)
			Expect(seg.Status.MemberRecord.Added).To(BeEquivalentTo(len(want)))
		}
		// At most one call each; how many were shared depends on how busy the rate limit was.
		Expect(sim.Counts().Requests[simulator.EndpointAdd] - adds).To(BeNumerically("<=", 12))
	})

	It("says visibly that members removed from the spec stay in the remote segment", func() {
		seg := waitReady(create(ns, "shrink", usersv1alpha1.SegmentSpec{Members: []string{"a", "b", "c"}}))
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Members = []string{"a"} })

		Eventually(func(g Gomega) {
			s := get(seg)
			c := meta.FindStatusCondition(s.Status.Conditions, usersv1alpha1.ConditionMembersNotRemovable)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(usersv1alpha1.ReasonRemovedFromSpec))
			g.Expect(c.Message).To(ContainSubstring("2 members were removed"))
			g.Expect(s.Status.NotRemovableMembers).To(BeEquivalentTo(2))
		}, timeout, poll).Should(Succeed())
		Eventually(warnings(ns, "shrink"), timeout, poll).Should(ContainElement(ContainSubstring("cannot remove members")))
		Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf("a", "b", "c"))
		Expect(readyCondition(get(seg)).Status).To(Equal(metav1.ConditionTrue))

		// Putting them back clears the condition without any call: they were never removed.
		adds := sim.Counts().Requests[simulator.EndpointAdd]
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Members = []string{"a", "b", "c"} })
		Eventually(func() *metav1.Condition {
			return meta.FindStatusCondition(get(seg).Status.Conditions, usersv1alpha1.ConditionMembersNotRemovable)
		}, timeout, poll).Should(BeNil())
		Expect(sim.Counts().Requests[simulator.EndpointAdd]).To(Equal(adds))
	})

	It("recreates a remote segment deleted out of band, members included", func() {
		seg := waitReady(create(ns, "phoenix", usersv1alpha1.SegmentSpec{Name: "Phoenix", Members: []string{"x", "y"}}))
		old := seg.Status.ID
		Expect(sim.Delete(old)).To(BeTrue())

		Eventually(func() string { return get(seg).Status.ID }, timeout, poll).ShouldNot(Equal(old))
		seg = waitReady(seg)
		remote := remoteSegment(seg.Status.ID)
		Expect(remote.Name).To(Equal("Phoenix"))
		Expect(remote.Members).To(ConsistOf("x", "y"))
		Expect(sim.Segments()).To(HaveEach(HaveField("ID", Not(Equal(old)))))
		Eventually(eventReasons(ns, "phoenix"), timeout, poll).Should(ContainElement(usersv1alpha1.ReasonRecreated))
	})

	It("recreates exactly once when the create after an out-of-band delete loses its response", func() {
		seg := waitReady(create(ns, "phoenix-lost", usersv1alpha1.SegmentSpec{Name: "Phoenix lost", Members: []string{"x"}}))
		old := seg.Status.ID
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		Expect(sim.SetFaults(simulator.Faults{LoseResponseRate: 1, Endpoints: []simulator.Endpoint{simulator.EndpointCreate}})).To(Succeed())
		Expect(sim.Delete(old)).To(BeTrue())
		Eventually(func() int64 { return sim.Counts().Requests[simulator.EndpointCreate] }, timeout, poll).Should(BeNumerically(">", creates))
		Expect(sim.SetFaults(simulator.Faults{})).To(Succeed())

		Eventually(func() string { return get(seg).Status.ID }, timeout, poll).ShouldNot(Or(Equal(old), BeEmpty()))
		seg = waitReady(seg)
		Expect(countNamed("Phoenix lost")).To(Equal(1), "the segment the lost create made was left behind")
		Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf("x"))
	})

	It("recreates exactly once when the status write after an out-of-band delete and a create fails", func() {
		seg := waitReady(create(ns, "phoenix-crash", usersv1alpha1.SegmentSpec{Name: "Phoenix crash"}))
		old := seg.Status.ID
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		managerClient.failIDWrites.Store(true) // the new ID never reaches status, as if the manager died
		Expect(sim.Delete(old)).To(BeTrue())
		Eventually(func() int { return countNamed("Phoenix crash") }, timeout, poll).Should(Equal(1))
		Consistently(func() int { return countNamed("Phoenix crash") }, driftInterval, poll).Should(Equal(1),
			"a stale status.id made it create again")
		managerClient.failIDWrites.Store(false)

		Eventually(func() string { return get(seg).Status.ID }, timeout, poll).ShouldNot(Or(Equal(old), BeEmpty()))
		seg = waitReady(seg)
		Expect(countNamed("Phoenix crash")).To(Equal(1))
		Expect(sim.Counts().Requests[simulator.EndpointCreate] - creates).To(BeEquivalentTo(1))
		Expect(seg.PendingCreate()).To(BeNil())
	})

	It("renames back a remote segment renamed out of band", func() {
		seg := waitReady(create(ns, "stubborn", usersv1alpha1.SegmentSpec{Name: "Desired"}))
		Expect(sim.Rename(seg.Status.ID, "Changed in the ChatBot UI")).To(BeTrue())
		Eventually(func() string { return remoteSegment(seg.Status.ID).Name }, timeout, poll).Should(Equal("Desired"))
	})

	It("deletes the remote segment through the finalizer", func() {
		seg := waitReady(create(ns, "doomed", usersv1alpha1.SegmentSpec{}))
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		_, exists := sim.Segment(seg.Status.ID)
		Expect(exists).To(BeFalse())
	})

	It("deletes a Segment whose remote segment is already gone", func() {
		seg := waitReady(create(ns, "ghost", usersv1alpha1.SegmentSpec{}))
		Expect(sim.Delete(seg.Status.ID)).To(BeTrue())
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		Eventually(eventReasons(ns, "ghost"), timeout, poll).Should(ContainElement("AlreadyDeleted"))
	})

	It("deletes a Segment whose remote create never happened without any remote call", func() {
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, ErrorRate: 1})).To(Succeed())
		seg := create(ns, "unborn", usersv1alpha1.SegmentSpec{})
		waitReason(seg, usersv1alpha1.ReasonRemoteError)
		Expect(get(seg).Finalizers).To(ContainElement(usersv1alpha1.SegmentFinalizer))
		deletes := sim.Counts().Requests[simulator.EndpointDelete]
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		Expect(sim.Counts().Requests[simulator.EndpointDelete]).To(Equal(deletes))
	})

	It("retries through API 500s and recovers", func() {
		Expect(sim.SetFaults(simulator.Faults{ErrorRate: 1, ErrorCode: 500})).To(Succeed())
		seg := create(ns, "flaky", usersv1alpha1.SegmentSpec{Members: []string{"a"}})
		Eventually(func(g Gomega) {
			s := get(seg)
			g.Expect(readyCondition(s)).NotTo(BeNil())
			g.Expect(readyCondition(s).Reason).To(Equal(usersv1alpha1.ReasonRemoteError))
			g.Expect(readyCondition(s).Message).To(ContainSubstring("HTTP 500"))
			g.Expect(meta.IsStatusConditionTrue(s.Status.Conditions, usersv1alpha1.ConditionReconciling)).To(BeTrue())
		}, timeout, poll).Should(Succeed())

		Expect(sim.SetFaults(simulator.Faults{})).To(Succeed())
		seg = waitReady(seg)
		Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf("a"))
		Expect(countNamed(seg.RemoteName())).To(Equal(1))
	})

	It("waits out a 429 for its Retry-After and creates exactly once", func() {
		creates, sent := sim.Counts().Succeeded[simulator.EndpointCreate], sim.Counts().Requests[simulator.EndpointCreate]
		Expect(sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, FailNext: 1,
			ErrorCode: 429, RetryAfter: simulator.Duration(2 * time.Second)})).To(Succeed())
		seg := create(ns, "throttled", usersv1alpha1.SegmentSpec{})
		waitReason(seg, usersv1alpha1.ReasonRateLimited)
		waitReady(seg)
		Expect(sim.Counts().Succeeded[simulator.EndpointCreate] - creates).To(BeEquivalentTo(1))
		// The refused call and the one after the wait: nothing was sent during it.
		Expect(sim.Counts().Requests[simulator.EndpointCreate] - sent).To(BeEquivalentTo(2))
	})

	It("reports a refused token as Ready=False Unauthorized, stalls, and recovers when the token is fixed", func() {
		sim.SetToken("rotated-token")
		DeferCleanup(func() { sim.SetToken(simToken); setManagerToken(simToken) })
		requests := sim.Counts().Unauthorized
		seg := create(ns, "locked-out", usersv1alpha1.SegmentSpec{})
		waitReason(seg, usersv1alpha1.ReasonUnauthorized)
		s := get(seg)
		Expect(meta.IsStatusConditionTrue(s.Status.Conditions, usersv1alpha1.ConditionStalled)).To(BeTrue())
		Expect(readyCondition(s).Message).To(ContainSubstring("HTTP 401"))
		Expect(readyCondition(s).Message).NotTo(ContainSubstring(simToken))
		// Stalled means no hot loop: at most a retry per drift interval.
		Consistently(func() int64 { return sim.Counts().Unauthorized - requests }, 3*driftInterval/2, poll).Should(BeNumerically("<=", 2))

		setManagerToken("rotated-token")
		waitReady(seg)
		Expect(meta.FindStatusCondition(get(seg).Status.Conditions, usersv1alpha1.ConditionStalled)).To(BeNil())
	})

	It("makes no remote write and no status write at steady state", func() {
		seg := waitReady(create(ns, "steady", usersv1alpha1.SegmentSpec{Name: "Steady", Members: userIDs("s", 20)}))
		Eventually(func() int32 { return get(seg).Status.RemoteMembers }, timeout, poll).Should(BeEquivalentTo(20))
		// Wait until the status has settled (createdAt comes from the first listing after create).
		Eventually(func() *metav1.Time { return get(seg).Status.CreatedAt }, timeout, poll).ShouldNot(BeNil())
		version := get(seg).ResourceVersion
		sim.ResetCounts()
		statusWrites := managerClient.statusWrites.Load()

		Consistently(func() int64 { return sim.Counts().Writes() }, 3*driftInterval, poll).Should(BeZero())
		Expect(get(seg).ResourceVersion).To(Equal(version), "a reconcile with nothing to do wrote the Segment")
		Expect(managerClient.statusWrites.Load()-statusWrites).To(BeZero(), "status patches sent at steady state")
		// One listing per drift interval serves every Segment (3 intervals, plus one at the edge).
		Expect(sim.Counts().Requests[simulator.EndpointList]).To(BeNumerically("<=", 4))
	})

	DescribeTable("admission rejects a bad spec with a clear message",
		func(spec usersv1alpha1.SegmentSpec, message string) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: spec}
			err := k8sClient.Create(ctx, seg)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a 257-character name", usersv1alpha1.SegmentSpec{Name: strings.Repeat("n", 257)}, "spec.name: Too long: may not be more than 256"),
		Entry("a malformed member ID", usersv1alpha1.SegmentSpec{Members: []string{"ok1", "not ok!"}}, `spec.members[1]: Invalid value: "not ok!"`),
		Entry("a duplicate member", usersv1alpha1.SegmentSpec{Members: []string{"a", "a"}}, `spec.members[1]: Duplicate value: "a"`),
		Entry("a 65-character member ID", usersv1alpha1.SegmentSpec{Members: []string{strings.Repeat("a", 65)}}, "may not be more than 64"),
		Entry("too many members", usersv1alpha1.SegmentSpec{Members: userIDs("t", 5001)}, "must have at most 5000 items"),
	)
})
