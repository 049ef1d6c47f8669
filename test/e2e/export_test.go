package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/yaml"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

var _ = Describe("kubectl segments export", Ordered, func() {
	const ns = "export-e2e"
	var (
		ctx                = context.Background()
		created            = map[string]string{} // remote ID → name, made through the vendor API
		ownedID, tokenFile string
		exported           map[string]string // remote ID → metadata.name
		dir                string
		exportArgs         []string
	)

	BeforeAll(func() {
		kubectl("create", "namespace", ns)
		// One segment a Segment of the cluster owns already: export must leave it out.
		_, err := env.Kubectl(ctx, []byte(`{"apiVersion":"users.chatbot.com/v1alpha1","kind":"Segment",`+
			`"metadata":{"name":"owned","namespace":"`+ns+`"},"spec":{"name":"Export Owned"}}`), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred())
		// Names that collide once made DNS-safe, unicode, and one that is the owned Segment's
		// metadata.name.
		for _, name := range []string{"VIP Customers", "vip customers", "VIP_Customers!", "Café Olé", "cafe ole",
			"Покупатели", "顧客 2026", "Newsletter", "Churned (2025)", "churned-2025", "Beta.Testers", "owned"} {
			created[vendorCreate(name)] = name
		}
		kubectl("wait", "-n", ns, "--for=condition=Ready", "segment/owned", "--timeout=30s")
		ownedID = kubectl("get", "-n", ns, "segment/owned", "-o", "jsonpath={.status.id}")
		Expect(ownedID).NotTo(BeEmpty())

		tokenFile = filepath.Join(GinkgoT().TempDir(), "token")
		Expect(os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)).To(Succeed())
		dir = filepath.Join(GinkgoT().TempDir(), "segments")
		exportArgs = []string{"export", "--api-url", env.SimURL, "--token-file", tokenFile, "-n", ns}

		DeferCleanup(func() {
			// Leave the simulator as the other specs expect it: no segment of this spec.
			kubectl("delete", "segments", "--all", "-n", ns, "--timeout=60s")
			for id := range created {
				vendorDelete(id)
			}
		})
	})

	It("prints a v1 List with -o json, leaving out the owned segment", func() {
		stdout, stderr, code, err := env.Plugin(ctx, "", nil, append(exportArgs, "-o", "json")...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(0), stderr)
		var list struct {
			APIVersion, Kind string
			Items            []usersv1alpha1.Segment
		}
		Expect(json.Unmarshal([]byte(stdout), &list)).To(Succeed())
		Expect(list.Kind).To(Equal("List"))
		ids := map[string]bool{}
		for _, s := range list.Items {
			ids[s.Spec.ID] = true
		}
		for id := range created {
			Expect(ids).To(HaveKey(id))
		}
		Expect(ids).NotTo(HaveKey(ownedID))
	})

	It("writes a directory that kubectl apply -k makes Ready, adopting every segment with no create call", func() {
		stdout, stderr, code, err := env.Plugin(ctx, "", nil, append(exportArgs, "--output-dir", dir)...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(0), stderr)
		Expect(stdout).To(BeEmpty())
		Expect(stderr).To(ContainSubstring(fmt.Sprintf("left out: %s %q: managed by Segment %s/owned", ownedID, "Export Owned", ns)))
		Expect(stderr).To(ContainSubstring("cannot list a segment's members"))
		Expect(stderr).To(ContainSubstring("wrote "))

		exported = map[string]string{}
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			b, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(b)).To(HavePrefix("# ChatBot segment "))
			var s usersv1alpha1.Segment
			Expect(yaml.UnmarshalStrict(b, &s)).To(Succeed(), f)
			Expect(filepath.Base(f)).To(Equal(s.Name + ".yaml"))
			Expect(s.Spec.DeletionPolicy).To(Equal(usersv1alpha1.DeletionPolicyOrphan))
			exported[s.Spec.ID] = s.Name
		}
		for id, name := range created {
			Expect(exported).To(HaveKey(id), name)
		}
		Expect(exported).NotTo(HaveKey(ownedID))
		Expect(exported[vendorIDOf(created, "owned")]).NotTo(Equal("owned"), "the name of a Segment already in the namespace")

		before := simCounts(ctx)
		Expect(kubectl("apply", "-k", dir)).To(ContainSubstring("created"))
		Eventually(func(g Gomega) {
			var list usersv1alpha1.SegmentList
			g.Expect(json.Unmarshal([]byte(kubectl("get", "segments", "-n", ns, "-o", "json")), &list)).To(Succeed())
			ready := map[string]string{}
			for _, s := range list.Items {
				if meta.IsStatusConditionTrue(s.Status.Conditions, usersv1alpha1.ConditionReady) && s.Status.ID == s.Spec.ID {
					ready[s.Spec.ID] = s.Name
				}
			}
			for id, name := range exported {
				g.Expect(ready).To(HaveKeyWithValue(id, name))
			}
		}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
		after := simCounts(ctx)
		Expect(after.Requests[simulator.EndpointCreate]).To(Equal(before.Requests[simulator.EndpointCreate]), "create calls during apply")
		Expect(after.Writes()).To(Equal(before.Writes()), "writes to ChatBot during apply")
	})

	It("exits 1 and says so when ChatBot refuses the token", func() {
		wrong := filepath.Join(GinkgoT().TempDir(), "wrong")
		Expect(os.WriteFile(wrong, []byte("not-the-token"), 0o600)).To(Succeed())
		stdout, stderr, code, err := env.Plugin(ctx, "", nil, "export", "--api-url", env.SimURL, "--token-file", wrong, "-n", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(1))
		Expect(stdout).To(BeEmpty())
		Expect(stderr).To(ContainSubstring("ChatBot refused the token from --token-file " + wrong + " (HTTP 401)"))
		Expect(stderr).NotTo(ContainSubstring("not-the-token"))
	})

	It("exits 1 and says so without a kubeconfig", func() {
		stdout, stderr, code, err := env.Plugin(ctx, filepath.Join(GinkgoT().TempDir(), "missing"), nil, exportArgs...)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(1))
		Expect(stdout).To(BeEmpty())
		Expect(stderr).To(ContainSubstring("export needs the cluster"))
		Expect(stderr).To(ContainSubstring("kubeconfig"))
	})
})

// vendorCreate creates a segment the way a ChatBot user would, through the vendor API, and
// returns its ID.
func vendorCreate(name string) string {
	GinkgoHelper()
	body, _ := json.Marshal(map[string]string{"name": name})
	var out struct{ ID string }
	Expect(vendorCall(http.MethodPost, "/users/segments", body, &out)).To(Equal(http.StatusOK))
	Expect(out.ID).NotTo(BeEmpty())
	return out.ID
}

// vendorDelete deletes a segment through the vendor API; one already gone is fine.
func vendorDelete(id string) {
	GinkgoHelper()
	Expect(vendorCall(http.MethodDelete, "/users/segments/"+id, nil, nil)).To(BeElementOf(http.StatusOK, http.StatusNotFound))
}

func vendorCall(method, path string, body []byte, out any) int {
	GinkgoHelper()
	req, err := http.NewRequest(method, env.SimURL+path, bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		Expect(json.NewDecoder(resp.Body).Decode(out)).To(Succeed())
	}
	return resp.StatusCode
}

func vendorIDOf(created map[string]string, name string) string {
	for id, n := range created {
		if n == name {
			return id
		}
	}
	return ""
}

func simCounts(ctx context.Context) simulator.Counts {
	GinkgoHelper()
	st, err := env.SimState(ctx)
	Expect(err).NotTo(HaveOccurred())
	return st.Counts
}
