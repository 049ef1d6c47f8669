package remote

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// A share admits its size of reconciles at once; one turned away is told to come back
// later, a little later each time in a row, and is admitted again once a reconcile ends.
func TestShare(t *testing.T) {
	s := NewShare(2, nil, nil)
	first, wait := enter(s, "a", "")
	second, _ := enter(s, "b", "")
	if first == nil || second == nil || wait != 0 {
		t.Fatalf("the first two of a share of 2 turned away")
	}
	for i, want := range []time.Duration{500, 1000, 2000, 4000, 5000, 5000, 5000} {
		leave, wait := enter(s, "c", "")
		if leave != nil {
			t.Fatal("a third admitted into a share of 2")
		}
		if lo, hi := want*time.Millisecond, want*time.Millisecond*3/2; wait < lo || wait > hi {
			t.Fatalf("turn-away %d: wait %s, want %s to %s", i, wait, lo, hi)
		}
	}
	if _, wait := enter(s, "d", ""); wait > 750*time.Millisecond {
		t.Fatalf("another caller's first wait: %s", wait)
	}
	first()
	first() // ending twice frees one place, not two
	third, _ := enter(s, "c", "")
	if third == nil {
		t.Fatal("not admitted once a place was free")
	}
	if leave, _ := enter(s, "e", ""); leave != nil {
		t.Fatal("admitted past the share after a double leave")
	}
	second()
	third()
	if len(s.turnedAway) != 0 {
		t.Fatalf("an idle share keeps %d backoffs", len(s.turnedAway))
	}
	if leave, wait := enter(s, "c", ""); leave == nil || wait != 0 {
		t.Fatal("an idle share turned a caller away")
	}

	unbounded := NewShare(0, nil, nil)
	for range 100 {
		if leave, _ := enter(unbounded, "x", ""); leave == nil {
			t.Fatal("no share turned a caller away")
		}
	}
	shares := NewShares(1, nil)
	if a, again := shares.For("ns-a"), shares.For("ns-a"); a != again || a == shares.For("ns-b") || shares.For("x").Size() != 1 {
		t.Fatal("Shares: one Share per key")
	}
	if NewShares(0, nil).For("ns") != nil {
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
	s := NewShare(4, func(int) time.Duration { return queued }, nil)
	first, _ := enter(s, "a", "team")
	if first == nil {
		t.Fatal("the first of a namespace turned away by the queue")
	}
	leave, wait := enter(s, "b", "team")
	if leave != nil {
		t.Fatal("a second of the namespace admitted with 3s of calls queued")
	}
	if wait < queued || wait > queued*3/2 {
		t.Fatalf("wait %s, want the queue's %s (jittered)", wait, queued)
	}
	queued = MaxQueueWait
	leave, _ = enter(s, "b", "team")
	if leave == nil {
		t.Fatal("turned away by a queue of MaxQueueWait, or a turn-away kept a place")
	}
	leave()
	first()
	if NewShare(0, func(int) time.Duration { return time.Hour }, nil) == nil {
		t.Fatal("a Share with a queue but no size bounds nothing")
	}

	// Each reconcile under way counts for a call to come, at 1 call/s: with none queued
	// yet, the third of a namespace would wait 2s.
	s = NewShare(8, func(held int) time.Duration { return time.Duration(held) * time.Second }, nil)
	for i, want := range []bool{true, true, false} {
		if leave, _ := enter(s, fmt.Sprintf("r%d", i), "team"); (leave != nil) != want {
			t.Fatalf("reconcile %d admitted: %v, want %v", i, leave != nil, want)
		}
	}
	if leave, _ := enter(s, "other", "elsewhere"); leave == nil {
		t.Fatal("another namespace's first turned away")
	}
}

func TestAdmits(t *testing.T) {
	long := 3 * time.Second
	for _, tc := range []struct {
		name    string
		st      shareState
		ok      bool
		byQueue bool
	}{
		{"a free place", shareState{size: 8, held: 3, groupHeld: 3}, true, false},
		{"full", shareState{size: 8, held: 8}, false, false},
		{"no bound", shareState{held: 100, groupHeld: 100, othersActive: 5, othersWaiting: 5}, true, false},
		{"alone: the whole share", shareState{size: 8, held: 7, groupHeld: 7}, true, false},
		{"one other wants it: half of it", shareState{size: 8, held: 5, groupHeld: 4, othersActive: 1}, false, false},
		{"one other holds a place, under half", shareState{size: 8, held: 4, groupHeld: 3, othersActive: 1}, true, false},
		{"three others active: a quarter", shareState{size: 8, held: 5, groupHeld: 2, othersActive: 3}, false, false},
		{"many others active: still one place", shareState{size: 8, held: 7, othersActive: 20, othersWaiting: 1}, true, false},
		{"many others active, one held", shareState{size: 8, held: 6, groupHeld: 1, othersActive: 20}, false, false},
		{"three busy on a share of 4: parts rounded up, no place idle", shareState{size: 4, held: 3, groupHeld: 1, othersActive: 2}, true, false},
		{"three busy on a share of 4, a part held", shareState{size: 4, held: 3, groupHeld: 2, othersActive: 2}, false, false},
		// 4 busy groups hold 2 of 8 each (their rounded-up part) but for the last place:
		// a fifth group waits with none, so the place is kept for it.
		{"a place kept for a group waiting with none", shareState{size: 8, held: 7, groupHeld: 1, othersActive: 4, othersWaiting: 1}, false, false},
		{"the group waiting with none takes it", shareState{size: 8, held: 7, othersActive: 4}, true, false},
		{"two wait with none, one place free: neither busy group takes it", shareState{size: 8, held: 6, groupHeld: 1, othersActive: 6, othersWaiting: 2}, false, false},
		{"a long queue, a place held", shareState{size: 8, held: 1, groupHeld: 1, queued: long}, false, true},
		{"a long queue, none held: its turn", shareState{size: 8, held: 5, queued: long}, true, false},
		{"a short queue", shareState{size: 8, held: 1, groupHeld: 1, queued: MaxQueueWait}, true, false},
		{"a long queue, no size bound", shareState{held: 3, groupHeld: 1, queued: long}, false, true},
		{"full and a long queue: the share is why", shareState{size: 8, held: 8, groupHeld: 1, queued: long}, false, false},
	} {
		if ok, byQueue := admits(tc.st); ok != tc.ok || byQueue != tc.byQueue {
			t.Errorf("%s: admits = %v, %v; want %v, %v", tc.name, ok, byQueue, tc.ok, tc.byQueue)
		}
	}
}

// A namespace holding the whole of an account's share gives half of it up, as its
// reconciles end, to another namespace that waits, and keeps to half while the other holds
// a place; alone again, it takes it all back.
func TestShareIsSharedBetweenNamespaces(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(4, nil, nil)
	s.now = func() time.Time { return now }
	var flood []func()
	for i := range 4 {
		leave, _ := enter(s, fmt.Sprintf("flood-%d", i), "flood")
		flood = append(flood, leave)
	}
	if leave, _ := enter(s, "victim", "quiet"); leave != nil {
		t.Fatal("admitted past a full share")
	}
	flood[0]()
	if leave, _ := enter(s, "flood-4", "flood"); leave != nil {
		t.Fatal("the flooding namespace took a freed place while another waits, holding 3 of 4")
	}
	flood[1]()
	flood[2]()
	victim, _ := enter(s, "victim", "quiet")
	if victim == nil {
		t.Fatal("the waiting namespace not admitted to a free place")
	}
	if leave, _ := enter(s, "flood-5", "flood"); leave == nil {
		t.Fatal("the flooding namespace refused its half (1 of 2 held)")
	}
	if leave, _ := enter(s, "flood-extra", "flood"); leave != nil {
		t.Fatal("the flooding namespace took more than half while the other holds a place")
	}
	victim()
	now = now.Add(2 * waitingFor) // the other namespace stopped asking
	for i := range 2 {
		if leave, _ := enter(s, fmt.Sprintf("flood-%d", 6+i), "flood"); leave == nil {
			t.Fatalf("alone again, the namespace refused place %d of 4", 3+i)
		}
	}
}

// Callers turned away and never back (Segments deleted while their account was busy) are
// forgotten once the map grows, so it follows the callers waiting now.
func TestShareForgetsCallersGone(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(1, nil, nil)
	s.now = func() time.Time { return now }
	leave, _ := enter(s, "holder", "") // keeps the share busy throughout
	defer leave()
	for round := range 5 {
		for i := range 3 * minSweep {
			enter(s, fmt.Sprintf("gone-%d-%d", round, i), "")
		}
		now = now.Add(2 * forgetTurnAwayAfter)
	}
	if n := len(s.turnedAway); n > 4*minSweep {
		t.Fatalf("%d callers remembered after 5 rounds of %d callers that never came back", n, 3*minSweep)
	}
	enter(s, "back", "")
	now = now.Add(time.Second)
	if _, wait := enter(s, "back", ""); wait < time.Second {
		t.Fatalf("a caller back in time lost its backoff: %s", wait)
	}
}

// However many namespaces keep an account's share full, each holding its part, a freed
// place goes to a namespace that waits with none, not to a busy one asking again.
func TestShareKeepsAPlaceForANamespaceWithNone(t *testing.T) {
	s := NewShare(4, nil, nil)
	var busy []func()
	for i := range 4 {
		leave, _ := enter(s, fmt.Sprintf("busy-%d", i), fmt.Sprintf("ns-%d", i))
		busy = append(busy, leave)
	}
	if leave, _ := enter(s, "quiet", "quiet"); leave != nil {
		t.Fatal("admitted past a full share")
	}
	busy[0]()
	for i := 1; i < 4; i++ { // the namespaces still holding their part ask again, first
		if leave, _ := enter(s, fmt.Sprintf("busy-again-%d", i), fmt.Sprintf("ns-%d", i)); leave != nil {
			t.Fatalf("ns-%d took the place kept for the namespace waiting with none", i)
		}
	}
	if leave, _ := enter(s, "quiet", "quiet"); leave == nil {
		t.Fatal("the namespace waiting with none did not get the freed place")
	}
}

// A caller turned away for want of a place is woken when one frees: one caller per place,
// the first of the group holding the fewest places (the group admits is likeliest to let
// in). One turned away for the queue is not (the queue, not a place, keeps it), nor one
// admitted since; for a place given back unused, a caller of another group than the one
// that gave it back; a caller turned away again while it waits is listed once.
func TestShareWakesWhenAPlaceFrees(t *testing.T) {
	w := &wakes{}
	queued := time.Duration(0)
	s := NewShare(2, func(int) time.Duration { return queued }, w.wake)
	a, _ := enter(s, "a1", "a")
	b, _ := enter(s, "b1", "b")
	for _, c := range []struct{ caller, group string }{{"a2", "a"}, {"a3", "a"}, {"a2", "a"}, {"b2", "b"}, {"b3", "b"}} {
		if leave, _ := enter(s, c.caller, c.group); leave != nil {
			t.Fatalf("%s admitted into a full share", c.caller)
		}
	}
	for _, step := range []struct {
		name string
		do   func()
		want string
	}{
		{"a1 leaves: a holds none", a, "a2"},
		{"a2 admitted, and leaves: a still holds fewer than b", func() {
			again, _ := enter(s, "a2", "a")
			if again == nil {
				t.Fatal("the woken caller was not admitted into the freed place")
			}
			if leave, _ := enter(s, "b3", "b"); leave != nil { // b3 asks on its own: turned away, listed once
				t.Fatal("admitted past the share")
			}
			again()
		}, "a3"},
		{"b1 leaves", b, "b2"},
		{"a place given back by a group: another's caller is woken", func() {
			turn, _ := s.Take("x", "x")
			turn.GiveBack()
			turn.Leave() // a turn ends once
		}, "b3"},
	} {
		w.take()
		step.do()
		if woken, want := w.take(), []string{step.want}; step.want == "" && len(woken) != 0 || step.want != "" && !sameSet(woken, want) {
			t.Fatalf("%s: woken %v, want %q", step.name, woken, step.want)
		}
	}

	// Turned away for the queue: not woken by a place.
	queued = time.Hour
	w = &wakes{}
	s = NewShare(2, func(int) time.Duration { return queued }, w.wake)
	held, _ := enter(s, "q1", "q")
	if leave, _ := enter(s, "q2", "q"); leave != nil {
		t.Fatal("admitted while the queue is long")
	}
	held()
	if woken := w.take(); len(woken) != 0 {
		t.Fatalf("woken %v, turned away for the queue", woken)
	}
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

// enter takes a turn of s as admission does, and returns the func that ends it (nil if
// turned away) and the wait a caller turned away is told.
func enter(s *Share, caller, group string) (leave func(), retryAfter time.Duration) {
	t, after := s.Take(caller, group)
	if t == nil {
		return nil, after
	}
	return t.Leave, 0
}

func TestListedWait(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name       string
		ahead      int
		leaveEvery time.Duration
		backoff    time.Duration
		want       time.Duration
	}{
		{"first in line: its backoff", 0, 10 * ms, 500 * ms, 500 * ms},
		{"no pace measured yet: its backoff", 1000, 0, 500 * ms, 500 * ms},
		{"twice its turn", 1000, 10 * ms, 500 * ms, 20 * time.Second},
		{"a short turn: its backoff", 10, 10 * ms, 5 * time.Second, 5 * time.Second},
		{"a long line: at most maxListedWait", 10_000, 10 * ms, 500 * ms, maxListedWait},
		{"a rate-limit queue longer still", 10_000, 10 * ms, 10 * time.Minute, 10 * time.Minute},
	} {
		if got := listedWait(tc.ahead, tc.leaveEvery, tc.backoff); got != tc.want {
			t.Errorf("%s: listedWait(%d, %s, %s) = %s, want %s", tc.name, tc.ahead, tc.leaveEvery, tc.backoff, got, tc.want)
		}
	}
}

// A caller listed to be woken is told to wait about twice as long as the callers ahead of
// it should take at the pace places free: it comes back when woken, not by asking again
// and again (each time a reconcile that does nothing). The group it belongs to counts as
// waiting meanwhile, however long that is.
func TestShareListedCallersWaitForTheirTurn(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := NewShare(1, nil, func(string) {})
	s.now = func() time.Time { return now }
	for range 20 { // a place frees every 100ms
		leave, _ := enter(s, "busy", "busy")
		now = now.Add(100 * time.Millisecond)
		leave()
	}
	holder, _ := enter(s, "holder", "busy")
	defer holder()
	for i := range 300 {
		_, wait := enter(s, fmt.Sprintf("c%d", i), "team")
		want := listedWait(i, s.leaveEvery, shareBackoff)
		if wait < want || wait > want*3/2 {
			t.Fatalf("caller %d in line: wait %s, want %s (jittered)", i, wait, want)
		}
	}
	if s.leaveEvery < 90*time.Millisecond || s.leaveEvery > 110*time.Millisecond {
		t.Fatalf("pace %s, want about 100ms", s.leaveEvery)
	}
	if _, wait := enter(s, "c250", "team"); wait < 40*time.Second {
		t.Fatalf("a caller asking again before its turn is told %s, want its place's wait", wait)
	}
	now = now.Add(3 * waitingFor)
	if active, waiting := s.others("busy", now); active != 1 || waiting != 1 {
		t.Fatalf("a group with callers in line: %d active, %d waiting, want 1 and 1", active, waiting)
	}
}

// A caller woken for a place that another reconcile took first (one asking on its own, as
// a drift check does) keeps its turn: it is the next woken, before the callers behind it.
func TestShareWokenCallerKeepsItsTurn(t *testing.T) {
	w := &wakes{}
	s := NewShare(1, nil, w.wake)
	holder, _ := enter(s, "holder", "team")
	for _, c := range []string{"c1", "c2", "c3"} {
		enter(s, c, "team")
	}
	holder()
	if woken := w.take(); !slices.Equal(woken, []string{"c1"}) {
		t.Fatalf("woken %v, want c1", woken)
	}
	drift, _ := enter(s, "drift", "team") // asks on its own, before c1 is back
	if drift == nil {
		t.Fatal("the free place was not taken")
	}
	if leave, wait := enter(s, "c1", "team"); leave != nil || wait > 3*time.Second/2 {
		t.Fatalf("c1 turned away: admitted %v, told %s, want its backoff", leave != nil, wait)
	}
	drift()
	if woken := w.take(); !slices.Equal(woken, []string{"c1"}) {
		t.Fatalf("woken %v, want c1 again before c2", woken)
	}
}

// wakes records the callers a Share wakes, from the test or from the timers that give up
// the places of callers that do not come back.
type wakes struct {
	mu  sync.Mutex
	got []string
}

func (w *wakes) wake(c string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, c)
}

// take returns the callers woken since the last take.
func (w *wakes) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.got
	w.got = nil
	return got
}

// A caller woken that does not come back (its Segment deleted, or suspended, meanwhile;
// its wake lost) keeps the place for wakeGrace, then the next caller is woken for it: the
// place is not left empty until someone asks on their own.
func TestShareWakesTheNextWhenAWokenCallerDoesNotComeBack(t *testing.T) {
	woken := make(chan string, 4)
	s := NewShare(1, nil, func(c string) { woken <- c })
	s.wakeGrace = 20 * time.Millisecond
	holder, _ := enter(s, "holder", "team")
	for _, c := range []string{"gone", "next"} {
		enter(s, c, "team")
	}
	holder()
	for _, want := range []string{"gone", "next"} {
		select {
		case c := <-woken:
			if c != want {
				t.Fatalf("woken %s, want %s", c, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not woken: the place of a woken caller that did not come back was kept", want)
		}
	}
	if leave, _ := enter(s, "next", "team"); leave == nil {
		t.Fatal("the caller woken next was not admitted")
	}
	select {
	case c := <-woken:
		t.Fatalf("%s woken, with no place free", c)
	case <-time.After(5 * s.wakeGrace):
	}
}

// A caller dropped (its Segment deleted) leaves its line: it is never woken, and a place
// kept for it, woken, goes to the next at once, not after wakeGrace.
func TestShareDropsACallerGone(t *testing.T) {
	w := &wakes{}
	s := NewShare(1, nil, w.wake)
	s.wakeGrace = time.Hour // only Drop can pass the place on
	holder, _ := enter(s, "holder", "team")
	for _, c := range []string{"woken-then-gone", "listed-then-gone", "next"} {
		enter(s, c, "team")
	}
	s.Drop("listed-then-gone")
	holder()
	if woken := w.take(); !slices.Equal(woken, []string{"woken-then-gone"}) {
		t.Fatalf("woken %v, want woken-then-gone", woken)
	}
	s.Drop("woken-then-gone")
	if woken := w.take(); !slices.Equal(woken, []string{"next"}) {
		t.Fatalf("woken %v when the woken caller went, want next (the caller dropped while listed skipped)", woken)
	}
	s.Drop("never-seen") // nothing kept for it: nobody woken
	if woken := w.take(); len(woken) != 0 {
		t.Fatalf("woken %v for a caller never turned away", woken)
	}
	var none *Share
	none.Drop("x")
	shares := NewShares(1, w.wake)
	shares.Drop("no-share-yet", "x")
	if len(shares.m) != 0 {
		t.Fatal("Drop made a Share")
	}
}

// Accounts.Drop forgets a caller in every account's Share: a Segment deleted no longer says
// which account it used.
func TestAccountsDropInEveryShare(t *testing.T) {
	w := &wakes{}
	accounts := NewAccounts(AccountOptions{Share: 1})
	accounts.WakeWith(w.wake)
	var shares []*Share
	for _, token := range []string{"a", "b"} {
		acct, err := accounts.For(Credentials{BaseURL: "http://chatbot.invalid", Token: token}, "team")
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, acct.Share)
	}
	for _, s := range shares {
		holder, _ := enter(s, "holder", "team")
		enter(s, "gone", "team")
		enter(s, "next", "team")
		defer holder()
	}
	accounts.Drop("gone")
	for i, s := range shares {
		s.mu.Lock()
		listed := s.turnedAway["gone"].listed
		s.mu.Unlock()
		if listed {
			t.Errorf("account %d: the caller gone still listed", i)
		}
	}
}
