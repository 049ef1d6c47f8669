package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// Two managers share the cluster (e2e_suite_test.go): the main one, and shard b's, which
// handles only the Segments labelled sharding.fluxcd.io/key=b. Each reconciles its own
// Segments, yet sees every Segment's ownership and member record.
var _ = Describe("two managers on two shards", Ordered, func() {
	const ns = "shards-e2e"
	ctx := context.Background()
	var mainID string // the remote segment of on-main, a Segment of the main shard

	// apply applies a Segment of shard ("": the main shard) with spec.
	apply := func(name, shard string, spec map[string]any) {
		GinkgoHelper()
		labels := map[string]string{}
		if shard != "" {
			labels[shardLabel] = shard
		}
		doc, err := json.Marshal(map[string]any{"apiVersion": "users.chatbot.com/v1alpha1", "kind": "Segment",
			"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels}, "spec": spec})
		Expect(err).NotTo(HaveOccurred())
		_, err = env.Kubectl(ctx, doc, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
	}
	waitFor := func(name, condition string) {
		GinkgoHelper()
		kubectl("wait", "-n", ns, "--for="+condition, "segment/"+name, "--timeout=30s")
	}
	get := func(name string) usersv1alpha1.Segment {
		GinkgoHelper()
		var s usersv1alpha1.Segment
		Expect(json.Unmarshal([]byte(kubectl("get", "segment", name, "-n", ns, "-o", "json")), &s)).To(Succeed())
		return s
	}
	ownedID := func(name string) string {
		GinkgoHelper()
		s := get(name)
		Expect(s.Status.Ownership).NotTo(BeNil(), name)
		Expect(s.Status.Ownership.ID).NotTo(BeEmpty(), name)
		return s.Status.Ownership.ID
	}
	// remote is the simulator's segments by ID.
	remote := func() map[string]simulator.Segment {
		GinkgoHelper()
		st, err := env.SimState(ctx)
		Expect(err).NotTo(HaveOccurred())
		out := map[string]simulator.Segment{}
		for _, s := range st.Segments {
			out[s.ID] = s
		}
		return out
	}
	// logged says whether the manager logging to path logged msg ("": anything) about the
	// Segment name of this spec's namespace: controller-runtime puts the name and namespace
	// on every line of a reconcile.
	logged := func(path, name, msg string) bool {
		GinkgoHelper()
		f, err := os.Open(path)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = f.Close() }()
		lines := bufio.NewScanner(f)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			var line struct{ Msg, Name, Namespace string }
			if json.Unmarshal(lines.Bytes(), &line) == nil && line.Namespace == ns && line.Name == name && (msg == "" || line.Msg == msg) {
				return true
			}
		}
		Expect(lines.Err()).NotTo(HaveOccurred())
		return false
	}
	// members returns n member IDs starting with prefix.
	members := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%04d", prefix, i)
		}
		return out
	}
	// recordUID is the UID of the record ConfigMap name in the manager's namespace.
	recordUID := func(g Gomega, name string) string {
		out, err := env.Kubectl(ctx, nil, "get", "configmap", name, "-n", "default", "-o", "jsonpath={.metadata.uid}")
		g.Expect(err).NotTo(HaveOccurred())
		return out
	}

	BeforeAll(func() {
		kubectl("create", "namespace", ns)
		DeferCleanup(func() {
			// The remote segments go with their Segments, so the simulator holds what it held.
			// The namespace stays: the control plane runs no namespace controller to empty it.
			kubectl("delete", "segments", "--all", "-n", ns, "--timeout=60s")
		})
	})

	It("reconciles each Segment on its own shard only", func() {
		apply("on-main", "", map[string]any{"name": "Shards Main", "members": []string{"a1", "a2"}})
		apply("on-b", shardB, map[string]any{"members": []string{"b1"}})
		waitFor("on-main", "condition=Ready")
		waitFor("on-b", "condition=Ready")
		mainID = ownedID("on-main")
		segs := remote()
		Expect(segs).To(HaveKey(mainID))
		Expect(segs[mainID].Name).To(Equal("Shards Main"))
		Expect(segs[ownedID("on-b")].Name).To(Equal("on-b"))

		Expect(logged(env.ShardLog(shardB), "on-b", "created remote segment")).To(BeTrue(), "shard b created on-b")
		Expect(logged(env.ManagerLog, "on-b", "")).To(BeFalse(), "the main shard reconciled on-b")
		Expect(logged(env.ManagerLog, "on-main", "created remote segment")).To(BeTrue(), "the main shard created on-main")
		Expect(logged(env.ShardLog(shardB), "on-main", "")).To(BeFalse(), "shard b reconciled on-main")
	})

	It("lets no Segment of shard b claim the main shard's remote segment, by spec.id or by name", func() {
		before := remote()[mainID]
		apply("thief", shardB, map[string]any{"id": mainID})
		apply("namesake", shardB, map[string]any{"name": "Shards Main", "adoptionPolicy": "AdoptByName"})

		waitFor("thief", `jsonpath={.status.conditions[?(@.type=="Stalled")].reason}=Conflict`)
		waitFor("thief", `jsonpath={.status.conditions[?(@.type=="Ready")].status}=False`)
		Expect(get("thief").Status.Ownership).To(Or(BeNil(), HaveField("ID", BeEmpty())))
		waitFor("namesake", "condition=Ready")
		namesakeID := ownedID("namesake")
		Expect(namesakeID).NotTo(Equal(mainID))

		segs := remote()
		Expect(segs).To(HaveKeyWithValue(mainID, before), "the main shard's remote segment changed")
		Expect(segs[namesakeID].Name).To(Equal("Shards Main"))
		waitFor("on-main", "condition=Ready")
		Expect(ownedID("on-main")).To(Equal(mainID))

		By("deleting them deletes the namesake's own segment, and not the one the thief claimed")
		kubectl("delete", "segment", "thief", "namesake", "-n", ns, "--timeout=30s")
		segs = remote()
		Expect(segs).To(HaveKeyWithValue(mainID, before))
		Expect(segs).NotTo(HaveKey(namesakeID))
	})

	It("sweeps the member record of a Segment gone, and never another shard's", func() {
		// More members than a record in status holds (about 400): each gets a ConfigMap.
		apply("big-main", "", map[string]any{"members": members("m", 600)})
		apply("big-b", shardB, map[string]any{"members": members("n", 600)})
		waitFor("big-main", "condition=Ready")
		waitFor("big-b", "condition=Ready")
		mainRecord, bRecord := get("big-main").Status.MemberRecord, get("big-b").Status.MemberRecord
		Expect(mainRecord).NotTo(BeNil())
		Expect(mainRecord.ConfigMap).NotTo(BeEmpty())
		Expect(bRecord).NotTo(BeNil())
		Expect(bRecord.ConfigMap).NotTo(BeEmpty())
		mainUID := recordUID(Default, mainRecord.ConfigMap)
		recordUID(Default, bRecord.ConfigMap)

		By("big-b goes without its finalizer running, which would delete its record: only a sweep does")
		bID := ownedID("big-b")
		DeferCleanup(vendorDelete, bID) // left in ChatBot, with no Segment to delete it
		kubectl("patch", "segment", "big-b", "-n", ns, "--type=merge", "-p", `{"spec":{"suspend":true}}`)
		waitFor("big-b", "condition=Suspended")
		kubectl("delete", "segment", "big-b", "-n", ns, "--wait=false")
		kubectl("patch", "segment", "big-b", "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		Eventually(func() error {
			_, err := env.Kubectl(ctx, nil, "get", "configmap", bRecord.ConfigMap, "-n", "default")
			return err
		}).WithTimeout(20*time.Second).WithPolling(250*time.Millisecond).
			Should(MatchError(ContainSubstring("NotFound")), "no sweep deleted the record of big-b, a Segment gone")

		By("the main shard's record outlives several sweeps of both managers")
		Consistently(func(g Gomega) string { return recordUID(g, mainRecord.ConfigMap) }).
			WithTimeout(6 * time.Second).WithPolling(500 * time.Millisecond).Should(Equal(mainUID))
		Expect(get("big-main").Status.MemberRecord.ConfigMap).To(Equal(mainRecord.ConfigMap))
	})

	It("moves a Segment to shard b by its label, keeping its remote segment", func() {
		before := remote()[mainID]
		counts := simCounts(ctx)
		kubectl("label", "segment", "on-main", "-n", ns, shardLabel+"="+shardB)
		// A reconcile on request, answered only by the shard that has it now.
		at := fmt.Sprint(time.Now().UnixNano())
		kubectl("annotate", "--overwrite", "segment", "on-main", "-n", ns, usersv1alpha1.ReconcileRequestAnnotation+"="+at)
		waitFor("on-main", "jsonpath={.status.lastHandledReconcileAt}="+at)
		waitFor("on-main", "condition=Ready")
		Expect(ownedID("on-main")).To(Equal(mainID))
		Expect(remote()).To(HaveKeyWithValue(mainID, before))
		after := simCounts(ctx)
		for _, e := range []simulator.Endpoint{simulator.EndpointCreate, simulator.EndpointDelete} {
			Expect(after.Requests[e]).To(Equal(counts.Requests[e]), "%s calls since the move", e)
		}

		By("shard b carries out a later change")
		kubectl("patch", "segment", "on-main", "-n", ns, "--type=merge", "-p", `{"spec":{"name":"Shards Moved"}}`)
		waitFor("on-main", "jsonpath={.status.name}=Shards Moved")
		waitFor("on-main", "condition=Ready")
		Expect(remote()[mainID].Name).To(Equal("Shards Moved"))
		Expect(logged(env.ShardLog(shardB), "on-main", "renamed remote segment")).To(BeTrue(), "shard b renamed on-main")
		Expect(logged(env.ManagerLog, "on-main", "renamed remote segment")).To(BeFalse(), "the main shard renamed on-main")
		after = simCounts(ctx)
		for _, e := range []simulator.Endpoint{simulator.EndpointCreate, simulator.EndpointDelete} {
			Expect(after.Requests[e]).To(Equal(counts.Requests[e]), "%s calls since the move", e)
		}
	})

	It("was refused nothing by RBAC, on either shard", func() {
		for _, path := range []string{env.ManagerLog, env.ShardLog(shardB)} {
			log, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			Expect(strings.ToLower(string(log))).NotTo(ContainSubstring("forbidden"), path)
		}
	})
})
