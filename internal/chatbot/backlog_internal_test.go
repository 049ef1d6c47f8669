package chatbot

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestBacklog(t *testing.T) {
	for _, tc := range []struct {
		tokens, perSecond float64
		want              time.Duration
	}{
		{5, 1, 0},                        // tokens to spare
		{1, 1, 0},                        // one left: this call's
		{0.5, 2, 250 * time.Millisecond}, // half a token, refilling at 2/s
		{0, 1, time.Second},              // none left: wait for the next
		{-999, 1, 1000 * time.Second},    // 999 calls queued ahead
		{-9, 20, 500 * time.Millisecond}, // 9 ahead at 20/s
		{-5, 0, 0},                       // no limit
		{-5, float64(rate.Inf), 0},       // no limit either
	} {
		if got := backlog(tc.tokens, tc.perSecond); got != tc.want {
			t.Errorf("backlog(%v, %v) = %s, want %s", tc.tokens, tc.perSecond, got, tc.want)
		}
	}

	// A *rate.Limiter's queue, as the client sees it.
	l := rate.NewLimiter(0.01, 1)
	l.Reserve()
	l.Reserve() // one waiting its turn
	c, err := New("http://x", "t", WithLimiter(l))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Backlog(); got < 190*time.Second || got > 200*time.Second {
		t.Fatalf("Backlog behind one queued call at 1 per 100s: %s", got)
	}
	if got := (&Client{}).Backlog(); got != 0 {
		t.Fatalf("Backlog without a limiter: %s", got)
	}
}
