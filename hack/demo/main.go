// Command demo shows the operator at work on a laptop: a local control plane, the ChatBot
// API simulator and the manager built from this checkout; it applies config/samples, waits
// for every Segment to be Ready, shows both sides, renames one, deletes another, and stops
// everything. Run it with `make demo`; DEMO_KEEP=1 keeps it running for kubectl.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/segment-operator/segment-operator/test/localenv"
)

const steps = 8

func main() {
	root, err := os.Getwd()
	if err != nil {
		fail(0, "find the checkout", err, nil)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{root: root, work: filepath.Join(root, "bin", "demo")}
	code := d.run(ctx)
	os.Exit(code)
}

type demo struct {
	root, work string
	env        *localenv.Env
	step       int
}

func (d *demo) run(ctx context.Context) (code int) {
	defer func() {
		if d.env != nil {
			d.begin("Shutting down the manager, the simulator and the control plane")
			if err := d.env.Stop(); err != nil {
				d.fail("shut down", err)
				code = 1
				return
			}
			d.done("all stopped, ports freed")
		}
	}()

	d.begin("Building kube-apiserver, etcd and kubectl (from the Go module proxy; cached in bin/k8s after the first run)")
	if _, err := localenv.Assets(d.root); err != nil {
		return d.fail("build the control plane", err)
	}
	d.done("ok")

	d.begin("Starting the control plane and installing the Segment CRD")
	env, err := localenv.Start(localenv.Options{Root: d.root, WorkDir: d.work, Token: "demo-token", DriftInterval: 10 * time.Second})
	if err != nil {
		return d.fail("start the control plane", err)
	}
	d.env = env
	d.done(env.APIServerURL() + ", kubeconfig " + rel(d.root, env.Kubeconfig))

	d.begin("Building and starting the ChatBot API simulator and the manager")
	if err := env.Build(); err != nil {
		return d.fail("build", err)
	}
	if err := env.StartSimulator(); err != nil {
		return d.fail("start the simulator", err)
	}
	if err := env.StartManager(); err != nil {
		return d.fail("start the manager", err)
	}
	d.done("simulator " + env.SimURL + ", logs in " + rel(d.root, d.work))

	d.begin("kubectl apply -k config/samples")
	out, err := env.Kubectl(ctx, nil, "apply", "-k", "config/samples")
	if err != nil {
		return d.fail("apply the samples", err)
	}
	d.done(strings.Count(out, "created")+strings.Count(out, "configured")+strings.Count(out, "unchanged"), "Segments")

	d.begin("kubectl wait --for=condition=Ready segments --all")
	if _, err := env.Kubectl(ctx, nil, "wait", "--for=condition=Ready", "segments", "--all", "--timeout=90s"); err != nil {
		return d.fail("wait for Ready", err)
	}
	d.done("all Ready")
	if err := d.show(ctx); err != nil {
		return d.fail("show", err)
	}

	d.begin(`Renaming: kubectl patch segment newsletter --type=merge -p '{"spec":{"name":"Weekly newsletter"}}'`)
	if _, err := env.Kubectl(ctx, nil, "patch", "segment", "newsletter", "--type=merge", "-p", `{"spec":{"name":"Weekly newsletter"}}`); err != nil {
		return d.fail("rename", err)
	}
	if err := d.waitRemote(ctx, func(names map[string]bool) bool { return names["Weekly newsletter"] }); err != nil {
		return d.fail("rename", err)
	}
	d.done("renamed in place (same ID)")

	d.begin("Deleting: kubectl delete segment beta-testers (the finalizer deletes the remote segment first)")
	if _, err := env.Kubectl(ctx, nil, "delete", "segment", "beta-testers", "--timeout=60s"); err != nil {
		return d.fail("delete", err)
	}
	if err := d.waitRemote(ctx, func(names map[string]bool) bool { return !names["Beta testers"] }); err != nil {
		return d.fail("delete", err)
	}
	d.done("gone from Kubernetes and from ChatBot")
	if err := d.show(ctx); err != nil {
		return d.fail("show", err)
	}

	if os.Getenv("DEMO_KEEP") != "" {
		fmt.Printf("\nEverything is still running (DEMO_KEEP is set). In another shell:\n\n")
		fmt.Printf("  export KUBECONFIG=%s\n  export PATH=%s:$PATH   # kubectl %s\n",
			env.Kubeconfig, filepath.Dir(kubectlPath(d.root)), "built from source")
		fmt.Printf("  kubectl get segments -o wide\n  curl -s %s/_sim/state\n\nPress Ctrl-C to stop.\n", env.SimURL)
		<-ctx.Done()
		fmt.Println()
	}
	return 0
}

// show prints the Kubernetes view and the remote account's view.
func (d *demo) show(ctx context.Context) error {
	out, err := d.env.Kubectl(ctx, nil, "get", "segments", "-o", "wide")
	if err != nil {
		return err
	}
	fmt.Printf("\n$ kubectl get segments -o wide\n%s\n", out)
	st, err := d.env.SimState(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("Remote ChatBot account (simulator, %s/_sim/state):\n", d.env.SimURL)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tMEMBERS\tCREATED")
	sort.Slice(st.Segments, func(i, j int) bool { return st.Segments[i].Name < st.Segments[j].Name })
	for _, s := range st.Segments {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.ID, s.Name, len(s.Members), s.CreatedAt.Format(time.RFC3339))
	}
	_ = tw.Flush()
	c := st.Counts.Succeeded
	fmt.Printf("API calls so far: %d list, %d create, %d add-members, %d rename, %d delete\n\n",
		c["list"], c["create"], c["add"], c["rename"], c["delete"])
	return nil
}

// waitRemote polls the simulator until ok holds for the set of remote segment names.
func (d *demo) waitRemote(ctx context.Context, ok func(map[string]bool) bool) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := d.env.SimState(ctx)
		if err != nil {
			return err
		}
		names := map[string]bool{}
		for _, s := range st.Segments {
			names[s.Name] = true
		}
		if ok(names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the remote account did not change within 60s")
}

func (d *demo) begin(what string) {
	d.step++
	fmt.Printf("[%d/%d] %s ... ", d.step, steps, what)
}

func (d *demo) done(what ...any) { fmt.Println(what...) }

func (d *demo) fail(what string, err error) int {
	var logs []string
	if d.env != nil {
		logs = []string{rel(d.root, d.env.ManagerLog), rel(d.root, d.env.SimLog)}
	}
	fail(d.step, what, err, logs)
	return 1
}

func fail(step int, what string, err error, logs []string) {
	fmt.Printf("FAILED\n\nstep %d (%s) failed: %v\n", step, what, err)
	if len(logs) > 0 {
		fmt.Printf("logs: %s\n", strings.Join(logs, ", "))
	}
}

func kubectlPath(root string) string {
	dir, err := localenv.Assets(root)
	if err != nil {
		return "kubectl"
	}
	return filepath.Join(dir, "kubectl")
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}
