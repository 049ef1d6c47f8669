package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/test/localenv"
)

// The hostile-tenant scenario (issue 20, "No tenant can exhaust the manager"): what one
// tenant with only the edit role in its namespace can cost the manager and the others.
const (
	// hostileMemLimit is the manager's GOMEMLIMIT in both runs: 90% of the install's 384Mi
	// limit, as the install sets it.
	hostileMemLimit = "345MiB"
	// hostileRSSTarget (MiB) is half the install's 384Mi limit.
	hostileRSSTarget = 192.0
	// hostileRSSGuard (MiB): past it the manager is killed and the run reported, to protect
	// the machine (the unfixed manager grows by gigabytes a minute).
	hostileRSSGuard = 2048.0
	// hostileSlack is how much slower than the baseline the victim may be.
	hostileSlack = 5 * time.Second
	// hostileLead is how long the attack runs before the victim applies its Segments.
	hostileLead = 10 * time.Second
	// hostileHold is the least time the manager is watched, victim Ready or not.
	hostileHold = 30 * time.Second
	// hostileLimit bounds the wait for the victim's Segments (and the attacker's statuses).
	hostileLimit = 3 * time.Minute

	attackSegments   = 8
	attackConfigMaps = 8
	attackKeys       = 2       // per ConfigMap: 16 keys in all, spec.membersFrom's most
	attackIDs        = 120_000 // per key: a Segment's most members, so that each key alone is accepted
)

// hostileRun is what one run of the scenario measured.
type hostileRun struct {
	peakMiB, cpuSeconds float64
	guarded             bool          // the manager passed hostileRSSGuard and was killed
	ready               time.Duration // until every victim Segment was Ready; 0: not within hostileLimit
	victimsReady        int
	attacker            map[string]int // the attacker's Segments by their Ready (and Stalled) conditions
}

// hostile runs the scenario twice, each time on a fresh control plane, simulator and
// manager: a baseline, then with the attack. In namespace "attacker", with a credentials
// Secret of its own (another account, as a real tenant's token would be), 8 Segments each
// name all 16 keys of 8 ConfigMaps, each key 120,000 distinct IDs gzip-compressed in
// binaryData: 1.92 million IDs a Segment, 16 times the most a Segment may have, so each must
// end Stalled (MembersSourceError). 10 s into the attack (or the baseline's quiet), namespace
// "victim" applies `victims` Segments of 50 members; the figures are how long they take to
// be Ready, and the manager's peak RSS.
func hostile(ctx context.Context, root string, victims int) (string, error) {
	base, err := hostileOnce(ctx, root, victims, false)
	if err != nil {
		return "", err
	}
	att, err := hostileOnce(ctx, root, victims, true)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "hostile tenant: manager with GOMEMLIMIT=%s (90%% of the install's 384Mi) in both runs; "+
		"targets: peak RSS below %.0f MiB (half the 384Mi limit), victim Ready no more than %s later than baseline\n",
		hostileMemLimit, hostileRSSTarget, hostileSlack)
	fmt.Fprintf(&sb, "  baseline: %s\n", base.describe(victims, 0))
	fmt.Fprintf(&sb, "  attack (%d Segments x %d keys x %d IDs, gzip in %d ConfigMaps): %s; attacker's Segments: %s",
		attackSegments, attackConfigMaps*attackKeys, attackIDs, attackConfigMaps, att.describe(victims, base.ready), att.attackerSummary())
	return sb.String(), nil
}

// describe is the run's figures; against the baseline's time to Ready, if one is given.
func (h hostileRun) describe(victims int, baseline time.Duration) string {
	ready := fmt.Sprintf("victim's %d Segments Ready in %s", victims, h.ready.Round(10*time.Millisecond))
	switch {
	case h.ready == 0 && h.guarded:
		ready = fmt.Sprintf("victim's Segments not Ready when the manager was killed (%d of %d Ready)", h.victimsReady, victims)
	case h.ready == 0:
		ready = fmt.Sprintf("victim's Segments not Ready after %s (%d of %d Ready)", hostileLimit, h.victimsReady, victims)
	}
	if baseline > 0 {
		ready += " (" + verdict(h.ready > 0 && h.ready <= baseline+hostileSlack) + ")"
	}
	rss := fmt.Sprintf("manager peak RSS %.0f MiB (%s)", h.peakMiB, verdict(h.peakMiB < hostileRSSTarget))
	if h.guarded {
		rss += fmt.Sprintf(", killed when it passed %.0f MiB", hostileRSSGuard)
	}
	return fmt.Sprintf("%s; %s, %.1f CPU-s", ready, rss, h.cpuSeconds)
}

func verdict(met bool) string {
	if met {
		return "target met"
	}
	return "target MISSED"
}

func (h hostileRun) attackerSummary() string {
	if len(h.attacker) == 0 {
		return "none listed"
	}
	var parts []string
	for k, n := range h.attacker {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(parts)
	stalled := h.attacker["Ready=False "+usersv1alpha1.ReasonMembersSourceError+", Stalled"]
	return fmt.Sprintf("%s (target: all %d Stalled, Ready=False %s: %s)", strings.Join(parts, "; "), attackSegments,
		usersv1alpha1.ReasonMembersSourceError, verdict(stalled == attackSegments))
}

// hostileOnce is one run; an attack if attack is set. The manager killed at the guard is a
// result, not an error.
func hostileOnce(ctx context.Context, root string, victims int, attack bool) (out hostileRun, err error) {
	work, err := os.MkdirTemp("", "segment-bench-")
	if err != nil {
		return out, err
	}
	defer removeWork(work)
	name := "baseline"
	if attack {
		name = "attack"
	}
	log("hostile tenant, %s: %d victim Segments", name, victims)
	env, c, err := startEnv(localenv.Options{
		Root: root, WorkDir: work, Token: "bench-token", DriftInterval: 10 * time.Minute,
		SimulatorArgs: []string{"--rate-limit", "100", "--latency", "5ms"},
		// --allowed-api-urls: the attacker's Secret names the simulator as "localhost", which
		// makes it another account (see fairness).
		ManagerArgs: []string{"--chatbot-api-qps", "100", "--chatbot-api-burst", "10", "--allowed-api-urls", "*",
			"--kube-api-qps", "500", "--kube-api-burst", "1000", "--zap-log-level", "error"},
	})
	if err != nil {
		return out, err
	}
	defer func() { _ = env.Stop() }()
	for _, ns := range []string{"attacker", "victim"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return out, err
		}
	}
	var attackObjs []client.Object
	if attack {
		if attackObjs, err = attackObjects(strings.Replace(env.SimURL, "127.0.0.1", "localhost", 1)); err != nil {
			return out, err
		}
	}

	if err := startManagerWithMemLimit(env); err != nil {
		return out, err
	}
	start := time.Now()
	// The guard cancels runCtx, which ends every wait below.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	peak := watchPeak(runCtx, env.ManagerPID(), hostileRSSGuard, cancel)
	defer func() {
		out.peakMiB, out.cpuSeconds, out.guarded = peak.result()
		log("hostile tenant, %s: manager peak RSS %.0f MiB", name, out.peakMiB)
	}()

	if attack {
		log("attack: a Secret, %d ConfigMaps and %d Segments in namespace attacker", attackConfigMaps, attackSegments)
		for _, o := range attackObjs {
			if err := c.Create(runCtx, o); err != nil {
				if peak.over() {
					break
				}
				return out, fmt.Errorf("attack: create %T %s: %w", o, o.GetName(), err)
			}
		}
	}
	// A guard that kills the manager ends the waits below; what the attacker's Segments came
	// to is read all the same.
	if sleep(runCtx, time.Until(start.Add(hostileLead))) {
		if err := victimReady(runCtx, c, victims, &out); err != nil && !peak.over() {
			return out, err
		}
	}
	// The manager is watched for hostileHold at least, and until the attacker's Segments
	// have a status, within the victim's limit.
	seg := &usersv1alpha1.SegmentList{}
	_ = waitFor(runCtx, time.Until(start.Add(hostileLead+hostileLimit)), func() (bool, error) {
		if err := c.List(runCtx, seg, client.InNamespace("attacker")); err != nil {
			return false, err
		}
		for _, s := range seg.Items {
			if meta.FindStatusCondition(s.Status.Conditions, usersv1alpha1.ConditionReady) == nil {
				return false, nil
			}
		}
		return time.Since(start) >= hostileHold, nil
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	if attack {
		if err := c.List(ctx, seg, client.InNamespace("attacker")); err != nil {
			return out, err
		}
		out.attacker = map[string]int{}
		for _, s := range seg.Items {
			out.attacker[conditionSummary(s.Status.Conditions)]++
		}
	}
	return out, nil
}

// victimReady applies the victim's Segments, 50 members each as in the cold start, and
// waits until all are Ready, at most hostileLimit: it sets out.ready (0 if not within the
// limit) and out.victimsReady. Only the end of ctx is an error.
func victimReady(ctx context.Context, c client.Client, victims int, out *hostileRun) error {
	log("victim: %d Segments", victims)
	applied := time.Now()
	if err := parallel(victims, 32, func(i int) error {
		members := make([]string, 50)
		for m := range members {
			members[m] = fmt.Sprintf("u%06dm%03d", i, m)
		}
		return c.Create(ctx, &usersv1alpha1.Segment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("seg-%06d", i), Namespace: "victim"},
			Spec:       usersv1alpha1.SegmentSpec{Name: fmt.Sprintf("Segment %d", i), Members: members},
		})
	}); err != nil {
		return err
	}
	isReady := func(r *metav1.Condition) bool { return r != nil && r.Status == metav1.ConditionTrue }
	err := waitFor(ctx, hostileLimit, func() (bool, error) {
		n, err := countIn(ctx, c, "victim", isReady)
		out.victimsReady = max(out.victimsReady, n)
		return n == victims, err
	})
	if err == nil {
		out.ready = time.Since(applied)
		log("victim: %d Segments Ready in %s", victims, out.ready.Round(10*time.Millisecond))
	}
	return ctx.Err()
}

// conditionSummary is a Segment's Ready condition (status and reason), and whether it is
// Stalled.
func conditionSummary(conds []metav1.Condition) string {
	r := meta.FindStatusCondition(conds, usersv1alpha1.ConditionReady)
	if r == nil {
		return "no Ready condition"
	}
	s := fmt.Sprintf("Ready=%s %s", r.Status, r.Reason)
	if meta.IsStatusConditionTrue(conds, usersv1alpha1.ConditionStalled) {
		s += ", Stalled"
	}
	return s
}

// attackObjects are what the attacker applies: a credentials Secret naming the API at
// apiURL, the ConfigMaps and the Segments.
func attackObjects(apiURL string) ([]client.Object, error) {
	objs := []client.Object{&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "chatbot", Namespace: "attacker", Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
		StringData: map[string]string{usersv1alpha1.CredentialsTokenKey: "bench-token", usersv1alpha1.CredentialsURLKey: apiURL},
	}}
	var sources []usersv1alpha1.MembersSource
	packed := 0
	for i := range attackConfigMaps {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("members-%d", i), Namespace: "attacker",
				Labels: map[string]string{usersv1alpha1.MembersLabel: "true"}},
			BinaryData: map[string][]byte{},
		}
		for k := range attackKeys {
			key := "ids-" + strconv.Itoa(k)
			b, err := attackKey(i*attackKeys + k)
			if err != nil {
				return nil, err
			}
			packed += len(b)
			cm.BinaryData[key] = b
			sources = append(sources, usersv1alpha1.MembersSource{ConfigMap: cm.Name, Key: key})
		}
		objs = append(objs, cm)
	}
	for i := range attackSegments {
		objs = append(objs, &usersv1alpha1.Segment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("hostile-%d", i), Namespace: "attacker"},
			Spec: usersv1alpha1.SegmentSpec{MembersFrom: sources,
				CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "chatbot"}},
		})
	}
	log("attack prepared: %d keys, %d KB packed a key on average", len(sources), packed/len(sources)/1000)
	return objs, nil
}

// attackKey is key number k of the attack, gzip-compressed: attackIDs IDs of 33 characters,
// one a line. 34 bytes a line is the most that keeps 120,000 lines within the 4 MiB the
// manager reads of a key (4,080,000 bytes); a counter and one scrambled character pack to
// about 440 KB, near the reported attack's 460 KB, so that two keys fit a ConfigMap's 1 MiB.
func attackKey(k int) ([]byte, error) {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	w := make([]byte, 0, 34)
	for n := range attackIDs {
		w = fmt.Appendf(w[:0], "h%02dk%07dxxxxxxxxxxxxxxxxxxxxx%c\n", k, n, alnum[(uint32(n)*2654435761+12345)%62])
		if _, err := z.Write(w); err != nil {
			return nil, err
		}
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startManagerWithMemLimit starts the manager with GOMEMLIMIT set for it alone: localenv
// passes the bench's own environment to what it starts, and the control plane and
// simulator are running already.
func startManagerWithMemLimit(env *localenv.Env) error {
	prev, had := os.LookupEnv("GOMEMLIMIT")
	if err := os.Setenv("GOMEMLIMIT", hostileMemLimit); err != nil {
		return err
	}
	err := env.StartManager()
	if had {
		_ = os.Setenv("GOMEMLIMIT", prev)
	} else {
		_ = os.Unsetenv("GOMEMLIMIT")
	}
	return err
}
