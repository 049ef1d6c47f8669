package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/remote"
)

func TestChooseCreated(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	intent := &usersv1alpha1.CreateIntent{At: metav1.NewMicroTime(at), Name: "Made"}
	seg := func(id, name string, created time.Time) chatbot.Segment {
		return chatbot.Segment{ID: id, Name: name, CreatedAt: chatbot.Timestamp{Time: created}}
	}
	nobody := func(string) bool { return false }
	for _, tc := range []struct {
		name   string
		listed []chatbot.Segment
		owned  func(string) bool
		keep   string
		want   createdChoice
	}{
		{name: "none: the create made nothing", listed: []chatbot.Segment{seg("a", "Other", at.Add(time.Second))}, want: createdChoice{}},
		{name: "one", listed: []chatbot.Segment{seg("a", "Made", at.Add(time.Second)), seg("b", "Other", at)},
			want: createdChoice{id: "a"}},
		{name: "several: uncertain, sorted", listed: []chatbot.Segment{seg("c", "Made", at.Add(2*time.Second)), seg("a", "Made", at.Add(time.Second))},
			want: createdChoice{uncertain: []string{"a", "c"}}},
		{name: "owned by another Segment: not ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(time.Second)), seg("b", "Made", at.Add(time.Second))},
			owned: func(id string) bool { return id == "a" }, want: createdChoice{id: "b"}},
		{name: "made before the intent: not ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(-time.Hour))}, want: createdChoice{}},
		{name: "ChatBot's clock a little behind: still ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(-ownership.CreateSkew))},
			want: createdChoice{id: "a"}},
		{name: "ChatBot's clock further behind than the skew allows", listed: []chatbot.Segment{seg("a", "Made", at.Add(-ownership.CreateSkew-time.Millisecond))},
			want: createdChoice{}},
		{name: "made after the create's deadline: not ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(30*time.Second+ownership.CreateSkew+time.Millisecond))},
			want: createdChoice{}},
		{name: "made by the deadline, by ChatBot's clock a little ahead: ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(30*time.Second+ownership.CreateSkew))},
			want: createdChoice{id: "a"}},
		{name: "renamed in the spec meanwhile: the intent's name counts", listed: []chatbot.Segment{seg("a", "New name", at.Add(time.Second)),
			seg("b", "Made", at.Add(time.Second))}, want: createdChoice{id: "b"}},
		{name: "spec.id to keep, and nothing else made", listed: []chatbot.Segment{seg("k", "Made", at.Add(time.Second))}, keep: "k",
			want: createdChoice{uncertain: []string{}}},
		{name: "spec.id to keep, and another segment made", listed: []chatbot.Segment{seg("k", "Made", at.Add(time.Second)),
			seg("a", "Made", at.Add(time.Second))}, keep: "k", want: createdChoice{uncertain: []string{"a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owned := tc.owned
			if owned == nil {
				owned = nobody
			}
			got := chooseCreated(tc.listed, intent, at.Add(30*time.Second), owned, tc.keep)
			if got.id != tc.want.id || len(got.uncertain) != len(tc.want.uncertain) ||
				(len(got.uncertain) > 0 && !reflect.DeepEqual(got.uncertain, tc.want.uncertain)) {
				t.Errorf("chooseCreated = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	legacyIntent := `{"at":"2026-11-25T12:00:00.5Z","name":"Old","account":"abc"}`
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: usersv1alpha1.ConditionReady, Status: status, Reason: reason}}
	}
	synced := ready(metav1.ConditionTrue, usersv1alpha1.ReasonSynced)
	empty := &usersv1alpha1.SegmentOwnership{}
	for _, tc := range []struct {
		name       string
		status     usersv1alpha1.SegmentStatus
		generation int64
		observe    bool
		finalizer  bool
		annotation string
		want       *usersv1alpha1.SegmentOwnership // nil: no record until the legacy hold is claimed
		old        legacy
	}{
		{name: "a record is kept as it is", status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 3,
			Ownership: &usersv1alpha1.SegmentOwnership{ID: "y"}}, generation: 3, finalizer: true, annotation: legacyIntent,
			want: &usersv1alpha1.SegmentOwnership{ID: "y"}},
		{name: "a new Segment owns nothing, whatever its metadata says; the annotation is reported", finalizer: true,
			annotation: legacyIntent, status: usersv1alpha1.SegmentStatus{ObservedGeneration: -1}, generation: 1, want: empty,
			old: legacy{intent: legacyIntent}},
		{name: "a new Segment with no status at all", finalizer: true, generation: 1, want: empty},
		{name: "a segment the earlier version managed in sync is held, unrecorded until claimed", finalizer: true, generation: 2,
			status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: synced}, old: legacy{hold: "x"}},
		{name: "no finalizer: no hold", generation: 2, want: empty,
			status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: synced}},
		{name: "observe-only now: no hold", observe: true, finalizer: true, generation: 2, want: empty,
			status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: synced}},
		{name: "spec changed since that version wrote (an observation switched to Manage): no hold", finalizer: true, generation: 3,
			want: empty, status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: synced}},
		{name: "an observation that version wrote: no hold", finalizer: true, generation: 2, want: empty,
			status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: ready(metav1.ConditionTrue, usersv1alpha1.ReasonObserved)}},
		{name: "a claim that version refused: no hold", finalizer: true, generation: 2, want: empty,
			status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: ready(metav1.ConditionFalse, usersv1alpha1.ReasonConflict)}},
		{name: "suspended under that version (Manage, finalizer and suspend in one update): no hold", finalizer: true, generation: 2,
			want: empty, status: usersv1alpha1.SegmentStatus{ID: "x", ObservedGeneration: 2, Conditions: ready(metav1.ConditionFalse, usersv1alpha1.ReasonSuspended)}},
		{name: "that version's pending create is reported, never trusted", finalizer: true, generation: 2, annotation: legacyIntent,
			status: usersv1alpha1.SegmentStatus{ObservedGeneration: 2}, want: empty, old: legacy{intent: legacyIntent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Generation: tc.generation}, Status: *tc.status.DeepCopy()}
			if tc.observe {
				seg.Spec.ManagementPolicy = usersv1alpha1.ManagementPolicyObserveOnly
			}
			if tc.finalizer {
				seg.Finalizers = []string{usersv1alpha1.SegmentFinalizer}
			}
			if tc.annotation != "" {
				seg.Annotations = map[string]string{usersv1alpha1.AnnotationCreatePending: tc.annotation}
			}
			if got := migrate(seg); got != tc.old {
				t.Errorf("legacy %+v, want %+v", got, tc.old)
			}
			if !reflect.DeepEqual(seg.Status.Ownership, tc.want) {
				t.Errorf("ownership %+v, want %+v", seg.Status.Ownership, tc.want)
			}
		})
	}
}

// TestSetOutcome checks that Ready, Reconciling, Stalled and Suspended always come out
// consistent, whatever was there before.
func TestSetOutcome(t *testing.T) {
	type conds map[string]metav1.ConditionStatus
	for _, tc := range []struct {
		name string
		o    outcome
		want conds
	}{
		{name: "synced", o: outcome{ready: true, reason: usersv1alpha1.ReasonSynced},
			want: conds{usersv1alpha1.ConditionReady: metav1.ConditionTrue}},
		{name: "retrying", o: outcome{reason: usersv1alpha1.ReasonRemoteError, progress: reconciling},
			want: conds{usersv1alpha1.ConditionReady: metav1.ConditionFalse, usersv1alpha1.ConditionReconciling: metav1.ConditionTrue}},
		{name: "stalled", o: outcome{reason: usersv1alpha1.ReasonConflict, progress: stalled},
			want: conds{usersv1alpha1.ConditionReady: metav1.ConditionFalse, usersv1alpha1.ConditionStalled: metav1.ConditionTrue}},
		{name: "suspended: no Ready", o: outcome{reason: usersv1alpha1.ReasonSuspended, progress: suspended},
			want: conds{usersv1alpha1.ConditionSuspended: metav1.ConditionTrue}},
		{name: "observe-only drift: Ready", o: outcome{ready: true, reason: usersv1alpha1.ReasonDriftDetected},
			want: conds{usersv1alpha1.ConditionReady: metav1.ConditionTrue}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{Status: usersv1alpha1.SegmentStatus{Plan: &usersv1alpha1.SegmentPlan{Create: true}}}
			for _, c := range []string{usersv1alpha1.ConditionReady, usersv1alpha1.ConditionReconciling,
				usersv1alpha1.ConditionStalled, usersv1alpha1.ConditionSuspended} {
				setCondition(seg, c, true, "Before", "before")
			}
			setOutcome(seg, tc.o)
			got := conds{}
			for _, c := range seg.Status.Conditions {
				got[c.Type] = c.Status
				if c.Reason != tc.o.reason {
					t.Errorf("%s has reason %s, want %s", c.Type, c.Reason, tc.o.reason)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("conditions %v, want %v", got, tc.want)
			}
			if keep := tc.o.reason == usersv1alpha1.ReasonDriftDetected; (seg.Status.Plan != nil) != keep {
				t.Errorf("plan kept: %v, want %v", seg.Status.Plan != nil, keep)
			}
			if tc.o.progress != suspended && meta.FindStatusCondition(seg.Status.Conditions, usersv1alpha1.ConditionSuspended) != nil {
				t.Error("Suspended left behind")
			}
		})
	}
}

// The in-process memos (createsNoEffect) recognise a pending create by its time, compared
// with the intent read back from the API server, which keeps it to the microsecond.
func TestNewIntentSurvivesTheAPIServer(t *testing.T) {
	seg := &usersv1alpha1.Segment{Spec: usersv1alpha1.SegmentSpec{Name: "n"}}
	for range 100 {
		intent := newIntent(seg, &remote.Account{ID: "a"})
		raw, err := json.Marshal(intent)
		if err != nil {
			t.Fatal(err)
		}
		var back usersv1alpha1.CreateIntent
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		if !back.At.Equal(&intent.At) || !back.At.Time.Equal(intent.At.Time) {
			t.Fatalf("intent time %s read back as %s", intent.At.Format(time.RFC3339Nano), back.At.Format(time.RFC3339Nano))
		}
	}
}

// classify decides, for each kind of failure, the reason, whether it stalls, and how it is
// retried; the wiring into status is TestFailDecidesWhenToRetry's.
func TestClassify(t *testing.T) {
	const drift = time.Minute
	api := func(op string, status int, retryAfter time.Duration) error {
		return fmt.Errorf("wrapped: %w", &chatbot.APIError{Op: op, StatusCode: status, RetryAfter: retryAfter})
	}
	for _, tc := range []struct {
		name string
		err  error
		want verdict // err is checked apart
		// jittered: after is want.after plus up to a quarter
		jittered bool
	}{
		{"turned away: nothing recorded", &turnError{after: 3 * time.Second}, verdict{turn: true, after: 3 * time.Second}, false},
		{"another run's create", &waitError{after: 7 * time.Second}, verdict{reason: usersv1alpha1.ReasonCreating, after: 7 * time.Second}, false},
		{"another shard's name lock", fmt.Errorf("create: %w", &ownership.BusyError{Holder: "Segment a/b", Name: "vip", After: 4 * time.Second}),
			verdict{reason: usersv1alpha1.ReasonCreating, after: 4 * time.Second}, true},
		{"a stall", stall(usersv1alpha1.ReasonConflict, "taken"), verdict{reason: usersv1alpha1.ReasonConflict, stalled: true, after: drift}, false},
		{"credentials", &credentials.Error{}, verdict{reason: usersv1alpha1.ReasonCredentialsError, stalled: true, after: drift}, false},
		{"a Kubernetes API error: not ours to record", errors.New("etcd is away"), verdict{}, false},
		{"401 held back", &chatbot.APIError{Op: chatbot.OpList, StatusCode: 401, Local: true, RetryAfter: 20 * time.Second},
			verdict{reason: usersv1alpha1.ReasonUnauthorized, stalled: true, after: 20 * time.Second}, true},
		{"401", api(chatbot.OpList, 401, 0), verdict{reason: usersv1alpha1.ReasonUnauthorized, stalled: true, after: drift}, false},
		{"a redirect", api(chatbot.OpList, 307, 0), verdict{reason: usersv1alpha1.ReasonRemoteRejected, stalled: true, after: drift}, false},
		{"429 with Retry-After", api(chatbot.OpAdd, 429, 5*time.Second), verdict{reason: usersv1alpha1.ReasonRateLimited, after: 5 * time.Second}, true},
		{"429", api(chatbot.OpAdd, 429, 0), verdict{reason: usersv1alpha1.ReasonRateLimited, backoff: true}, false},
		{"503 with Retry-After", api(chatbot.OpAdd, 503, 2*time.Second), verdict{reason: usersv1alpha1.ReasonRemoteError, after: 2 * time.Second}, true},
		{"500", api(chatbot.OpCreate, 500, 0), verdict{reason: usersv1alpha1.ReasonRemoteError, backoff: true}, false},
		{"404 on delete: the segment is gone", api(chatbot.OpDelete, 404, 0), verdict{reason: usersv1alpha1.ReasonRemoteError, backoff: true}, false},
		{"404 on list: no such endpoint", api(chatbot.OpList, 404, 0), verdict{reason: usersv1alpha1.ReasonEndpointNotFound, stalled: true, after: drift}, false},
		{"400", api(chatbot.OpRename, 400, 0), verdict{reason: usersv1alpha1.ReasonRemoteRejected, stalled: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err, drift)
			if !errors.Is(got.err, tc.err) {
				t.Errorf("err %v, not the failure", got.err)
			}
			after := got.after
			if tc.jittered && after >= tc.want.after && after <= tc.want.after+tc.want.after/4 {
				after = tc.want.after
			}
			got.err, got.after = nil, after
			if got != tc.want {
				t.Errorf("classify = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Absence is confirmed by a listing begun after the segment was made (status.createdAt,
// plus the clock skew), only where it leads to a create: never for spec.id.
func TestConfirmGoneAfter(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	seg := &usersv1alpha1.Segment{Status: usersv1alpha1.SegmentStatus{CreatedAt: &created}}
	if got, want := confirmGoneAfter(seg), created.Add(time.Second+ownership.CreateSkew); !got.Equal(want) {
		t.Errorf("confirmGoneAfter = %v, want %v", got, want)
	}
	seg.Spec.ID = "x"
	if got := confirmGoneAfter(seg); !got.IsZero() {
		t.Errorf("confirmGoneAfter for spec.id = %v, want zero", got)
	}
	seg.Status.CreatedAt = nil
	if got := goneAfter(seg); time.Since(got) > time.Minute {
		t.Errorf("goneAfter without createdAt = %v, want now", got)
	}
}

// The account moved when the credentials name another account than the one the owned
// segment was recorded in; an earlier version's record (no account) has not moved.
func TestAccountMoved(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *usersv1alpha1.SegmentOwnership
		want bool
	}{
		{"same account", &usersv1alpha1.SegmentOwnership{ID: "x", Account: "a"}, false},
		{"another account", &usersv1alpha1.SegmentOwnership{ID: "x", Account: "b"}, true},
		{"no account recorded", &usersv1alpha1.SegmentOwnership{ID: "x"}, false},
		{"owns nothing", &usersv1alpha1.SegmentOwnership{Account: "b"}, false},
		{"no record", nil, false},
	} {
		seg := &usersv1alpha1.Segment{Status: usersv1alpha1.SegmentStatus{Ownership: tc.o}}
		if got := accountMoved(seg, "a"); got != tc.want {
			t.Errorf("%s: accountMoved = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRequested(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		handled     string
		want        string
		fresh       bool
	}{
		{name: "no annotation", want: "", fresh: false},
		{name: "other annotations only", annotations: map[string]string{usersv1alpha1.AnnotationForgetCreate: "x"}, fresh: false},
		{name: "empty value: nothing asked", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: ""}, fresh: false},
		{name: "first request", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: "1700000000"},
			want: "1700000000", fresh: true},
		{name: "handled already", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: "1700000000"},
			handled: "1700000000", want: "1700000000", fresh: false},
		{name: "a new value", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: "1700000060"},
			handled: "1700000000", want: "1700000060", fresh: true},
		{name: "an earlier value again is a new request", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: "1699999999"},
			handled: "1700000000", want: "1699999999", fresh: true},
		{name: "any value, not only a time", annotations: map[string]string{usersv1alpha1.ReconcileRequestAnnotation: "now please"},
			want: "now please", fresh: true},
		{name: "annotation removed after a request: nothing asked", handled: "1700000000", fresh: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Annotations: tc.annotations},
				Status: usersv1alpha1.SegmentStatus{LastHandledReconcileAt: tc.handled}}
			got, fresh := requested(seg)
			if got != tc.want || fresh != tc.fresh {
				t.Errorf("requested = %q, %v; want %q, %v", got, fresh, tc.want, tc.fresh)
			}
		})
	}
}
