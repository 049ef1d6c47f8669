package chatbot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// A refused token costs one call, however many callers share the client, until the wait is
// over (TestRefusalSteps): 185 Segments on a wrong token made 221 listings in a minute.
func TestARefusedTokenCostsOneCallPerStep(t *testing.T) {
	var calls atomic.Int64
	srv := refusingServer(t, &calls)
	c, _ := chatbot.New(srv.URL, token)
	ctx := context.Background()
	burst := func() (refused int) {
		var wg sync.WaitGroup
		var n atomic.Int64
		for range 50 {
			wg.Go(func() {
				if _, err := c.ListSegments(ctx); err != nil {
					if e, ok := chatbot.AsAPIError(err); !ok || !e.Unauthorized() {
						t.Errorf("a refused token gave %v", err)
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return int(n.Load())
	}

	if _, err := c.ListSegments(ctx); err == nil {
		t.Fatal("a refused token listed")
	}
	if refused := burst(); refused != 50 || calls.Load() != 1 {
		t.Fatalf("within the first wait: %d of 50 refused, %d calls sent; want 50 and 1", refused, calls.Load())
	}
	_, err := c.CreateSegment(ctx, "x")
	if e, _ := chatbot.AsAPIError(err); e == nil || !e.NotSent || !e.NoEffect() || e.Op != chatbot.OpCreate {
		t.Errorf("a create held back: %+v", e)
	}

}

// A new token (a rotated one, or a fixed Secret) is a new client: it asks at once.
func TestANewTokenIsAskedAtOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	bad, _ := chatbot.New(srv.URL, "bad-token")
	if _, err := bad.ListSegments(context.Background()); err == nil {
		t.Fatal("a bad token listed")
	}
	good, _ := chatbot.New(srv.URL, "good")
	if _, err := good.ListSegments(context.Background()); err != nil {
		t.Fatalf("a new token waited for the old one's refusal: %v", err)
	}
}

// Calls held back say the same thing each time: the text reaches status, where a change is
// a write for every Segment of the account.
func TestHeldBackCallsSayTheSameThing(t *testing.T) {
	srv := refusingServer(t, new(atomic.Int64))
	c, _ := chatbot.New(srv.URL, token)
	_, sent := c.ListSegments(context.Background())
	_, first := c.ListSegments(context.Background())
	_, second := c.ListSegments(context.Background())
	if sent.Error() != first.Error() || first.Error() != second.Error() {
		t.Errorf("messages differ:\n%s\n%s\n%s", sent, first, second)
	}
	// What the operator checks before it records a create it would send.
	if err := c.CheckPause(chatbot.OpCreate); err == nil {
		t.Error("CheckPause lets a create be prepared while the token is held back")
	}
}

// refusingServer answers every call 401, counting them.
func refusingServer(t *testing.T, calls *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "30") // said of the token, not of the account: not a pause
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"status":{"code":401,"type":"error","message":"bad token"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}
