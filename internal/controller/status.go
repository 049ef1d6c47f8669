package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/text"
)

// Limits the API server sets: a condition message may hold 32768 characters; an event
// note over 1024 is refused.
const (
	maxConditionMessage = 32768
	maxEventNote        = 1024
)

// statusWriter writes a Segment's status only when it changed since the last write, so that
// a reconcile that finds nothing to do writes nothing.
type statusWriter struct {
	c       client.Client
	written usersv1alpha1.SegmentStatus
}

func newStatusWriter(c client.Client, seg *usersv1alpha1.Segment) *statusWriter {
	return &statusWriter{c: c, written: *seg.Status.DeepCopy()}
}

// write patches the status subresource with what changed (a merge patch). A write that
// changes the ownership record is a transition, and is conditional on the resourceVersion
// read: a reconcile working from a cached copy older than the last transition is refused
// (Conflict, retried) instead of undoing it.
func (w *statusWriter) write(ctx context.Context, seg *usersv1alpha1.Segment) error {
	if equality.Semantic.DeepEqual(w.written, seg.Status) {
		return nil
	}
	base := seg.DeepCopy()
	base.Status = w.written
	patch := client.MergeFrom(base)
	if !equality.Semantic.DeepEqual(w.written.Ownership, seg.Status.Ownership) {
		patch = client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	}
	if err := w.c.Status().Patch(ctx, seg, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	w.written = *seg.Status.DeepCopy()
	return nil
}

// progress is how kstatus, Flux and Argo CD should read a Segment that is not Ready.
type progress int

const (
	settled     progress = iota // neither: Ready says it all (synced, or observed)
	reconciling                 // Reconciling=True: the operator is working on it
	stalled                     // Stalled=True: it cannot go on until someone acts
	suspended                   // Suspended=True, and no Ready: the operator makes no claim
)

// outcome is what a reconcile came to: Ready, Reconciling and Stalled are set from it
// together, in setOutcome, and nowhere else.
type outcome struct {
	ready    bool
	reason   string
	msg      string
	progress progress
}

// setOutcome sets Ready, Reconciling, Stalled and Suspended from o; a Segment being
// deleted keeps Ready's reason Deleting. A suspended Segment has no Ready condition: it is
// settled where the spec put it (kstatus: Current, Argo CD: Suspended), but nothing says
// the remote segment matches, so kubectl wait --for=condition=Ready waits.
func setOutcome(seg *usersv1alpha1.Segment, o outcome) {
	// The generation is observed with its outcome, not with a write made on the way there
	// (a claim, a pending create): kstatus and Argo CD take a status for the current
	// generation at its word, and a stale Ready=True would pass for it.
	seg.Status.ObservedGeneration = seg.Generation
	msg := text.Cut(o.msg, maxConditionMessage)
	if o.reason != usersv1alpha1.ReasonDriftDetected {
		seg.Status.Plan = nil
	}
	if o.progress == suspended {
		setCondition(seg, usersv1alpha1.ConditionSuspended, true, o.reason, msg)
		for _, t := range []string{usersv1alpha1.ConditionReady, usersv1alpha1.ConditionReconciling, usersv1alpha1.ConditionStalled} {
			removeCondition(seg, t)
		}
		return
	}
	removeCondition(seg, usersv1alpha1.ConditionSuspended)
	if ready := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady); ready == nil ||
		ready.Reason != usersv1alpha1.ReasonDeleting || seg.DeletionTimestamp.IsZero() {
		setCondition(seg, usersv1alpha1.ConditionReady, o.ready, o.reason, msg)
	}
	switch o.progress {
	case reconciling:
		setCondition(seg, usersv1alpha1.ConditionReconciling, true, o.reason, msg)
		removeCondition(seg, usersv1alpha1.ConditionStalled)
	case stalled:
		setCondition(seg, usersv1alpha1.ConditionStalled, true, o.reason, msg)
		removeCondition(seg, usersv1alpha1.ConditionReconciling)
	default:
		removeCondition(seg, usersv1alpha1.ConditionReconciling)
		removeCondition(seg, usersv1alpha1.ConditionStalled)
	}
}

func setCondition(seg *usersv1alpha1.Segment, condType string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&seg.Status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: msg, ObservedGeneration: seg.Generation,
	})
}

func removeCondition(seg *usersv1alpha1.Segment, condType string) {
	meta.RemoveStatusCondition(&seg.Status.Conditions, condType)
}

// stallingError is an error the operator cannot resolve by retrying, with the reason to
// report: a stallError, or one of a concern's package (memberrecord.Error).
type stallingError interface {
	error
	StallReason() string
}

// stallError is a condition the operator cannot resolve by retrying: the user must act
// (change the spec, adopt a segment, remove a conflict).
type stallError struct{ reason, msg string }

func (e *stallError) Error() string { return e.msg }

// StallReason is the Segment's Ready reason.
func (e *stallError) StallReason() string { return e.reason }

func stall(reason, format string, args ...any) error {
	return &stallError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// waitError is a step that cannot be taken before a known time; nothing is wrong.
type waitError struct {
	after time.Duration
	msg   string
}

func (e *waitError) Error() string { return e.msg }

// fail records err in status and decides when to try again:
//   - rate limited (429) and other retryable errors (5xx, network): after the server's
//     Retry-After if it gave one, else with exponential backoff;
//   - a segment gone (404 on rename or add members): with backoff from half a second;
//   - the token refused (401, 403) or missing: not before the next drift check, by which a
//     rotated token or Secret is picked up (a changed Secret triggers a reconcile itself);
//     while the account holds calls back after a 401, when that wait ends;
//   - a redirect (not followed) or a listing over the client's cap: each drift interval;
//   - the request refused (other 4xx): not until the spec changes;
//   - a conflict, an uncertain create, a missing adopted segment, a 404 on listing or
//     creating (a wrong base URL): each drift interval.
//
// The last three mark the Segment Stalled, which kstatus, Flux and Argo CD report as failed.
func (r *SegmentReconciler) fail(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter, err error) (ctrl.Result, error) {
	var (
		reason string
		stuck  bool
		result ctrl.Result
		retErr error
	)
	apiErr, isAPI := chatbot.AsAPIError(err)
	if turnErr := (*turnError)(nil); errors.As(err, &turnErr) {
		return r.waitTurn(ctx, turnErr)
	}
	var (
		stallErr stallingError
		waitErr  *waitError
	)
	switch {
	case errors.As(err, &waitErr):
		reason, result = usersv1alpha1.ReasonCreating, ctrl.Result{RequeueAfter: waitErr.after}
	case errors.As(err, &stallErr):
		// Checked again each drift interval: the conflicting Segment may go, a segment appear.
		reason, stuck, result = stallErr.StallReason(), true, ctrl.Result{RequeueAfter: r.DriftInterval}
	case credentials.IsError(err):
		reason, stuck, result = usersv1alpha1.ReasonCredentialsError, true, ctrl.Result{RequeueAfter: r.DriftInterval}
	case !isAPI:
		// A Kubernetes API error or similar: let controller-runtime back off and log it.
		return ctrl.Result{}, err
	case apiErr.Unauthorized() && apiErr.Local:
		// Held back while the account's token is refused: asked again when the wait ends
		// (one call for the account), or at once when the Secret changes.
		reason, stuck, result = usersv1alpha1.ReasonUnauthorized, true, ctrl.Result{RequeueAfter: jitter(apiErr.RetryAfter)}
	case apiErr.Unauthorized():
		reason, stuck, result = usersv1alpha1.ReasonUnauthorized, true, ctrl.Result{RequeueAfter: r.DriftInterval}
	case apiErr.StatusCode >= 300 && apiErr.StatusCode < 400, apiErr.TooLarge:
		// A redirect not followed, a listing over the cap: not for retrying at once, nor
		// for good (the API may move back, the account shrink).
		reason, stuck, result = usersv1alpha1.ReasonRemoteRejected, true, ctrl.Result{RequeueAfter: r.DriftInterval}
	case apiErr.StatusCode == http.StatusTooManyRequests && apiErr.RetryAfter > 0:
		reason, result = usersv1alpha1.ReasonRateLimited, ctrl.Result{RequeueAfter: jitter(apiErr.RetryAfter)}
	case apiErr.StatusCode == http.StatusTooManyRequests:
		// No Retry-After: back off, doubling each time, rather than ask again every second.
		reason, retErr = usersv1alpha1.ReasonRateLimited, err
	case apiErr.Retryable() && apiErr.RetryAfter > 0:
		reason, result = usersv1alpha1.ReasonRemoteError, ctrl.Result{RequeueAfter: jitter(apiErr.RetryAfter)}
	case apiErr.Retryable():
		reason, retErr = usersv1alpha1.ReasonRemoteError, err
	case apiErr.NotFound() && namesSegment(apiErr.Op):
		// The segment vanished between observing and acting (it is dropped from the
		// listing): start over, with backoff in case the listing keeps showing it.
		reason, retErr = usersv1alpha1.ReasonRemoteError, err
	case apiErr.NotFound():
		// Listing or creating cannot 404 on a good base URL: nothing to retry soon.
		reason, stuck, result = usersv1alpha1.ReasonEndpointNotFound, true, ctrl.Result{RequeueAfter: r.DriftInterval}
		err = fmt.Errorf("%w: the API has no such endpoint; check the API base URL (--chatbot-api-url, or apiURL in the credentials Secret)", err)
	default:
		reason, stuck = usersv1alpha1.ReasonRemoteRejected, true
	}

	o := outcome{reason: reason, msg: err.Error(), progress: reconciling}
	if stuck {
		o.progress = stalled
		if prev := meta.FindStatusCondition(st.written.Conditions, usersv1alpha1.ConditionStalled); prev == nil || prev.Reason != reason {
			r.warn(seg, reason, "Reconcile", "%s", err.Error())
		}
	} else {
		o.msg = "Retrying: " + o.msg
	}
	setOutcome(seg, o)
	logf.FromContext(ctx).Info("reconcile failed", "reason", reason, "error", err.Error(), "retryIn", result.RequeueAfter)
	if werr := st.write(ctx, seg); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return result, retErr
}

// turnError sends a reconcile back because its share of the workers (its account's, or its
// namespace's) is in use, or its account's rate-limit queue is long.
type turnError struct {
	after time.Duration
	msg   string
}

func (e *turnError) Error() string { return e.msg }

// enter admits the Segment's reconcile into its account's share of the workers and its
// namespace's (see remote.Share), or returns a turnError; the caller must call leave when
// done. A tenant's namespace so holds no more workers whatever the number of accounts its
// Secrets name, and no more than its part of an account other namespaces wait for.
func (r *SegmentReconciler) enter(seg *usersv1alpha1.Segment, acct *remote.Account) (leave func(), err error) {
	turnedAway := func(share *remote.Share, of string, wait time.Duration) *turnError {
		return &turnError{after: wait, msg: fmt.Sprintf("Waiting for its turn: %s of Segments of this %s are "+
			"under way (--max-concurrent-reconciles-per-account)", plural(share.Size(), "reconcile"), of)}
	}
	leaveAccount, wait := acct.Share.Enter(string(seg.UID), seg.Namespace)
	if leaveAccount == nil {
		err := turnedAway(acct.Share, "account", wait)
		err.msg += fmt.Sprintf(", or its namespace holds its part of them while other namespaces wait, or the calls "+
			"queued for its rate limit (--chatbot-api-qps) would keep it waiting over %s", remote.MaxQueueWait)
		return nil, err
	}
	ns := r.namespaceShares.For(seg.Namespace)
	leaveNamespace, wait := ns.Enter(string(seg.UID), "")
	if leaveNamespace == nil {
		leaveAccount()
		return nil, turnedAway(ns, "namespace", wait)
	}
	return func() { leaveNamespace(); leaveAccount() }, nil
}

// waitTurn ends a reconcile turned away by its share of the workers: it comes back after
// the wait, and no worker waits meanwhile. Nothing is written: a Segment is turned away
// before any remote work, so there is nothing to record (what migrate changed in memory is
// written with its next outcome), and a turn-away is not an outcome. A Segment waiting its
// turn so costs no write, however often it is turned away.
func (r *SegmentReconciler) waitTurn(ctx context.Context, turn *turnError) (ctrl.Result, error) {
	logf.FromContext(ctx).V(1).Info("waiting for its turn", "why", turn.msg, "retryIn", turn.after)
	return ctrl.Result{RequeueAfter: turn.after}, nil
}

// namesSegment reports whether a 404 from operation op means that the segment it names
// does not exist, rather than that the endpoint does not.
func namesSegment(op string) bool {
	return op == chatbot.OpRename || op == chatbot.OpAdd || op == chatbot.OpDelete
}

// jitter spreads retries of many Segments over up to a quarter more than d, so that a rate
// limit lifting does not meet them all at once.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.25) }
