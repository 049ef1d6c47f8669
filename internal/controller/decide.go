package controller

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// The decisions of the Segment flow, each a pure function of values, table-tested. What to
// do about the remote segment itself is internal/plan's.

// legacy is what an earlier version, which kept no status.ownership, left on a Segment.
type legacy struct {
	// hold is the status.id the Segment held by that version's rule (status.id and the
	// finalizer): it is claimed with the ownership check like any adoption, and counts as
	// held (in the index, and for deletion) until that claim is decided.
	hold string
	// intent is that version's create-pending annotation. It is never trusted, because
	// anyone who may edit the Segment may have written it; it is reported instead.
	intent string
}

// migrate gives a Segment its ownership record in memory (written with its next status
// write), and returns what an earlier version left. A Segment with a legacy hold gets its
// record from upgrade, which checks the hold first.
func migrate(seg *usersv1alpha1.Segment) legacy {
	if seg.Status.Ownership != nil {
		return legacy{}
	}
	var l legacy
	if controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		l.intent = seg.Annotations[usersv1alpha1.AnnotationCreatePending]
	}
	if l.hold = ownership.LegacyHold(seg); l.hold == "" {
		seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{}
	}
	return l
}

// createdChoice is what a pending create made, as far as a listing tells.
type createdChoice struct {
	// id is the segment it made, when exactly one segment can be it.
	id string
	// uncertain lists the segments it may have made when the operator cannot tell: several
	// candidates, or, when spec.id names a segment to adopt, any candidate besides that one.
	uncertain []string
}

// chooseCreated decides which segment a pending create made, from a listing that began
// after the create call ended: one it may have made (ownership.MayHaveMade) that no other
// Segment owns. keep is the segment spec.id names, if any: the create's segment must not
// be forgotten in favour of it.
func chooseCreated(listed []chatbot.Segment, intent *usersv1alpha1.CreateIntent, deadline time.Time, ownedByOther func(id string) bool, keep string) createdChoice {
	var candidates []string
	for _, s := range listed {
		if ownership.MayHaveMade(intent, deadline, s) && !ownedByOther(s.ID) {
			candidates = append(candidates, s.ID)
		}
	}
	slices.Sort(candidates) // a stable message: a status write only when something changed
	if keep != "" {
		return createdChoice{uncertain: slices.DeleteFunc(candidates, func(id string) bool { return id == keep })}
	}
	if len(candidates) == 1 {
		return createdChoice{id: candidates[0]}
	}
	return createdChoice{uncertain: candidates}
}

// newIntent records a create of the Segment's desired name in acct, about to be attempted.
func newIntent(seg *usersv1alpha1.Segment, acct remote.External) *usersv1alpha1.CreateIntent {
	// To the microsecond, as the API server keeps it: the in-process memos compare this
	// time with the one read back.
	at := time.Now().UTC().Truncate(time.Microsecond)
	return &usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(at), Name: seg.RemoteName(), Account: acct.AccountID()}
}

// intentTime is how messages quote an intent's time, and what the forget-create
// annotation must say to forget it.
func intentTime(i *usersv1alpha1.CreateIntent) string {
	return i.At.UTC().Format(metav1.RFC3339Micro)
}

// forgetRequested reports whether the Segment's forget-create annotation names its
// pending create.
func forgetRequested(seg *usersv1alpha1.Segment) bool {
	i := seg.PendingCreate()
	return i != nil && strings.TrimSpace(seg.Annotations[usersv1alpha1.AnnotationForgetCreate]) == intentTime(i)
}

// requested returns the value of the Segment's reconcile request annotation, and whether it
// asks for a reconcile not handled yet: it is set, and is not status.lastHandledReconcileAt.
func requested(seg *usersv1alpha1.Segment) (value string, fresh bool) {
	value = seg.Annotations[usersv1alpha1.ReconcileRequestAnnotation]
	return value, value != "" && value != seg.Status.LastHandledReconcileAt
}

// goneAfter is when a listing must have begun for the Segment's remote segment, missing
// from it, to be gone: after the segment was made (status.createdAt, in whole seconds, by
// ChatBot's clock, which may be CreateSkew off ours). Every Segment whose segment went
// missing takes the same listing as proof, rather than each one listing again. When
// createdAt is not known: now.
func goneAfter(seg *usersv1alpha1.Segment) time.Time {
	if c := seg.Status.CreatedAt; c != nil {
		return c.Add(time.Second + ownership.CreateSkew)
	}
	return time.Now()
}

// confirmGoneAfter is goneAfter where the owned segment's absence leads to a create; for
// a segment adopted through spec.id, which is never recreated, zero: absence is not
// confirmed.
func confirmGoneAfter(seg *usersv1alpha1.Segment) time.Time {
	if seg.Spec.ID != "" {
		return time.Time{}
	}
	return goneAfter(seg)
}

// accountMoved reports whether the Segment's credentials now name another account than the
// one its owned segment was recorded in.
func accountMoved(seg *usersv1alpha1.Segment, account string) bool {
	o := seg.Status.Ownership
	return o != nil && o.ID != "" && o.Account != "" && o.Account != account
}

func errAccountMoved(seg *usersv1alpha1.Segment, account string) error {
	o := seg.Status.Ownership
	return stall(usersv1alpha1.ReasonAccountChanged, "Remote segment %s was recorded in account %s, but this Segment's credentials "+
		"now name account %s, where it does not exist: nothing is created or deleted there. Put spec.credentialsRef (or the "+
		"token) back to manage it; to leave it and start over, delete this Segment with deletionPolicy Orphan", o.ID, o.Account, account)
}

// verdict is how a failed reconcile ends: its reason, whether it stalls, and when it is
// tried again.
type verdict struct {
	// reason is the Ready reason; "" for an error not of the Segment's making (a Kubernetes
	// API error): controller-runtime logs it and backs off, and no status is written.
	reason string
	// stalled: it cannot go on until someone acts (kstatus, Flux and Argo CD report it as
	// failed); else Reconciling.
	stalled bool
	// after is when to try again (RequeueAfter); backoff: return the error instead, for the
	// workqueue's exponential backoff.
	after   time.Duration
	backoff bool
	// turn: turned away by its share of the workers; nothing to record.
	turn bool
	// err is the error as reported, with a hint where one helps.
	err error
}

// classify decides how a reconcile that failed with err is retried (as Flux's
// ComputeReconcileResult does), with drift the drift interval:
//   - rate limited (429) and other retryable errors (5xx, network): after the server's
//     Retry-After if it gave one (spread by a quarter), else with exponential backoff;
//   - a segment gone (404 on rename, add members or delete): with backoff;
//   - the token refused (401, 403) or missing: not before the next drift check, by which a
//     rotated token or Secret is picked up (a changed Secret triggers a reconcile itself);
//     while the account holds calls back after a 401, when that wait ends;
//   - a redirect (not followed) or a listing over the client's cap: each drift interval;
//   - the request refused (other 4xx): not until the spec changes;
//   - a conflict, an uncertain create, a missing adopted segment, a 404 on listing or
//     creating (a wrong base URL): each drift interval.
//
// The last three stall the Segment.
func classify(err error, drift time.Duration) verdict {
	if turn := (*turnError)(nil); errors.As(err, &turn) {
		return verdict{turn: true, after: turn.after, err: err}
	}
	var (
		stallErr stallingError
		waitErr  *waitError
		busy     *ownership.BusyError
	)
	apiErr, isAPI := chatbot.AsAPIError(err)
	switch {
	case errors.As(err, &waitErr):
		return verdict{reason: usersv1alpha1.ReasonCreating, after: waitErr.after, err: err}
	case errors.As(err, &busy):
		return verdict{reason: usersv1alpha1.ReasonCreating, after: jitter(busy.After), err: err}
	case errors.As(err, &stallErr):
		// Checked again each drift interval: the conflicting Segment may go, a segment appear.
		return verdict{reason: stallErr.StallReason(), stalled: true, after: drift, err: err}
	case credentials.IsError(err):
		return verdict{reason: usersv1alpha1.ReasonCredentialsError, stalled: true, after: drift, err: err}
	case !isAPI:
		return verdict{err: err}
	case apiErr.Unauthorized() && apiErr.Local:
		// Held back while the account's token is refused: asked again when the wait ends
		// (one call for the account), or at once when the Secret changes.
		return verdict{reason: usersv1alpha1.ReasonUnauthorized, stalled: true, after: jitter(apiErr.RetryAfter), err: err}
	case apiErr.Unauthorized():
		return verdict{reason: usersv1alpha1.ReasonUnauthorized, stalled: true, after: drift, err: err}
	case apiErr.StatusCode >= 300 && apiErr.StatusCode < 400, apiErr.TooLarge:
		// A redirect not followed, a listing over the cap: not for retrying at once, nor
		// for good (the API may move back, the account shrink).
		return verdict{reason: usersv1alpha1.ReasonRemoteRejected, stalled: true, after: drift, err: err}
	case apiErr.StatusCode == http.StatusTooManyRequests && apiErr.RetryAfter > 0:
		return verdict{reason: usersv1alpha1.ReasonRateLimited, after: jitter(apiErr.RetryAfter), err: err}
	case apiErr.StatusCode == http.StatusTooManyRequests:
		// No Retry-After: back off, doubling each time, rather than ask again every second.
		return verdict{reason: usersv1alpha1.ReasonRateLimited, backoff: true, err: err}
	case apiErr.Retryable() && apiErr.RetryAfter > 0:
		return verdict{reason: usersv1alpha1.ReasonRemoteError, after: jitter(apiErr.RetryAfter), err: err}
	case apiErr.Retryable():
		return verdict{reason: usersv1alpha1.ReasonRemoteError, backoff: true, err: err}
	case apiErr.NotFound() && namesSegment(apiErr.Op):
		// The segment vanished between observing and acting (it is dropped from the
		// listing): start over, with backoff in case the listing keeps showing it.
		return verdict{reason: usersv1alpha1.ReasonRemoteError, backoff: true, err: err}
	case apiErr.NotFound():
		// Listing or creating cannot 404 on a good base URL: nothing to retry soon.
		return verdict{reason: usersv1alpha1.ReasonEndpointNotFound, stalled: true, after: drift,
			err: fmt.Errorf("%w: the API has no such endpoint; check the API base URL (--chatbot-api-url, or apiURL in the credentials Secret)", err)}
	}
	return verdict{reason: usersv1alpha1.ReasonRemoteRejected, stalled: true, err: err}
}

// namesSegment reports whether a 404 from operation op means that the segment it names
// does not exist, rather than that the endpoint does not.
func namesSegment(op string) bool {
	return op == chatbot.OpRename || op == chatbot.OpAdd || op == chatbot.OpDelete
}

// jitter spreads retries of many Segments over up to a quarter more than d, so that a rate
// limit lifting does not meet them all at once.
func jitter(d time.Duration) time.Duration { return wait.Jitter(d, 0.25) }
