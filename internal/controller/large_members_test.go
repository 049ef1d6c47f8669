package controller_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// A Segment of 100,000 members, from two ConfigMaps of 50,000 IDs each (one as text, one
// gzip-compressed): its record of added members is kept out of status, so the stored
// Segment stays small, and each change costs calls in proportion to what changed.
var _ = Describe("Large segments", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("large-") })
	AfterEach(func() { cleanUp(ns) })

	// storedSize is the size of the Segment as the API server returns it.
	storedSize := func(seg *usersv1alpha1.Segment) int {
		b, err := json.Marshal(get(seg))
		Expect(err).NotTo(HaveOccurred())
		return len(b)
	}
	idsText := func(ids []string) string { return strings.Join(ids, "\n") + "\n" }

	It("becomes Ready with 100,000 members in 100 calls, and each change costs what it changes", func() {
		first, second := userIDs("a", 50_000), userIDs("b", 50_000)
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write([]byte(idsText(second)))
		Expect(w.Close()).To(Succeed())
		textCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "crm-a", Namespace: ns,
			Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}}, Data: map[string]string{"ids": idsText(first)}}
		Expect(k8sClient.Create(ctx, textCM)).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "crm-b", Namespace: ns,
			Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}}, BinaryData: map[string][]byte{"ids.gz": z.Bytes()}})).To(Succeed())

		adds := sim.Counts().Requests[simulator.EndpointAdd]
		seg := waitReady(create(ns, "crm", usersv1alpha1.SegmentSpec{MembersFrom: []usersv1alpha1.MembersSource{
			{ConfigMap: "crm-a", Key: "ids"}, {ConfigMap: "crm-b", Key: "ids.gz"}}}))
		Expect(sim.Counts().Requests[simulator.EndpointAdd] - adds).To(Equal(int64(100)))
		want := append(append([]string{}, first...), second...)
		// Equal, not ConsistOf, which matches 100,000 items in quadratic time: both sorted.
		Expect(slices.IsSorted(want)).To(BeTrue())
		Expect(remoteSegment(seg.OwnedID()).Members).To(Equal(want))
		Expect(seg.Status.MemberRecord.Added).To(BeEquivalentTo(100_000))
		Expect(seg.Status.MemberRecord.ConfigMap).NotTo(BeEmpty())
		Expect(storedSize(seg)).To(BeNumerically("<", 64<<10))
		record := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: managerNamespace, Name: seg.Status.MemberRecord.ConfigMap}, record)).To(Succeed())
		GinkgoWriter.Printf("100,000 members: Segment %d bytes, record ConfigMap %d bytes\n", storedSize(seg), len(record.BinaryData["digests"]))

		By("nothing is sent again while nothing changes")
		adds = sim.Counts().Requests[simulator.EndpointAdd]
		Consistently(func() int64 { return sim.Counts().Requests[simulator.EndpointAdd] - adds }, 2*driftInterval, poll).Should(BeZero())

		By("one more ID: one call")
		edit := func(change func(*corev1.ConfigMap)) {
			Eventually(func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(textCM), textCM); err != nil {
					return err
				}
				change(textCM)
				return k8sClient.Update(ctx, textCM)
			}, timeout, poll).Should(Succeed())
		}
		edit(func(cm *corev1.ConfigMap) { cm.Data["ids"] += "newcomer\n" })
		Eventually(func() int32 { return get(seg).Status.MemberRecord.Added }, timeout, poll).Should(BeEquivalentTo(100_001))
		Expect(sim.Counts().Requests[simulator.EndpointAdd] - adds).To(BeNumerically("<=", 2))
		Expect(remoteSegment(seg.OwnedID()).Members).To(ContainElement("newcomer"))

		By("ten IDs removed: exactly ten reported")
		edit(func(cm *corev1.ConfigMap) { cm.Data["ids"] = idsText(first[10:]) + "newcomer\n" })
		Eventually(func() int32 { return get(seg).Status.NotRemovableMembers }, timeout, poll).Should(BeEquivalentTo(10))
		Expect(readyCondition(get(seg)).Message).To(ContainSubstring("all 99991 desired members"), "the desired count")
		Expect(storedSize(seg)).To(BeNumerically("<", 64<<10))

		By("deleting the Segment deletes its record")
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		waitGone(seg)
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(record), record))).To(BeTrue())
	})

	It("reads an earlier version's status.addedMembers once, and sends none of them again", func() {
		members := userIDs("old", 3000)
		id := sim.Create("legacy", members...)
		seg := stagedSegment(ns, "legacy", usersv1alpha1.SegmentSpec{Name: "legacy", ID: id, Members: members},
			func(st *usersv1alpha1.SegmentStatus) {
				st.ID = id
				st.Ownership = &usersv1alpha1.SegmentOwnership{ID: id}
				st.AddedMembers = members
			})
		adds := sim.Counts().Requests[simulator.EndpointAdd]
		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Suspend = false })
		Eventually(func(g Gomega) {
			s := get(seg)
			g.Expect(s.Status.AddedMembers).To(BeNil())
			g.Expect(s.Status.MemberRecord).NotTo(BeNil())
			g.Expect(s.Status.MemberRecord.Added).To(BeEquivalentTo(3000))
		}, timeout, poll).Should(Succeed())
		waitReady(seg)
		Expect(sim.Counts().Requests[simulator.EndpointAdd] - adds).To(BeZero())

		update(seg, func(s *usersv1alpha1.Segment) { s.Spec.Members = append(s.Spec.Members[5:], "fresh") })
		Eventually(func() int32 { return get(seg).Status.NotRemovableMembers }, timeout, poll).Should(BeEquivalentTo(5))
		Expect(sim.Counts().Requests[simulator.EndpointAdd]-adds).To(Equal(int64(1)), "only the new member is sent")
		Expect(fmt.Sprint(remoteSegment(id).Members)).To(ContainSubstring("fresh"))
	})

	It("deletes the record of a Segment deleted without its finalizer", func() {
		seg := waitReady(create(ns, "unfinalized", usersv1alpha1.SegmentSpec{Members: userIDs("unfinalized", 1000)}))
		Expect(seg.Status.MemberRecord.ConfigMap).NotTo(BeEmpty(), "1,000 members are recorded in a ConfigMap")
		record := client.ObjectKey{Namespace: managerNamespace, Name: seg.Status.MemberRecord.ConfigMap}
		Expect(k8sClient.Get(ctx, record, &corev1.ConfigMap{})).To(Succeed())

		By("the finalizer removed by hand, the Segment deleted: the finalizer does not drop the record")
		update(seg, func(s *usersv1alpha1.Segment) { s.Finalizers = nil })
		Expect(k8sClient.Delete(ctx, seg)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(seg), seg)) },
			timeout, poll).Should(BeTrue())

		By("the sweep does (every second in this suite)")
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, record, &corev1.ConfigMap{})) },
			timeout, poll).Should(BeTrue())
	})

	It("reports members removed outside the operator, re-adds them once per change of the count, never in a loop", func() {
		members := userIDs("drift", 20) // a prefix of its own: DeleteUsers is for the whole account
		seg := waitReady(create(ns, "drifting", usersv1alpha1.SegmentSpec{Members: members}))
		id := seg.OwnedID()
		missing := func() int32 { return get(seg).Status.MissingMembers }

		By("three removed in ChatBot's UI: reported and added back, once")
		adds := sim.Counts().Requests[simulator.EndpointAdd]
		Expect(sim.RemoveMembers(id, members[:3]...)).To(BeTrue())
		Eventually(func() []string { return remoteSegment(id).Members }, timeout, poll).Should(ConsistOf(members))
		Expect(sim.Counts().Requests[simulator.EndpointAdd] - adds).To(Equal(int64(1)))
		Eventually(eventReasons(ns, "drifting"), timeout, poll).Should(ContainElement(usersv1alpha1.ConditionMembersMissing))
		Eventually(missing, timeout, poll).Should(BeZero())
		Eventually(func() *usersv1alpha1.MembersReadded { return get(seg).Status.MemberRecord.Readded }, 3*driftInterval, poll).Should(BeNil(),
			"a listing after the re-add shows them back")

		By("two users deleted from ChatBot: they cannot come back; reported, re-added once, not again")
		adds = sim.Counts().Requests[simulator.EndpointAdd]
		sim.DeleteUsers(members[5:7]...)
		Eventually(missing, timeout, poll).Should(BeEquivalentTo(2))
		Expect(readyCondition(get(seg)).Status).To(Equal(metav1.ConditionTrue))
		Consistently(func() int64 { return sim.Counts().Requests[simulator.EndpointAdd] - adds }, 4*driftInterval, poll).Should(
			BeNumerically("<=", 1), "one re-add for the count, not one per drift interval")
		Expect(missing()).To(BeEquivalentTo(2))
	})
})
