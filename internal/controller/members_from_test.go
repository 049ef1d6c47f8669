package controller_test

import (
	"bytes"
	"compress/gzip"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("Members from ConfigMaps", func() {
	var ns string

	BeforeEach(func() { ns = freshNamespace("members-") })
	AfterEach(func() { cleanUp(ns) })

	configMap := func(name string, labelled bool, data map[string]string, binary map[string][]byte) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data, BinaryData: binary}
		if labelled {
			cm.Labels = map[string]string{usersv1alpha1.MembersLabel: "true"}
		}
		ExpectWithOffset(1, k8sClient.Create(ctx, cm)).To(Succeed())
		return cm
	}
	edit := func(cm *corev1.ConfigMap, change func(*corev1.ConfigMap)) {
		EventuallyWithOffset(1, func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
				return err
			}
			change(cm)
			return k8sClient.Update(ctx, cm)
		}, timeout, poll).Should(Succeed())
	}
	message := func(seg *usersv1alpha1.Segment) string { return readyCondition(get(seg)).Message }

	It("adds spec.members and the IDs of every source, follows changes at once, and reports removals", func() {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write([]byte("c3\nc4\n"))
		Expect(w.Close()).To(Succeed())
		cm := configMap("crm-export", true, map[string]string{"ids.txt": "c1\n\nc2\n"}, map[string][]byte{"more.gz": z.Bytes()})

		seg := waitReady(create(ns, "from-files", usersv1alpha1.SegmentSpec{Members: []string{"m0", "c1"},
			MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "crm-export", Key: "ids.txt"}, {ConfigMap: "crm-export", Key: "more.gz"}}}))
		id := seg.OwnedID()
		Expect(remoteSegment(id).Members).To(ConsistOf("m0", "c1", "c2", "c3", "c4"))
		Expect(message(seg)).To(ContainSubstring("all 5 desired members"))

		adds := sim.Counts().Requests[simulator.EndpointAdd]
		edit(cm, func(cm *corev1.ConfigMap) { cm.Data["ids.txt"] = "c1\nc2\nc5\n" })
		Eventually(func() []string { return remoteSegment(id).Members }, timeout, poll).Should(ContainElement("c5"))
		Expect(sim.Counts().Requests[simulator.EndpointAdd]-adds).To(Equal(int64(1)), "one call for the one new ID")

		edit(cm, func(cm *corev1.ConfigMap) { cm.Data["ids.txt"] = "c1\nc5\n" }) // c2 goes
		Eventually(func() int32 { return get(seg).Status.NotRemovableMembers }, timeout, poll).Should(Equal(int32(1)))
		Expect(meta.IsStatusConditionTrue(get(seg).Status.Conditions, usersv1alpha1.ConditionMembersNotRemovable)).To(BeTrue())
	})

	It("stops at a line that is not a user ID, naming ConfigMap, key and line, and adds nothing from it", func() {
		cm := configMap("crm-export", true, map[string]string{"ids": "c1\n"}, nil)
		seg := waitReady(create(ns, "strict", usersv1alpha1.SegmentSpec{
			MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "crm-export", Key: "ids"}}}))
		adds := sim.Counts().Requests[simulator.EndpointAdd]
		edit(cm, func(cm *corev1.ConfigMap) { cm.Data["ids"] = "c1\nc2\nc3;DROP\nc4\n" })
		waitReason(seg, usersv1alpha1.ReasonMembersSourceError)
		Expect(message(seg)).To(ContainSubstring(`ConfigMap "crm-export", key "ids", line 3: "c3;DROP" is not a ChatBot user ID`))
		Expect(sim.Counts().Requests[simulator.EndpointAdd]).To(Equal(adds))
		Expect(remoteSegment(seg.OwnedID()).Members).To(ConsistOf("c1"))

		edit(cm, func(cm *corev1.ConfigMap) { cm.Data["ids"] = "c1\nc2\nc3\nc4\n" })
		Eventually(func() []string { return remoteSegment(seg.OwnedID()).Members }, timeout, poll).Should(ConsistOf("c1", "c2", "c3", "c4"))
	})

	It("waits for a missing or unlabelled ConfigMap and creates nothing meanwhile, then proceeds", func() {
		creates := sim.Counts().Requests[simulator.EndpointCreate]
		seg := create(ns, "early", usersv1alpha1.SegmentSpec{MembersFrom: []usersv1alpha1.MembersSource{{ConfigMap: "later", Key: "ids"}}})
		waitReason(seg, usersv1alpha1.ReasonMembersSourceError)
		Expect(message(seg)).To(ContainSubstring(`ConfigMap "later" named by spec.membersFrom not found`))

		cm := configMap("later", false, map[string]string{"ids": "l1\n"}, nil)
		Consistently(func() string { return readyCondition(get(seg)).Reason }, driftInterval, poll).Should(Equal(usersv1alpha1.ReasonMembersSourceError),
			"an unlabelled ConfigMap was read")
		Expect(sim.Counts().Requests[simulator.EndpointCreate]).To(Equal(creates))

		edit(cm, func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{usersv1alpha1.MembersLabel: "true"} })
		waitReady(seg)
		Expect(remoteSegment(get(seg).OwnedID()).Members).To(ConsistOf("l1"))
	})
})
