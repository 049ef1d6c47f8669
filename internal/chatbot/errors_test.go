package chatbot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

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
	e := apiError(t, "call during the pause", err, 429, true)
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "Wed, 21 Oct 2099 07:28:00 GMT")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>upstream timed out</html>"))
	}))
	defer srv.Close()
	c, _ := chatbot.New(srv.URL, token)
	_, err := c.ListSegments(context.Background())
	e := apiError(t, "502 html", err, 502, true)
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
	e := apiError(t, "403 echo", err, 403, false)
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

// expectAPIError fails the test unless err is an *APIError with the status and
// retryability wanted; apiError returns it, for a test that looks further.
func expectAPIError(t *testing.T, what string, err error, status int, retryable bool) {
	t.Helper()
	_ = apiError(t, what, err, status, retryable)
}

func apiError(t *testing.T, what string, err error, status int, retryable bool) *chatbot.APIError {
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

// gateLimiter holds every call in Wait until the test releases it, like a busy client-side
// rate limit: each waiting call hands the test its own release, so that the test says which
// call goes (one release for all let either waiting call go first, and the test hung).
type gateLimiter struct {
	waiting chan chan struct{}
}

func (g *gateLimiter) Wait(ctx context.Context) error {
	release := make(chan struct{})
	g.waiting <- release
	select {
	case <-release:
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
	gate := &gateLimiter{waiting: make(chan chan struct{})}
	c, _ := chatbot.New(srv.URL, token, chatbot.WithLimiter(gate))
	ctx := context.Background()

	// The first call meets a 429 with Retry-After; the second was already waiting its turn.
	_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: 429, RetryAfter: simulator.Duration(time.Hour)})
	first := make(chan error)
	go func() { _, err := c.ListSegments(ctx); first <- err }()
	releaseFirst := <-gate.waiting
	second := make(chan error)
	go func() { _, err := c.CreateSegment(ctx, "queued"); second <- err }()
	releaseSecond := <-gate.waiting
	close(releaseFirst)
	expectAPIError(t, "429 from the server", <-first, 429, true)

	creates := sim.Counts().Requests[simulator.EndpointCreate]
	close(releaseSecond)
	e := apiError(t, "queued call after the 429", <-second, 429, true)
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
	if e := apiError(t, "connection refused", err, 0, true); !e.NotSent || !e.NoEffect() {
		t.Errorf("connection refused: %+v, want NotSent", e)
	}

	_, err = c.CreateSegment(ctx, strings.Repeat("n", 257))
	if e := apiError(t, "400", err, 400, false); e.NotSent || !e.NoEffect() {
		t.Errorf("400: %+v, want sent without effect", e)
	}

	for _, code := range []int{500, 503} {
		_ = sim.SetFaults(simulator.Faults{FailNext: 1, ErrorCode: code})
		_, err = c.CreateSegment(ctx, "x")
		if e := apiError(t, fmt.Sprint(code), err, code, true); e.NoEffect() {
			t.Errorf("%d: NoEffect, but a server error may come after the change", code)
		}
	}

	_ = sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointCreate}, LoseResponseRate: 1})
	_, err = c.CreateSegment(ctx, "lost")
	if e := apiError(t, "lost response", err, 500, true); e.NoEffect() {
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
		if e := apiError(t, body, err, 200, true); e.NoEffect() || e.Terminal() {
			t.Errorf("%s: %+v: NoEffect or Terminal", body, e)
		}
	}
}
