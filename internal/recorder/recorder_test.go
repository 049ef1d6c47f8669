package recorder

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestObserveCountsRepeatsInOneEvent(t *testing.T) {
	ref := corev1.ObjectReference{Kind: "Segment", Namespace: "team", Name: "a", UID: "u1", ResourceVersion: "1"}
	failed := key{eventType: corev1.EventTypeWarning, reason: "RemoteError", action: "Sync", regarding: ref}
	otherReason := failed
	otherReason.reason = "Unauthorized"
	changed := failed
	changed.regarding.ResourceVersion = "2"
	for _, tc := range []struct {
		name string
		// steps: the occurrence, and how long after the previous step.
		steps []step
		// want: whether each step is a new Event; count: the last step's count after it.
		want  []bool
		count int32
	}{
		{"a repeat counts in the first", []step{{failed, 0}, {failed, time.Second}, {failed, time.Minute}}, []bool{true, false, false}, 3},
		{"another reason is another Event", []step{{failed, 0}, {otherReason, time.Second}}, []bool{true, true}, 1},
		{"a changed object is another Event", []step{{failed, 0}, {changed, time.Second}}, []bool{true, true}, 1},
		{"a repeat past the window starts again", []step{{failed, 0}, {failed, seriesWindow}}, []bool{true, true}, 1},
		{"the window runs from the last repeat", []step{{failed, 0}, {failed, 5 * time.Minute}, {failed, 5 * time.Minute}}, []bool{true, false, false}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
			r := newRecorder(nil, nil, Options{Controller: "segment-operator", Clock: clk})
			for i, s := range tc.steps {
				clk.Step(s.after)
				if got := r.observe(s.k, clk.Now()) != nil; got != tc.want[i] {
					t.Errorf("step %d: new Event %v, want %v", i, got, tc.want[i])
				}
			}
			last := tc.steps[len(tc.steps)-1].k
			if v, _ := r.seen.Get(last); v.(*occurrence).count != tc.count {
				t.Errorf("count %d, want %d", v.(*occurrence).count, tc.count)
			}
		})
	}
}

type step struct {
	k     key
	after time.Duration
}

func TestOccurrencesStayWithinTheirBudget(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	r := newRecorder(nil, nil, Options{Clock: clk})
	for i := range 3 * occurrences {
		k := key{eventType: corev1.EventTypeNormal, reason: "Created", regarding: corev1.ObjectReference{Name: strings.Repeat("x", i%50), UID: types.UID(fmt.Sprint(i))}}
		r.observe(k, clk.Now())
		r.observe(k, clk.Now())
	}
	if n := r.seen.Len(); n != occurrences {
		t.Errorf("%d occurrences remembered, want the budget, %d", n, occurrences)
	}
	if n := len(r.repeated); n > occurrences {
		t.Errorf("%d repeats waiting to be written, past the budget of %d", n, occurrences)
	}
}

func TestSeriesPatch(t *testing.T) {
	got := string(seriesPatch(3, time.Date(2026, 12, 6, 21, 0, 0, 123456000, time.UTC)))
	want := `{"series":{"count":3,"lastObservedTime":"2026-12-06T21:00:00.123456Z"}}`
	if got != want {
		t.Errorf("seriesPatch = %s, want %s", got, want)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: not cut in half
		{"ééé", 5, "éé"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
