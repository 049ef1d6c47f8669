package remote

import (
	"fmt"
	"testing"
	"time"
)

// A share admits its size of reconciles at once; one turned away is told to come back
// later, a little later each time in a row, and is admitted again once a reconcile ends.
func TestShare(t *testing.T) {
	s := NewShare(2, nil)
	first, wait := s.Enter("a")
	second, _ := s.Enter("b")
	if first == nil || second == nil || wait != 0 {
		t.Fatalf("the first two of a share of 2 turned away")
	}
	for i, want := range []time.Duration{500, 1000, 2000, 4000, 5000, 5000, 5000} {
		leave, wait := s.Enter("c")
		if leave != nil {
			t.Fatal("a third admitted into a share of 2")
		}
		if lo, hi := want*time.Millisecond, want*time.Millisecond*3/2; wait < lo || wait > hi {
			t.Fatalf("turn-away %d: wait %s, want %s to %s", i, wait, lo, hi)
		}
	}
	if _, wait := s.Enter("d"); wait > 750*time.Millisecond {
		t.Fatalf("another caller's first wait: %s", wait)
	}
	first()
	first() // ending twice frees one place, not two
	third, _ := s.Enter("c")
	if third == nil {
		t.Fatal("not admitted once a place was free")
	}
	if leave, _ := s.Enter("e"); leave != nil {
		t.Fatal("admitted past the share after a double leave")
	}
	second()
	third()
	if len(s.turnedAway) != 0 {
		t.Fatalf("an idle share keeps %d backoffs", len(s.turnedAway))
	}
	if leave, wait := s.Enter("c"); leave == nil || wait != 0 {
		t.Fatal("an idle share turned a caller away")
	}

	var unbounded *Share = NewShare(0, nil)
	for range 100 {
		if leave, _ := unbounded.Enter("x"); leave == nil {
			t.Fatal("no share turned a caller away")
		}
	}
	shares := NewShares(1)
	if shares.For("ns-a") != shares.For("ns-a") || shares.For("ns-a") == shares.For("ns-b") || shares.For("x").Size() != 1 {
		t.Fatal("Shares: one Share per key")
	}
	if NewShares(0).For("ns") != nil {
		t.Fatal("Shares of size 0 bound something")
	}
}

func TestTurnedAwayFor(t *testing.T) {
	for _, tc := range []struct {
		times  int
		queued time.Duration
		want   time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{1, 0, time.Second},
		{3, 0, 4 * time.Second},
		{4, 0, 5 * time.Second},
		{60, 0, 5 * time.Second},                            // no overflow
		{0, 3 * time.Second, 3 * time.Second},               // the queue is longer than the backoff
		{4, 3 * time.Second, 5 * time.Second},               // the backoff is longer than the queue
		{4, 10 * time.Minute, 10 * time.Minute},             // 1,000 calls queued at 1 call/s... and more
		{0, 200 * time.Millisecond, 500 * time.Millisecond}, // a short queue: the backoff
	} {
		if got := turnedAwayFor(tc.times, tc.queued); got != tc.want {
			t.Errorf("turnedAwayFor(%d, %s) = %s, want %s", tc.times, tc.queued, got, tc.want)
		}
	}
}

// An account's Share turns a reconcile away while the rate-limit queue is over
// MaxQueueWait, with a wait no shorter than the queue, and gives its place back.
func TestShareTurnsAwayWhileTheQueueIsLong(t *testing.T) {
	queued := 3 * time.Second
	s := NewShare(1, func() time.Duration { return queued })
	leave, wait := s.Enter("a")
	if leave != nil {
		t.Fatal("admitted with 3s of calls queued")
	}
	if wait < queued || wait > queued*3/2 {
		t.Fatalf("wait %s, want the queue's %s (jittered)", wait, queued)
	}
	queued = MaxQueueWait
	leave, _ = s.Enter("a")
	if leave == nil {
		t.Fatal("turned away by a queue of MaxQueueWait, or a turn-away kept the only place")
	}
	leave()
	if NewShare(0, func() time.Duration { return time.Hour }) == nil {
		t.Fatal("a Share with a queue but no size bounds nothing")
	}
}

// Callers turned away and never back (Segments deleted while their account was busy) are
// forgotten once the map grows, so it follows the callers waiting now.
func TestShareForgetsCallersGone(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(1, nil)
	s.now = func() time.Time { return now }
	leave, _ := s.Enter("holder") // keeps the share busy throughout
	defer leave()
	for round := range 5 {
		for i := range 3 * minSweep {
			s.Enter(fmt.Sprintf("gone-%d-%d", round, i))
		}
		now = now.Add(2 * forgetTurnAwayAfter)
	}
	if n := len(s.turnedAway); n > 4*minSweep {
		t.Fatalf("%d callers remembered after 5 rounds of %d callers that never came back", n, 3*minSweep)
	}
	s.Enter("back")
	now = now.Add(time.Second)
	if _, wait := s.Enter("back"); wait < time.Second {
		t.Fatalf("a caller back in time lost its backoff: %s", wait)
	}
}
