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
		// per-namespace credentials off, it needs no access to Secrets. It is the main
		// shard: every Segment but those of shard b (shards_test.go).
		ManagerRBAC: true, ManagerArgs: append([]string{"--pprof-bind-address", pprofAddr,
			"--watch-label-selector", shardLabel + " notin (" + shardB + ")"}, shardArgs...),
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
	// A sharded manager takes its claims on remote segments as Leases in its namespace.
	kubectl("create", "role", "segment-claims", "-n", "default", "--verb=get,list,watch,create,update,patch,delete", "--resource=leases.coordination.k8s.io")
	kubectl("create", "rolebinding", "segment-claims", "-n", "default", "--role=segment-claims", "--user="+localenv.ManagerUser)
	Expect(env.StartManager()).To(Succeed())
	Expect(env.StartShard(shardB, append([]string{"--watch-label-selector", shardLabel + "=" + shardB}, shardArgs...)...)).To(Succeed())
})

// shardLabel assigns a Segment to a shard (Flux's key); shardB is the second manager's
// shard, and the manager started first handles every other Segment.
const shardLabel, shardB = "sharding.fluxcd.io/key", "b"

// shardArgs are the flags of both managers: no Secrets, and a member-record sweep every
// 2 s that spares no record for its age, so that a spec sees a sweep, or a wrong one.
var shardArgs = []string{"--namespace-credentials", "none",
	"--member-record-sweep-interval", "2s", "--member-record-sweep-min-age", "1s"}

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
