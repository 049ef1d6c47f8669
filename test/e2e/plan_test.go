package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("kubectl segments plan", Ordered, func() {
	const ns = "plan-e2e"
	var dir, viewer string
	ctx := context.Background()

	// segment writes a Segment manifest (without namespace: plan and kubectl take -n) into dir.
	segment := func(name, spec string) {
		GinkgoHelper()
		doc := fmt.Sprintf("apiVersion: users.chatbot.com/v1alpha1\nkind: Segment\nmetadata:\n  name: %s\nspec:\n%s", name, spec)
		Expect(os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644)).To(Succeed())
	}
	ownedID := func(name string) string {
		GinkgoHelper()
		id := kubectl("get", "segment", name, "-n", ns, "-o", "jsonpath={.status.ownership.id}")
		Expect(id).NotTo(BeEmpty(), name)
		return id
	}
	// written is what a plan must not change: each Segment's generation, and whether any
	// field of it is managed by kubectl-segments (a server-side apply that was not a dry run).
	written := func() string {
		GinkgoHelper()
		return kubectl("get", "segments", "-n", ns, "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.metadata.generation} {.metadata.managedFields[*].manager}{"\n"}{end}`)
	}
	plan := func(kubeconfig string) (string, int) {
		GinkgoHelper()
		out, errOut, code, err := env.Plugin(ctx, kubeconfig, nil, "plan", "-f", dir, "-n", ns, "--prune", "--detailed-exitcode")
		Expect(err).NotTo(HaveOccurred())
		Expect(errOut).To(BeEmpty())
		return out, code
	}

	BeforeAll(func() {
		dir = GinkgoT().TempDir()
		kubectl("create", "namespace", ns)
		// A user with view in the namespace. The segment viewer role is aggregated to view by
		// its label, but the envtest control plane runs no controller manager, which does the
		// aggregation: it is bound as well.
		kubectl("apply", "-f", "config/rbac/segment_viewer_role.yaml")
		kubectl("create", "rolebinding", "plan-view", "-n", ns, "--clusterrole=view", "--user=plan-viewer")
		kubectl("create", "rolebinding", "plan-segment-view", "-n", ns, "--clusterrole=segment-viewer-role", "--user=plan-viewer")
		// And what view grants of events (read), for status.
		kubectl("create", "role", "plan-events-view", "-n", ns, "--verb=get,list,watch", "--resource=events")
		kubectl("create", "rolebinding", "plan-events-view", "-n", ns, "--role=plan-events-view", "--user=plan-viewer")
		var err error
		viewer, err = env.UserKubeconfig("plan-viewer")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			// The remote segments go with their Segments, so the simulator holds what it held.
			kubectl("delete", "segments", "--all", "-n", ns, "--timeout=60s")
		})
	})

	It("says what applying edited manifests will do, as a user with only view, and writes nothing", func() {
		segment("keep", "  name: Keep\n  members: [k1, k2]\n")
		segment("rename", "  name: Old name\n  members: [r1]\n")
		segment("grow", "  members: [g1]\n")
		segment("gone", "  members: [x1]\n")
		kubectl("apply", "-n", ns, "-f", dir)
		kubectl("wait", "-n", ns, "--for=condition=Ready", "segments", "--all", "--timeout=30s")
		keep, rename, grow, gone := ownedID("keep"), ownedID("rename"), ownedID("grow"), ownedID("gone")

		segment("rename", "  name: New name\n  members: [r1]\n")
		segment("grow", "  members: [g1, g2, g3]\n")
		segment("fresh", "  members: [f1, f2]\n")
		segment("thief", fmt.Sprintf("  id: %s\n", keep))
		segment("bad", "  members: [not-an-id!]\n")
		Expect(os.Remove(filepath.Join(dir, "gone.yaml"))).To(Succeed())
		before := written()

		lines := func(changes ...string) string { return strings.Join(changes, "\n") + "\n" }
		common := []string{
			fmt.Sprintf(`- %s/gone: no file names it: delete it, and remote segment %s (deletionPolicy Delete)`, ns, gone),
			fmt.Sprintf(`~ %s/grow: add 2 members to segment %s`, ns, grow),
			fmt.Sprintf(`= %s/keep: no change to segment %s`, ns, keep),
			fmt.Sprintf(`~ %s/rename: rename segment %s from "Old name" to "New name"`, ns, rename),
			fmt.Sprintf(`! %s/thief: conflict: remote segment %s is already managed by %s/keep; this Segment leaves it alone`, ns, keep, ns),
		}

		By("as an administrator: the API server refuses one, in a server-side dry run")
		out, code := plan("")
		Expect(code).To(Equal(2), out)
		refused, rest, _ := strings.Cut(out, "\n")
		Expect(refused).To(HavePrefix(fmt.Sprintf(`! %s/bad: refused by the API server: `, ns)))
		Expect(refused).To(ContainSubstring("spec.members[0]"))
		Expect(rest).To(Equal(lines(append([]string{fmt.Sprintf(`+ %s/fresh: create segment "fresh" with 2 members`, ns)}, common...)...) +
			"\nPlan: 1 to create, 1 to rename, 1 to add members to, 1 to delete; 1 refused, 1 in conflict; 1 unchanged.\n"))

		By("as a user with only view: admission is not checked, and said so")
		out, code = plan(viewer)
		Expect(code).To(Equal(2), out)
		Expect(out).To(Equal(lines(append([]string{
			fmt.Sprintf(`+ %s/bad: create segment "bad" with 1 member`, ns),
			fmt.Sprintf(`+ %s/fresh: create segment "fresh" with 2 members`, ns)}, common...)...) + "\n" +
			"Note: admission was not checked: you may not write Segments, so no server-side dry run was made\n" +
			"Note: owners were looked for only in the files' namespaces (you may not list Segments in all namespaces)\n" +
			"Plan: 2 to create, 1 to rename, 1 to add members to, 1 to delete; 1 in conflict; 1 unchanged.\n"))

		By("nothing was written")
		Expect(written()).To(Equal(before))
		Expect(before).NotTo(ContainSubstring("kubectl-segments"))
		_, err := env.Kubectl(ctx, nil, "get", "segment", "fresh", "-n", ns)
		Expect(err).To(MatchError(ContainSubstring("NotFound")))

		By("once applied, and the pruned one deleted: no changes")
		Expect(os.Remove(filepath.Join(dir, "bad.yaml"))).To(Succeed())
		kubectl("apply", "-n", ns, "-f", dir)
		kubectl("delete", "segment", "gone", "-n", ns, "--timeout=30s")
		Eventually(func() int { _, code := plan(viewer); return code }).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Equal(0))
		out, code = plan(viewer)
		Expect(code).To(Equal(0))
		Expect(out).To(Equal(lines(
			fmt.Sprintf(`= %s/fresh: no change to segment %s`, ns, ownedID("fresh")),
			fmt.Sprintf(`= %s/grow: no change to segment %s`, ns, grow),
			fmt.Sprintf(`= %s/keep: no change to segment %s`, ns, keep),
			fmt.Sprintf(`= %s/rename: no change to segment %s`, ns, rename),
			fmt.Sprintf(`! %s/thief: conflict: remote segment %s is already managed by %s/keep; this Segment leaves it alone`, ns, keep, ns),
		) + "\n" +
			"Note: admission was not checked: you may not write Segments, so no server-side dry run was made\n" +
			"Note: owners were looked for only in the files' namespaces (you may not list Segments in all namespaces)\n" +
			"No changes; 1 in conflict; 4 unchanged.\n"))

		By("--live, listing the account: the same; -o json for bots")
		live := []string{"plan", "-f", dir, "-n", ns, "--detailed-exitcode", "--live", "--api-url", env.SimURL}
		liveOut, errOut, code, err := env.Plugin(ctx, viewer, []string{"CHATBOT_API_TOKEN=" + token}, live...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(0), errOut)
		Expect(liveOut).To(Equal(out))
		jsonOut, _, code, err := env.Plugin(ctx, viewer, []string{"CHATBOT_API_TOKEN=" + token}, append(live, "-o", "json")...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(0))
		var report struct {
			Changes []struct{ Name, Kind, ID string }
			Summary map[string]int
		}
		Expect(json.Unmarshal([]byte(jsonOut), &report)).To(Succeed())
		Expect(report.Changes).To(HaveLen(5))
		Expect(report.Changes[0].Name).To(Equal("fresh"))
		Expect(report.Changes[0].Kind).To(Equal("none"))
		Expect(report.Summary).To(HaveKeyWithValue("unchanged", 4))
		Expect(report.Summary).To(HaveKeyWithValue("conflict", 1))

		By("status, as the viewer: one Segment on one screen, with what the next reconcile does")
		after := written()
		statusOut, errOut, code, err := env.Plugin(ctx, viewer, nil, "status", "grow", "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(0), errOut)
		Expect(statusOut).To(And(ContainSubstring("remote segment "+grow+", in account "),
			MatchRegexp(`Ready\s+True\s+Synced`), ContainSubstring("MembersAdded"),
			ContainSubstring("Next reconcile: no change to segment "+grow)))
		Expect(written()).To(Equal(after))

		By("a refused token: an error, exit 1")
		_, errOut, code, err = env.Plugin(ctx, viewer, []string{"CHATBOT_API_TOKEN=wrong"}, live...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(1))
		Expect(errOut).To(HavePrefix("error: list the ChatBot account: "))
	})
})
