package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
)

// External is the only way the Segment flow talks to an account, as crossplane-runtime's
// ExternalClient is for a managed resource: the reconciler decides, External only talks,
// and keeps the account's shared observations current with every write it makes, so that
// no caller can forget to. *Account is the implementation, where the methods are
// documented; a test may put a fake in its place.
//
// Two of its shapes come from the API's limits. The API has no get-by-id, so Observe,
// Lookup and Segments answer from the account's one shared listing, made at most once per
// maxAge for all its Segments. And it has no remove-member, so AddMembers is the only
// member operation, and what it added is kept in a ledger.Ledger, the only record of
// members there is.
type External interface {
	AccountID() string
	Observe(ctx context.Context, id string, maxAge time.Duration, confirmAfter time.Time) (chatbot.Segment, bool, error)
	ListAfter(ctx context.Context, t time.Time, maxAge time.Duration) error
	ListOnRequest(ctx context.Context, key, value string, spacing, maxAge time.Duration) error
	Lookup(id string) (chatbot.Segment, bool)
	Segments() []chatbot.Segment
	Counted(id string) bool
	CheckCreate() error
	Create(ctx context.Context, name string) (chatbot.Segment, error)
	Rename(ctx context.Context, id, to string) error
	Delete(ctx context.Context, id string) (alreadyGone bool, err error)
	AddMembers(ctx context.Context, id string, users []string, added *ledger.Ledger) (int, error)
}

var _ External = (*Account)(nil)

// AccountID is a.ID, for callers that hold an External: it names the account in status,
// logs and metrics.
func (a *Account) AccountID() string { return a.ID }

// Observe finds segment id in the account's shared listing, listed at most once per
// maxAge for all the account's Segments. Creating a segment anew is not a step to take on
// a listing that may predate the segment: one missing from the listing is looked for again
// in a listing begun after confirmAfter (zero: not looked for again), which the current
// listing usually is already.
func (a *Account) Observe(ctx context.Context, id string, maxAge time.Duration, confirmAfter time.Time) (chatbot.Segment, bool, error) {
	if _, err := a.Observations.Ensure(ctx, maxAge); err != nil {
		return chatbot.Segment{}, false, listErr(err)
	}
	if seg, ok := a.Observations.Lookup(id); ok || confirmAfter.IsZero() {
		return seg, ok, nil
	}
	if err := a.ListAfter(ctx, confirmAfter, maxAge); err != nil {
		return chatbot.Segment{}, false, err
	}
	seg, ok := a.Observations.Lookup(id)
	return seg, ok, nil
}

// ListAfter makes sure the account's listing began after t, and is no older than maxAge:
// a decision re-checked each maxAge (a stall) must see what changed since.
func (a *Account) ListAfter(ctx context.Context, t time.Time, maxAge time.Duration) error {
	fetchedAt, err := a.Observations.Ensure(ctx, maxAge)
	if err == nil && !fetchedAt.After(t) {
		_, err = a.Observations.ListedAfter(ctx, t)
	}
	if err != nil {
		return listErr(err)
	}
	return nil
}

// ListOnRequest makes sure the account's listing began after the reconcile request value of
// caller key was first seen, forcing at most one listing per spacing for all the Segments that ask, and none of an
// account refused for its size within maxAge (see Observations.ListedOnRequest).
func (a *Account) ListOnRequest(ctx context.Context, key, value string, spacing, maxAge time.Duration) error {
	if _, err := a.Observations.ListedOnRequest(ctx, key, value, spacing, maxAge); err != nil {
		return listErr(err)
	}
	return nil
}

// listErr says that listing failed, unless the error (the client's) says so already.
func listErr(err error) error {
	if _, ok := chatbot.AsAPIError(err); ok {
		return err
	}
	return fmt.Errorf("list segments: %w", err)
}

// Lookup returns segment id as the account's shared listing, with our writes since, has it.
func (a *Account) Lookup(id string) (chatbot.Segment, bool) { return a.Observations.Lookup(id) }

// Segments returns every segment of the account's shared listing, with our writes since.
func (a *Account) Segments() []chatbot.Segment { return a.Observations.Segments() }

// Counted reports whether the users count Lookup gives for segment id is the API's own
// (see Observations.Counted).
func (a *Account) Counted(id string) bool { return a.Observations.Counted(id) }

// CheckCreate returns the error a create would get now without being sent (a Retry-After
// pause, a refused token), or nil: the create is not idempotent, so its intent is
// recorded before the call, and there is none to record for a call that cannot go.
func (a *Account) CheckCreate() error { return a.Client.CheckPause(chatbot.OpCreate) }

// Create creates a segment named name and records it in the shared listing. Its error is
// the client's, unwrapped: the caller asks it whether the create certainly made nothing
// (chatbot.APIError.NoEffect).
func (a *Account) Create(ctx context.Context, name string) (chatbot.Segment, error) {
	created, err := a.Client.CreateSegment(ctx, name)
	if err != nil {
		return chatbot.Segment{}, err
	}
	a.Observations.Created(created)
	return created, nil
}

// Rename gives segment id the name to and records it in the shared listing. A 404 is
// recorded as the segment gone.
func (a *Account) Rename(ctx context.Context, id, to string) error {
	if err := a.Client.RenameSegment(ctx, id, to); err != nil {
		if chatbot.IsNotFound(err) {
			a.Observations.Deleted(id)
		}
		return fmt.Errorf("segment %s: %w", id, err)
	}
	a.Observations.Renamed(id, to)
	return nil
}

// Delete deletes segment id and records it gone in the shared listing. A segment already
// gone (a 404) is no error: alreadyGone says so.
func (a *Account) Delete(ctx context.Context, id string) (alreadyGone bool, err error) {
	err = a.Client.DeleteSegment(ctx, id)
	alreadyGone = chatbot.IsNotFound(err)
	if err != nil && !alreadyGone {
		return false, fmt.Errorf("segment %s: %w", id, err)
	}
	a.Observations.Deleted(id)
	return alreadyGone, nil
}

// AddMembers adds users (sorted, so that identical sets of several Segments merge into one
// call, see MemberAdder) to segment id and returns how many, a prefix of users, are now
// members for certain. Those are put in added, the record of the segment's members, even
// when the error says a later batch failed: the API cannot remove them, nor list them.
// The shared listing's users count is raised to added's. A 404 is recorded as the segment
// gone. Saving added is the caller's.
func (a *Account) AddMembers(ctx context.Context, id string, users []string, added *ledger.Ledger) (int, error) {
	n, err := a.Members.Add(ctx, id, users)
	if n > 0 {
		added.Add(users[:n]...)
		a.Observations.MembersAdded(id, added.Len())
	}
	if err != nil {
		if chatbot.IsNotFound(err) {
			a.Observations.Deleted(id)
		}
		return n, fmt.Errorf("segment %s: %w", id, err)
	}
	return n, nil
}
