package main

import (
	"context"
	"fmt"
	"os"
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

// fairness measures what one tenant's backlog costs others: account A's Segments (one
// namespace's) wait for turns at a client-side limit of 1 call/s when one Segment of
// account B, and one of another namespace on account A, are applied; the figures are how
// long each takes to be Ready. The two accounts are one simulator reached by two spellings
// of its address (127.0.0.1 and localhost) with one token: to the manager, two accounts,
// each with its own rate limit and share of the workers; the simulator's own limit is set
// high enough not to matter.
func fairness(ctx context.Context, root string, segments int) (string, error) {
	work, err := os.MkdirTemp("", "segment-bench-")
	if err != nil {
		return "", err
	}
	defer removeWork(work)
	const workers = 16 // the default
	log("fairness: %d Segments of account A at 1 call/s, then one of account B", segments)
	env, c, err := startEnv(localenv.Options{
		Root: root, WorkDir: work, Token: "bench-token", DriftInterval: 10 * time.Minute,
		SimulatorArgs: []string{"--rate-limit", "1000", "--latency", "50ms"},
		ManagerArgs: []string{"--max-concurrent-reconciles", strconv.Itoa(workers),
			"--chatbot-api-qps", "1", "--chatbot-api-burst", "1", "--allowed-api-urls", "*",
			"--kube-api-qps", "200", "--kube-api-burst", "400", "--zap-log-level", "error"},
	})
	if err != nil {
		return "", err
	}
	defer func() { _ = env.Stop() }()
	for _, ns := range []string{"account-a", "account-b"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return "", err
		}
	}
	// The manager runs before A's Segments come, as when a tenant applies them: their
	// reconciles are queued as B's will be, not behind it as a cold start's are.
	if err := env.StartManager(); err != nil {
		return "", err
	}
	if err := parallel(segments, 32, func(i int) error {
		return c.Create(ctx, &usersv1alpha1.Segment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("seg-%06d", i), Namespace: "account-a"},
			Spec:       usersv1alpha1.SegmentSpec{Members: []string{fmt.Sprintf("u%06d", i)}},
		})
	}); err != nil {
		return "", err
	}
	// A's backlog (2 calls a Segment: 2,000 s of turns at 1 call/s) forms in the first
	// seconds; B's Segment comes when the manager has worked on A for a while.
	select {
	case <-time.After(20 * time.Second):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	// Those with a status: worked on, or further.
	waiting, err := countIn(ctx, c, "account-a", func(r *metav1.Condition) bool { return r != nil })
	if err != nil {
		return "", err
	}

	other := strings.Replace(env.SimURL, "127.0.0.1", "localhost", 1)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "account-a-neighbour"}}); err != nil {
		return "", err
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "chatbot", Namespace: "account-b", Labels: map[string]string{usersv1alpha1.CredentialsLabel: "true"}},
		StringData: map[string]string{"token": "bench-token", "apiURL": other},
	}); err != nil {
		return "", err
	}
	// B's Segment is another account's; the neighbour's is another namespace's on A's
	// account (the manager's own token, as every namespace granted it shares).
	b := &usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "account-b"},
		Spec:       usersv1alpha1.SegmentSpec{Members: []string{"b1"}, CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "chatbot"}},
	}
	neighbour := &usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "account-a-neighbour"},
		Spec:       usersv1alpha1.SegmentSpec{Members: []string{"n1"}},
	}
	segs := []*usersv1alpha1.Segment{b, neighbour}
	start := time.Now()
	for _, seg := range segs {
		if err := c.Create(ctx, seg); err != nil {
			return "", err
		}
	}
	// Both watched at once: each figure is when its Segment was first seen Ready.
	const limit = 3 * time.Minute
	readyAt := make([]time.Duration, len(segs))
	if err := waitFor(ctx, limit, func() (bool, error) {
		done := true
		for i, seg := range segs {
			if readyAt[i] > 0 {
				continue
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(seg), seg); err != nil {
				return false, err
			}
			if meta.IsStatusConditionTrue(seg.Status.Conditions, usersv1alpha1.ConditionReady) {
				readyAt[i] = time.Since(start)
			} else {
				done = false
			}
		}
		return done, nil
	}); err != nil && ctx.Err() != nil {
		return "", err
	}
	ready := make([]string, len(segs))
	for i, d := range readyAt {
		ready[i] = "Ready " + d.Round(10*time.Millisecond).String() + " after it was applied"
		if d == 0 {
			ready[i] = "Ready " + limit.String() + " later (or more: the bench stopped waiting)"
		}
	}
	readyB, readyN := ready[0], ready[1]
	readyA, err := countIn(ctx, c, "account-a", func(r *metav1.Condition) bool { return r != nil && r.Status == metav1.ConditionTrue })
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("fairness: account A has %d Segments waiting at 1 call/s (%d workers; %d with a status when the others came); "+
		"a Segment of account B was %s, and one of another namespace on account A %s (A: %d Ready by then)",
		segments, workers, waiting, readyB, readyN, readyA), nil
}

// countIn counts the namespace's Segments whose Ready condition passes pred (nil: absent).
func countIn(ctx context.Context, c client.Client, ns string, pred func(*metav1.Condition) bool) (int, error) {
	var list usersv1alpha1.SegmentList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		if pred(meta.FindStatusCondition(s.Status.Conditions, usersv1alpha1.ConditionReady)) {
			n++
		}
	}
	return n, nil
}

func waitFor(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var err error
	for {
		var ok bool
		if ok, err = done(); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %s (%v)", limit, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
