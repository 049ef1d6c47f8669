package remote

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

// gate is a client-side rate limit that lets no call go until opened: calls wait exactly
// as they would for a busy limiter, for as long as the test wants.
type gate struct{ open chan struct{} }

func (g gate) Wait(ctx context.Context) error {
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SimulatedClient starts a simulator and returns it with a client of it, made with opts.
// (Exported for the external test package too.)
func SimulatedClient(t *testing.T, opts ...chatbot.Option) (*simulator.Server, *chatbot.Client) {
	t.Helper()
	sim, err := simulator.New(simulator.Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := chatbot.New(srv.URL, "t", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func adderSetup(t *testing.T, limiter chatbot.Limiter) (*simulator.Server, *MemberAdder) {
	t.Helper()
	var opts []chatbot.Option
	if limiter != nil {
		opts = append(opts, chatbot.WithLimiter(limiter))
	}
	sim, c := SimulatedClient(t, opts...)
	return sim, NewMemberAdder(c)
}

// waiting is how many requests wait for their call.
func (m *MemberAdder) waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queued
}

// addAll adds users to every id at once and returns each request's outcome, once the
// requests are all waiting for the gate and it has been opened.
func addAll(t *testing.T, m *MemberAdder, g gate, ids, users []string) (added []int, errs []error) {
	t.Helper()
	added, errs = make([]int, len(ids)), make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { added[i], errs[i] = m.Add(context.Background(), id, users) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for m.waiting() < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests joined a call", m.waiting(), len(ids))
		}
		time.Sleep(time.Millisecond)
	}
	close(g.open)
	wg.Wait()
	return added, errs
}

func members(t *testing.T, sim *simulator.Server, id string) []string {
	t.Helper()
	seg, ok := sim.Segment(id)
	if !ok {
		t.Fatalf("segment %s is gone", id)
	}
	return seg.Members
}

// Requests for the same users that arrive while the rate limit holds calls back share one
// call per 100 segments: 150 Segments with one member set cost 2 calls, not 150.
func TestMemberAdderMergesIdenticalSetsWhileWaiting(t *testing.T) {
	g := gate{open: make(chan struct{})}
	sim, m := adderSetup(t, g)
	users := []string{"u1", "u2", "u3"}
	ids := make([]string, 150)
	for i := range ids {
		ids[i] = sim.Create(fmt.Sprintf("s%d", i))
	}
	added, errs := addAll(t, m, g, ids, users)
	for i, id := range ids {
		if errs[i] != nil || added[i] != len(users) {
			t.Fatalf("segment %d: added %d, err %v", i, added[i], errs[i])
		}
		if got := members(t, sim, id); !slices.Equal(got, users) {
			t.Fatalf("segment %d has members %v, want %v", i, got, users)
		}
	}
	if got := sim.Counts().Requests[simulator.EndpointAdd]; got != 2 {
		t.Fatalf("add calls = %d, want 2 (100 + 50 segments)", got)
	}
}

// Different member sets never share a call: that would add users to segments that do not
// want them, and they could never be removed.
func TestMemberAdderKeepsDifferentSetsApart(t *testing.T) {
	g := gate{open: make(chan struct{})}
	sim, m := adderSetup(t, g)
	a, b := sim.Create("a"), sim.Create("b")
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = m.Add(context.Background(), a, []string{"u1"}) })
	wg.Go(func() { _, _ = m.Add(context.Background(), b, []string{"u1", "u2"}) })
	for m.waiting() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(g.open)
	wg.Wait()
	if got := members(t, sim, a); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("a has %v", got)
	}
	if got := members(t, sim, b); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("b has %v", got)
	}
	if got := sim.Counts().Requests[simulator.EndpointAdd]; got != 2 {
		t.Fatalf("add calls = %d, want 2", got)
	}
}

// One segment deleted out of band makes a shared call fail with 404 for all; each request
// is then retried alone, so only the missing segment's Segment hears 404 (and recreates
// it), while the others get their members.
func TestMemberAdderRetriesAloneWhenASharedCallIsRefused(t *testing.T) {
	g := gate{open: make(chan struct{})}
	sim, m := adderSetup(t, g)
	ids := []string{sim.Create("a"), sim.Create("gone"), sim.Create("c")}
	sim.Delete(ids[1])
	added, errs := addAll(t, m, g, ids, []string{"u1"})
	for _, i := range []int{0, 2} {
		if errs[i] != nil || added[i] != 1 {
			t.Fatalf("segment %d: added %d, err %v", i, added[i], errs[i])
		}
		if got := members(t, sim, ids[i]); !slices.Equal(got, []string{"u1"}) {
			t.Fatalf("segment %d has %v", i, got)
		}
	}
	if !chatbot.IsNotFound(errs[1]) || added[1] != 0 {
		t.Fatalf("deleted segment: added %d, err %v; want 0 and a 404", added[1], errs[1])
	}
	if got := sim.Counts().Requests[simulator.EndpointAdd]; got != 4 {
		t.Fatalf("add calls = %d, want 4 (1 shared, 3 alone)", got)
	}
}

// A shared call that fails for a reason of the whole account (a 5xx) is reported to every
// request as it is, without a call per segment, and the next requests start a new call.
func TestMemberAdderReportsServerErrorsToAll(t *testing.T) {
	g := gate{open: make(chan struct{})}
	sim, m := adderSetup(t, g)
	if err := sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 503, Endpoints: []simulator.Endpoint{simulator.EndpointAdd}}); err != nil {
		t.Fatal(err)
	}
	ids := []string{sim.Create("a"), sim.Create("b")}
	added, errs := addAll(t, m, g, ids, []string{"u1"})
	for i := range ids {
		apiErr, ok := chatbot.AsAPIError(errs[i])
		if !ok || apiErr.StatusCode != 503 || added[i] != 0 {
			t.Fatalf("segment %d: added %d, err %v; want 0 and a 503", i, added[i], errs[i])
		}
	}
	if got := sim.Counts().Requests[simulator.EndpointAdd]; got != 1 {
		t.Fatalf("add calls = %d, want 1", got)
	}
	if n, err := m.Add(context.Background(), ids[0], []string{"u1"}); err != nil || n != 1 {
		t.Fatalf("add after the failure: %d, %v", n, err)
	}
	if got := members(t, sim, ids[0]); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("a has %v", got)
	}
}

// Without a rate limit to wait for, a request goes at once, alone; more than 1000 users go
// in batches like chatbot.Client.AddMembers.
func TestMemberAdderIdleAndLargeSets(t *testing.T) {
	sim, m := adderSetup(t, nil)
	id := sim.Create("a")
	if n, err := m.Add(context.Background(), id, []string{"u1"}); err != nil || n != 1 {
		t.Fatalf("add: %d, %v", n, err)
	}
	users := make([]string, 2500)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
	}
	if n, err := m.Add(context.Background(), id, users); err != nil || n != len(users) {
		t.Fatalf("add 2500: %d, %v", n, err)
	}
	if got := len(members(t, sim, id)); got != 2501 {
		t.Fatalf("members = %d, want 2501", got)
	}
	if got := sim.Counts().Requests[simulator.EndpointAdd]; got != 4 {
		t.Fatalf("add calls = %d, want 4 (1 + 3 batches)", got)
	}
	if m.waiting() != 0 {
		t.Fatalf("%d requests still waiting", m.waiting())
	}
}

// A caller that gives up stops waiting; the call still goes for the others.
func TestMemberAdderCallerGivesUp(t *testing.T) {
	g := gate{open: make(chan struct{})}
	sim, m := adderSetup(t, g)
	a, b := sim.Create("a"), sim.Create("b")
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	go func() { _, err := m.Add(ctx, a, []string{"u1"}); gaveUp <- err }()
	for m.waiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("cancelled Add returned no error")
	}
	added, errs := addAll(t, m, g, []string{b}, []string{"u1"})
	if errs[0] != nil || added[0] != 1 {
		t.Fatalf("b: added %d, err %v", added[0], errs[0])
	}
	if got := members(t, sim, b); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("b has %v", got)
	}
}
