package chatbot

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Default waits after the API refuses the token.
const (
	DefaultRefusalBackoff    = 10 * time.Second
	DefaultRefusalMaxBackoff = 5 * time.Minute
)

// WithRefusalBackoff sets how long the client waits after the API refuses its token (401)
// before it asks again, and the most that wait grows to (defaults: 10s and 5m).
func WithRefusalBackoff(base, most time.Duration) Option {
	return func(c *Client) { c.refusal.base, c.refusal.most = base, most }
}

// refusal keeps a refused token from costing a call per caller: after a 401, every call is
// answered with that refusal, unsent, until the wait is over; then one call (the probe)
// goes, and the others keep waiting for its answer. Each refusal of a probe doubles the
// wait. An answer that shows the token taken (2xx, or a 4xx about the request) ends it; a
// 429, a 5xx or no answer says nothing of the token (a gateway may answer so before it
// looks), so the wait stands and the next call asks. A 403 is about what the token may
// reach, not the token. A new token is a new Client, with no wait.
type refusal struct {
	base, most time.Duration
	now        func() time.Time // nil: time.Now

	mu      sync.Mutex
	err     *APIError // the refusal; nil while the token is not known to be refused
	until   time.Time
	step    time.Duration
	probing bool
}

// admit returns nil if a call may go now, and whether it is the probe, which must report.
// Without claim (a check before waiting on the rate limiter), a due probe is not taken.
func (r *refusal) admit(op string, claim bool) (probe bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err == nil:
		return false, nil
	case r.probing || r.clock().Before(r.until):
		e := *r.err // its message, the probe's, says the rest (refusedMessage)
		e.Op, e.Local, e.NotSent, e.Err, e.Body = op, true, true, nil, ""
		e.RetryAfter = max(r.until.Sub(r.clock()), time.Second) // a probe under way: soon
		return false, &e
	case !claim:
		return false, nil
	}
	r.probing = true
	return true, nil
}

func (r *refusal) clock() time.Time {
	if r.now == nil {
		return time.Now()
	}
	return r.now()
}

// report records how a call that went ended: its HTTP status (0: no answer) and error.
func (r *refusal) report(probe bool, status int, err *APIError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case status == http.StatusUnauthorized:
		if r.err != nil && !probe {
			return // sent before the refusal was known: the wait is already running
		}
		r.step = min(max(2*r.step, r.base), r.most)
		r.err, r.until, r.probing = err, r.clock().Add(r.step), false
	case status >= 200 && status < 300, status >= 400 && status < 500 && status != http.StatusTooManyRequests:
		r.err, r.step, r.probing = nil, 0, false // the token was taken
	case probe: // nothing said of the token: the wait stands, and the next call asks
		r.probing = false
	}
}

// refusedMessage is the message of a 401, the same whether the call went or was held back,
// so that a status quoting it does not change with each reconcile.
func (r *refusal) refusedMessage(apiMessage string) string {
	return fmt.Sprintf("the API refused this token (%s); it is asked again after a growing wait (%s to %s), "+
		"or at once with a new token", apiMessage, r.base, r.most)
}
