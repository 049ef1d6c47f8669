package quota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

const (
	// reloadInterval is the least time between two listings made to confirm a refusal.
	reloadInterval = time.Minute
	// retryAfter is how long a listing that failed answers for the next ones.
	retryAfter = 5 * time.Second
)

// Charges are the bytes kept, by namespace and owner.
type Charges map[string]map[types.UID]int64

// Load lists what is kept now.
type Load func(context.Context) (Charges, error)

// Quota bounds the bytes kept for each namespace. It is safe for concurrent use.
type Quota struct {
	limit int64
	load  Load
	now   func() time.Time

	loading sync.Mutex // one listing at a time, made without holding mu

	mu       sync.Mutex
	charges  map[string]map[types.UID]charge // nil until listed
	loadedAt time.Time
	// released are the owners released while a listing is under way (nil when none is),
	// which it may still show.
	released map[string]map[types.UID]bool
	failedAt time.Time // of the last listing, if it failed
	failed   error
}

// charge is one owner's: listed, or set by this process, which a listing showing less
// does not undo (what it pays for may still be being made: a charge is set before the
// members it records are sent), until it is released.
type charge struct {
	n     int64
	local bool
}

// New returns a Quota of limit bytes a namespace (0: no bound, nothing listed), whose
// charges load lists.
func New(limit int64, load Load) *Quota {
	return &Quota{limit: limit, load: load, now: time.Now}
}

// ExceededError refuses a charge that would take a namespace past the limit.
type ExceededError struct {
	Namespace string
	Charge    int64 // the charge refused
	Others    int64 // the namespace's other charges
	Limit     int64
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("namespace %q would keep %d bytes in the manager's namespace (%d for this Segment, %d for its others), "+
		"more than the %d a namespace may", e.Namespace, e.Charge+e.Others, e.Charge, e.Others, e.Limit)
}

// Charge sets owner's charge in namespace ns to n bytes, or refuses it (*ExceededError)
// if the namespace's charges together would pass the limit. A charge no larger than the
// owner's last is never refused. The listing it may make (the first, or one to confirm a
// refusal) holds up no charge of another namespace.
func (q *Quota) Charge(ctx context.Context, ns string, owner types.UID, n int64) error {
	if q.limit <= 0 {
		return nil
	}
	for listed := false; ; listed = true {
		q.mu.Lock()
		others, mine := q.others(ns, owner)
		exceeds := n > mine && others+n > q.limit
		if q.charges != nil && (!exceeds || listed || q.now().Sub(q.loadedAt) < reloadInterval) {
			defer q.mu.Unlock()
			if exceeds {
				return &ExceededError{Namespace: ns, Charge: n, Others: others, Limit: q.limit}
			}
			if q.charges[ns] == nil {
				q.charges[ns] = map[types.UID]charge{}
			}
			q.charges[ns][owner] = charge{n: n, local: true}
			return nil
		}
		q.mu.Unlock()
		if err := q.reload(ctx); err != nil {
			return err
		}
	}
}

// Release drops owner's charge in namespace ns: what it paid for is deleted.
func (q *Quota) Release(ns string, owner types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.released != nil {
		if q.released[ns] == nil {
			q.released[ns] = map[types.UID]bool{}
		}
		q.released[ns][owner] = true
	}
	delete(q.charges[ns], owner)
	if len(q.charges[ns]) == 0 {
		delete(q.charges, ns)
	}
}

// Unpin keeps owner's charge in namespace ns as it is, but no longer as this process's own:
// another process writes what it pays for now (a Segment moved to another shard), and the
// next listing replaces it with what is kept.
func (q *Quota) Unpin(ns string, owner types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c, ok := q.charges[ns][owner]; ok {
		c.local = false
		q.charges[ns][owner] = c
	}
}

// others returns the charges of ns but owner's, and owner's.
func (q *Quota) others(ns string, owner types.UID) (others, mine int64) {
	for o, c := range q.charges[ns] {
		if o == owner {
			mine = c.n
		} else {
			others += c.n
		}
	}
	return others, mine
}

// reload lists the charges anew, unless another caller just did, and keeps the charges
// set by this process that the listing shows less of.
func (q *Quota) reload(ctx context.Context) error {
	q.loading.Lock()
	defer q.loading.Unlock()
	q.mu.Lock()
	fresh := q.charges != nil && q.now().Sub(q.loadedAt) < reloadInterval
	failed := q.failed != nil && q.now().Sub(q.failedAt) < retryAfter
	if !fresh && !failed {
		q.released = map[string]map[types.UID]bool{}
	}
	q.mu.Unlock()
	switch {
	case fresh:
		return nil
	case failed:
		return q.failed
	}
	listed, err := q.load(ctx)
	if err != nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.released, q.failedAt, q.failed = nil, q.now(), fmt.Errorf("list what namespaces keep: %w", err)
		return q.failed
	}
	next := map[string]map[types.UID]charge{}
	for ns, owners := range listed {
		next[ns] = make(map[types.UID]charge, len(owners))
		for o, n := range owners {
			next[ns][o] = charge{n: n}
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for ns, owners := range q.released { // released since the listing began: it may show them
		for o := range owners {
			delete(next[ns], o)
		}
	}
	for ns, owners := range q.charges {
		for o, c := range owners {
			if c.local && c.n > next[ns][o].n {
				if next[ns] == nil {
					next[ns] = map[types.UID]charge{}
				}
				next[ns][o] = c
			}
		}
	}
	q.charges, q.loadedAt, q.released, q.failed = next, q.now(), nil, nil
	return nil
}
