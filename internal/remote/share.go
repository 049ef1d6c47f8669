package remote

import (
	"slices"
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
// rate limit when it starts: with a longer queue ahead of it (the calls waiting, and a call
// to come for each reconcile under way), it is turned away, to come back when the queue
// has gone down, and holds no worker meanwhile. The check books no turn: a reconcile that
// makes several calls may still wait a few turns; what it prevents is a share of workers
// parked behind a long queue.
const MaxQueueWait = time.Second

// forgetTurnAwayAfter is how long a turned-away caller that does not come back is
// remembered: well past the longest wait it is told (maxListedWait, jittered). A caller
// told to wait out a longer rate-limit queue may be forgotten meanwhile: its backoff starts
// again, and the queue, not the backoff, sets its next wait anyway.
const forgetTurnAwayAfter = 2 * maxListedWait

// maxListedWait is the longest wait a caller turned away for want of a place is told
// while it is listed to be woken when one frees (see listedWait): the wake, not the wait,
// brings it back, and the wait only bounds how late a lost wake makes it.
const maxListedWait = time.Minute

// wakeGrace is how long a place freed is kept for the caller woken for it: one that has
// not asked again by then (deleted meanwhile, suspended, moved to another shard, or its
// wake lost) gives it up, and the next caller is woken.
const wakeGrace = 2 * time.Second

// waitingFor is how long a group turned away counts as waiting: longer than the longest
// backoff (maxShareBackoff, jittered), so that a group waiting its turn counts throughout.
const waitingFor = 2 * maxShareBackoff

// Share bounds how many reconciles of one group of Segments (an account's, a namespace's)
// are under way at once, so that the group, however slow its API or long its queue, holds
// no more than its share of the workers every group shares.
//
// An account's Share is shared in turn by the namespaces whose Segments use the account
// (the manager's own token is one account for every namespace granted it): while other
// namespaces hold places or wait for one, a namespace holds no more than an equal part of
// the share, so that one tenant's thousand Segments do not keep another's one waiting. And
// it turns a reconcile away while the account's rate-limit queue is longer than
// MaxQueueWait, so that workers do not sit waiting for their turns, unless its namespace
// holds no place yet: waiting the queue out is then its turn (however long the queue, one
// worker per namespace).
//
// A nil *Share bounds nothing.
type Share struct {
	size int // 0: no bound on how many at once
	// queue says how long a call made now would wait for the account's rate limit, with
	// held reconciles under way (nil: never).
	queue func(held int) time.Duration
	now   func() time.Time

	// wake is told, when a place frees, the caller to ask again at once (nil: none is).
	wake func(caller string)

	mu         sync.Mutex
	held       int
	groups     map[string]int       // places held, by group
	waiting    map[string]time.Time // groups turned away: when last
	turnedAway map[string]turnAway  // by caller
	sweepAt    int                  // len(turnedAway) at which callers gone are forgotten
	// forPlace are the callers of each group turned away for want of a place (not for the
	// queue) that wake has not been told yet, in the order they are to be woken (see line).
	// A caller admitted or forgotten since is skipped.
	forPlace map[string]*line
	// promised are the callers woken for a place that have not asked again yet, and when
	// they were woken: a place is kept for each, for wakeGrace (see lapse).
	promised  map[string]time.Time
	wakeGrace time.Duration
	// leaveEvery is how often a place has been freeing (a moving average of the time between
	// two), and lastLeave when one last did: how long a listed caller should wait to be woken.
	leaveEvery time.Duration
	lastLeave  time.Time
}

// line is a group's callers waiting to be woken: first those woken once and turned away
// again (another reconcile took the place first: they keep their turn), then the others in
// the order they were turned away, with how many were taken from the front of these so far
// (a caller listed as the n-th of its group has n-taken callers ahead of it).
type line struct {
	again   []string
	callers []string
	taken   int
}

// turnAway is what a Share remembers of a caller it turned away.
type turnAway struct {
	times int // in a row
	last  time.Time
	// listed: in forPlace, not woken yet, as the seq-th caller its group ever listed (or
	// in its line's again: woken is true).
	listed bool
	seq    int
	// woken: told to ask again when a place freed; it keeps its turn if turned away again.
	woken bool
}

// NewShare returns a Share of n reconciles at once (no bound if n <= 0) that also turns
// reconciles away while queue (if non-nil) says a call would wait over MaxQueueWait. It
// returns nil, which bounds nothing, if there is neither. When a place frees, wake (if
// non-nil) is told one caller turned away for want of a place (see next), which should
// ask again at once: a caller then waits for a place, not for a backoff. The wait it was
// told when turned away (listedWait) only bounds how late it comes should its wake be
// lost; a caller woken that does not come back within wakeGrace gives its place to the
// next.
func NewShare(n int, queue func(held int) time.Duration, wake func(caller string)) *Share {
	if n <= 0 && queue == nil {
		return nil
	}
	return &Share{size: max(n, 0), queue: queue, wake: wake, now: time.Now, groups: map[string]int{}, waiting: map[string]time.Time{},
		turnedAway: map[string]turnAway{}, sweepAt: minSweep, forPlace: map[string]*line{},
		promised: map[string]time.Time{}, wakeGrace: wakeGrace}
}

const minSweep = 1024

// Take admits one reconcile (caller names it) of group (its namespace; "" if it has none)
// if admits says so, and returns its turn. Otherwise it returns nil and how long the
// caller should wait before it asks again (see turnedAwayFor). A turn-away costs a cache
// read and no API call, and a place that frees wakes a caller waiting for one.
func (s *Share) Take(caller, group string) (*Turn, time.Duration) {
	if s == nil {
		return &Turn{}, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	delete(s.promised, caller) // back: admitted or not, its place is no longer kept
	st := shareState{size: s.size, held: s.held, groupHeld: s.groups[group]}
	if s.queue != nil {
		st.queued = s.queue(s.held) // the limiter's lock is its own: it never calls back
	}
	st.othersActive, st.othersWaiting = s.others(group, now)
	if ok, byQueue := admits(st); !ok {
		s.waiting[group] = now
		if !byQueue {
			st.queued = 0 // a place frees whatever the queue: the backoff says when to ask
		}
		return nil, s.turnAway(caller, group, !byQueue, st.queued, now)
	}
	s.held++
	s.groups[group]++
	delete(s.turnedAway, caller)
	if s.forPlace[group] == nil {
		delete(s.waiting, group) // its callers turned away still will say so again
	}
	return &Turn{s: s, group: group}, 0
}

// Turn is a place a reconcile holds in a Share; it ends once, by Leave or GiveBack.
type Turn struct {
	s     *Share // nil: a Share that bounds nothing
	group string
	once  sync.Once
}

// Leave ends the turn, and wakes a caller waiting for a place.
func (t *Turn) Leave() {
	if t.s != nil {
		t.once.Do(func() { t.s.leave(t.group, "") })
	}
}

// GiveBack ends a turn that was not used (its caller was turned away by another Share,
// its namespace's, and comes back on its own): the caller woken for the place is of
// another group, as one of the same would most likely be turned away in turn.
func (t *Turn) GiveBack() {
	if t.s != nil {
		t.once.Do(func() { t.s.leave(t.group, t.group) })
	}
}

// shareState is what admits decides from: a Share of size places (0: no bound), held of
// them in use and groupHeld by the caller's group; othersActive other groups that hold
// places or wait for one, othersWaiting of them holding none; and how long a call made
// now would wait for the account's rate limit (queued: the calls waiting, and one to come
// for each reconcile under way).
type shareState struct {
	size, held, groupHeld       int
	othersActive, othersWaiting int
	queued                      time.Duration
}

// admits decides whether a Share lets a caller in, and if not, whether only for the queue.
//   - Never past size.
//   - While other groups hold places or wait for one, a group holds no more than an equal
//     part of the share (rounded up, so that no place is idle), and leaves a place for each
//     other group that waits with none: a group holding nothing is never kept waiting by
//     groups that each hold their part, however many they are.
//   - A group that holds a place already starts nothing while the queue is over
//     MaxQueueWait; one that holds none waits the queue out: that is its turn.
func admits(st shareState) (ok, byQueue bool) {
	switch {
	case st.size > 0 && st.held >= st.size:
		return false, false
	case st.size > 0 && st.othersActive > 0 && st.groupHeld >= (st.size+st.othersActive)/(st.othersActive+1):
		return false, false
	case st.size > 0 && st.groupHeld > 0 && st.held+st.othersWaiting >= st.size:
		return false, false
	case st.queued > MaxQueueWait && st.groupHeld > 0:
		return false, true
	}
	return true, false
}

// leave ends a turn of group, and wakes a caller waiting for a place, of any group but
// skip.
func (s *Share) leave(group, skip string) {
	s.mu.Lock()
	now := s.now()
	if skip == "" { // a turn used, not one given back: the pace of the reconciles
		if !s.lastLeave.IsZero() {
			// An idle spell counts as at most one backoff: it says little of the pace once busy.
			since := min(now.Sub(s.lastLeave), maxShareBackoff)
			if s.leaveEvery == 0 {
				s.leaveEvery = since
			}
			s.leaveEvery += (since - s.leaveEvery) / 8
		}
		s.lastLeave = now
	}
	s.held--
	if s.groups[group]--; s.groups[group] <= 0 {
		delete(s.groups, group)
	}
	woken := s.wakeNext(skip, now)
	if s.held == 0 && len(s.forPlace) == 0 && woken == "" {
		clear(s.turnedAway) // idle: nobody is waiting
		clear(s.promised)
		s.sweepAt = minSweep
	}
	s.mu.Unlock()
	if woken != "" {
		s.wake(woken) // outside the lock: wake may call back
	}
}

// wakeNext takes the caller to wake for a place freed now (next, of any group but skip), and
// keeps the place for it until it asks again or wakeGrace passes; "" if none waits.
func (s *Share) wakeNext(skip string, now time.Time) string {
	c := s.next(skip)
	if c != "" {
		s.promised[c] = now
		time.AfterFunc(s.wakeGrace, s.lapse)
	}
	return c
}

// Drop forgets caller, gone (its Segment deleted): it leaves its group's line, and a place
// kept for it goes to the next caller at once, not after wakeGrace. A tenant that deletes
// Segments while they wait so costs the others no wait.
func (s *Share) Drop(caller string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	_, kept := s.promised[caller]
	delete(s.promised, caller)
	delete(s.turnedAway, caller) // its entry in a line is skipped from now on
	woken := ""
	if kept && s.held+len(s.promised) < s.size {
		woken = s.wakeNext("", s.now())
	}
	s.mu.Unlock()
	if woken != "" {
		s.wake(woken)
	}
}

// lapse gives up the places kept for callers woken over wakeGrace ago that have not asked
// again, and wakes as many callers next in line, as places are free: a Segment deleted, or
// suspended, while it waited, or a wake lost, would otherwise leave its place empty until
// some caller asked on its own.
func (s *Share) lapse() {
	s.mu.Lock()
	now := s.now()
	lapsed := 0
	for c, at := range s.promised {
		if now.Sub(at) >= s.wakeGrace {
			delete(s.promised, c)
			lapsed++
		}
	}
	var woken []string
	for ; lapsed > 0 && s.held+len(s.promised) < s.size; lapsed-- {
		c := s.wakeNext("", now)
		if c == "" {
			break
		}
		woken = append(woken, c)
	}
	s.mu.Unlock()
	for _, c := range woken {
		s.wake(c)
	}
}

// next takes from forPlace the caller to wake now that a place is free: of the groups
// (but skip) with callers waiting for a place, the one holding the fewest places (the one admits is likeliest
// to let in: a group at its part would be turned away again), and of those the one whose
// first caller was turned away longest ago; of that group, its first caller. One caller
// for one place: waking more would only turn them away again.
func (s *Share) next(skip string) string {
	if s.wake == nil {
		return ""
	}
	var best string
	var bestGroup string
	for g, l := range s.forPlace {
		c, ok := l.front(s.listed) // not admitted or forgotten since
		if !ok {
			delete(s.forPlace, g)
			continue
		}
		if g == skip && skip != "" {
			continue
		}
		if best == "" || s.groups[g] < s.groups[bestGroup] ||
			s.groups[g] == s.groups[bestGroup] && s.turnedAway[c].last.Before(s.turnedAway[best].last) {
			best, bestGroup = c, g
		}
	}
	if best == "" {
		return ""
	}
	if l := s.forPlace[bestGroup]; l.pop() == 0 {
		delete(s.forPlace, bestGroup)
	}
	t := s.turnedAway[best]
	t.listed, t.woken = false, true
	s.turnedAway[best] = t
	return best
}

// others counts the groups other than group that hold places, were turned away within
// waitingFor or have callers listed to be woken (active), and of those the ones that hold
// none (waiting); it forgets the groups that stopped asking.
func (s *Share) others(group string, now time.Time) (active, waiting int) {
	for g, last := range s.waiting {
		// A group with callers in line counts while they may still come back on their own.
		if now.Sub(last) > waitingFor && (s.forPlace[g] == nil || now.Sub(last) > forgetTurnAwayAfter) {
			delete(s.waiting, g)
		} else if g != group && s.groups[g] == 0 {
			waiting++
		}
	}
	active = waiting
	for g := range s.groups {
		if g != group {
			active++
		}
	}
	return active, waiting
}

// turnAway records that caller of group was turned away (forPlace: for want of a place),
// and returns its wait, jittered.
func (s *Share) turnAway(caller, group string, forPlace bool, queued time.Duration, now time.Time) time.Duration {
	if len(s.turnedAway) >= s.sweepAt {
		// Callers turned away long ago are gone (deleted Segments) or were admitted
		// since: forget them, so that the map follows the callers waiting now.
		for k, t := range s.turnedAway {
			if now.Sub(t.last) > forgetTurnAwayAfter {
				delete(s.turnedAway, k)
			}
		}
		s.sweepAt = max(minSweep, 2*len(s.turnedAway))
		for g, l := range s.forPlace { // and the callers forgotten from the lines
			// The callers left keep their seq: those behind a forgotten one are told a
			// little longer than they will wait, which the wake, not the wait, corrects.
			l.again, l.callers = slices.DeleteFunc(l.again, s.unlisted), slices.DeleteFunc(l.callers, s.unlisted)
			if len(l.again)+len(l.callers) == 0 {
				delete(s.forPlace, g)
			}
		}
	}
	t := s.turnedAway[caller]
	next := turnAway{times: t.times + 1, last: now, listed: t.listed, seq: t.seq, woken: t.woken}
	if forPlace && s.wake != nil && !t.listed {
		l := s.forPlace[group]
		if l == nil {
			l = &line{}
			s.forPlace[group] = l
		}
		next.listed = true
		if t.woken {
			l.again = append(l.again, caller)
		} else {
			next.seq = l.taken + len(l.callers)
			l.callers = append(l.callers, caller)
		}
	}
	s.turnedAway[caller] = next
	backoff := turnedAwayFor(t.times, queued)
	if l := s.forPlace[group]; next.listed && !next.woken && l != nil {
		return jitter(listedWait(next.seq-l.taken, s.leaveEvery, backoff))
	}
	return jitter(backoff)
}

// front returns the first caller of the line that is still listed, having dropped those
// before it that are not.
func (l *line) front(listed func(string) bool) (string, bool) {
	for len(l.again) > 0 && !listed(l.again[0]) {
		l.again = l.again[1:]
	}
	if len(l.again) > 0 {
		return l.again[0], true
	}
	for len(l.callers) > 0 && !listed(l.callers[0]) {
		l.pop()
	}
	if len(l.callers) > 0 {
		return l.callers[0], true
	}
	return "", false
}

// pop takes the caller at the front of the line, and returns how many are left.
func (l *line) pop() int {
	if len(l.again) > 0 {
		l.again = l.again[1:]
	} else {
		l.callers = l.callers[1:]
		l.taken++
	}
	return len(l.again) + len(l.callers)
}

// listed says whether caller still waits in its group's line: not admitted, nor forgotten,
// since it was listed. unlisted is its opposite.
func (s *Share) listed(caller string) bool   { return s.turnedAway[caller].listed }
func (s *Share) unlisted(caller string) bool { return !s.listed(caller) }

// listedWait is how long a caller listed to be woken when a place frees, with ahead callers
// ahead of it in its group's line and a place freeing every leaveEvery, should wait before
// it asks again on its own: twice the time its turn should take, so that it is woken
// first (each time it asks before its turn costs a reconcile that does nothing); no less
// than its backoff, and no more than maxListedWait, which bounds how late a wake lost
// (its caller deleted meanwhile, or the wakeups full) leaves it.
func listedWait(ahead int, leaveEvery, backoff time.Duration) time.Duration {
	return max(min(2*time.Duration(ahead)*leaveEvery, maxListedWait), backoff)
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
	return s.size
}

// Shares holds a Share per key (a namespace), made on first use.
type Shares struct {
	size int
	wake func(caller string)
	mu   sync.Mutex
	m    map[string]*Share
}

// NewShares returns Shares of size n each (no bound if n <= 0), which tell wake (if
// non-nil) the callers to ask again when a place frees (see NewShare).
func NewShares(n int, wake func(caller string)) *Shares {
	return &Shares{size: n, wake: wake, m: map[string]*Share{}}
}

// Drop forgets caller in key's Share, if it has one (see Share.Drop).
func (s *Shares) Drop(key, caller string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	sh := s.m[key]
	s.mu.Unlock()
	sh.Drop(caller)
}

// For returns key's Share.
func (s *Shares) For(key string) *Share {
	if s == nil || s.size <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.m[key]
	if !ok {
		sh = NewShare(s.size, nil, s.wake)
		s.m[key] = sh
	}
	return sh
}

// jitter spreads d over up to half as much again.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.5) }
