package quota

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestQuota(t *testing.T) {
	type step struct {
		op      string // charge, release, unpin, delete (what is kept goes, unknown to the Quota), wait
		ns      string
		owner   string
		n       int64
		refused bool
	}
	for _, tc := range []struct {
		name  string
		kept  Charges // listed at the first charge
		steps []step
		loads int
	}{
		{name: "charges add up to the limit, not past it", steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 60},
			{op: "charge", ns: "a", owner: "s2", n: 40},
			{op: "charge", ns: "a", owner: "s3", n: 1, refused: true},
			{op: "charge", ns: "b", owner: "s4", n: 100}, // another namespace: its own limit
		}, loads: 1},
		{name: "an owner's charge is replaced, not added", steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 60},
			{op: "charge", ns: "a", owner: "s1", n: 90},
			{op: "charge", ns: "a", owner: "s2", n: 10},
			{op: "charge", ns: "a", owner: "s1", n: 91, refused: true},
		}, loads: 1},
		{name: "a charge that does not grow is never refused", kept: Charges{"a": {"s1": 150}}, steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 150},
			{op: "charge", ns: "a", owner: "s1", n: 120},
			{op: "charge", ns: "a", owner: "s2", n: 1, refused: true},
		}, loads: 1},
		{name: "what is kept counts from the first charge", kept: Charges{"a": {"old": 95}}, steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 6, refused: true},
			{op: "charge", ns: "a", owner: "s1", n: 5},
		}, loads: 1},
		{name: "released, it stops counting", steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 100},
			{op: "release", ns: "a", owner: "s1"},
			{op: "charge", ns: "a", owner: "s2", n: 100},
		}, loads: 1},
		{name: "deleted unknown to it: a refusal lists again, at most once a minute", kept: Charges{"a": {"old": 100}}, steps: []step{
			{op: "charge", ns: "a", owner: "s1", n: 10, refused: true},
			{op: "delete", ns: "a", owner: "old"},
			{op: "charge", ns: "a", owner: "s1", n: 10, refused: true}, // listed a moment ago
			{op: "wait"},
			{op: "charge", ns: "a", owner: "s1", n: 10},
		}, loads: 2},
		{name: "a charge set here outlives a listing that does not show it, however late", steps: []step{
			{op: "charge", ns: "a", owner: "filling", n: 70},
			{op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"}, {op: "wait"},
			{op: "charge", ns: "a", owner: "s2", n: 40, refused: true}, // lists again: "filling" still counts
			{op: "release", ns: "a", owner: "filling"},
			{op: "charge", ns: "a", owner: "s2", n: 40},
		}, loads: 2},
		{name: "unpinned (another process writes it now), a charge counts until a listing says otherwise", steps: []step{
			{op: "charge", ns: "a", owner: "moved", n: 70},
			{op: "unpin", ns: "a", owner: "moved"},
			{op: "charge", ns: "a", owner: "s2", n: 40, refused: true}, // still counts
			{op: "wait"},
			{op: "charge", ns: "a", owner: "s2", n: 40}, // lists again: what is kept is what counts
		}, loads: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept := Charges{}
			for ns, owners := range tc.kept {
				kept[ns] = map[types.UID]int64{}
				maps.Copy(kept[ns], owners)
			}
			loads := 0
			q := New(100, func(context.Context) (Charges, error) {
				loads++
				out := Charges{}
				for ns, owners := range kept {
					out[ns] = map[types.UID]int64{}
					maps.Copy(out[ns], owners)
				}
				return out, nil
			})
			now := time.Unix(1_000_000, 0)
			q.now = func() time.Time { return now }
			for i, s := range tc.steps {
				switch s.op {
				case "charge":
					err := q.Charge(context.Background(), s.ns, types.UID(s.owner), s.n)
					var exceeded *ExceededError
					if s.refused != errors.As(err, &exceeded) || (!s.refused && err != nil) {
						t.Fatalf("step %d (%+v): %v", i, s, err)
					}
				case "release":
					q.Release(s.ns, types.UID(s.owner))
				case "unpin":
					q.Unpin(s.ns, types.UID(s.owner))
				case "delete":
					delete(kept[s.ns], types.UID(s.owner))
				case "wait":
					now = now.Add(reloadInterval)
				}
			}
			if loads != tc.loads {
				t.Fatalf("listed %d times, want %d", loads, tc.loads)
			}
		})
	}
}

// A listing made for one namespace holds up no charge of another.
func TestAListingBlocksNoOtherCharge(t *testing.T) {
	listing, release := make(chan struct{}), make(chan struct{})
	calls := 0
	q := New(100, func(context.Context) (Charges, error) {
		calls++
		if calls == 2 {
			close(listing)
			<-release
		}
		return Charges{"full": {"old": 100}}, nil
	})
	now := time.Unix(1_000_000, 0)
	q.now = func() time.Time { return now }
	if err := q.Charge(context.Background(), "other", "s", 10); err != nil {
		t.Fatal(err)
	}
	now = now.Add(reloadInterval)
	refused := make(chan error)
	go func() { refused <- q.Charge(context.Background(), "full", "s", 10) }() // lists again to confirm
	<-listing
	if err := q.Charge(context.Background(), "other", "s", 20); err != nil {
		t.Fatal(err)
	}
	close(release)
	var exceeded *ExceededError
	if err := <-refused; !errors.As(err, &exceeded) {
		t.Fatalf("%v, want the charge refused", err)
	}
}

// An owner released while a listing is under way does not come back with it.
func TestAReleaseDuringAListingHolds(t *testing.T) {
	listing, release := make(chan struct{}), make(chan struct{})
	calls := 0
	q := New(100, func(context.Context) (Charges, error) {
		calls++
		if calls == 1 {
			return Charges{}, nil
		}
		close(listing)
		<-release
		return Charges{"a": {"gone": 90}}, nil // listed before its deletion
	})
	now := time.Unix(1_000_000, 0)
	q.now = func() time.Time { return now }
	if err := q.Charge(context.Background(), "a", "gone", 90); err != nil {
		t.Fatal(err)
	}
	now = now.Add(reloadInterval)
	done := make(chan error)
	go func() { done <- q.Charge(context.Background(), "a", "new", 20) }() // refused for now: lists again
	<-listing
	q.Release("a", "gone")
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("refused for a record released during the listing: %v", err)
	}
}

// A listing that failed answers for the next charges a few seconds, rather than each
// listing again.
func TestAFailedListingIsNotRetriedAtOnce(t *testing.T) {
	calls := 0
	q := New(100, func(context.Context) (Charges, error) { calls++; return nil, errors.New("down") })
	now := time.Unix(1_000_000, 0)
	q.now = func() time.Time { return now }
	for range 50 {
		if err := q.Charge(context.Background(), "a", "s", 1); err == nil {
			t.Fatal("charged without a listing")
		}
	}
	if calls != 1 {
		t.Fatalf("%d listings for 50 charges", calls)
	}
	now = now.Add(retryAfter)
	_ = q.Charge(context.Background(), "a", "s", 1)
	if calls != 2 {
		t.Fatalf("not listed again after %s: %d", retryAfter, calls)
	}
}

func TestNoLimitListsNothing(t *testing.T) {
	q := New(0, func(context.Context) (Charges, error) { t.Fatal("listed"); return nil, nil })
	if err := q.Charge(context.Background(), "a", "s", 1<<40); err != nil {
		t.Fatal(err)
	}
}

func TestAListingThatFailsRefusesNothingForGood(t *testing.T) {
	fail := true
	q := New(100, func(context.Context) (Charges, error) {
		if fail {
			return nil, errors.New("the API server is down")
		}
		return Charges{}, nil
	})
	now := time.Unix(1_000_000, 0)
	q.now = func() time.Time { return now }
	var exceeded *ExceededError
	if err := q.Charge(context.Background(), "a", "s", 1); err == nil || errors.As(err, &exceeded) {
		t.Fatalf("err = %v, want the listing's error, to retry", err)
	}
	fail = false
	now = now.Add(retryAfter)
	if err := q.Charge(context.Background(), "a", "s", 1); err != nil {
		t.Fatal(err)
	}
}

func TestExceededErrorSaysWhat(t *testing.T) {
	err := &ExceededError{Namespace: "team", Charge: 30, Others: 80, Limit: 100}
	if want := `namespace "team" would keep 110 bytes in the manager's namespace (30 for this Segment, 80 for its others), more than the 100 a namespace may`; err.Error() != want {
		t.Fatalf("%s", err)
	}
}
