package controller

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
	"github.com/segment-operator/segment-operator/internal/remote"
)

func TestPlanFor(t *testing.T) {
	observed := func(name string) *chatbot.Segment { return &chatbot.Segment{ID: "x", Name: name} }
	for _, tc := range []struct {
		name     string
		spec     usersv1alpha1.SegmentSpec
		added    []string
		observed *chatbot.Segment
		want     remotePlan
		summary  string
	}{
		{name: "no segment: create with every member", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"b", "a"}},
			added: []string{"old"}, want: remotePlan{create: true, add: []string{"a", "b"}}, summary: "create the segment, add 2 members"},
		{name: "in sync", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}}, added: []string{"a"},
			observed: observed("n"), want: remotePlan{}},
		{name: "renamed out of band", spec: usersv1alpha1.SegmentSpec{Name: "n"}, observed: observed("other"),
			want: remotePlan{renameFrom: "other", renameTo: "n"}, summary: `rename it from "other" to "n"`},
		{name: "members to add: only those not added", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a", "b", "c"}},
			added: []string{"a"}, observed: observed("n"), want: remotePlan{add: []string{"b", "c"}}, summary: "add 2 members"},
		{name: "removed members under Warn are reported", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}},
			added: []string{"a", "z"}, observed: observed("n"), want: remotePlan{notRemovable: 1},
			summary: "report 1 member the API cannot remove"},
		{name: "removed members under Recreate: recreate with every member",
			spec:  usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}, MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate},
			added: []string{"a", "z"}, observed: observed("other"),
			want:    remotePlan{recreate: true, add: []string{"a"}, notRemovable: 1},
			summary: "delete the segment and create it anew to remove 1 member, add 1 member"},
		{name: "an adopted segment (spec.id) is never recreated",
			spec:  usersv1alpha1.SegmentSpec{ID: "x", Name: "n", MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate},
			added: []string{"z"}, observed: observed("n"), want: remotePlan{notRemovable: 1},
			summary: "report 1 member the API cannot remove"},
		{name: "metadata.name when spec.name is empty", observed: observed("seg"), want: remotePlan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "seg"}, Spec: tc.spec}
			got := planFor(seg, ledger.New(tc.added...), seg.Spec.Members, tc.observed)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("planFor = %+v, want %+v", got, tc.want)
			}
			if s := summarize(got); s != tc.summary {
				t.Errorf("summary %q, want %q", s, tc.summary)
			}
		})
	}
}

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
		{name: "ChatBot's clock a little behind: still ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(-createSkew))},
			want: createdChoice{id: "a"}},
		{name: "ChatBot's clock further behind than the skew allows", listed: []chatbot.Segment{seg("a", "Made", at.Add(-createSkew-time.Millisecond))},
			want: createdChoice{}},
		{name: "made after the create's deadline: not ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(30*time.Second+createSkew+time.Millisecond))},
			want: createdChoice{}},
		{name: "made by the deadline, by ChatBot's clock a little ahead: ours", listed: []chatbot.Segment{seg("a", "Made", at.Add(30*time.Second+createSkew))},
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

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{plural(1, "member"), "1 member"},
		{plural(0, "member"), "0 members"},
		{plural(2, "member was", "members were"), "2 members were"},
		{plural(1, "member was", "members were"), "1 member was"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
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

// The member count is the only signal of members removed outside the operator: a re-add
// only when more go missing, never a loop, and nothing judged from a count our adds raised.
func TestDecideDrift(t *testing.T) {
	readd := func(missing int32) *usersv1alpha1.MembersReadded {
		return &usersv1alpha1.MembersReadded{Missing: missing, At: metav1.Now()}
	}
	for _, tc := range []struct {
		name         string
		known, users int
		counted      bool
		readded      *usersv1alpha1.MembersReadded
		want         memberDrift
	}{
		{"all there", 100, 100, true, nil, memberDrift{}},
		{"members added outside hide nothing we can see", 100, 130, true, nil, memberDrift{}},
		{"ten gone: re-add", 100, 90, true, nil, memberDrift{missing: 10, readd: true}},
		{"the same ten still gone: report only", 100, 90, true, readd(10), memberDrift{missing: 10}},
		{"members added since, the same ten gone: report only", 150, 140, true, readd(10), memberDrift{missing: 10}},
		{"more gone: re-add once more", 100, 85, true, readd(10), memberDrift{missing: 15, readd: true}},
		{"fewer gone than at the re-add: report only", 100, 95, true, readd(10), memberDrift{missing: 5}},
		{"a count our adds raised: judge nothing", 100, 100, false, readd(10), memberDrift{unknown: true}},
		{"the API counts them all again: forget the re-add", 100, 100, true, readd(10), memberDrift{settled: true}},
		{"nothing added yet", 0, 0, true, nil, memberDrift{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideDrift(tc.known, tc.users, tc.counted, tc.readded); got != tc.want {
				t.Errorf("decideDrift = %+v, want %+v", got, tc.want)
			}
		})
	}
}
