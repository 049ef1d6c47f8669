package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// listTimeout bounds one listing shared by many reconciles.
const listTimeout = 60 * time.Second

// Lister lists an account's segments; *chatbot.Client is one.
type Lister interface {
	ListSegments(ctx context.Context) ([]chatbot.Segment, error)
}

// Observations is the shared, self-updating view of one account's segments.
type Observations struct {
	lister Lister
	now    func() time.Time
	group  singleflight.Group

	mu        sync.Mutex
	segments  map[string]chatbot.Segment
	fetchedAt time.Time // zero: never listed
	seq       uint64    // sequence number of the last local write
	// tooLarge is when a listing was last refused for its size, and how: until the view
	// would be stale, Ensure answers that instead of downloading it again.
	tooLargeAt  time.Time
	tooLargeErr error
	journal     []write // local writes not yet known to be in a listing
	// raised are the segments whose users count our own adds raised above the listing's
	// (MembersAdded): their count says what we added, not what the API counts.
	raised map[string]struct{}
	// forcedAt is when the listing a reconcile request last forced began (zero: none yet),
	// forcing whether it is under way (forcedDone is closed when it ends), and forcedErr
	// how it failed; see ListedOnRequest.
	forcedAt   time.Time
	forcing    bool
	forcedDone chan struct{}
	forcedErr  error
	// requests are the reconcile requests waiting for a listing, by caller: the value asked
	// and when it was first seen, which a listing must begin after, however often the
	// caller comes back.
	requests map[string]request
}

// request is a reconcile request waiting for a listing.
type request struct {
	value string
	seen  time.Time
}

// write is one of our own changes, replayed onto listings that began before it.
type write struct {
	seq   uint64
	apply func(map[string]chatbot.Segment)
}

// NewObservations returns an empty view that lists through l.
func NewObservations(l Lister, now func() time.Time) *Observations {
	if now == nil {
		now = time.Now
	}
	return &Observations{lister: l, now: now, segments: map[string]chatbot.Segment{}}
}

// Ensure makes sure the view is no older than maxAge, listing the account if it is.
// Concurrent callers share one listing. It returns when the view's listing began.
func (o *Observations) Ensure(ctx context.Context, maxAge time.Duration) (time.Time, error) {
	o.mu.Lock()
	fetchedAt, tooLargeAt, tooLargeErr := o.fetchedAt, o.tooLargeAt, o.tooLargeErr
	o.mu.Unlock()
	if !fetchedAt.IsZero() && o.now().Sub(fetchedAt) < maxAge {
		return fetchedAt, nil
	}
	if tooLargeErr != nil && o.now().Sub(tooLargeAt) < maxAge {
		return time.Time{}, tooLargeErr
	}
	return o.Refresh(ctx)
}

// ListedAfter makes sure the view comes from a listing that began after t, and never from
// one joined in flight that began before: only such a listing can show what a call that
// ended at t made. A listing under way that began earlier is waited out, then another
// begins (shared with every caller that needs one). It returns when the view's listing began.
func (o *Observations) ListedAfter(ctx context.Context, t time.Time) (time.Time, error) {
	// A time still to come (another clock's, or a forged one) asks no more than now: a
	// listing that begins now begins after every call that has ended.
	if now := o.now(); t.After(now) {
		t = now
	}
	for {
		if fetchedAt := o.FetchedAt(); fetchedAt.After(t) {
			return fetchedAt, nil
		}
		// Joins the listing under way, if any; once it is done, the next round begins a
		// listing after it ended, so after t: at most two rounds. One that began after t
		// and ended since the check above is not followed by another.
		if _, err := o.refresh(ctx, func() bool { return o.FetchedAt().After(t) }); err != nil {
			return time.Time{}, err
		}
	}
}

// ListedOnRequest makes sure the view comes from a listing begun after the reconcile request
// value of caller key (a Segment) was first seen, and forces at most one listing per spacing however many Segments ask. A
// listing begun before the request does not do, whoever made it: it may predate the change
// the request was made for, which is the point of asking. A request that must wait for the
// next listing it may force gets a *RequestWait saying how long (the caller comes back then,
// holding nothing meanwhile); any listing begun after it answers it, and requests seen
// while a forced listing is under way wait for it to end.
//
// A forced listing that fails answers every request seen before it began with its error,
// and the next is forced no sooner than spacing after it: a failing or oversized account is
// not listed again and again. An account refused for its size within maxAge is not listed
// at all (as Ensure). It returns when the view's listing began.
func (o *Observations) ListedOnRequest(ctx context.Context, key, value string, spacing, maxAge time.Duration) (time.Time, error) {
	t := o.requestSeen(key, value, spacing)
	fetchedAt, err := o.listedOnRequest(ctx, t, spacing, maxAge)
	if wait := (*RequestWait)(nil); !errors.As(err, &wait) {
		o.mu.Lock()
		if r, ok := o.requests[key]; ok && r.value == value {
			delete(o.requests, key) // answered, or failed: a retry is a request of its own
		}
		o.mu.Unlock()
	}
	return fetchedAt, err
}

// requestSeen returns when the request value of caller key was first seen, and remembers
// it; requests older than a hundred spacings (their caller gone) are forgotten.
func (o *Observations) requestSeen(key, value string, spacing time.Duration) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	r, ok := o.requests[key]
	if !ok || r.value != value {
		for k, old := range o.requests {
			if now.Sub(old.seen) > 100*spacing {
				delete(o.requests, k)
			}
		}
		if o.requests == nil {
			o.requests = map[string]request{}
		}
		r = request{value: value, seen: now}
		o.requests[key] = r
	}
	return r.seen
}

func (o *Observations) listedOnRequest(ctx context.Context, t time.Time, spacing, maxAge time.Duration) (time.Time, error) {
	for {
		o.mu.Lock()
		now := o.now()
		switch {
		case o.fetchedAt.After(t):
			fetchedAt := o.fetchedAt
			o.mu.Unlock()
			return fetchedAt, nil
		case o.tooLargeErr != nil && now.Sub(o.tooLargeAt) < maxAge:
			err := o.tooLargeErr
			o.mu.Unlock()
			return time.Time{}, err
		case o.forcing:
			done := o.forcedDone // under way: began after t, it will answer; else, once it ends, force the next
			o.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		case o.forcedAt.After(t):
			// It ended, began after the request, and did not list (else the first case):
			// its error answers.
			fetchedAt, err := o.fetchedAt, o.forcedErr
			o.mu.Unlock()
			return fetchedAt, err
		case now.Before(o.forcedAt.Add(spacing)):
			wait := o.forcedAt.Add(spacing).Sub(now)
			o.mu.Unlock()
			return time.Time{}, &RequestWait{After: wait}
		default:
			done := make(chan struct{})
			o.forcedAt, o.forcing, o.forcedDone, o.forcedErr = now, true, done, nil
			o.mu.Unlock()
			_, err := o.ListedAfter(ctx, now.Add(-time.Nanosecond))
			o.mu.Lock()
			o.forcing, o.forcedErr = false, err
			close(done)
			o.mu.Unlock()
			if err != nil {
				return time.Time{}, err
			}
		}
	}
}

// RequestWait is ListedOnRequest's answer to a request that must wait for the next listing
// a request may force: After from now.
type RequestWait struct{ After time.Duration }

func (e *RequestWait) Error() string {
	return fmt.Sprintf("the account was listed on request less than the spacing ago: the next listing in %s", e.After)
}

// Refresh lists the account now, or joins a listing already under way, and returns when
// the view's listing began.
func (o *Observations) Refresh(ctx context.Context) (time.Time, error) { return o.refresh(ctx, nil) }

// refresh is Refresh, but the listing it begins, if any, is skipped when done reports, as it
// would begin, that a listing ended meanwhile has done what was asked.
func (o *Observations) refresh(ctx context.Context, done func() bool) (time.Time, error) {
	ch := o.group.DoChan("list", func() (any, error) {
		if done != nil && done() {
			return nil, nil
		}
		// The listing serves every waiting reconcile: one caller's cancellation must not
		// fail the others.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
		defer cancel()
		return nil, o.list(lctx)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return time.Time{}, res.Err
		}
		return o.FetchedAt(), nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

// FetchedAt is when the view's listing began; zero if the account was never listed.
func (o *Observations) FetchedAt() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetchedAt
}

// Lookup returns the segment with the given ID as the view has it.
func (o *Observations) Lookup(id string) (chatbot.Segment, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seg, ok := o.segments[id]
	return seg, ok
}

// Segments returns every segment in the view.
func (o *Observations) Segments() []chatbot.Segment {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]chatbot.Segment, 0, len(o.segments))
	for _, seg := range o.segments {
		out = append(out, seg)
	}
	return out
}

// list replaces the view with a fresh listing plus the local writes made since it began.
func (o *Observations) list(ctx context.Context) error {
	o.mu.Lock()
	startSeq, started := o.seq, o.now()
	o.mu.Unlock()

	listed, err := o.lister.ListSegments(ctx)
	if apiErr, ok := chatbot.AsAPIError(err); ok && apiErr.TooLarge {
		o.mu.Lock()
		o.tooLargeAt, o.tooLargeErr = o.now(), err
		o.mu.Unlock()
	}
	if err != nil {
		return err
	}
	segments := make(map[string]chatbot.Segment, len(listed))
	for _, seg := range listed {
		segments[seg.ID] = seg
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	o.raised = nil // the listing's counts are the API's; the writes replayed below raise theirs again
	kept := o.journal[:0]
	for _, w := range o.journal {
		if w.seq > startSeq { // made after the listing began: it may not be in it
			w.apply(segments)
			kept = append(kept, w)
		}
	}
	o.journal = kept
	o.segments = segments
	o.fetchedAt = started
	return nil
}

// record applies one of our own successful writes to the view, and journals it for
// listings already under way.
func (o *Observations) record(apply func(map[string]chatbot.Segment)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	apply(o.segments)
	o.journal = append(o.journal, write{seq: o.seq, apply: apply})
}

// Created records a segment we created.
func (o *Observations) Created(seg chatbot.Segment) {
	o.record(func(m map[string]chatbot.Segment) { m[seg.ID] = seg })
}

// Renamed records a rename we made.
func (o *Observations) Renamed(id, name string) {
	o.record(func(m map[string]chatbot.Segment) {
		if seg, ok := m[id]; ok {
			seg.Name = name
			m[id] = seg
		}
	})
}

// Deleted records a deletion we made, or a 404 we were answered.
func (o *Observations) Deleted(id string) {
	o.record(func(m map[string]chatbot.Segment) { delete(m, id) })
}

// MembersAdded records that we added members to a segment. The API reports only a count of
// distinct members, and some of ours may have been members already, so the count becomes
// at least the number we know of; the next listing gives the exact figure.
func (o *Observations) MembersAdded(id string, atLeast int) {
	o.record(func(m map[string]chatbot.Segment) { // called with o.mu held
		if seg, ok := m[id]; ok && seg.Users < atLeast {
			seg.Users = atLeast
			m[id] = seg
			if o.raised == nil {
				o.raised = map[string]struct{}{}
			}
			o.raised[id] = struct{}{}
		}
	})
}

// Counted reports whether the view's users count of segment id is the API's own, from the
// listing: not one our adds raised since (see MembersAdded), which says only what we added.
func (o *Observations) Counted(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, raised := o.raised[id]
	return !raised
}
