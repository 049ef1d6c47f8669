package simulator

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Faults are failures injected into vendor calls, to test how a client copes. Rates are
// fractions from 0 to 1, drawn independently per call. A zero Faults injects nothing.
type Faults struct {
	// Endpoints limits the faults to these endpoints; empty means all.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// FailNext makes the next FailNext matching calls fail with ErrorCode, before any
	// effect; it counts down as they happen.
	FailNext int `json:"failNext,omitempty"`
	// ErrorRate is the fraction of calls answered with ErrorCode, before any effect.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// ErrorCode is the status of those failures: 500 (default) or another 5xx, or 429.
	ErrorCode int `json:"errorCode,omitempty"`
	// RetryAfter, if set, is sent as Retry-After with injected errors.
	RetryAfter Duration `json:"retryAfter,omitempty"`
	// LoseResponseRate is the fraction of write calls whose change is made but whose
	// response is replaced by a 500: the caller cannot tell the call succeeded.
	LoseResponseRate float64 `json:"loseResponseRate,omitempty"`
	// DropRate is the fraction of calls whose connection is closed with no response, before
	// any effect.
	DropRate float64 `json:"dropRate,omitempty"`
	// SlowRate is the fraction of calls delayed by SlowDelay on top of the latency.
	SlowRate  float64  `json:"slowRate,omitempty"`
	SlowDelay Duration `json:"slowDelay,omitempty"`
	// LateRate is the fraction of calls answered LateDelay after they were handled: a
	// listing so answered shows the account as it was LateDelay before the caller sees it,
	// as a large account's listing over a slow link would.
	LateRate  float64  `json:"lateRate,omitempty"`
	LateDelay Duration `json:"lateDelay,omitempty"`
	// Seed makes the draws repeatable; 0 picks one at random.
	Seed uint64 `json:"seed,omitempty"`

	rng *rand.Rand
}

func (f *Faults) validate() error {
	for name, r := range map[string]float64{"errorRate": f.ErrorRate, "loseResponseRate": f.LoseResponseRate,
		"dropRate": f.DropRate, "slowRate": f.SlowRate, "lateRate": f.LateRate} {
		if r < 0 || r > 1 || math.IsNaN(r) {
			return fmt.Errorf("simulator: fault %s must be between 0 and 1, got %v", name, r)
		}
	}
	if f.ErrorCode != 0 && f.ErrorCode != http.StatusTooManyRequests && (f.ErrorCode < 500 || f.ErrorCode > 599) {
		return fmt.Errorf("simulator: fault errorCode must be 429 or a 5xx status, got %d", f.ErrorCode)
	}
	if f.FailNext < 0 {
		return fmt.Errorf("simulator: fault failNext must not be negative")
	}
	for _, ep := range f.Endpoints {
		if !slices.Contains(Endpoints, ep) {
			return fmt.Errorf("simulator: unknown endpoint %q (want one of %v)", ep, Endpoints)
		}
	}
	return nil
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

// Faults returns the injected faults now in force (FailNext as counted down).
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.rng = nil
	return f
}

// outcome is what the faults decided for one call.
type outcome struct {
	status       int
	retryAfter   time.Duration
	drop         bool
	delay        time.Duration // before the call is handled
	late         time.Duration // after it is handled, before the answer
	loseResponse bool
}

// decide draws the faults for one call to ep; the caller holds the server's mutex.
func (f *Faults) decide(ep Endpoint, c *Counts) outcome {
	var o outcome
	if len(f.Endpoints) > 0 && !slices.Contains(f.Endpoints, ep) {
		return o
	}
	if f.rng == nil {
		seed := f.Seed
		if seed == 0 {
			seed = rand.Uint64()
		}
		f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	hit := func(p float64) bool { return p > 0 && f.rng.Float64() < p }
	if hit(f.SlowRate) {
		o.delay = f.SlowDelay.Duration()
	}
	if hit(f.LateRate) {
		o.late = f.LateDelay.Duration()
	}
	code := f.ErrorCode
	if code == 0 {
		code = http.StatusInternalServerError
	}
	switch {
	case f.FailNext > 0:
		f.FailNext--
		o.status = code
	case hit(f.ErrorRate):
		o.status = code
	case hit(f.DropRate):
		o.drop = true
	case ep != EndpointList && hit(f.LoseResponseRate):
		o.loseResponse = true
	}
	if o.status != 0 {
		o.retryAfter = f.RetryAfter.Duration()
	}
	if o.status != 0 || o.drop || o.loseResponse {
		c.Faults++
	}
	return o
}

// Duration is a time.Duration that reads and writes JSON as a string like "250ms".
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("1.5s") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or a number of seconds")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// limiter is the server-side rate limit: a token bucket holding one second's worth of calls.
type limiter struct {
	bucket *rate.Limiter
	now    func() time.Time
}

func newLimiter(perSecond float64, now func() time.Time) *limiter {
	if perSecond <= 0 {
		return nil
	}
	burst := max(1, int(math.Ceil(perSecond)))
	return &limiter{bucket: rate.NewLimiter(rate.Limit(perSecond), burst), now: now}
}

// take spends one call; if none is left it returns how long until one is.
func (l *limiter) take() (wait time.Duration, limited bool) {
	if l == nil {
		return 0, false
	}
	now := l.now()
	r := l.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, true
	}
	return 0, false
}

// retryAfterSeconds formats a wait as Retry-After delay-seconds, which HTTP makes a whole
// number: rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// sleep waits d unless the client goes away first; false if it did.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// dropConnection closes the connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 or a recorder: abort the stream instead
}

// Counts are the server's call counters since start or the last Reset.
type Counts struct {
	// Requests counts every call received per endpoint, whatever its outcome.
	Requests map[Endpoint]int64 `json:"requests"`
	// Succeeded counts the calls per endpoint answered 2xx (for writes: changes made).
	Succeeded map[Endpoint]int64 `json:"succeeded"`
	// Throttled counts 429 answers.
	Throttled int64 `json:"throttled"`
	// Unauthorized counts 401 answers.
	Unauthorized int64 `json:"unauthorized"`
	// Faults counts injected failures (errors, drops, lost responses).
	Faults int64 `json:"faults"`
}

func newCounts() Counts {
	return Counts{Requests: map[Endpoint]int64{}, Succeeded: map[Endpoint]int64{}}
}

// Writes is the number of successful create, add, rename and delete calls.
func (c Counts) Writes() int64 {
	return c.Succeeded[EndpointCreate] + c.Succeeded[EndpointAdd] + c.Succeeded[EndpointRename] + c.Succeeded[EndpointDelete]
}

// Counts returns a copy of the counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Requests = copyCounts(c.Requests)
	c.Succeeded = copyCounts(c.Succeeded)
	return c
}

// ResetCounts zeroes the counters, keeping the segments.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = newCounts()
}

func copyCounts(m map[Endpoint]int64) map[Endpoint]int64 {
	out := make(map[Endpoint]int64, len(Endpoints))
	for _, ep := range Endpoints {
		out[ep] = m[ep]
	}
	return out
}
