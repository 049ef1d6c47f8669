package remote

import (
	"testing"
	"time"
)

// An account admits its share of reconciles at once; one turned away is told to come back
// later, a little later each time in a row, and is admitted again once a reconcile ends.
func TestAccountShare(t *testing.T) {
	a, err := NewAccounts(AccountOptions{Share: 2}).For(Credentials{BaseURL: "http://api.test", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	first, wait := a.Enter("a")
	second, _ := a.Enter("b")
	if first == nil || second == nil || wait != 0 {
		t.Fatalf("the first two of a share of 2 turned away")
	}
	var waits []time.Duration
	for range 8 {
		leave, wait := a.Enter("c")
		if leave != nil {
			t.Fatal("a third admitted into a share of 2")
		}
		waits = append(waits, wait)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v seconds", waits, want)
		}
	}
	if _, wait := a.Enter("d"); wait != time.Second {
		t.Fatalf("another caller's first wait: %s", wait)
	}
	first()
	first() // ending twice frees one place, not two
	third, _ := a.Enter("c")
	if third == nil {
		t.Fatal("not admitted once a place was free")
	}
	if leave, _ := a.Enter("e"); leave != nil {
		t.Fatal("admitted past the share after a double leave")
	}
	second()
	third()
	if len(a.turnedAway) != 0 {
		t.Fatalf("an idle account keeps %d backoffs", len(a.turnedAway))
	}
	if leave, wait := a.Enter("c"); leave == nil || wait != 0 {
		t.Fatal("an idle account turned a caller away")
	}

	unbounded, _ := NewAccounts(AccountOptions{}).For(Credentials{BaseURL: "http://api.test", Token: "u"})
	for range 100 {
		if leave, _ := unbounded.Enter("x"); leave == nil {
			t.Fatal("an account without a share turned a caller away")
		}
	}
}
