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
	first, wait := s.Enter("a", "")
	second, _ := s.Enter("b", "")
	if first == nil || second == nil || wait != 0 {
		t.Fatalf("the first two of a share of 2 turned away")
	}
	for i, want := range []time.Duration{500, 1000, 2000, 4000, 5000, 5000, 5000} {
		leave, wait := s.Enter("c", "")
		if leave != nil {
			t.Fatal("a third admitted into a share of 2")
		}
		if lo, hi := want*time.Millisecond, want*time.Millisecond*3/2; wait < lo || wait > hi {
			t.Fatalf("turn-away %d: wait %s, want %s to %s", i, wait, lo, hi)
		}
	}
	if _, wait := s.Enter("d", ""); wait > 750*time.Millisecond {
		t.Fatalf("another caller's first wait: %s", wait)
	}
	first()
	first() // ending twice frees one place, not two
	third, _ := s.Enter("c", "")
	if third == nil {
		t.Fatal("not admitted once a place was free")
	}
	if leave, _ := s.Enter("e", ""); leave != nil {
		t.Fatal("admitted past the share after a double leave")
	}
	second()
	third()
	if len(s.turnedAway) != 0 {
		t.Fatalf("an idle share keeps %d backoffs", len(s.turnedAway))
	}
	if leave, wait := s.Enter("c", ""); leave == nil || wait != 0 {
		t.Fatal("an idle share turned a caller away")
	}

	var unbounded *Share = NewShare(0, nil)
	for range 100 {
		if leave, _ := unbounded.Enter("x", ""); leave == nil {
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
// MaxQueueWait, with a wait no shorter than the queue, and gives its place back; but not
// the first of a namespace, which holds no place yet.
func TestShareTurnsAwayWhileTheQueueIsLong(t *testing.T) {
	queued := 3 * time.Second
	s := NewShare(4, func() time.Duration { return queued })
	first, _ := s.Enter("a", "team")
	if first == nil {
		t.Fatal("the first of a namespace turned away by the queue")
	}
	leave, wait := s.Enter("b", "team")
	if leave != nil {
		t.Fatal("a second of the namespace admitted with 3s of calls queued")
	}
	if wait < queued || wait > queued*3/2 {
		t.Fatalf("wait %s, want the queue's %s (jittered)", wait, queued)
	}
	queued = MaxQueueWait
	leave, _ = s.Enter("b", "team")
	if leave == nil {
		t.Fatal("turned away by a queue of MaxQueueWait, or a turn-away kept a place")
	}
	leave()
	first()
	if NewShare(0, func() time.Duration { return time.Hour }) == nil {
		t.Fatal("a Share with a queue but no size bounds nothing")
	}

	// Each reconcile under way counts for a call to come, at 1 call/s: with none queued
	// yet, the third of a namespace would wait 2s.
	s = NewShare(8, func() time.Duration { return 0 })
	s.turn = time.Second
	for i, want := range []bool{true, true, false} {
		if leave, _ := s.Enter(fmt.Sprintf("r%d", i), "team"); (leave != nil) != want {
			t.Fatalf("reconcile %d admitted: %v, want %v", i, leave != nil, want)
		}
	}
	if leave, _ := s.Enter("other", "elsewhere"); leave == nil {
		t.Fatal("another namespace's first turned away")
	}
}

func TestAdmits(t *testing.T) {
	long := 3 * time.Second
	for _, tc := range []struct {
		name                                 string
		size, held, groupHeld, othersWaiting int
		queued                               time.Duration
		want                                 bool
	}{
		{"a free place", 8, 3, 3, 0, 0, true},
		{"full", 8, 8, 0, 0, 0, false},
		{"no bound", 0, 100, 100, 5, 0, true},
		{"alone: the whole share", 8, 7, 7, 0, 0, true},
		{"one other wants it: half of it", 8, 4, 4, 1, 0, false},
		{"one other wants it, under half", 8, 3, 3, 1, 0, true},
		{"three others wait: a quarter", 8, 2, 2, 3, 0, false},
		{"many others wait: still one place", 8, 0, 0, 20, 0, true},
		{"many others wait, one held", 8, 1, 1, 20, 0, false},
		{"three busy on a share of 4: parts rounded up, no place idle", 4, 3, 1, 2, 0, true},
		{"three busy on a share of 4, a part held", 4, 3, 2, 2, 0, false},
		{"a long queue, a place held", 8, 1, 1, 0, long, false},
		{"a long queue, none held: its turn", 8, 5, 0, 0, long, true},
		{"a short queue", 8, 1, 1, 0, MaxQueueWait, true},
		{"a long queue, no size bound", 0, 3, 1, 0, long, false},
	} {
		if got := admits(tc.size, tc.held, tc.groupHeld, tc.othersWaiting, tc.queued); got != tc.want {
			t.Errorf("%s: admits = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A namespace holding the whole of an account's share gives half of it up, as its
// reconciles end, to another namespace that waits, and keeps to half while the other holds
// a place; alone again, it takes it all back.
func TestShareIsSharedBetweenNamespaces(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(4, nil)
	s.now = func() time.Time { return now }
	var flood []func()
	for i := range 4 {
		leave, _ := s.Enter(fmt.Sprintf("flood-%d", i), "flood")
		flood = append(flood, leave)
	}
	if leave, _ := s.Enter("victim", "quiet"); leave != nil {
		t.Fatal("admitted past a full share")
	}
	flood[0]()
	if leave, _ := s.Enter("flood-4", "flood"); leave != nil {
		t.Fatal("the flooding namespace took a freed place while another waits, holding 3 of 4")
	}
	flood[1]()
	flood[2]()
	victim, _ := s.Enter("victim", "quiet")
	if victim == nil {
		t.Fatal("the waiting namespace not admitted to a free place")
	}
	if leave, _ := s.Enter("flood-5", "flood"); leave == nil {
		t.Fatal("the flooding namespace refused its half (1 of 2 held)")
	} else {
		flood = append(flood, leave)
	}
	if leave, _ := s.Enter("flood-extra", "flood"); leave != nil {
		t.Fatal("the flooding namespace took more than half while the other holds a place")
	}
	victim()
	now = now.Add(2 * waitingFor) // the other namespace stopped asking
	for i := range 2 {
		if leave, _ := s.Enter(fmt.Sprintf("flood-%d", 6+i), "flood"); leave == nil {
			t.Fatalf("alone again, the namespace refused place %d of 4", 3+i)
		}
	}
}

// Callers turned away and never back (Segments deleted while their account was busy) are
// forgotten once the map grows, so it follows the callers waiting now.
func TestShareForgetsCallersGone(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(1, nil)
	s.now = func() time.Time { return now }
	leave, _ := s.Enter("holder", "") // keeps the share busy throughout
	defer leave()
	for round := range 5 {
		for i := range 3 * minSweep {
			s.Enter(fmt.Sprintf("gone-%d-%d", round, i), "")
		}
		now = now.Add(2 * forgetTurnAwayAfter)
	}
	if n := len(s.turnedAway); n > 4*minSweep {
		t.Fatalf("%d callers remembered after 5 rounds of %d callers that never came back", n, 3*minSweep)
	}
	s.Enter("back", "")
	now = now.Add(time.Second)
	if _, wait := s.Enter("back", ""); wait < time.Second {
		t.Fatalf("a caller back in time lost its backoff: %s", wait)
	}
}
