package chatbot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
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
	if e := expectAPIError(t, "gathered call during a pause", err, 429, true); !e.Local || gathered != 1 {
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

func TestErrorClasses(t *testing.T) {
	ctx := context.Background()
	sim, c := newPair(t, simulator.Options{})
	id := sim.Create("x")

	wrong, _ := chatbot.New(c.BaseURL(), "not-the-token")
	_, err := wrong.ListSegments(ctx)
	expectAPIError(t, "wrong token", err, 401, false)
	if e, _ := chatbot.AsAPIError(err); !e.Unauthorized() || !strings.Contains(e.Message, "authorization failed") {
		t.Errorf("wrong token: %+v", e)
	}

	err = c.RenameSegment(ctx, "doesnotexist0000000000000", "y")
	expectAPIError(t, "rename unknown", err, 404, false)
	if !chatbot.IsNotFound(err) {
		t.Error("IsNotFound false for a 404")
	}
	expectAPIError(t, "delete unknown", c.DeleteSegment(ctx, "doesnotexist0000000000000"), 404, false)
	_, err = c.AddMembers(ctx, []string{"doesnotexist0000000000000"}, []string{"u"})
	expectAPIError(t, "add to unknown", err, 404, false)

	_, err = c.CreateSegment(ctx, strings.Repeat("n", 257))
	expectAPIError(t, "257-character name", err, 400, false)
	if e, _ := chatbot.AsAPIError(err); !strings.Contains(e.Message, "1 to 256") {
		t.Errorf("400 message %q does not carry the server's reason", e.Message)
	}

	_ = sim.SetFaults(simulator.Faults{FailNext: 1})
	_, err = c.ListSegments(ctx)
	expectAPIError(t, "injected 500", err, 500, true)

	_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 503, RetryAfter: simulator.Duration(2 * time.Second)})
	_, err = c.ListSegments(ctx)
	expectAPIError(t, "injected 503", err, 503, true)
	if chatbot.RetryAfter(err) != 2*time.Second {
		t.Errorf("503 Retry-After = %v, want 2s", chatbot.RetryAfter(err))
	}
	c, _ = chatbot.New(c.BaseURL(), token) // a client not pausing for that Retry-After

	_ = sim.SetFaults(simulator.Faults{DropRate: 1})
	_, err = c.ListSegments(ctx)
	expectAPIError(t, "dropped connection", err, 0, true)
	_ = sim.SetFaults(simulator.Faults{})

	// A slow answer that outlasts the HTTP client's timeout is retryable: the call may
	// well succeed later (and it may have taken effect: create is crash-safe for that).
	_ = sim.SetFaults(simulator.Faults{SlowRate: 1, SlowDelay: simulator.Duration(2 * time.Second)})
	impatient, _ := chatbot.New(c.BaseURL(), token, chatbot.WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	_, err = impatient.ListSegments(ctx)
	expectAPIError(t, "HTTP client timeout", err, 0, true)
	_ = sim.SetFaults(simulator.Faults{})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.ListSegments(cancelled)
	expectAPIError(t, "cancelled context", err, 0, false)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v does not wrap context.Canceled", err)
	}

	if err := c.RenameSegment(ctx, id, "still works"); err != nil {
		t.Fatalf("after faults: %v", err)
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, c := newPair(t, simulator.Options{RateLimit: 2, Now: clock})
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.ListSegments(ctx); err != nil {
			t.Fatalf("call %d within the limit: %v", i, err)
		}
	}
	_, err := c.ListSegments(ctx)
	expectAPIError(t, "third call in one second", err, 429, true)
	if chatbot.RetryAfter(err) != time.Second {
		t.Errorf("Retry-After = %v, want 1s", chatbot.RetryAfter(err))
	}
}

func TestClientPausesForRetryAfter(t *testing.T) {
	sim, c := newPair(t, simulator.Options{})
	ctx := context.Background()
	_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 429, RetryAfter: simulator.Duration(time.Hour)})
	_, err := c.ListSegments(ctx)
	expectAPIError(t, "429 from the server", err, 429, true)

	// Every later call, whatever the operation, is refused without being sent.
	sent := sim.Counts().Requests
	_, err = c.CreateSegment(ctx, "x")
	e := expectAPIError(t, "call during the pause", err, 429, true)
	if !e.Local || e.RetryAfter < 59*time.Minute {
		t.Errorf("local refusal: %+v", e)
	}
	if after := sim.Counts().Requests; after[simulator.EndpointCreate] != sent[simulator.EndpointCreate] {
		t.Error("a call was sent during the Retry-After pause")
	}
	// A 500 without Retry-After does not pause.
	other, _ := chatbot.New(c.BaseURL(), token)
	_ = sim.SetFaults(simulator.Faults{FailNext: 1})
	_, _ = other.ListSegments(ctx)
	if _, err := other.ListSegments(ctx); err != nil {
		t.Errorf("paused after a plain 500: %v", err)
	}
}

func TestNonJSONErrorBodyIsKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "Wed, 21 Oct 2099 07:28:00 GMT")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>upstream timed out</html>"))
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL, token)
	_, err := c.ListSegments(context.Background())
	e := expectAPIError(t, "502 html", err, 502, true)
	if e.Message != "<html>upstream timed out</html>" || e.Body != e.Message {
		t.Errorf("message %q body %q", e.Message, e.Body)
	}
	if e.RetryAfter < time.Hour {
		t.Errorf("HTTP-date Retry-After parsed as %v", e.RetryAfter)
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	// A server that echoes the Authorization header back, in a header-shaped error body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"status":{"code":403,"type":"error","message":"token %s has no access"}}`, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL, token)
	_, err := c.ListSegments(context.Background())
	e := expectAPIError(t, "403 echo", err, 403, false)
	for what, text := range map[string]string{
		"error":  err.Error(),
		"fields": fmt.Sprintf("%+v", *e),
		"client": fmt.Sprintf("%v %+v %#v", c, c, c),
	} {
		if strings.Contains(text, token) {
			t.Errorf("%s shows the token: %s", what, text)
		}
	}
	if !e.Unauthorized() {
		t.Error("403 is not reported as Unauthorized")
	}
}

// Echoes that end where the error body is cut, or that sit in a response the client cannot
// decode, are redacted too; so is a Client copied by value and printed field by field.
func TestTokenNeverLeaksFromCutOrUndecodableBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusBadGateway) // the token straddles the 4 KiB cut
			fmt.Fprint(w, strings.Repeat("x", 4096-len(tok)/2)+tok)
			return
		}
		fmt.Fprintf(w, `{"id":"x","timestamp":%q,"status":{"code":200,"type":"success"}}`, tok)
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL, token)
	_, listErr := c.ListSegments(context.Background())
	_, createErr := c.CreateSegment(context.Background(), "x")
	if createErr == nil {
		t.Fatal("a create response with a timestamp that does not parse was accepted")
	}
	listAPI, _ := chatbot.AsAPIError(listErr)
	for what, text := range map[string]string{
		"cut body":          fmt.Sprintf("%+v", *listAPI),
		"undecodable reply": createErr.Error(),
		"client fields":     fmt.Sprintf("%+v %#v", reflect.ValueOf(c).Elem(), reflect.ValueOf(c).Elem()),
	} {
		for i := 0; i+8 <= len(token); i++ { // not even a part of it
			if strings.Contains(text, token[i:i+8]) {
				t.Errorf("%s shows part of the token: %s", what, text[max(0, len(text)-200):])
				break
			}
		}
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
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
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

func expectAPIError(t *testing.T, what string, err error, status int, retryable bool) *chatbot.APIError {
	t.Helper()
	e, ok := chatbot.AsAPIError(err)
	if !ok {
		t.Fatalf("%s: got %v (%T), want *chatbot.APIError", what, err, err)
	}
	if e.StatusCode != status || e.Retryable() != retryable {
		t.Errorf("%s: status %d retryable %v, want %d %v (%v)", what, e.StatusCode, e.Retryable(), status, retryable, e)
	}
	if status >= 400 && status < 500 && status != 429 && !e.Terminal() {
		t.Errorf("%s: %d not terminal", what, status)
	}
	return e
}

// gateLimiter holds every call in Wait until released, like a busy client-side rate limit.
type gateLimiter struct {
	waiting chan struct{}
	release chan struct{}
}

func (g *gateLimiter) Wait(ctx context.Context) error {
	g.waiting <- struct{}{}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestCallsWaitingForTheLimiterHonourAPauseThatBeganMeanwhile(t *testing.T) {
	sim, err := simulator.New(simulator.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	gate := &gateLimiter{waiting: make(chan struct{}), release: make(chan struct{})}
	c, _ := chatbot.New(srv.URL, token, chatbot.WithLimiter(gate))
	ctx := context.Background()

	// The first call meets a 429 with Retry-After; the second was already waiting its turn.
	_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 429, RetryAfter: simulator.Duration(time.Hour)})
	first := make(chan error)
	go func() { _, err := c.ListSegments(ctx); first <- err }()
	<-gate.waiting
	second := make(chan error)
	go func() { _, err := c.CreateSegment(ctx, "queued"); second <- err }()
	<-gate.waiting
	gate.release <- struct{}{}
	expectAPIError(t, "429 from the server", <-first, 429, true)

	creates := sim.Counts().Requests[simulator.EndpointCreate]
	gate.release <- struct{}{}
	e := expectAPIError(t, "queued call after the 429", <-second, 429, true)
	if !e.Local || !e.NotSent || !e.NoEffect() {
		t.Errorf("queued call: %+v", e)
	}
	if sim.Counts().Requests[simulator.EndpointCreate] != creates {
		t.Error("a call that waited for the limiter was sent during the Retry-After pause")
	}
}

func TestNoEffectTellsFailuresThatChangedNothing(t *testing.T) {
	ctx := context.Background()
	sim, c := newPair(t, simulator.Options{})

	// Nothing listens on the port: the connection is refused, nothing was sent.
	l := httptest.NewServer(http.NotFoundHandler())
	closed := l.URL
	l.Close()
	unreachable, _ := chatbot.New(closed, token)
	_, err := unreachable.CreateSegment(ctx, "x")
	if e := expectAPIError(t, "connection refused", err, 0, true); !e.NotSent || !e.NoEffect() {
		t.Errorf("connection refused: %+v, want NotSent", e)
	}

	_, err = c.CreateSegment(ctx, strings.Repeat("n", 257))
	if e := expectAPIError(t, "400", err, 400, false); e.NotSent || !e.NoEffect() {
		t.Errorf("400: %+v, want sent without effect", e)
	}

	for _, code := range []int{500, 503} {
		_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: code})
		_, err = c.CreateSegment(ctx, "x")
		if e := expectAPIError(t, fmt.Sprint(code), err, code, true); e.NoEffect() {
			t.Errorf("%d: NoEffect, but a server error may come after the change", code)
		}
	}

	_ = sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, LoseResponseRate: 1})
	_, err = c.CreateSegment(ctx, "lost")
	if e := expectAPIError(t, "lost response", err, 500, true); e.NoEffect() {
		t.Errorf("lost response: %+v, want a possible effect", e)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.chatbot.com":                 "https://api.chatbot.com",
		"https://admin:hunter2@proxy.example/api": "https://admin:xxxxx@proxy.example/api",
		" http://u:p@127.0.0.1:8080 ":             "http://u:xxxxx@127.0.0.1:8080",
		"http://[::1:bad":                         "(unparsable URL)",
	} {
		if got := chatbot.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A 2xx the client cannot use (no ID, not JSON) is retryable, and may have had its effect.
func TestUnusableSuccessIsRetryable(t *testing.T) {
	for _, body := range []string{`<html>ok</html>`, `{"timestamp":"2026-11-25T10:00:00.000Z"}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		c, _ := chatbot.New(srv.URL, token)
		_, err := c.CreateSegment(context.Background(), "x")
		srv.Close()
		if e := expectAPIError(t, body, err, 200, true); e.NoEffect() || e.Terminal() {
			t.Errorf("%s: %+v: NoEffect or Terminal", body, e)
		}
	}
}
