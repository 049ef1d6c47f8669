package chatbot_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

const token = "s3cr3t-developer-token"

// newPair starts a simulator and returns it with a client pointed at it.
func newPair(t *testing.T, opts simulator.Options) (*simulator.Server, *chatbot.Client) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	sim, err := simulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := chatbot.New(srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func users(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

func TestEveryEndpointRoundTrip(t *testing.T) {
	sim, c := newPair(t, simulator.Options{})
	ctx := context.Background()

	before := time.Now().UTC().Add(-time.Second)
	created, err := c.CreateSegment(ctx, "Foo")
	if err != nil {
		t.Fatal(err)
	}
	id := created.ID
	if created.Name != "Foo" || created.CreatedAt.Before(before) {
		t.Errorf("created %+v", created)
	}
	if len(id) != 24 {
		t.Errorf("id %q: want 24 characters like the vendor's", id)
	}
	if n, err := c.AddMembers(ctx, []string{id}, []string{"u1", "u2", "u2"}); err != nil || n != 3 {
		t.Fatalf("AddMembers = %d, %v", n, err)
	}
	// Adding an existing member is a no-op: users counts distinct members.
	if _, err := c.AddMembers(ctx, []string{id}, []string{"u1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RenameSegment(ctx, id, "Bar"); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].Name != "Bar" || list[0].Users != 2 {
		t.Fatalf("list = %+v, want one segment %s named Bar with 2 users", list, id)
	}
	if got := list[0].CreatedAt.Time; got.Before(before) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("createdAt %v is not the creation time", got)
	}
	if seg, _ := sim.Segment(id); strings.Join(seg.Members, ",") != "u1,u2" {
		t.Errorf("simulator members = %v", seg.Members)
	}
	if err := c.DeleteSegment(ctx, id); err != nil {
		t.Fatal(err)
	}
	if list, err = c.ListSegments(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after delete: %v, %v", list, err)
	}
	got := sim.Counts().Succeeded
	for ep, want := range map[simulator.Endpoint]int64{"list": 2, "create": 1, "add": 2, "rename": 1, "delete": 1} {
		if got[ep] != want {
			t.Errorf("succeeded[%s] = %d, want %d", ep, got[ep], want)
		}
	}
}

func TestBatches(t *testing.T) {
	for _, tc := range []struct {
		segments, users, calls int
	}{
		{1, 1, 1},
		{100, 1000, 1},
		{101, 1000, 2},
		{100, 1001, 2},
		{150, 2500, 6},
		{250, 3000, 9},
		{0, 10, 0},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.segments, tc.users), func(t *testing.T) {
			segs, us := users("s", tc.segments), users("u", tc.users)
			batches := chatbot.Batches(segs, us)
			if len(batches) != tc.calls {
				t.Fatalf("%d batches, want %d", len(batches), tc.calls)
			}
			pairs := map[string]bool{}
			for _, b := range batches {
				if len(b.Segments) > chatbot.MaxSegmentsPerAdd || len(b.Users) > chatbot.MaxUsersPerAdd || len(b.Segments) == 0 || len(b.Users) == 0 {
					t.Fatalf("batch of %d segments x %d users breaks the API's limits", len(b.Segments), len(b.Users))
				}
				for _, s := range b.Segments {
					for _, u := range b.Users {
						pairs[s+"/"+u] = true
					}
				}
			}
			if len(pairs) != tc.segments*tc.users {
				t.Fatalf("batches cover %d segment/user pairs, want %d", len(pairs), tc.segments*tc.users)
			}
		})
	}
}

func TestAddMembersSplitsIntoAPICalls(t *testing.T) {
	sim, c := newPair(t, simulator.Options{})
	ctx := context.Background()
	var ids []string
	for i := range 150 {
		ids = append(ids, sim.Create(fmt.Sprintf("seg-%d", i)))
	}
	us := users("user", 2500)
	n, err := c.AddMembers(ctx, ids, us)
	if err != nil || n != 2500 {
		t.Fatalf("AddMembers = %d, %v", n, err)
	}
	if calls := sim.Counts().Succeeded[simulator.EndpointAdd]; calls != 6 {
		t.Errorf("2,500 users to 150 segments took %d calls, want exactly 6", calls)
	}
	for _, id := range []string{ids[0], ids[99], ids[100], ids[149]} {
		if seg, _ := sim.Segment(id); len(seg.Members) != 2500 {
			t.Errorf("segment %s has %d members, want 2500", id, len(seg.Members))
		}
	}
}

// A gathered call takes its segments only when it goes, and not at all when it cannot go.
func TestAddMembersGathered(t *testing.T) {
	sim, c := newPair(t, simulator.Options{})
	ctx := context.Background()
	a, b := sim.Create("a"), sim.Create("b")
	gathered := 0
	err := c.AddMembersGathered(ctx, []string{"u1", "u2"}, func() []string { gathered++; return []string{a, b} })
	if err != nil || gathered != 1 {
		t.Fatalf("AddMembersGathered = %v, gathered %d times", err, gathered)
	}
	for _, id := range []string{a, b} {
		if seg, _ := sim.Segment(id); len(seg.Members) != 2 {
			t.Errorf("segment %s has %v", id, seg.Members)
		}
	}
	if err := c.AddMembersGathered(ctx, users("u", 1001), func() []string { return []string{a} }); err == nil {
		t.Error("1001 users in one gathered call accepted")
	}
	sent := sim.Counts().Requests[simulator.EndpointAdd]
	for _, n := range []int{0, 101} {
		if err := c.AddMembersGathered(ctx, []string{"u1"}, func() []string { return users("s", n) }); err == nil {
			t.Errorf("%d gathered segments accepted", n)
		}
	}
	if sim.Counts().Requests[simulator.EndpointAdd] != sent {
		t.Error("a gathered call the API would refuse was sent")
	}

	_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 429, RetryAfter: simulator.Duration(time.Hour)})
	_, _ = c.ListSegments(ctx) // pauses the client
	err = c.AddMembersGathered(ctx, []string{"u3"}, func() []string { gathered++; return []string{a} })
	if e := apiError(t, "gathered call during a pause", err, 429, true); !e.Local || gathered != 1 {
		t.Errorf("during a pause: %+v, gathered %d times", e, gathered)
	}
}

func TestAddMembersReportsTheConfirmedPrefixOnFailure(t *testing.T) {
	sim, err := simulator.New(simulator.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	// Fail the fourth add call: users 0-999 went to both segment groups (calls 1-2), users
	// 1000-1999 reached only the first group (call 3).
	var adds atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/segments/members" && adds.Add(1) == 4 {
			http.Error(w, `{"status":{"code":503,"type":"error","message":"busy"}}`, http.StatusServiceUnavailable)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL, token)
	var ids []string
	for i := range 101 {
		ids = append(ids, sim.Create(fmt.Sprint(i)))
	}
	n, err := c.AddMembers(context.Background(), ids, users("u", 2500))
	if n != 1000 || !chatbot.IsRetryable(err) {
		t.Fatalf("AddMembers = %d, %v; want 1000 confirmed and a retryable error", n, err)
	}
}

// An ID is escaped once in the path: a "/" in it cannot reach another endpoint, and is not
// sent as %252F either.
func TestIDsAreEscapedOnce(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.EscapedPath())
		fmt.Fprint(w, `{"timestamp":"2026-01-01T00:00:00.000Z","status":{"code":200,"type":"success"}}`)
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL+"/base/", token)
	if err := c.DeleteSegment(context.Background(), "a/b c%"); err != nil {
		t.Fatal(err)
	}
	if err := c.RenameSegment(context.Background(), "plain", "x"); err != nil {
		t.Fatal(err)
	}
	want := []string{"/base/users/segments/a%2Fb%20c%25", "/base/users/segments/plain"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

func TestUserAgentAndHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL+"/", token)
	if _, err := c.ListSegments(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got.Get("User-Agent") != "segment-operator/dev" || got.Get("Authorization") != "Bearer "+token {
		t.Errorf("headers: %v", got)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	if _, err := chatbot.New("http://x", strings.Repeat("t", 900<<10)); err == nil {
		t.Error("a 900 KiB token was taken: its redactor alone keeps tens of MiB")
	}
	for _, tc := range []struct{ url, token string }{
		{"ftp://x", "t"}, {"http://", "t"}, {"://", "t"}, {"http://x", ""},
	} {
		if _, err := chatbot.New(tc.url, tc.token); err == nil {
			t.Errorf("New(%q, %q) accepted", tc.url, tc.token)
		}
	}
	c, err := chatbot.New("", "t")
	if err != nil || c.BaseURL() != chatbot.DefaultBaseURL {
		t.Errorf("default base URL: %v %v", c, err)
	}
}

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2019, 1, 23, 13, 32, 30, 163e6, time.UTC)
	for _, s := range []string{"2019-01-23 13:32:30.163Z", "2019-01-23T13:32:30.163Z", "2019-01-23T15:32:30.163+02:00"} {
		got, err := chatbot.ParseTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTimestamp(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := chatbot.ParseTimestamp("yesterday"); err == nil {
		t.Error("accepted garbage")
	}
	if s := chatbot.FormatCreatedAt(want); s != "2019-01-23 13:32:30.163Z" {
		t.Errorf("FormatCreatedAt = %q", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	sim, c := newPair(t, simulator.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Go(func() {
			created, err := c.CreateSegment(ctx, fmt.Sprintf("w%d", w))
			id := created.ID
			if err == nil {
				_, err = c.AddMembers(ctx, []string{id}, users(fmt.Sprintf("w%d-", w), 50))
			}
			if err == nil {
				err = c.RenameSegment(ctx, id, fmt.Sprintf("w%d-renamed", w))
			}
			if err == nil {
				_, err = c.ListSegments(ctx)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	segs := sim.Segments()
	if len(segs) != 16 {
		t.Fatalf("%d segments, want 16", len(segs))
	}
	for _, s := range segs {
		if len(s.Members) != 50 || !strings.HasSuffix(s.Name, "-renamed") {
			t.Errorf("segment %+v", s)
		}
	}
}

// Calls made at once keep their connections for the next ones: as many connections are
// opened as calls go at once, not one per call (net/http keeps 2 idle per host unless told
// otherwise).
func TestConcurrentCallsReuseConnections(t *testing.T) {
	sim, err := simulator.New(simulator.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	var opened atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := chatbot.New(srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	const atOnce, rounds = 16, 20
	for range rounds {
		var wg sync.WaitGroup
		for range atOnce {
			wg.Go(func() {
				if _, err := c.ListSegments(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := opened.Load(); n > 2*atOnce {
		t.Fatalf("%d connections opened for %d rounds of %d calls at once, want at most %d", n, rounds, atOnce, 2*atOnce)
	}
}
