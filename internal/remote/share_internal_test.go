package remote

import (
	"testing"
	"time"
)

// A share admits its size of reconciles at once; one turned away is told to come back
// later, a little later each time in a row, and is admitted again once a reconcile ends.
func TestShare(t *testing.T) {
	s := NewShare(2)
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

	var unbounded *Share = NewShare(0)
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
