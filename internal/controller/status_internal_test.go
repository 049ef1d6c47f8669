package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// TestFailDecidesWhenToRetry checks how each kind of failure is retried: after the
// server's Retry-After, with the workqueue's exponential backoff (a returned error), or at
// the next drift check, and which ones stall the Segment.
func TestFailDecidesWhenToRetry(t *testing.T) {
	const drift = time.Minute
	apiErr := func(op string, status int, retryAfter time.Duration) error {
		return fmt.Errorf("wrapped: %w", &chatbot.APIError{Op: op, StatusCode: status, RetryAfter: retryAfter})
	}
	for _, tc := range []struct {
		name      string
		err       error
		reason    string
		backoff   bool          // returns the error: the workqueue backs off
		after     time.Duration // RequeueAfter at least this (and at most a quarter more)
		stalled   bool
		inMessage string
	}{
		{name: "429 with Retry-After", err: apiErr(chatbot.OpList, 429, 7*time.Second), reason: usersv1alpha1.ReasonRateLimited, after: 7 * time.Second},
		{name: "429 without Retry-After", err: apiErr(chatbot.OpList, 429, 0), reason: usersv1alpha1.ReasonRateLimited, backoff: true},
		{name: "503 with Retry-After", err: apiErr(chatbot.OpAdd, 503, 3*time.Second), reason: usersv1alpha1.ReasonRemoteError, after: 3 * time.Second},
		{name: "500", err: apiErr(chatbot.OpCreate, 500, 0), reason: usersv1alpha1.ReasonRemoteError, backoff: true},
		{name: "segment gone on rename", err: apiErr(chatbot.OpRename, 404, 0), reason: usersv1alpha1.ReasonRemoteError, backoff: true},
		{name: "segment gone on add", err: apiErr(chatbot.OpAdd, 404, 0), reason: usersv1alpha1.ReasonRemoteError, backoff: true},
		{name: "404 on list: wrong base URL", err: apiErr(chatbot.OpList, 404, 0), reason: usersv1alpha1.ReasonEndpointNotFound,
			after: drift, stalled: true, inMessage: "check the API base URL"},
		{name: "404 on create", err: apiErr(chatbot.OpCreate, 404, 0), reason: usersv1alpha1.ReasonEndpointNotFound, after: drift, stalled: true},
		{name: "401", err: apiErr(chatbot.OpList, 401, 0), reason: usersv1alpha1.ReasonUnauthorized, after: drift, stalled: true},
		{name: "401 held back while the account's token is refused: asked when the wait ends",
			err:    &chatbot.APIError{Op: chatbot.OpList, StatusCode: 401, Local: true, NotSent: true, RetryAfter: 20 * time.Second},
			reason: usersv1alpha1.ReasonUnauthorized, after: 20 * time.Second, stalled: true},
		{name: "400", err: apiErr(chatbot.OpRename, 400, 0), reason: usersv1alpha1.ReasonRemoteRejected, stalled: true},
		{name: "a redirect, not followed", err: apiErr(chatbot.OpList, 307, 0), reason: usersv1alpha1.ReasonRemoteRejected, after: drift, stalled: true},
		{name: "a listing over the cap", err: &chatbot.APIError{Op: chatbot.OpList, StatusCode: 200, TooLarge: true},
			reason: usersv1alpha1.ReasonRemoteRejected, after: drift, stalled: true},
		{name: "conflict", err: stall(usersv1alpha1.ReasonConflict, "taken"), reason: usersv1alpha1.ReasonConflict, after: drift, stalled: true},
		{name: "another run's create not yet resolvable", err: &waitError{after: 7 * time.Second, msg: "wait"},
			reason: usersv1alpha1.ReasonCreating, after: 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			_ = usersv1alpha1.AddToScheme(scheme)
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Generation: 1}}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg).WithStatusSubresource(seg).Build()
			r := &SegmentReconciler{Client: c, Recorder: events.NewFakeRecorder(10), DriftInterval: drift}

			result, err := r.fail(context.Background(), seg, newStatusWriter(c, seg), tc.err)
			if tc.backoff != (err != nil) {
				t.Errorf("returned error %v, want one: %v", err, tc.backoff)
			}
			if err != nil && !errors.Is(err, tc.err) {
				t.Errorf("returned %v, not the failure", err)
			}
			if tc.backoff && result.RequeueAfter != 0 {
				t.Errorf("RequeueAfter %v with an error: the backoff would be skipped", result.RequeueAfter)
			}
			if got := result.RequeueAfter; got < tc.after || got > tc.after+tc.after/4 {
				t.Errorf("RequeueAfter %v, want %v (+25%% jitter)", got, tc.after)
			}
			ready := meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionReady)
			if ready == nil || ready.Reason != tc.reason || ready.Status != metav1.ConditionFalse {
				t.Fatalf("Ready = %+v, want False/%s", ready, tc.reason)
			}
			if got := meta.IsStatusConditionTrue(seg.Status.Conditions, usersv1alpha1.ConditionStalled); got != tc.stalled {
				t.Errorf("Stalled %v, want %v", got, tc.stalled)
			}
			if tc.inMessage != "" && !strings.Contains(ready.Message, tc.inMessage) {
				t.Errorf("message %q lacks %q", ready.Message, tc.inMessage)
			}
		})
	}
}

// A status write that changes the ownership record is a transition, refused when the copy
// it starts from is stale: a newer write may have recorded the segment a create made, which
// must not be erased or replaced. Other writes are not conditional.
func TestOwnershipWritesRefuseAStaleCopy(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Status: usersv1alpha1.SegmentStatus{ID: "old", Ownership: &usersv1alpha1.SegmentOwnership{ID: "old"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg).WithStatusSubresource(seg).Build()
	ctx := context.Background()

	stale := &usersv1alpha1.Segment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(seg), stale); err != nil {
		t.Fatal(err)
	}
	current := stale.DeepCopy()
	current.Status.ID, current.Status.Ownership = "new", &usersv1alpha1.SegmentOwnership{ID: "new"} // a newer reconcile's create
	if err := c.Status().Update(ctx, current); err != nil {
		t.Fatal(err)
	}

	st := newStatusWriter(c, stale)
	replaced := stale.DeepCopy()
	replaced.Status.ID = ""
	replaced.Status.Ownership = &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{Name: "n"}}
	if err := st.write(ctx, replaced); !apierrors.IsConflict(err) {
		t.Fatalf("a transition from a stale copy: %v, want a conflict", err)
	}
	got := &usersv1alpha1.Segment{}
	_ = c.Get(ctx, client.ObjectKeyFromObject(seg), got)
	if got.OwnedID() != "new" {
		t.Fatalf("ownership %+v: the recorded segment was erased", got.Status.Ownership)
	}

	// With shards every write is conditional: another manager may have the Segment since.
	sharded := newStatusWriter(c, stale)
	sharded.conditional = true
	plain := stale.DeepCopy()
	plain.Status.RemoteMembers = 3
	if err := sharded.write(ctx, plain); !apierrors.IsConflict(err) {
		t.Fatalf("a plain status write from a stale copy, with shards: %v, want a conflict", err)
	}

	stale.Status.RemoteMembers = 3 // no transition: written whatever the version
	if err := st.write(ctx, stale); err != nil {
		t.Fatalf("a plain status write from a stale copy: %v", err)
	}
}

// A reconcile's writes follow one another: the intent, then the new ID, both conditional,
// the second from the resourceVersion the first was answered with (the answer is the
// Segment's metadata alone); the spec and generation stay those the reconcile read.
func TestWritesOfOneReconcileFollowOneAnother(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Generation: 1},
		Spec: usersv1alpha1.SegmentSpec{Name: "vip", Members: []string{"u1"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg).WithStatusSubresource(seg).Build()
	ctx := context.Background()
	read := &usersv1alpha1.Segment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(seg), read); err != nil {
		t.Fatal(err)
	}
	st := newStatusWriter(c, read)
	read.Status.Ownership = &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{Name: "vip"}}
	before := read.ResourceVersion
	if err := st.write(ctx, read); err != nil {
		t.Fatalf("the intent: %v", err)
	}
	if read.ResourceVersion == before || read.Spec.Name != "vip" || len(read.Spec.Members) != 1 || read.Generation != 1 {
		t.Fatalf("after the intent: resourceVersion %s (was %s), spec %+v, generation %d", read.ResourceVersion, before, read.Spec, read.Generation)
	}
	read.Status.ID, read.Status.Ownership = "s1", &usersv1alpha1.SegmentOwnership{ID: "s1"}
	if err := st.write(ctx, read); err != nil {
		t.Fatalf("the new ID, from the intent's answer: %v", err)
	}
	got := &usersv1alpha1.Segment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(seg), got); err != nil {
		t.Fatal(err)
	}
	if got.OwnedID() != "s1" || got.Status.ID != "s1" || got.ResourceVersion != read.ResourceVersion {
		t.Fatalf("stored %+v at %s, want s1 at %s", got.Status, got.ResourceVersion, read.ResourceVersion)
	}
}

// An event note is cut after its arguments are in: 40 candidates' IDs made a note the API
// server dropped when only the format was cut.
func TestEventNoteFitsTheAPIServersLimit(t *testing.T) {
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = strings.Repeat("a", 22) + fmt.Sprintf("%02d", i)
	}
	for _, tc := range []struct {
		format string
		args   []any
	}{
		{"%d remote segments are named %q: %s", []any{40, "x", strings.Join(ids, ", ")}},
		{"%s", []any{strings.Repeat("é", 2000)}},
		{"short %s", []any{"note"}},
	} {
		got := eventNote(tc.format, tc.args...)
		if len(got) > maxEventNote || !utf8.ValidString(got) || !strings.HasPrefix(fmt.Sprintf(tc.format, tc.args...), strings.TrimSuffix(got, " [...]")) {
			t.Errorf("eventNote(%q): %d bytes: %q", tc.format, len(got), got)
		}
	}
}

// A write made on the way to the outcome (a claim, a pending create) does not say the
// generation was observed: a Ready=True of the last generation would pass for this one.
func TestObservedGenerationComesWithTheOutcome(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(scheme)
	seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Generation: 2},
		Status: usersv1alpha1.SegmentStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{Type: usersv1alpha1.ConditionReady,
			Status: metav1.ConditionTrue, Reason: usersv1alpha1.ReasonDriftDetected, ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(seg).WithStatusSubresource(seg).Build()
	st := newStatusWriter(c, seg)
	seg.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: "x"} // a claim, recorded mid-reconcile
	if err := st.write(context.Background(), seg); err != nil {
		t.Fatal(err)
	}
	if seg.Status.ObservedGeneration != 1 {
		t.Errorf("a claim's write says generation %d observed, with the last generation's Ready", seg.Status.ObservedGeneration)
	}
	setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonSynced, msg: "synced"})
	if seg.Status.ObservedGeneration != 2 {
		t.Errorf("the outcome leaves observedGeneration %d, want 2", seg.Status.ObservedGeneration)
	}
}
