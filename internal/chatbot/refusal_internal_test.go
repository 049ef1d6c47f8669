package chatbot

import (
	"net/http"
	"testing"
	"time"
)

// The wait after a refused token: one probe per step, the step doubling up to its most,
// and an answer that shows the token taken ending it.
func TestRefusalSteps(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &refusal{base: 10 * time.Second, most: 40 * time.Second, now: func() time.Time { return now }}
	denied := &APIError{Op: OpList, StatusCode: http.StatusUnauthorized, Message: "bad token"}
	type step struct {
		after  time.Duration // the clock moves on by this first
		claim  bool
		goes   bool // admitted
		probe  bool // as the probe
		answer int  // the status it gets, if it goes (0: none)
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"calls go until a refusal; then none for 10s", []step{
			{claim: true, goes: true, answer: 200},
			{claim: true, goes: true, answer: 401},
			{after: 9 * time.Second, claim: true},
			{after: time.Second, claim: false, goes: true}, // a check before the rate limiter: no probe taken
			{claim: true, goes: true, probe: true, answer: 401},
			{after: 19 * time.Second, claim: true}, // the step doubled to 20s
			{after: time.Second, claim: true, goes: true, probe: true, answer: 401},
			{after: 39 * time.Second, claim: true}, // 40s
			{after: time.Second, claim: true, goes: true, probe: true, answer: 401},
			{after: 39 * time.Second, claim: true}, // 40s: the most
			{after: time.Second, claim: true, goes: true, probe: true, answer: 200},
			{claim: true, goes: true, answer: 200}, // taken again: no wait
		}},
		{"one probe at a time; the others wait for its answer", []step{
			{claim: true, goes: true, answer: 401},
			{after: 10 * time.Second, claim: true, goes: true, probe: true, answer: -1}, // still under way
			{claim: true},
		}},
		{"a probe with no answer lets the next call ask", []step{
			{claim: true, goes: true, answer: 401},
			{after: 10 * time.Second, claim: true, goes: true, probe: true, answer: 0},
			{claim: true, goes: true, probe: true, answer: 200},
			{claim: true, goes: true, answer: 200},
		}},
		{"a 429 or a 5xx says nothing of the token: the wait stands, the next call asks; a 403 is no refusal", []step{
			{claim: true, goes: true, answer: 401},
			{after: 10 * time.Second, claim: true, goes: true, probe: true, answer: 429},
			{claim: true, goes: true, probe: true, answer: 503},
			{claim: true, goes: true, probe: true, answer: 403},
			{claim: true, goes: true, answer: 403},
			{claim: true, goes: true, answer: 200},
		}},
		{"refusals of calls sent before the first was known do not lengthen the wait", []step{
			{claim: true, goes: true, answer: 401},
			{claim: true}, // refused, unsent
		}},
	} {
		*r = refusal{base: r.base, most: r.most, now: r.now}
		for i, s := range tc.steps {
			now = now.Add(s.after)
			probe, err := r.admit(OpList, s.claim)
			if (err == nil) != s.goes || probe != s.probe {
				t.Fatalf("%s, step %d: admitted %v as probe %v (%v), want %v, %v", tc.name, i, err == nil, probe, err, s.goes, s.probe)
			}
			if err != nil {
				if e, ok := AsAPIError(err); !ok || !e.Unauthorized() || !e.NotSent || !e.Local {
					t.Fatalf("%s, step %d: held back with %+v", tc.name, i, err)
				}
			}
			if s.goes && s.claim && s.answer >= 0 {
				var e *APIError
				if s.answer == 401 {
					e = &APIError{Op: OpList, StatusCode: s.answer, Message: denied.Message}
				}
				r.report(probe, s.answer, e)
			}
		}
	}
	// Late refusals of calls already in flight keep the first step.
	*r = refusal{base: r.base, most: r.most, now: r.now}
	r.report(false, 401, denied)
	r.report(false, 401, denied)
	r.report(false, 401, denied)
	if r.step != r.base {
		t.Errorf("three refusals of calls sent together made the step %s, want %s", r.step, r.base)
	}
}
