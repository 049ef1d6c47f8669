package chatbot

import (
	"testing"
	"time"
)

// Turns serve callers in the order they first asked, hold a booked caller's place however
// often it asks, and never make a caller wait in place longer than MaxTurnWait.
func TestTurns(t *testing.T) {
	type step struct {
		after  time.Duration // the clock moves on by this first
		caller string
		book   int           // Book(caller, book) instead of Take
		want   time.Duration // the wait returned
	}
	for _, tc := range []struct {
		name       string
		qps        float64
		burst      int
		steps      []step
		wantBooked int
	}{
		{name: "a free limit lets calls go at once", qps: 10, burst: 2, steps: []step{
			{caller: "a"}, {caller: "b"},
		}},
		{name: "a short turn is waited in place, and booked for nobody", qps: 10, burst: 1, steps: []step{
			{caller: "a"}, {caller: "b", want: 100 * time.Millisecond},
		}},
		{name: "a long turn is booked; asking again keeps the place and books nothing more", qps: 1, burst: 1, wantBooked: 2, steps: []step{
			{caller: "a"},
			{caller: "b", want: time.Second},
			{caller: "b", want: time.Second},
			{after: 100 * time.Millisecond, caller: "b", want: 900 * time.Millisecond},
			{caller: "c", want: 1900 * time.Millisecond}, // behind b, not beside it
		}},
		{name: "a booked turn that has come goes at once; the caller's next call queues anew", qps: 1, burst: 1, wantBooked: 2, steps: []step{
			{caller: "a"},
			{caller: "b", want: time.Second},
			{caller: "c", want: 2 * time.Second},
			{after: time.Second, caller: "b"},
			{caller: "b", want: 2 * time.Second},
		}},
		{name: "a turn is taken up to MaxTurnWait early", qps: 1, burst: 1, wantBooked: 0, steps: []step{
			{caller: "a"},
			{caller: "b", want: time.Second},
			{after: time.Second - MaxTurnWait, caller: "b", want: MaxTurnWait},
		}},
		{name: "an unnamed caller's long turn is not kept for it", qps: 1, burst: 1, wantBooked: 0, steps: []step{
			{caller: "a"},
			{caller: "", want: time.Second},
			{caller: "", want: time.Second},
		}},
		{name: "Book reserves several turns, taken one per call", qps: 1, burst: 1, wantBooked: 2, steps: []step{
			{caller: "a"},
			{caller: "create", book: 2, want: time.Second},
			{caller: "other", want: 3 * time.Second},
			{after: time.Second, caller: "create"},
			{caller: "create", want: time.Second},
			{after: time.Second, caller: "create"},
			{caller: "create", want: 2 * time.Second}, // queues anew, behind "other"
		}},
		{name: "Book of a caller holding turns books no more", qps: 1, burst: 1, wantBooked: 2, steps: []step{
			{caller: "a"},
			{caller: "b", want: time.Second},
			{caller: "b", book: 2, want: time.Second},
			{caller: "c", want: 2 * time.Second},
		}},
		{name: "turns nobody came back for are dropped", qps: 1, burst: 1, wantBooked: 1, steps: []step{
			{caller: "a"},
			{caller: "gone", want: time.Second},
			{after: 3 * bookingTTL, caller: "x"},
			{caller: "y", want: time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			turns := NewTurns(tc.qps, tc.burst)
			turns.now = func() time.Time { return now }
			for i, s := range tc.steps {
				now = now.Add(s.after)
				var got time.Duration
				if s.book > 0 {
					got = turns.Book(s.caller, s.book)
				} else {
					got = turns.Take(s.caller)
				}
				if got != s.want {
					t.Fatalf("step %d (%q): wait %s, want %s", i, s.caller, got, s.want)
				}
			}
			if got := turns.Booked(); got != tc.wantBooked {
				t.Errorf("%d callers hold turns, want %d", got, tc.wantBooked)
			}
		})
	}
}
