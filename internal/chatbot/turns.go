package chatbot

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxTurnWait is the longest a call waits in place for the client-side rate limit. A call
// whose turn is further off is not sent: its caller's turn is booked, and the call returns
// an *APIError with Throttled set and the wait in RetryAfter, so that the caller (a
// reconcile, on one of the workers every account shares) can leave and come back then.
const MaxTurnWait = 250 * time.Millisecond

// bookingTTL is how long past its time a booked turn is kept for its caller: one that has
// not come back by then has gone (its Segment deleted) or made no call.
const bookingTTL = time.Minute

// Pacer decides when calls may go. Take is asked once per call, with the caller's name
// (see WithCaller; "" for none): it returns how long until the call may go. A wait of at
// most MaxTurnWait the call spends in place; a longer one sends the call back to its
// caller, and a Pacer that booked a turn for that caller lets its next call go at that time.
type Pacer interface {
	Take(caller string) time.Duration
}

// WithPacer makes every call take its turn from p: a client-side rate limit.
func WithPacer(p Pacer) Option { return func(c *Client) { c.pacer = p } }

type callerKey struct{}

// WithCaller names the caller of the calls made with ctx (a Segment's UID): a call the
// client-side rate limit cannot let go soon books the caller's turn, and its next call at
// or after that time goes without queueing again.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerOf returns the caller WithCaller named in ctx, or "".
func CallerOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// Turns is a Pacer over a token bucket (QPS calls a second, Burst at once) that queues
// callers without holding them: each caller told to come back later has its call's token
// reserved for it, so that callers are served in the order they first asked, and a backlog
// of any size costs one turn-away per call.
type Turns struct {
	lim *rate.Limiter
	now func() time.Time

	mu     sync.Mutex
	booked map[string][]time.Time // by caller: the times of its reserved tokens, in order
	swept  time.Time
}

// NewTurns returns Turns allowing qps calls a second and burst at once (at least 1).
func NewTurns(qps float64, burst int) *Turns {
	return &Turns{lim: rate.NewLimiter(rate.Limit(qps), max(1, burst)), now: time.Now, booked: map[string][]time.Time{}}
}

// Take implements Pacer.
func (t *Turns) Take(caller string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweep(now)
	if slots := t.booked[caller]; len(slots) > 0 && caller != "" {
		wait := slots[0].Sub(now)
		if wait > MaxTurnWait {
			return wait
		}
		if len(slots) == 1 {
			delete(t.booked, caller)
		} else {
			t.booked[caller] = slots[1:]
		}
		return max(0, wait)
	}
	r := t.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait <= MaxTurnWait {
		return wait
	}
	if caller == "" {
		r.CancelAt(now) // nobody to come back for it
		return wait
	}
	t.booked[caller] = []time.Time{now.Add(wait)}
	return wait
}

// Book reserves n turns for caller, unless it holds some, and returns how long until the
// first. A caller about to make n calls that must not be parted (a create and its first
// members) books them together before it starts.
func (t *Turns) Book(caller string, n int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if slots := t.booked[caller]; len(slots) > 0 {
		return max(0, slots[0].Sub(now))
	}
	slots := make([]time.Time, 0, n)
	for range max(1, n) {
		slots = append(slots, now.Add(t.lim.ReserveN(now, 1).DelayFrom(now)))
	}
	t.booked[caller] = slots
	return max(0, slots[0].Sub(now))
}

// sweep drops, at most once a minute, the turns of callers that did not come back.
func (t *Turns) sweep(now time.Time) {
	if now.Sub(t.swept) < bookingTTL {
		return
	}
	t.swept = now
	for caller, slots := range t.booked {
		if now.Sub(slots[len(slots)-1]) > bookingTTL {
			delete(t.booked, caller)
		}
	}
}

// Booked reports how many callers hold turns; for tests and metrics.
func (t *Turns) Booked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.booked)
}

// Turn books the caller's (ctx's) turn for n calls about to be made, and returns nil if
// it has come (the calls then go with no more than a short wait each), or the error a
// call would get: Throttled, a Retry-After pause, a refused token. A caller that must
// write something before its first call (a pending create) asks first, so as not to
// write it again and again while it waits.
func (c *Client) Turn(ctx context.Context, op string, n int) error {
	if err := c.CheckPause(op); err != nil {
		return err
	}
	turns, ok := c.pacer.(*Turns)
	caller := CallerOf(ctx)
	if !ok || caller == "" {
		return nil
	}
	if wait := turns.Book(caller, n); wait > MaxTurnWait {
		return Throttled(op, wait)
	}
	return nil
}

// Throttled is the error of a call of op that the client-side rate limit sent back, its
// turn coming in wait.
func Throttled(op string, wait time.Duration) *APIError {
	return &APIError{Op: op, StatusCode: http.StatusTooManyRequests, Local: true, NotSent: true, Throttled: true,
		RetryAfter: wait, Message: "not sent yet: waiting for its turn at the client-side rate limit (--chatbot-api-qps)"}
}

// takeTurn waits in place for a short turn, and returns the error of a call whose turn is
// further off, or whose wait ctx ended.
func (c *Client) takeTurn(ctx context.Context, op string) error {
	if c.pacer == nil {
		return nil
	}
	wait := c.pacer.Take(CallerOf(ctx))
	if wait > MaxTurnWait {
		return Throttled(op, wait)
	}
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return &APIError{Op: op, Message: "waiting for client-side rate limit: " + ctx.Err().Error(), Err: ctx.Err(), NotSent: true}
	}
}
