package controller_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("Segment lifecycle policies", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("life-") })
	AfterEach(func() { cleanUp(ns) })

	Context("deletion policy", func() {
		It("Orphan removes the Segment and leaves the remote segment", func() {
			seg := waitReady(create(ns, "keep-remote", usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan}))
			deletes := sim.Counts().Requests[simulator.EndpointDelete]
			Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
			waitGone(seg)
			remoteSegment(seg.Status.ID)
			Expect(sim.Counts().Requests[simulator.EndpointDelete]).To(Equal(deletes))
			Eventually(eventReasons(ns, "keep-remote"), timeout, poll).Should(ContainElement("Orphaned"))
			sim.Delete(seg.Status.ID)
		})

		It("defaults to Delete", func() {
			seg := create(ns, "defaulted", usersv1alpha1.SegmentSpec{})
			Expect(get(seg).Spec.DeletionPolicy).To(Equal(usersv1alpha1.DeletionPolicyDelete))
		})
	})

	Context("adoption", func() {
		It("adopts an existing remote segment by spec.id, without creating one", func() {
			id := sim.Create("Existing", "m0")
			creates := sim.Counts().Requests[simulator.EndpointCreate]
			seg := waitReady(create(ns, "adopter", usersv1alpha1.SegmentSpec{ID: id, Name: "Renamed on adoption", Members: []string{"m1"}}))
			Expect(seg.Status.ID).To(Equal(id))
			Expect(remoteSegment(id).Name).To(Equal("Renamed on adoption"))
			Expect(remoteSegment(id).Members).To(ConsistOf("m0", "m1"))
			Expect(sim.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))
			Eventually(eventReasons(ns, "adopter"), timeout, poll).Should(ContainElement("Adopted"))

			By("refusing to change spec.id, or to remove it, or the whole spec")
			for _, other := range []string{"somethingelse", ""} {
				s := get(seg)
				s.Spec.ID = other
				err := k8sClient.Update(ctx, s)
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "spec.id changed to %q", other)
				Expect(err.Error()).To(ContainSubstring("spec.id: Forbidden: spec.id cannot be changed once set"))
			}
			err := k8sClient.Patch(ctx, get(seg), client.RawPatch(types.MergePatchType, []byte(`{"spec":null}`)))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "spec removed: %v", err)
			Expect(err.Error()).To(ContainSubstring("spec.id: Forbidden"))
		})

		It("forgets the claim of a Segment deleted before its adoption was recorded", func() {
			x := sim.Create("Claimed then gone")
			failed := managerClient.failedIDWrites.Load()
			managerClient.failIDWrites.Store(true)
			first := create(ns, "first-claimant", usersv1alpha1.SegmentSpec{Name: "Claimed then gone", AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName})
			Eventually(managerClient.failedIDWrites.Load, timeout, poll).Should(BeNumerically(">", failed)) // claimed, not recorded
			Expect(k8sClient.Delete(ctx, first)).To(Succeed())
			waitGone(first)
			managerClient.failIDWrites.Store(false)

			second := waitReady(create(ns, "second-claimant", usersv1alpha1.SegmentSpec{ID: x, Name: "Claimed then gone"}))
			Expect(second.Status.ID).To(Equal(x))
		})

		It("does not move a Segment to the segment a spec.id added later names", func() {
			seg := waitReady(create(ns, "settled", usersv1alpha1.SegmentSpec{Name: "Settled", Members: []string{"a"}}))
			other := sim.Create("Someone else's")
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.ID = other })
			waitReason(seg, usersv1alpha1.ReasonConflict)
			Expect(readyCondition(get(seg)).Message).To(ContainSubstring("already manages " + seg.Status.ID))
			Expect(remoteSegment(other)).To(And(HaveField("Name", "Someone else's"), HaveField("Members", BeEmpty())))
			Expect(get(seg).Status.ID).To(Equal(seg.Status.ID))
			sim.Delete(other)
		})

		It("never holds an observed segment while it adopts another, even when its status write fails", func() {
			x, y := sim.Create("Seen first"), sim.Create("Chosen")
			watcher := create(ns, "watcher", usersv1alpha1.SegmentSpec{Name: "Seen first", Members: []string{"b"},
				AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName, ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly})
			waitReason(watcher, usersv1alpha1.ReasonDriftDetected)
			Expect(get(watcher).Status.ID).To(Equal(x))
			waitReady(create(ns, "keeper", usersv1alpha1.SegmentSpec{ID: x, Name: "Seen first", Members: []string{"a"}}))

			failed := managerClient.failedIDWrites.Load()
			managerClient.failIDWrites.Store(true)
			update(watcher, func(s *usersv1alpha1.Segment) {
				s.Spec.ID = y
				s.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyManage
			})
			Eventually(managerClient.failedIDWrites.Load, timeout, poll).Should(BeNumerically(">", failed)) // claimed, not recorded
			Consistently(func() []string { return remoteSegment(x).Members }, driftInterval, poll).Should(ConsistOf("a"))
			managerClient.failIDWrites.Store(false)

			Expect(waitReady(watcher).Status.ID).To(Equal(y))
			Expect(remoteSegment(y)).To(And(HaveField("Name", "Seen first"), HaveField("Members", ConsistOf("b"))))
			Expect(remoteSegment(x)).To(And(HaveField("Name", "Seen first"), HaveField("Members", ConsistOf("a"))))
		})

		It("reports RemoteNotFound for a spec.id that does not exist, and creates nothing", func() {
			creates := sim.Counts().Requests[simulator.EndpointCreate]
			seg := create(ns, "missing", usersv1alpha1.SegmentSpec{ID: "000000000000000000000000"})
			waitReason(seg, usersv1alpha1.ReasonRemoteNotFound)
			Expect(sim.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))
		})

		It("gives the second Segment claiming one remote ID a Conflict, and neither touches the other's", func() {
			first := waitReady(create(ns, "first", usersv1alpha1.SegmentSpec{Name: "Owned", Members: []string{"a"}}))
			second := create(ns, "second", usersv1alpha1.SegmentSpec{ID: first.Status.ID, Name: "Hijack", Members: []string{"b"}})
			waitReason(second, usersv1alpha1.ReasonConflict)
			Expect(readyCondition(get(second)).Message).To(ContainSubstring(ns + "/first"))
			Consistently(func() simulator.Segment { return remoteSegment(first.Status.ID) }, driftInterval, poll).Should(
				And(HaveField("Name", "Owned"), HaveField("Members", ConsistOf("a"))))
			Expect(readyCondition(get(first)).Status).To(Equal(metav1.ConditionTrue))

			Expect(k8sClient.Delete(ctx, second)).To(Succeed())
			waitGone(second)
			remoteSegment(first.Status.ID)
		})

		It("adopts by unique name, creates when there is none, and stops when there are several", func() {
			id := sim.Create("Adopt me by name")
			seg := waitReady(create(ns, "by-name", usersv1alpha1.SegmentSpec{Name: "Adopt me by name",
				AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName}))
			Expect(seg.Status.ID).To(Equal(id))

			fresh := waitReady(create(ns, "by-name-none", usersv1alpha1.SegmentSpec{Name: "Nobody has this name",
				AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName}))
			Expect(countNamed("Nobody has this name")).To(Equal(1))
			Expect(fresh.Status.ID).NotTo(Equal(id))

			a, b := sim.Create("Twice"), sim.Create("Twice")
			twice := create(ns, "by-name-twice", usersv1alpha1.SegmentSpec{Name: "Twice", AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName})
			waitReason(twice, usersv1alpha1.ReasonAdoptionAmbiguous)
			Expect(countNamed("Twice")).To(Equal(2))
			sim.Delete(a)
			sim.Delete(b)
		})

		It("lets one of two Segments adopting one name by name have it, and the other create at once", func() {
			id := sim.Create("Contested")
			spec := usersv1alpha1.SegmentSpec{Name: "Contested", AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName}
			a, b := create(ns, "contender-a", spec), create(ns, "contender-b", spec)
			a, b = waitReady(a), waitReady(b)
			Expect([]string{a.Status.ID, b.Status.ID}).To(ContainElement(id))
			Expect(a.Status.ID).NotTo(Equal(b.Status.ID))
			Expect(countNamed("Contested")).To(Equal(2))
			Expect(eventReasons(ns, "contender-a")()).NotTo(ContainElement(usersv1alpha1.ReasonConflict))
			Expect(eventReasons(ns, "contender-b")()).NotTo(ContainElement(usersv1alpha1.ReasonConflict))
		})
	})

	Context("suspend", func() {
		It("makes no remote call while suspended, and catches up when resumed", func() {
			seg := waitReady(create(ns, "paused", usersv1alpha1.SegmentSpec{Name: "Before pause"}))
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = true })
			waitSuspended(seg)
			sim.ResetCounts()
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Name = "After pause"; s.Spec.Members = []string{"x"} })
			Consistently(func() int64 {
				c := sim.Counts()
				return c.Writes() + c.Requests[simulator.EndpointList]
			}, driftInterval*2, poll).Should(BeZero())
			Expect(meta.IsStatusConditionTrue(get(seg).Status.Conditions, usersv1alpha1.ConditionSuspended)).To(BeTrue())

			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
			waitReady(seg)
			Expect(remoteSegment(seg.Status.ID).Name).To(Equal("After pause"))
			Expect(meta.FindStatusCondition(get(seg).Status.Conditions, usersv1alpha1.ConditionSuspended)).To(BeNil())
		})

		It("keeps a suspended Segment that is deleted, with its remote segment, until it is resumed or orphaned", func() {
			seg := waitReady(create(ns, "held", usersv1alpha1.SegmentSpec{}))
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = true })
			waitSuspended(seg)
			Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
			Eventually(func() string {
				c := meta.FindStatusCondition(get(seg).Status.Conditions, usersv1alpha1.ConditionSuspended)
				if c == nil {
					return ""
				}
				return c.Message
			}, timeout, poll).Should(ContainSubstring("being deleted but is suspended"))
			Consistently(func() bool { _, ok := sim.Segment(seg.Status.ID); return ok }, driftInterval, poll).Should(BeTrue())

			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.DeletionPolicy = usersv1alpha1.DeletionPolicyOrphan })
			waitGone(seg)
			remoteSegment(seg.Status.ID)
			sim.Delete(seg.Status.ID)
		})
	})

	Context("observe-only", func() {
		It("writes nothing and shows what it would change as a plan", func() {
			id := sim.Create("Observed", "m1")
			sim.ResetCounts()
			seg := create(ns, "watcher", usersv1alpha1.SegmentSpec{ID: id, Name: "Wanted", Members: []string{"m1", "m2"},
				ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly})
			waitReason(seg, usersv1alpha1.ReasonDriftDetected)
			s := get(seg)
			Expect(s.Status.Plan).NotTo(BeNil())
			Expect(*s.Status.Plan).To(Equal(usersv1alpha1.SegmentPlan{RenameFrom: "Observed", RenameTo: "Wanted",
				MembersToAdd: 2, MembersToAddSample: []string{"m1", "m2"}}))
			Expect(readyCondition(s).Message).To(ContainSubstring(`rename it from "Observed" to "Wanted", add 2 members`))
			Expect(s.OwnedID()).To(BeEmpty(), "observing owns nothing")
			Consistently(func() int64 { return sim.Counts().Writes() }, driftInterval, poll).Should(BeZero())

			By("managing it once the policy says Manage")
			update(seg, func(s *usersv1alpha1.Segment) { s.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyManage })
			s = waitReady(seg)
			Expect(s.Status.Plan).To(BeNil())
			Expect(remoteSegment(id).Name).To(Equal("Wanted"))
			Expect(remoteSegment(id).Members).To(ConsistOf("m1", "m2"))
		})

		It("checks ownership when switched to Manage: another Segment's segment is left alone", func() {
			owner := waitReady(create(ns, "owner", usersv1alpha1.SegmentSpec{Name: "Owned", Members: []string{"a"}}))
			id := owner.Status.ID
			watcher := create(ns, "watcher", usersv1alpha1.SegmentSpec{ID: id, Name: "Hijack", Members: []string{"b"},
				ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly})
			waitReason(watcher, usersv1alpha1.ReasonDriftDetected)
			Expect(get(watcher).Status.ID).To(Equal(id), "observing shows the segment")

			update(watcher, func(s *usersv1alpha1.Segment) { s.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyManage })
			waitReason(watcher, usersv1alpha1.ReasonConflict)
			Expect(readyCondition(get(watcher)).Message).To(ContainSubstring(ns + "/owner"))
			Consistently(func() simulator.Segment { return remoteSegment(id) }, driftInterval, poll).Should(
				And(HaveField("Name", "Owned"), HaveField("Members", ConsistOf("a"))))

			Expect(k8sClient.Delete(ctx, watcher)).To(Succeed())
			waitGone(watcher)
			remoteSegment(id)
			Expect(readyCondition(get(owner)).Status).To(Equal(metav1.ConditionTrue))
		})

		It("does not keep a Segment from managing what another only observes", func() {
			id := sim.Create("Watched and managed")
			watcher := create(ns, "watcher", usersv1alpha1.SegmentSpec{ID: id, ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly})
			waitReason(watcher, usersv1alpha1.ReasonDriftDetected)
			manager := waitReady(create(ns, "manager", usersv1alpha1.SegmentSpec{ID: id, Name: "Watched and managed", Members: []string{"m"}}))
			Expect(manager.Status.ID).To(Equal(id))
			Expect(remoteSegment(id).Members).To(ConsistOf("m"))
		})

		It("plans a create when there is no remote segment", func() {
			seg := create(ns, "would-create", usersv1alpha1.SegmentSpec{ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly})
			waitReason(seg, usersv1alpha1.ReasonDriftDetected)
			Expect(get(seg).Status.Plan.Create).To(BeTrue())
			Expect(countNamed("would-create")).To(BeZero())
			Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
			waitGone(seg)
		})
	})

	It("recreates the segment to remove members under memberRemovalPolicy Recreate", func() {
		seg := waitReady(create(ns, "strict", usersv1alpha1.SegmentSpec{Name: "Strict", Members: []string{"a", "b", "c"},
			MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate}))
		old := seg.Status.ID
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Members = []string{"a"} })
		readyWithoutSegment := false // between the delete and the create, it must not say Ready
		Eventually(func() string {
			s := get(seg)
			if c := readyCondition(s); s.Status.ID == "" && c != nil && c.Status == metav1.ConditionTrue {
				readyWithoutSegment = true
			}
			return s.Status.ID
		}, timeout, poll).Should(And(Not(Equal(old)), Not(BeEmpty())))
		Expect(readyWithoutSegment).To(BeFalse())
		seg = waitReady(seg)
		_, exists := sim.Segment(old)
		Expect(exists).To(BeFalse())
		Expect(remoteSegment(seg.Status.ID).Members).To(ConsistOf("a"))
		Expect(countNamed("Strict")).To(Equal(1))
		Expect(meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionMembersNotRemovable)).To(BeNil())
		Eventually(eventReasons(ns, "strict"), timeout, poll).Should(ContainElement("RecreatedToRemoveMembers"))
	})

	It("exports API calls, Segments by readiness and listing age as Prometheus metrics", func() {
		waitReady(create(ns, "measured", usersv1alpha1.SegmentSpec{}))
		families, err := crmetrics.Registry.Gather()
		Expect(err).NotTo(HaveOccurred())
		byName := map[string]*dto.MetricFamily{}
		for _, f := range families {
			byName[f.GetName()] = f
		}
		Expect(byName).To(HaveKey("segment_operator_chatbot_api_requests_total"))
		Expect(byName).To(HaveKey("segment_operator_chatbot_api_request_duration_seconds"))
		Expect(byName).To(HaveKey("segment_operator_observation_age_seconds"))
		Expect(labelled(byName["segment_operator_chatbot_api_requests_total"], "operation", "create")).To(BeNumerically(">=", 1))
		Expect(labelled(byName["segment_operator_segments"], "ready", "True")).To(BeNumerically(">=", 1))
	})
})

// labelled sums the values of a family's samples that carry label=value.
func labelled(f *dto.MetricFamily, label, value string) float64 {
	sum := 0.0
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
