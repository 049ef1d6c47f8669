package remote

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Backoff of a reconcile turned away because its share of the workers is in use.
const (
	shareBackoff    = 500 * time.Millisecond
	maxShareBackoff = 5 * time.Second
)

// Share bounds how many reconciles of one group of Segments (an account's, a namespace's)
// are under way at once, so that the group, however slow its API or long its queue, holds
// no more than its share of the workers every group shares. A nil *Share bounds nothing.
type Share struct {
	slots      chan struct{}
	mu         sync.Mutex
	turnedAway map[string]int // by caller: how many times in a row it was turned away
}

// NewShare returns a Share of n reconciles at once; nil (no bound) if n <= 0.
func NewShare(n int) *Share {
	if n <= 0 {
		return nil
	}
	return &Share{slots: make(chan struct{}, n), turnedAway: map[string]int{}}
}

// Enter admits one reconcile (caller names it) if fewer than the share are under way, and
// returns the func that ends it. Otherwise it returns nil and how long the caller should
// wait before it asks again: half a second, doubling each time the same caller is turned
// away, up to 5s (each jittered up to half again, so that callers turned away together come
// back apart). A turn-away costs a cache read and no API call, so a thousand Segments
// waiting cost a few hundred cheap requeues a second at most, and a place that frees is
// taken within milliseconds.
func (s *Share) Enter(caller string) (leave func(), wait time.Duration) {
	if s == nil {
		return func() {}, 0
	}
	select {
	case s.slots <- struct{}{}:
		s.mu.Lock()
		delete(s.turnedAway, caller)
		s.mu.Unlock()
		return sync.OnceFunc(func() {
			<-s.slots
			s.mu.Lock()
			if len(s.slots) == 0 {
				clear(s.turnedAway) // idle: nobody is waiting
			}
			s.mu.Unlock()
		}), 0
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.turnedAway[caller]
	s.turnedAway[caller] = n + 1
	return nil, jitter(min(shareBackoff<<min(n, 5), maxShareBackoff))
}

// Size is the most reconciles under way at once (0: no bound).
func (s *Share) Size() int {
	if s == nil {
		return 0
	}
	return cap(s.slots)
}

// Shares holds a Share per key (a namespace), made on first use.
type Shares struct {
	size int
	mu   sync.Mutex
	m    map[string]*Share
}

// NewShares returns Shares of size n each (no bound if n <= 0).
func NewShares(n int) *Shares { return &Shares{size: n, m: map[string]*Share{}} }

// For returns key's Share.
func (s *Shares) For(key string) *Share {
	if s == nil || s.size <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.m[key]
	if !ok {
		sh = NewShare(s.size)
		s.m[key] = sh
	}
	return sh
}

// jitter spreads d over up to half as much again.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.5) }
