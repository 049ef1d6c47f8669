package remote

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Backoff of a reconcile turned away: its share of the workers is in use, or its account's
// rate-limit queue is long.
const (
	shareBackoff    = 500 * time.Millisecond
	maxShareBackoff = 5 * time.Second
)

// MaxQueueWait is the longest a reconcile may expect to wait for its account's client-side
// rate limit when it starts: with a longer queue ahead of it, it is turned away, to come
// back when the queue has gone down, and holds no worker meanwhile. The check books no
// turn: reconciles admitted together (at most the share) may still queue behind each other
// for a few turns; what it prevents is a share of workers parked behind a long queue.
const MaxQueueWait = time.Second

// forgetTurnAwayAfter is how long a turned-away caller that does not come back is
// remembered: well past the longest backoff (maxShareBackoff, jittered). A caller told to
// wait out a longer rate-limit queue may be forgotten meanwhile: its backoff starts again,
// and the queue, not the backoff, sets its next wait anyway.
const forgetTurnAwayAfter = 4 * maxShareBackoff

// Share bounds how many reconciles of one group of Segments (an account's, a namespace's)
// are under way at once, so that the group, however slow its API or long its queue, holds
// no more than its share of the workers every group shares. An account's Share also turns
// a reconcile away while the account's rate-limit queue is longer than MaxQueueWait, so
// that its workers do not sit waiting for their turns. A nil *Share bounds nothing.
type Share struct {
	slots chan struct{}        // nil: no bound on how many at once
	queue func() time.Duration // how long a call made now would wait; nil: never
	now   func() time.Time

	mu         sync.Mutex
	turnedAway map[string]turnAway // by caller
	sweepAt    int                 // len(turnedAway) at which callers gone are forgotten
}

// turnAway is what a Share remembers of a caller it turned away.
type turnAway struct {
	times int // in a row
	last  time.Time
}

// NewShare returns a Share of n reconciles at once (no bound if n <= 0) that also turns
// reconciles away while queue (if non-nil) says a call would wait over MaxQueueWait. It
// returns nil, which bounds nothing, if there is neither.
func NewShare(n int, queue func() time.Duration) *Share {
	if n <= 0 && queue == nil {
		return nil
	}
	s := &Share{queue: queue, now: time.Now, turnedAway: map[string]turnAway{}, sweepAt: minSweep}
	if n > 0 {
		s.slots = make(chan struct{}, n)
	}
	return s
}

const minSweep = 1024

// Enter admits one reconcile (caller names it) if fewer than the share are under way and
// the rate-limit queue is short, and returns the func that ends it. Otherwise it returns
// nil and how long the caller should wait before it asks again (see turnedAwayFor). A
// turn-away costs a cache read and no API call, so a thousand Segments waiting cost a few
// hundred cheap requeues a second at most, and a place that frees is taken within
// milliseconds.
func (s *Share) Enter(caller string) (leave func(), wait time.Duration) {
	if s == nil {
		return func() {}, 0
	}
	if !s.take() {
		return nil, s.turnAway(caller, 0)
	}
	if queued := s.queued(); queued > MaxQueueWait {
		s.give()
		return nil, s.turnAway(caller, queued)
	}
	s.mu.Lock()
	delete(s.turnedAway, caller)
	s.mu.Unlock()
	return sync.OnceFunc(s.give), 0
}

func (s *Share) take() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Share) give() {
	if s.slots == nil {
		return
	}
	<-s.slots
	s.mu.Lock()
	if len(s.slots) == 0 {
		clear(s.turnedAway) // idle: nobody is waiting
		s.sweepAt = minSweep
	}
	s.mu.Unlock()
}

func (s *Share) queued() time.Duration {
	if s.queue == nil {
		return 0
	}
	return s.queue()
}

// turnAway records that caller was turned away, and returns its wait, jittered.
func (s *Share) turnAway(caller string, queued time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.turnedAway) >= s.sweepAt {
		// Callers turned away long ago are gone (deleted Segments) or were admitted
		// since: forget them, so that the map follows the callers waiting now.
		for k, t := range s.turnedAway {
			if now.Sub(t.last) > forgetTurnAwayAfter {
				delete(s.turnedAway, k)
			}
		}
		s.sweepAt = max(minSweep, 2*len(s.turnedAway))
	}
	t := s.turnedAway[caller]
	s.turnedAway[caller] = turnAway{times: t.times + 1, last: now}
	return jitter(turnedAwayFor(t.times, queued))
}

// turnedAwayFor is how long a caller turned away times times in a row before should wait:
// half a second, doubling each time, up to 5s, and no less than the account's rate-limit
// queue (queued), which must go down before the caller can start.
func turnedAwayFor(times int, queued time.Duration) time.Duration {
	return max(min(shareBackoff<<min(times, 5), maxShareBackoff), queued)
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
		sh = NewShare(s.size, nil)
		s.m[key] = sh
	}
	return sh
}

// jitter spreads d over up to half as much again.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.5) }
