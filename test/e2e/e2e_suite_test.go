// Package e2e runs the operator as users do: the manager and simulator binaries built from
// this checkout, against a real control plane, driven with kubectl.
package e2e

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/segment-operator/segment-operator/test/localenv"
)

const token = "e2e-token-never-logged"

var env *localenv.Env

// pprofAddr is where the manager serves Go's pprof endpoints (--pprof-bind-address).
var pprofAddr string

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "e2e suite")
}

var _ = BeforeSuite(func() {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the manager's pprof endpoints
	Expect(err).NotTo(HaveOccurred())
	pprofAddr = ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	env, err = localenv.Start(localenv.Options{
		Root: root, WorkDir: GinkgoT().TempDir(), Token: token, DriftInterval: 5 * time.Second,
		// The manager may do what config/rbac's manager-role grants it, and no more: with
		// per-namespace credentials off, it needs no access to Secrets.
		ManagerRBAC: true, ManagerArgs: []string{"--namespace-credentials", "none", "--pprof-bind-address", pprofAddr},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(env.Build()).To(Succeed())
	Expect(env.StartSimulator()).To(Succeed())
	kubectl("apply", "-f", "config/rbac/role.yaml")
	kubectl("create", "clusterrolebinding", "manager", "--clusterrole=manager-role", "--user="+localenv.ManagerUser)
	// config/rbac/member_record_role.yaml, in the namespace the manager keeps member records
	// in (default, its kubeconfig's): deleting a Segment that owned a remote segment deletes
	// its record ConfigMap there.
	kubectl("create", "role", "member-record-role", "-n", "default", "--verb=create,update,delete", "--resource=configmaps")
	kubectl("create", "rolebinding", "member-record", "-n", "default", "--role=member-record-role", "--user="+localenv.ManagerUser)
	Expect(env.StartManager()).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := env.Kubectl(context.Background(), nil, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}
