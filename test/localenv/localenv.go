// Package localenv runs the whole product on one machine: a Kubernetes control plane (the
// envtest kube-apiserver and etcd), the ChatBot API simulator and the manager, each the
// real binary built from this checkout. `make demo` and the e2e tests use it.
package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// Options configure an Env.
type Options struct {
	// Root is the repository checkout.
	Root string
	// WorkDir holds the kubeconfig, binaries and logs.
	WorkDir string
	// Token is the ChatBot API token the simulator accepts and the manager uses.
	Token string
	// DriftInterval is passed to the manager.
	DriftInterval time.Duration
	// ManagerArgs are extra manager flags.
	ManagerArgs []string
	// SimulatorArgs are extra simulator flags.
	SimulatorArgs []string
	// AuditPolicy, if set, is a kube-apiserver audit policy (YAML); the API server then
	// logs the requests it selects, one JSON line each, to Env.AuditLog.
	AuditPolicy string
	// ManagerRBAC: the manager's user (ManagerUser) is not in system:masters, and may do
	// only what RBAC grants it; the caller binds its roles before
	// StartManager. Otherwise it may do anything.
	ManagerRBAC bool
}

// ManagerUser is the name the manager authenticates as (a client certificate in the
// system:masters group), so that its requests can be told from kubectl's and a test's.
const ManagerUser = "segment-operator-manager"

// Env is a running local environment.
type Env struct {
	opts       Options
	testEnv    *envtest.Environment
	assets     string
	Kubeconfig string
	// ManagerKubeconfig connects as ManagerUser; the manager uses it.
	ManagerKubeconfig string
	// AuditLog is the API server's audit log, empty without Options.AuditPolicy.
	AuditLog   string
	SimURL     string
	SimLog     string
	ManagerLog string
	procs      []*exec.Cmd
	manager    *exec.Cmd
	shards     map[string]*exec.Cmd // by name (StartShard)
}

// Start starts the control plane, installs the CRDs and writes a kubeconfig; the simulator
// and manager are started by StartSimulator and StartManager.
func Start(opts Options) (*Env, error) {
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, err
	}
	e := &Env{opts: opts,
		Kubeconfig:        filepath.Join(opts.WorkDir, "kubeconfig"),
		ManagerKubeconfig: filepath.Join(opts.WorkDir, "manager.kubeconfig"),
		SimLog:            filepath.Join(opts.WorkDir, "chatbot-sim.log"),
		ManagerLog:        filepath.Join(opts.WorkDir, "manager.log"),
	}
	var err error
	if e.assets, err = Assets(opts.Root); err != nil {
		return nil, err
	}
	e.testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: e.assets,
	}
	if opts.AuditPolicy != "" {
		policy := filepath.Join(opts.WorkDir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(opts.AuditPolicy), 0o644); err != nil {
			return nil, err
		}
		e.AuditLog = filepath.Join(opts.WorkDir, "audit.log")
		// maxsize 0: one file, never rotated, so a reader can follow it by offset.
		e.testEnv.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", e.AuditLog).
			Set("audit-log-maxsize", "0")
	}
	e.testEnv.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	if _, err := e.testEnv.Start(); err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	managerGroups := []string{"system:masters"}
	if opts.ManagerRBAC {
		managerGroups = nil
	}
	for _, u := range []struct {
		name, path string
		groups     []string
	}{{"local-admin", e.Kubeconfig, []string{"system:masters"}}, {ManagerUser, e.ManagerKubeconfig, managerGroups}} {
		if err := e.writeKubeconfig(u.name, u.path, u.groups); err != nil {
			_ = e.Stop()
			return nil, fmt.Errorf("write kubeconfig: %w", err)
		}
	}
	admin, err := client.New(e.testEnv.Config, client.Options{})
	if err == nil {
		err = InstallAdmission(context.Background(), admin, opts.Root)
	}
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("install the admission policy: %w", err)
	}
	return e, nil
}

// writeKubeconfig writes a kubeconfig for a new user in groups.
func (e *Env) writeKubeconfig(name, path string, groups []string) error {
	user, err := e.testEnv.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}

// UserKubeconfig writes a kubeconfig for a new user name in groups, into WorkDir, and
// returns its path: a test grants the user what it needs with RBAC.
func (e *Env) UserKubeconfig(name string, groups ...string) (string, error) {
	path := filepath.Join(e.opts.WorkDir, name+".kubeconfig")
	return path, e.writeKubeconfig(name, path, groups)
}

// Assets builds (or finds cached) kube-apiserver, etcd and kubectl; it returns their directory.
func Assets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "envtest.sh"), filepath.Join(root, "bin"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Config is an admin connection to the control plane.
func (e *Env) Config() *rest.Config { return rest.CopyConfig(e.testEnv.Config) }

// ManagerPID is the process ID of the manager StartManager started, 0 if it is not running.
func (e *Env) ManagerPID() int {
	if e.manager == nil {
		return 0
	}
	return e.manager.Process.Pid
}

// APIServerURL is the control plane's address.
func (e *Env) APIServerURL() string { return e.testEnv.Config.Host }

// Build compiles the manager, the simulator and the kubectl plugin from the checkout into
// WorkDir/bin.
func (e *Env) Build() error {
	for bin, pkg := range map[string]string{"manager": "./cmd", "chatbot-sim": "./cmd/chatbot-sim",
		"kubectl-segments": "./cmd/kubectl-segments"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(e.opts.WorkDir, "bin", bin), pkg)
		cmd.Dir = e.opts.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return nil
}

// StartSimulator runs chatbot-sim on a free loopback port.
func (e *Env) StartSimulator() error {
	addrFile := filepath.Join(e.opts.WorkDir, "chatbot-sim.addr")
	_ = os.Remove(addrFile)
	args := append([]string{"--listen", "127.0.0.1:0", "--token", e.opts.Token, "--address-file", addrFile}, e.opts.SimulatorArgs...)
	if err := e.spawn(filepath.Join(e.opts.WorkDir, "bin", "chatbot-sim"), args, nil, e.SimLog); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(addrFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			e.SimURL = "http://" + strings.TrimSpace(string(b))
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("simulator did not start; see %s", e.SimLog)
}

// StartManager runs the manager against the control plane and the simulator, with
// Options.ManagerArgs, logging to ManagerLog.
func (e *Env) StartManager() error {
	if err := e.startManager(e.ManagerLog, e.opts.ManagerArgs); err != nil {
		return err
	}
	e.manager = e.procs[len(e.procs)-1]
	return nil
}

// StartShard runs one more manager, as the first one does (same user, token, simulator
// and drift interval) but with args instead of Options.ManagerArgs, logging to
// ShardLog(name): a second shard (--watch-label-selector), say. Neither serves metrics nor
// probes, so the two bind no port unless args ask for one.
func (e *Env) StartShard(name string, args ...string) error {
	if err := e.startManager(e.ShardLog(name), args); err != nil {
		return err
	}
	if e.shards == nil {
		e.shards = map[string]*exec.Cmd{}
	}
	e.shards[name] = e.procs[len(e.procs)-1]
	return nil
}

// ShardPID is the process ID of the manager StartShard started as name (0: none).
func (e *Env) ShardPID(name string) int {
	if p := e.shards[name]; p != nil {
		return p.Process.Pid
	}
	return 0
}

// ShardLog is the log file of the manager StartShard started as name.
func (e *Env) ShardLog(name string) string {
	return filepath.Join(e.opts.WorkDir, "manager-"+name+".log")
}

// startManager runs a manager with extra flags args, logging to logPath.
func (e *Env) startManager(logPath string, args []string) error {
	args = append([]string{
		"--chatbot-api-url", e.SimURL,
		"--drift-interval", e.opts.DriftInterval.String(),
		"--health-probe-bind-address", "0",
		"--metrics-bind-address", "0",
		// A development control plane of one user: every namespace may use the token.
		"--default-credentials-namespaces", "*",
	}, args...)
	env := []string{"KUBECONFIG=" + e.ManagerKubeconfig, "CHATBOT_API_TOKEN=" + e.opts.Token}
	return e.spawn(filepath.Join(e.opts.WorkDir, "bin", "manager"), args, env, logPath)
}

// spawn starts a process that logs to logPath and dies with this one.
func (e *Env) spawn(bin string, args, env []string, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	e.procs = append(e.procs, cmd)
	return nil
}

// Kubectl runs kubectl against the control plane and returns its combined output.
func (e *Env) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.assets, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Dir = e.opts.Root
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Plugin runs the kubectl plugin (kubectl segments) built by Build against the control
// plane, with the kubeconfig given ("" for the admin's), the extra environment env, in the
// checkout's root; it returns stdout, stderr and the exit code (an error only when it
// could not run).
func (e *Env) Plugin(ctx context.Context, kubeconfig string, env []string, args ...string) (stdout, stderr string, code int, err error) {
	if kubeconfig == "" {
		kubeconfig = e.Kubeconfig
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.opts.WorkDir, "bin", "kubectl-segments"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = e.opts.Root
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// SimState reads the simulator's full state through its control endpoint.
func (e *Env) SimState(ctx context.Context) (simulator.State, error) {
	var st simulator.State
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.SimURL+"/_sim/state", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Stop stops the managers, the simulator and the control plane, in that order, and waits
// for each.
func (e *Env) Stop() error {
	var errs []error
	for _, p := range slices.Backward(e.procs) {
		_ = p.Process.Signal(syscall.SIGTERM)
		// The exit status is not reported: a process stopped by SIGTERM (or killed) exits
		// with one, as expected.
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("%s did not stop on SIGTERM; killed", filepath.Base(p.Path)))
		}
	}
	e.procs, e.manager, e.shards = nil, nil, nil
	if e.testEnv != nil {
		if err := e.testEnv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop control plane: %w", err))
		}
	}
	return errors.Join(errs...)
}
