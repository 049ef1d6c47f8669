// Command bench measures the operator at scale against a rate-limited simulator: remote
// calls per scenario, wall time against the bound the API's rate sets, the manager's
// Kubernetes writes (to Segments, their status and Events, read from the API server's audit
// log) and its peak memory and CPU time. Run it with `make bench`; it prints one table and
// writes it to bin/bench/results.txt.
//
// Scenarios, on a local control plane with the manager and simulator binaries:
//   - cold:   N Segments of 50 distinct members each, applied at once, until all are Ready;
//   - steady: three drift intervals with nothing changed;
//   - small batches, on the running manager: 10% renamed, then 100 new Segments, each
//     until all are Ready (what a user applying a handful of changes waits);
//   - churn:  10% renamed and another 10% given one more member, until all are Ready;
//   - shared: a cold start of N Segments whose members are 10 sets of 50, so that Segments
//     with identical sets can share add-members calls;
//   - large segments: a cold start of 100 Segments of 10,000 members each, and of one of
//     100,000, their members in ConfigMaps (spec.membersFrom), the record of added members
//     kept in ConfigMaps of the manager's namespace;
//   - two shards: the manager-cost cold start of N Segments on two managers, each
//     reconciling half (--watch-label-selector on sharding.fluxcd.io/key), against one
//     API; their RSS and CPU added;
//   - fairness: one account's backlog of Segments, and how long a Segment of another account,
//     and one of another namespace, wait behind it;
//   - hostile tenant: a namespace's Segments whose spec.membersFrom name far more IDs than a
//     Segment may have, and another namespace's N ordinary Segments applied meanwhile: the
//     manager's peak RSS and the other namespace's time to Ready, against a run without the
//     attack (the manager with GOMEMLIMIT=345MiB in both).
//
// The 1,000-Segment runs use the limits the issue sets (20 calls/s, 50 ms latency); the
// 10,000-Segment run measures the manager's cost, with a faster API so it finishes in minutes.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/shard"
	"github.com/segment-operator/segment-operator/test/localenv"
)

// profile: the cold start of the manager-cost run is profiled (-profile).
var profile bool

// run is one configuration: a fresh control plane, simulator and manager.
type run struct {
	segments int
	rate     float64 // API calls per second the simulator allows
	latency  time.Duration
	drift    time.Duration
	workers  int
	churn    bool
	steady   bool
	batches  bool    // the small batches: 10% renamed, 100 new
	apiQPS   float64 // the manager's client-side limit
	kubeQPS  int
	apiBurst int
	members  int
	cost     bool // the manager-cost run: profiled with -profile
	shards   int  // managers, each reconciling its share of the Segments (0: one, no selector)
	sets     int  // member sets shared by the Segments; 0: every Segment its own
	// fromConfigMaps: each Segment's members are this many IDs of its own in ConfigMaps of
	// up to 50,000 (spec.membersFrom) instead of members in spec.members.
	fromConfigMaps int
	namespace      string
}

type row struct {
	scenario                                string
	segments                                int
	creates, renames, adds, lists, throttle int64
	kube                                    kubeWrites
	perSegment                              bool // a cold start: Kubernetes writes per Segment are shown
	wall, bound                             time.Duration
	rssMiB, cpuSeconds                      float64
}

func main() {
	small := flag.Int("segments", 1000, "Segments in the rate-limited run")
	large := flag.Int("large", 10000, "Segments in the manager-cost run (0 skips it)")
	fair := flag.Int("fairness", 1000, "Segments of the busy account in the fairness run (0 skips it)")
	big := flag.Bool("large-segments", true, "Run the large-segment scenarios (100 x 10,000 and 1 x 100,000 members)")
	shared := flag.Bool("shared", true, "Run the cold start of Segments sharing 10 member sets")
	sharded := flag.Bool("shards", true, "Run the manager-cost cold start on two shards")
	flag.BoolVar(&profile, "profile", false, "Profile the manager (--pprof-bind-address) through the cold start of the manager-cost run: "+
		"bin/bench/cold-<N>.cpu.pprof and .heap.pprof, for go tool pprof")
	hostileN := flag.Int("hostile", 100, "Segments of the victim namespace in the hostile-tenant runs (0 skips them)")
	flag.Parse()

	root, err := os.Getwd()
	if err != nil {
		fatal(err)
	}
	crlog.SetLogger(logr.Discard())
	// Ctrl-C ends the current run and stops its processes (control plane included) cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []row
	for _, r := range []run{
		{segments: *small, rate: 20, latency: 50 * time.Millisecond, drift: 10 * time.Second, workers: 16,
			apiQPS: 20, apiBurst: 1, kubeQPS: 200, members: 50, steady: true, batches: true, churn: true, namespace: "bench"},
		// Calls merge only while they wait for the rate limit, so more workers (goroutines
		// that mostly wait) let more Segments with one member set share a call.
		{segments: *small, rate: 20, latency: 50 * time.Millisecond, drift: 10 * time.Second, workers: 64,
			apiQPS: 20, apiBurst: 1, kubeQPS: 200, members: 50, sets: 10, namespace: "bench"},
		{segments: *large, rate: 400, latency: 5 * time.Millisecond, drift: 30 * time.Second, workers: 16,
			apiQPS: 400, apiBurst: 20, kubeQPS: 1000, members: 50, steady: true, cost: true, namespace: "bench"},
		{segments: *large, rate: 400, latency: 5 * time.Millisecond, drift: 30 * time.Second, workers: 16,
			apiQPS: 200, apiBurst: 10, kubeQPS: 500, members: 50, shards: 2, namespace: "bench"},
		{segments: 100, rate: 100, latency: 5 * time.Millisecond, drift: 30 * time.Second, workers: 16,
			apiQPS: 100, apiBurst: 10, kubeQPS: 500, fromConfigMaps: 10_000, steady: true, namespace: "bench"},
		{segments: 1, rate: 100, latency: 5 * time.Millisecond, drift: 30 * time.Second, workers: 16,
			apiQPS: 100, apiBurst: 10, kubeQPS: 500, fromConfigMaps: 100_000, steady: true, namespace: "bench"},
	} {
		if r.segments == 0 || (r.fromConfigMaps > 0 && !*big) || (r.sets > 0 && !*shared) || (r.shards > 1 && !*sharded) {
			continue
		}
		out, err := r.run(ctx, root)
		rows = append(rows, out...)
		if err != nil {
			printTable(rows)
			fatal(err)
		}
	}
	var table string
	if len(rows) > 0 {
		table = printTable(rows)
	}
	if *fair > 0 {
		line, err := fairness(ctx, root, *fair)
		if err != nil {
			fatal(err)
		}
		fmt.Println("\n" + line)
		table += "\n" + line + "\n"
	}
	if *hostileN > 0 {
		lines, err := hostile(ctx, root, *hostileN)
		if err != nil {
			fatal(err)
		}
		fmt.Println("\n" + lines)
		table += "\n" + lines + "\n"
	}
	dir := filepath.Join(root, "bin", "bench")
	_ = os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, "results.txt")
	header := fmt.Sprintf("# make bench, %s, %s\n", time.Now().UTC().Format(time.RFC3339), hostSummary())
	if err := os.WriteFile(file, []byte(header+table), 0o644); err != nil {
		fatal(err)
	}
	fmt.Printf("\nwritten to %s\n", file)
}

func (r run) run(ctx context.Context, root string) ([]row, error) {
	work, err := os.MkdirTemp("", "segment-bench-")
	if err != nil {
		return nil, err
	}
	defer removeWork(work)
	log("%d Segments: starting control plane, simulator (%.0f calls/s, %s latency) and manager", r.segments, r.rate, r.latency)
	m, err := r.managers()
	if err != nil {
		return nil, err
	}
	args, shardArgs, metricsURLs, pprofAddr := m.args, m.shardArgs, m.metricsURLs, m.pprofAddr
	env, c, err := startEnv(localenv.Options{
		Root: root, WorkDir: work, Token: "bench-token", DriftInterval: r.drift,
		SimulatorArgs: []string{"--rate-limit", ftoa(r.rate), "--latency", r.latency.String()},
		ManagerArgs:   args,
		AuditPolicy:   auditPolicy,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	b := &bench{r: r, total: r.segments, env: env, c: c, metricsURLs: metricsURLs,
		audit: &auditCounter{path: env.AuditLog, user: localenv.ManagerUser}}
	defer func() {
		if _, err := b.audit.read(); err == nil {
			log("audit log: %d accepted and %d refused writes by the manager counted; %d by other users (the bench's) left out",
				b.audit.counts.Segment+b.audit.counts.Status+b.audit.counts.Events, b.audit.counts.Refused, b.audit.others)
		}
	}()
	if err := b.ensureNamespace(ctx); err != nil {
		return nil, err
	}

	var rows []row
	// Cold start: the manager starts with every Segment already applied, as after an
	// install or a restore; creating them first keeps the control plane's own work out of
	// the figure.
	log("creating %d Segments", r.segments)
	if err := b.createAll(ctx); err != nil {
		return rows, err
	}
	name := "cold start"
	switch {
	case r.sets > 0:
		name = fmt.Sprintf("cold start, %d member sets", r.sets)
	case r.fromConfigMaps > 0:
		name = fmt.Sprintf("cold start, %d members each from ConfigMaps", r.fromConfigMaps)
	case r.shards > 1:
		name = fmt.Sprintf("cold start, %d shards", r.shards)
	}
	log("%s", name)
	before := b.snapshot(ctx)
	if err := env.StartManager(); err != nil {
		return rows, err
	}
	if shardArgs != nil {
		if err := env.StartShard("b", shardArgs...); err != nil {
			return rows, err
		}
	}
	var profiled chan error
	if pprofAddr != "" {
		profiled = make(chan error, 1)
		go func() {
			profiled <- saveProfile(ctx, root, pprofAddr, "profile?seconds=60", fmt.Sprintf("cold-%d.cpu.pprof", r.segments))
		}()
	}
	cold, err := b.measure(ctx, name, before, time.Now())
	if err != nil {
		return rows, err
	}
	if profiled != nil {
		if err := errors.Join(<-profiled, saveProfile(ctx, root, pprofAddr, "heap", fmt.Sprintf("cold-%d.heap.pprof", r.segments))); err != nil {
			return rows, err
		}
	}
	cold.perSegment = true
	log("%s: %.1f reconciles per Segment", name, b.reconciles(ctx)/float64(b.total))
	rows = append(rows, cold)

	if r.steady {
		intervals := 3
		log("steady state: %d drift intervals of %s", intervals, r.drift)
		before := b.snapshot(ctx)
		start := time.Now()
		select {
		case <-time.After(time.Duration(intervals) * r.drift):
		case <-ctx.Done():
			return rows, ctx.Err()
		}
		rows = append(rows, b.row(ctx, fmt.Sprintf("steady (%d x %s)", intervals, r.drift), before, time.Since(start), 0))
	}

	if r.batches {
		for _, step := range []struct {
			name string
			do   func() error
		}{
			{"rename 10%", func() error { return b.rename(r.segments / 10) }},
			{"100 new", func() error { return b.createRange(ctx, b.total, 100) }},
		} {
			log("%s", step.name)
			before := b.snapshot(ctx)
			start := time.Now()
			if err := step.do(); err != nil {
				return rows, err
			}
			out, err := b.measure(ctx, step.name, before, start)
			if err != nil {
				return rows, err
			}
			rows = append(rows, out)
		}
	}

	if r.churn {
		name := "churn (10% rename, 10% +1 member)"
		log("%s", name)
		before := b.snapshot(ctx)
		start := time.Now()
		if err := b.churn(); err != nil {
			return rows, err
		}
		churn, err := b.measure(ctx, name, before, start)
		if err != nil {
			return rows, err
		}
		rows = append(rows, churn)
	}
	return rows, nil
}

// managers are the flags of a run's managers: the first one's, the second shard's (nil:
// none), where each serves its metrics, and its pprof endpoints ("": none).
type managers struct {
	args, shardArgs []string
	metricsURLs     []string
	pprofAddr       string
}

func (r run) managers() (managers, error) {
	// Readiness is read from the managers' own metric, not by listing every Segment from
	// the API server, which on a small machine would be load of its own.
	metricsAddr, err := freeAddr()
	if err != nil {
		return managers{}, err
	}
	m := managers{metricsURLs: []string{"http://" + metricsAddr + "/metrics"}}
	m.args = []string{"--max-concurrent-reconciles", strconv.Itoa(r.workers),
		"--chatbot-api-qps", ftoa(r.apiQPS), "--chatbot-api-burst", strconv.Itoa(r.apiBurst),
		"--kube-api-qps", strconv.Itoa(r.kubeQPS), "--kube-api-burst", strconv.Itoa(2 * r.kubeQPS),
		"--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--zap-log-level", "error",
		"--member-record-namespace", r.namespace}
	if r.shards > 1 {
		addr, err := freeAddr()
		if err != nil {
			return managers{}, err
		}
		m.metricsURLs = append(m.metricsURLs, "http://"+addr+"/metrics")
		m.shardArgs = append(slices.Clone(m.args), "--watch-label-selector", shard.Key+"=b")
		m.shardArgs[slices.Index(m.shardArgs, metricsAddr)] = addr
		m.args = append(m.args, "--watch-label-selector", shard.Key+"=a")
	}
	if profile && r.cost {
		if m.pprofAddr, err = freeAddr(); err != nil {
			return managers{}, err
		}
		m.args = append(m.args, "--pprof-bind-address", m.pprofAddr)
	}
	return m, nil
}

type bench struct {
	r           run
	total       int // Segments applied
	env         *localenv.Env
	c           client.Client
	metricsURLs []string // one per manager
	audit       *auditCounter
}

// snapshot is what the counts are at a moment: the simulator's remote calls and the
// manager's Kubernetes writes.
type snapshot struct {
	remote simulator.Counts
	kube   kubeWrites
}

// measure waits until every Segment is Ready for its generation after a change made since
// start, then until the manager's Kubernetes writes settle, and returns the scenario's row.
func (b *bench) measure(ctx context.Context, name string, before snapshot, start time.Time) (row, error) {
	if err := b.waitAllReady(ctx, 30*time.Minute); err != nil {
		return row{}, err
	}
	wall := time.Since(start)
	after := b.counts(ctx)
	calls := after.Writes() - before.remote.Writes() + after.Succeeded["list"] - before.remote.Succeeded["list"]
	bound := time.Duration(float64(calls) / b.r.rate * float64(time.Second))
	if err := b.settleWrites(ctx); err != nil {
		return row{}, err
	}
	return b.row(ctx, name, before, wall, bound), nil
}

// settleWrites waits until the manager's Kubernetes writes have stopped for two seconds
// (at most 30): the manager sends Events in the background, so some reach the API server
// after the last Segment is Ready.
func (b *bench) settleWrites(ctx context.Context) error {
	last := b.kubeWrites()
	quiet := time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(quiet) < 2*time.Second && time.Now().Before(deadline); {
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if now := b.kubeWrites(); now != last {
			last, quiet = now, time.Now()
		}
	}
	return nil
}

func (b *bench) row(ctx context.Context, name string, before snapshot, wall, bound time.Duration) row {
	after := b.snapshot(ctx)
	d := func(ep simulator.Endpoint) int64 { return after.remote.Succeeded[ep] - before.remote.Succeeded[ep] }
	rss, cpu := procStats(b.env.ManagerPID())
	if b.r.shards > 1 { // the managers' together
		r, c := procStats(b.env.ShardPID("b"))
		rss, cpu = rss+r, cpu+c
	}
	return row{scenario: name, segments: b.total, creates: d("create"), renames: d("rename"), adds: d("add"),
		lists: d("list"), throttle: after.remote.Throttled - before.remote.Throttled, kube: after.kube.minus(before.kube),
		wall: wall, bound: bound, rssMiB: rss, cpuSeconds: cpu}
}

func (b *bench) snapshot(ctx context.Context) snapshot {
	return snapshot{remote: b.counts(ctx), kube: b.kubeWrites()}
}

func (b *bench) counts(ctx context.Context) simulator.Counts {
	st, err := b.env.SimState(ctx)
	if err != nil {
		fatal(err)
	}
	return st.Counts
}

func (b *bench) kubeWrites() kubeWrites {
	w, err := b.audit.read()
	if err != nil {
		fatal(err)
	}
	return w
}

func (b *bench) ensureNamespace(ctx context.Context) error {
	_, err := b.env.Kubectl(ctx, nil, "create", "namespace", b.r.namespace)
	return err
}

// createAll creates the Segments, 50 members each: every member set distinct, or r.sets
// sets shared round-robin; or r.fromConfigMaps members each, from ConfigMaps.
func (b *bench) createAll(ctx context.Context) error {
	if b.r.fromConfigMaps > 0 {
		return parallel(b.r.segments, 8, func(i int) error { return b.createFromConfigMaps(ctx, i) })
	}
	return b.createRange(ctx, 0, b.r.segments)
}

// createRange creates n Segments from the i-th on, and counts them in b.total when they
// are new.
func (b *bench) createRange(ctx context.Context, from, n int) error {
	b.total = max(b.total, from+n)
	return parallel(n, 32, func(j int) error {
		i := from + j
		set := i
		if b.r.sets > 0 {
			set = i % b.r.sets
		}
		members := make([]string, b.r.members)
		for m := range members {
			members[m] = fmt.Sprintf("u%06dm%03d", set, m)
		}
		seg := &usersv1alpha1.Segment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("seg-%06d", i), Namespace: b.r.namespace},
			Spec:       usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Segment %d", i), Members: members},
		}
		if b.r.shards > 1 { // half on each shard
			seg.Labels = map[string]string{shard.Key: string(rune('a' + i%2))}
		}
		return b.c.Create(ctx, seg)
	})
}

// createFromConfigMaps creates Segment i with r.fromConfigMaps members of its own, in
// ConfigMaps of at most 50,000 IDs (one per line, 12 bytes a line).
func (b *bench) createFromConfigMaps(ctx context.Context, i int) error {
	const perConfigMap = 50_000
	seg := &usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("seg-%06d", i), Namespace: b.r.namespace},
		Spec:       usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Segment %d", i)},
	}
	for first := 0; first < b.r.fromConfigMaps; first += perConfigMap {
		var ids strings.Builder
		for m := first; m < min(first+perConfigMap, b.r.fromConfigMaps); m++ {
			fmt.Fprintf(&ids, "s%04dm%06d\n", i, m)
		}
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", seg.Name, first/perConfigMap), Namespace: b.r.namespace,
				Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}},
			Data: map[string]string{"ids": ids.String()},
		}
		if err := b.c.Create(ctx, cm); err != nil {
			return err
		}
		seg.Spec.MembersFrom = append(seg.Spec.MembersFrom, usersv1alpha1.MembersSource{ConfigMap: cm.Name, Key: "ids"})
	}
	return b.c.Create(ctx, seg)
}

// rename renames the first n Segments.
func (b *bench) rename(n int) error {
	ctx := context.Background()
	return parallel(n, 32, func(i int) error {
		var seg usersv1alpha1.Segment
		if err := b.c.Get(ctx, client.ObjectKey{Namespace: b.r.namespace, Name: fmt.Sprintf("seg-%06d", i)}, &seg); err != nil {
			return err
		}
		patch := client.MergeFrom(seg.DeepCopy())
		seg.Spec.Name += " (batch)"
		return b.c.Patch(ctx, &seg, patch)
	})
}

// churn renames the first 10% and adds a member to the next 10%.
func (b *bench) churn() error {
	ctx := context.Background()
	tenth := b.r.segments / 10
	return parallel(2*tenth, 32, func(i int) error {
		var seg usersv1alpha1.Segment
		key := client.ObjectKey{Namespace: b.r.namespace, Name: fmt.Sprintf("seg-%06d", i)}
		if err := b.c.Get(ctx, key, &seg); err != nil {
			return err
		}
		patch := client.MergeFrom(seg.DeepCopy())
		if i < tenth {
			seg.Spec.Name += " (renamed)"
		} else {
			seg.Spec.Members = append(seg.Spec.Members, fmt.Sprintf("u%06dnew", i))
		}
		return b.c.Patch(ctx, &seg, patch)
	})
}

// waitAllReady waits until the manager reports every Segment Ready for its current
// generation (segment_operator_segments{ready="True"}, summed over reasons).
func (b *bench) waitAllReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ready, err := b.readySegments(ctx)
		if err == nil && ready == b.total {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Segments Ready after %s (%v); manager log: %s", ready, b.total, limit, err, b.env.ManagerLog)
		}
		select {
		case <-time.After(b.pollEvery()):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pollEvery is how often readiness is read from the managers' metrics: 4 times a second,
// but once a second past 2,000 Segments, where each scrape (which reads every Segment of
// the cache) would be a cost of the bench's own in the manager's CPU figure (8% of it at
// 10,000 Segments, profiled).
func (b *bench) pollEvery() time.Duration {
	if b.total > 2000 {
		return time.Second
	}
	return 250 * time.Millisecond
}

// readySegments adds the Ready Segments each manager reports (a shard counts its own).
func (b *bench) readySegments(ctx context.Context) (int, error) {
	total := 0
	for _, u := range b.metricsURLs {
		n, err := readyOf(ctx, u)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func readyOf(ctx context.Context, metricsURL string) (int, error) {
	// One series per reason: Synced, Observed, DriftDetected...
	ready, found, err := sumOf(ctx, metricsURL, `segment_operator_segments{ready="True",`)
	if err == nil && !found {
		err = fmt.Errorf("no Ready segment_operator_segments series yet")
	}
	return int(ready), err
}

// reconciles is how many reconciles of Segments the managers have made, of every result.
func (b *bench) reconciles(ctx context.Context) float64 {
	total := 0.0
	for _, u := range b.metricsURLs {
		n, _, err := sumOf(ctx, u, `controller_runtime_reconcile_total{controller="segment",`)
		if err != nil {
			return 0
		}
		total += n
	}
	return total
}

// sumOf adds the values of a manager's metric series whose line starts with prefix.
func sumOf(ctx context.Context, metricsURL, prefix string) (sum float64, found bool, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			_, v, _ = strings.Cut(v, "} ")
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, false, err
			}
			sum, found = sum+n, true
		}
	}
	return sum, found, sc.Err()
}
