package controller

import (
	"fmt"
	"time"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/text"
)

// turnError sends a reconcile back because its share of the workers (its account's, or its
// namespace's) is in use, or its account's rate-limit queue is long.
type turnError struct {
	after time.Duration
	msg   string
}

func (e *turnError) Error() string { return e.msg }

// admit admits the Segment's reconcile into its account's share of the workers and its
// namespace's (see remote.Share), or returns a turnError; leave, never nil, must be called
// when done. A tenant's namespace so holds no more workers whatever the number of accounts
// its Secrets name, and no more than its part of an account other namespaces wait for.
func admit(seg *usersv1alpha1.Segment, acct *remote.Account, shares *remote.Shares) (leave func(), err error) {
	turnedAway := func(share *remote.Share, of string, wait time.Duration) *turnError {
		return &turnError{after: wait, msg: fmt.Sprintf("Waiting for its turn: %s of Segments of this %s are "+
			"under way (--max-concurrent-reconciles-per-account)", text.Plural(share.Size(), "reconcile"), of)}
	}
	caller := callerOf(seg.Namespace, seg.Name)
	account, wait := acct.Share.Take(caller, seg.Namespace)
	if account == nil {
		err := turnedAway(acct.Share, "account", wait)
		err.msg += fmt.Sprintf(", or its namespace holds its part of them while other namespaces wait, or the calls "+
			"queued for its rate limit (--chatbot-api-qps) would keep it waiting over %s", remote.MaxQueueWait)
		return func() {}, err
	}
	namespace := shares.For(seg.Namespace)
	ns, wait := namespace.Take(caller, "")
	if ns == nil {
		account.GiveBack()
		return func() {}, turnedAway(namespace, "namespace", wait)
	}
	return func() { ns.Leave(); account.Leave() }, nil
}

// callerOf is the Segment's name in the Shares: what a Share wakes when a place frees
// (SegmentReconciler.wake), and forgets when the Segment is gone (SegmentReconciler.gone).
func callerOf(namespace, name string) string { return namespace + "/" + name }
