package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/segment-operator/segment-operator/test/localenv"
)

var _ = Describe("the operator as installed from this checkout", Ordered, func() {
	It("makes every sample in config/samples Ready with a remote segment", func() {
		kubectl("apply", "-k", "config/samples")
		kubectl("wait", "--for=condition=Ready", "segments", "--all", "--timeout=60s")

		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Spec     struct {
					Name    string
					Members []string
				}
				Status struct {
					ID            string
					Name          string
					RemoteMembers int
				}
			}
		}
		Expect(json.Unmarshal([]byte(kubectl("get", "segments", "-o", "json")), &list)).To(Succeed())
		Expect(list.Items).To(HaveLen(3))

		st, err := env.SimState(context.Background())
		Expect(err).NotTo(HaveOccurred())
		remote := map[string]int{}
		names := map[string]string{}
		for _, s := range st.Segments {
			remote[s.ID] = len(s.Members)
			names[s.ID] = s.Name
		}
		Expect(remote).To(HaveLen(3))
		for _, item := range list.Items {
			want := item.Spec.Name
			if want == "" {
				want = item.Metadata.Name
			}
			Expect(names).To(HaveKeyWithValue(item.Status.ID, want), item.Metadata.Name)
			Expect(remote[item.Status.ID]).To(Equal(len(item.Spec.Members)), item.Metadata.Name)
		}
		Expect(kubectl("get", "segments")).To(MatchRegexp(`(?m)^NAME\s+REMOTE NAME\s+ID\s+MEMBERS\s+READY\s+AGE$`))
	})

	// After the samples, which count every remote segment in the simulator.
	It("accepts every file in examples/ in a server-side apply, and makes the basic ones Ready", applyEveryExample)

	It("renders config/default, and the control plane accepts it in a server-side dry run", func() {
		rendered := kubectl("kustomize", "config/default")
		for _, kind := range []string{"CustomResourceDefinition", "Deployment", "PodDisruptionBudget", "ClusterRole", "ServiceAccount", "Service", "Namespace"} {
			Expect(rendered).To(ContainSubstring("kind: " + kind))
		}
		// A dry run creates nothing, so the namespaced objects need their namespace for real.
		kubectl("create", "namespace", "segment-operator-system")
		out, err := env.Kubectl(context.Background(), []byte(rendered), "apply", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("deployment.apps/segment-operator-controller-manager created (server dry run)"))

		// The optional admission policy: the control plane runs it already (localenv), so
		// this is an unchanged apply.
		out, err = env.Kubectl(context.Background(), nil, "apply", "--dry-run=server", "-k", "config/admission")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("mutatingadmissionpolicy.admissionregistration.k8s.io/segment-operator-finalizer"))
	})

	It("runs a control plane that reports its real version, which kubectl can parse", func() {
		gomod, err := os.ReadFile(filepath.Join("..", "..", "hack", "envtest", "kube-apiserver", "go.mod"))
		Expect(err).NotTo(HaveOccurred())
		want := regexp.MustCompile(`(?m)^require k8s.io/kubernetes (v[0-9.]+)$`).FindSubmatch(gomod)
		Expect(want).NotTo(BeNil(), "no k8s.io/kubernetes version in hack/envtest/kube-apiserver/go.mod")

		var version struct {
			ClientVersion struct{ GitVersion string } `json:"clientVersion"`
			ServerVersion struct{ GitVersion string } `json:"serverVersion"`
		}
		Expect(json.Unmarshal([]byte(kubectl("version", "-o", "json")), &version)).To(Succeed())
		Expect(version.ServerVersion.GitVersion).To(Equal(string(want[1])))
		Expect(version.ClientVersion.GitVersion).To(Equal(string(want[1])))
	})

	It("explains the resource with kubectl explain", func() {
		out := kubectl("explain", "segment.spec")
		Expect(out).To(ContainSubstring("members"))
		Expect(out).To(ContainSubstring("has no way to remove a member"))
	})

	It("runs with no access to Secrets when per-namespace credentials are off, and says so to a Segment that names one", func() {
		// can-i answers "no" with exit status 1.
		out, _ := env.Kubectl(context.Background(), nil, "auth", "can-i", "list", "secrets", "--all-namespaces", "--as="+localenv.ManagerUser)
		Expect(strings.TrimSpace(out)).To(Equal("no"))
		kubectl("create", "secret", "generic", "chatbot", "--from-literal=token="+token)
		kubectl("label", "secret", "chatbot", "users.chatbot.com/credentials=true")
		_, err := env.Kubectl(context.Background(), []byte(`{"apiVersion":"users.chatbot.com/v1alpha1","kind":"Segment",`+
			`"metadata":{"name":"own-creds","namespace":"default"},"spec":{"members":["c1"],"credentialsRef":{"name":"chatbot"}}}`),
			"apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		kubectl("wait", "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=CredentialsError", "segment/own-creds", "--timeout=60s")
		Expect(kubectl("get", "segment", "own-creds", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}")).
			To(ContainSubstring("--namespace-credentials=none"))
		Expect(kubectl("get", "secret", "chatbot", "-o", "jsonpath={.metadata.finalizers}")).To(BeEmpty())
		kubectl("delete", "segment", "own-creds", "--timeout=60s")

		log, err := os.ReadFile(env.ManagerLog)
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.ToLower(string(log))).NotTo(ContainSubstring("forbidden"), "the manager was refused something its RBAC should grant")
	})

	It("serves Go's pprof endpoints only where --pprof-bind-address says", func() {
		Eventually(func(g Gomega) { // served once the manager has started
			resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?debug=1")
			g.Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
			body, err := io.ReadAll(resp.Body)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(body)).To(ContainSubstring("heap profile"))
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	})

	It("never writes the API token to its log", func() {
		kubectl("delete", "-k", "config/samples", "--timeout=60s")
		log, err := os.ReadFile(env.ManagerLog)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(log)).To(ContainSubstring("created remote segment"))
		Expect(strings.Contains(string(log), token)).To(BeFalse(), "the manager log contains the token")
	})
})
