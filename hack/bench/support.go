package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/test/localenv"
)

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close() // the caller binds it next: the port must be free
}

// procStats reads a process's peak resident memory (MiB) and CPU time (seconds) from /proc.
func procStats(pid int) (rssMiB, cpuSeconds float64) {
	if pid == 0 {
		return 0, 0
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.SplitSeq(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				rssMiB = kb / 1024
			}
		}
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may contain spaces) start at ") ".
		rest := strings.Fields(string(stat)[strings.LastIndex(string(stat), ")")+2:])
		if len(rest) > 12 {
			utime, _ := strconv.ParseFloat(rest[11], 64)
			stime, _ := strconv.ParseFloat(rest[12], 64)
			cpuSeconds = (utime + stime) / 100 // USER_HZ
		}
	}
	return rssMiB, cpuSeconds
}

// peakWatch follows a process's peak resident memory.
type peakWatch struct {
	pid          int
	mu           sync.Mutex
	peakMiB, cpu float64
	guarded      bool
}

// watchPeak reads the process's peak RSS (VmHWM) every 200 ms, often enough that a short
// spike is not lost when the process is killed, and kills it, then calls over, if it
// passes guard MiB. It logs each 256 MiB the peak passes, so that the log shows how fast
// the process grew.
func watchPeak(ctx context.Context, pid int, guard float64, over func()) *peakWatch {
	p := &peakWatch{pid: pid}
	start, step := time.Now(), 256.0
	go func() {
		for logged := step; ; {
			rss := p.sample()
			if rss >= logged {
				log("manager peak RSS %.0f MiB, %s after the manager started", rss, time.Since(start).Round(100*time.Millisecond))
				logged = (float64(int(rss/step)) + 1) * step
			}
			if rss > guard && !p.over() {
				p.mu.Lock()
				p.guarded = true
				p.mu.Unlock()
				_ = syscall.Kill(pid, syscall.SIGKILL)
				log("manager peak RSS passed the %.0f MiB guard: killed", guard)
				over()
			}
			if !sleep(ctx, 200*time.Millisecond) {
				return
			}
		}
	}()
	return p
}

// sample reads the process's figures, keeps the highest, and returns its peak RSS now (0
// once it has exited).
func (p *peakWatch) sample() float64 {
	rss, cpu := procStats(p.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peakMiB, p.cpu = max(p.peakMiB, rss), max(p.cpu, cpu)
	return rss
}

// result returns the peak RSS (MiB) and CPU time (s) seen, the process's last figures
// included, and whether the guard killed it.
func (p *peakWatch) result() (peakMiB, cpuSeconds float64, guarded bool) {
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakMiB, p.cpu, p.guarded
}

func (p *peakWatch) over() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.guarded
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func parallel(n, workers int, f func(int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d failures, first: %w", len(errs), errs[0])
	}
	return nil
}

func printTable(rows []row) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tSegments\tcreates\trenames\tadds\tlists\t429s\twall\tbound\tratio\t"+
		"seg writes\tstatus writes\tevents\trefused\twrites/Segment\tevents/Segment\tpeak RSS MiB\tCPU-s\t")
	for _, r := range rows {
		bound, ratio := "-", "-"
		if r.bound > 0 {
			bound = r.bound.Round(100 * time.Millisecond).String()
			ratio = fmt.Sprintf("%.2f", r.wall.Seconds()/r.bound.Seconds())
		}
		writesPer, eventsPer := "-", "-"
		if r.perSegment && r.segments > 0 {
			n := float64(r.segments)
			writesPer = fmt.Sprintf("%.2f", float64(r.kube.Segment+r.kube.Status)/n)
			eventsPer = fmt.Sprintf("%.2f", float64(r.kube.Events)/n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%.0f\t%.1f\t\n",
			r.scenario, r.segments, r.creates, r.renames, r.adds, r.lists, r.throttle, r.wall.Round(100*time.Millisecond),
			bound, ratio, r.kube.Segment, r.kube.Status, r.kube.Events, r.kube.Refused, writesPer, eventsPer, r.rssMiB, r.cpuSeconds)
	}
	_ = tw.Flush()
	fmt.Print("\n" + sb.String())
	return sb.String()
}

func hostSummary() string {
	cpus := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strconv.Itoa(strings.Count(string(b), "processor\t:"))
	}
	return cpus + " CPUs"
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// removeWork removes a run's work directory (the processes' logs); one left behind is
// reported, not fatal.
func removeWork(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		log("could not remove %s: %v", dir, err)
	}
}

func log(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// startEnv starts a control plane and the simulator as opts say, builds the binaries, and
// returns them with a client of the bench's own (the caller starts the manager, and stops
// env).
func startEnv(opts localenv.Options) (*localenv.Env, client.Client, error) {
	env, err := localenv.Start(opts)
	if err != nil {
		return nil, nil, err
	}
	c, err := func() (client.Client, error) {
		if err := env.Build(); err != nil {
			return nil, err
		}
		if err := env.StartSimulator(); err != nil {
			return nil, err
		}
		if err := usersv1alpha1.AddToScheme(scheme.Scheme); err != nil {
			return nil, err
		}
		cfg := env.Config()
		cfg.QPS, cfg.Burst = 2000, 4000
		return client.New(cfg, client.Options{Scheme: scheme.Scheme})
	}()
	if err != nil {
		_ = env.Stop()
		return nil, nil, err
	}
	return env, c, nil
}

// saveProfile reads one of the manager's pprof endpoints (what: "heap",
// "profile?seconds=60") into bin/bench/file. The manager just started may not serve yet:
// it is asked again for a few seconds.
func saveProfile(ctx context.Context, root, addr, what, file string) error {
	dir := filepath.Join(root, "bin", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var lastErr error
	for range 50 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/"+what, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("pprof %s: %s %v", what, resp.Status, err)
		}
		log("profile written to %s", filepath.Join(dir, file))
		return os.WriteFile(filepath.Join(dir, file), body, 0o644)
	}
	return fmt.Errorf("pprof %s: %w", what, lastErr)
}
