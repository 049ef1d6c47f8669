package plan

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
)

func TestPlanFor(t *testing.T) {
	observed := func(name string) *chatbot.Segment { return &chatbot.Segment{ID: "x", Name: name} }
	for _, tc := range []struct {
		name     string
		spec     usersv1alpha1.SegmentSpec
		added    []string
		observed *chatbot.Segment
		want     Plan
		summary  string
	}{
		{name: "no segment: create with every member", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"b", "a"}},
			added: []string{"old"}, want: Plan{Create: true, Add: []string{"a", "b"}}, summary: "create the segment, add 2 members"},
		{name: "in sync", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}}, added: []string{"a"},
			observed: observed("n"), want: Plan{}},
		{name: "renamed out of band", spec: usersv1alpha1.SegmentSpec{Name: "n"}, observed: observed("other"),
			want: Plan{RenameFrom: "other", RenameTo: "n"}, summary: `rename it from "other" to "n"`},
		{name: "members to add: only those not added", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a", "b", "c"}},
			added: []string{"a"}, observed: observed("n"), want: Plan{Add: []string{"b", "c"}}, summary: "add 2 members"},
		{name: "removed members under Warn are reported", spec: usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}},
			added: []string{"a", "z"}, observed: observed("n"), want: Plan{NotRemovable: 1},
			summary: "report 1 member the API cannot remove"},
		{name: "removed members under Recreate: recreate with every member",
			spec:  usersv1alpha1.SegmentSpec{Name: "n", Members: []string{"a"}, MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate},
			added: []string{"a", "z"}, observed: observed("other"),
			want:    Plan{Recreate: true, Add: []string{"a"}, NotRemovable: 1},
			summary: "delete the segment and create it anew to remove 1 member, add 1 member"},
		{name: "an adopted segment (spec.id) is never recreated",
			spec:  usersv1alpha1.SegmentSpec{ID: "x", Name: "n", MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicyRecreate},
			added: []string{"z"}, observed: observed("n"), want: Plan{NotRemovable: 1},
			summary: "report 1 member the API cannot remove"},
		{name: "metadata.name when spec.name is empty", observed: observed("seg"), want: Plan{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "seg"}, Spec: tc.spec}
			got := For(seg, ledger.New(tc.added...), seg.Spec.Members, tc.observed)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("For = %+v, want %+v", got, tc.want)
			}
			if s := got.Summary(); s != tc.summary {
				t.Errorf("summary %q, want %q", s, tc.summary)
			}
		})
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
		want         Drift
	}{
		{"all there", 100, 100, true, nil, Drift{}},
		{"members added outside hide nothing we can see", 100, 130, true, nil, Drift{}},
		{"ten gone: re-add", 100, 90, true, nil, Drift{Missing: 10, Readd: true}},
		{"the same ten still gone: report only", 100, 90, true, readd(10), Drift{Missing: 10}},
		{"members added since, the same ten gone: report only", 150, 140, true, readd(10), Drift{Missing: 10}},
		{"more gone: re-add once more", 100, 85, true, readd(10), Drift{Missing: 15, Readd: true}},
		{"fewer gone than at the re-add: report only", 100, 95, true, readd(10), Drift{Missing: 5}},
		{"a count our adds raised: judge nothing", 100, 100, false, readd(10), Drift{Unknown: true}},
		{"the API counts them all again: forget the re-add", 100, 100, true, readd(10), Drift{Settled: true}},
		{"nothing added yet", 0, 0, true, nil, Drift{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := JudgeDrift(tc.known, tc.users, tc.counted, tc.readded); got != tc.want {
				t.Errorf("JudgeDrift = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Manage is For with the drift re-add folded in: every desired member again when the count
// says more are missing than at the last re-add; nothing judged without a segment, under a
// recreate (it adds every member anyway), or from a count our adds raised.
func TestManage(t *testing.T) {
	desired := []string{"a", "b", "c", "d"}
	observed := func(users int) *chatbot.Segment { return &chatbot.Segment{ID: "x", Name: "n", Users: users} }
	readd := &usersv1alpha1.MemberRecord{Readded: &usersv1alpha1.MembersReadded{Missing: 2, At: metav1.Now()}}
	for _, tc := range []struct {
		name     string
		policy   usersv1alpha1.MemberRemovalPolicy
		record   *usersv1alpha1.MemberRecord
		added    []string
		observed *chatbot.Segment
		counted  bool
		want     Plan
		drift    Drift
	}{
		{name: "no segment: create, no drift judged", added: []string{"a"},
			want: Plan{Create: true, Add: desired}, drift: Drift{Unknown: true}},
		{name: "all counted: add only what is not added", added: []string{"a", "b"}, observed: observed(2), counted: true,
			want: Plan{Add: []string{"c", "d"}}, drift: Drift{}},
		{name: "two missing: every desired member again", added: []string{"a", "b", "c", "d"}, observed: observed(2), counted: true,
			want: Plan{Add: desired}, drift: Drift{Missing: 2, Readd: true}},
		{name: "the same two still missing after a re-add: report only", record: readd, added: []string{"a", "b", "c", "d"},
			observed: observed(2), counted: true, want: Plan{}, drift: Drift{Missing: 2}},
		{name: "a count our adds raised: judge nothing", added: []string{"a", "b", "c", "d"}, observed: observed(2),
			want: Plan{}, drift: Drift{Unknown: true}},
		{name: "recreate: every member anyway, no drift judged", policy: usersv1alpha1.MemberRemovalPolicyRecreate,
			added: []string{"a", "b", "c", "d", "z"}, observed: observed(1), counted: true,
			want: Plan{Recreate: true, Add: desired, NotRemovable: 1}, drift: Drift{Unknown: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "n"},
				Spec: usersv1alpha1.SegmentSpec{MemberRemovalPolicy: tc.policy}}
			seg.Status.MemberRecord = tc.record
			got, drift := Manage(seg, ledger.New(tc.added...), desired, tc.observed, tc.counted)
			if !reflect.DeepEqual(got, tc.want) || drift != tc.drift {
				t.Errorf("Manage = %+v, %+v; want %+v, %+v", got, drift, tc.want, tc.drift)
			}
		})
	}
}

// status.plan names at most ten of the members to add, and counts them all.
func TestStatusSamplesTheMembersToAdd(t *testing.T) {
	var add []string
	for i := range 25 {
		add = append(add, string(rune('a'+i)))
	}
	got := Plan{RenameFrom: "a", RenameTo: "b", Add: add, NotRemovable: 3}.Status()
	want := &usersv1alpha1.SegmentPlan{RenameFrom: "a", RenameTo: "b", MembersToAdd: 25, MembersToAddSample: add[:10], MembersNotRemovable: 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status = %+v, want %+v", got, want)
	}
}

// Members the API cannot remove stay reported after the plan unless it makes the segment
// anew; the count is the one apply leaves in the record (added.NotIn(desired)).
func TestNotRemovableAfter(t *testing.T) {
	desired := []string{"a", "b"}
	for _, tc := range []struct {
		name   string
		policy usersv1alpha1.MemberRemovalPolicy
		added  []string
		seen   bool
		want   int
	}{
		{name: "created: none", added: []string{"z"}, want: 0},
		{name: "kept: the extra ones stay", added: []string{"a", "z", "y"}, seen: true, want: 2},
		{name: "recreated: none", policy: usersv1alpha1.MemberRemovalPolicyRecreate, added: []string{"a", "z"}, seen: true, want: 0},
		{name: "in sync", added: []string{"a", "b"}, seen: true, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: usersv1alpha1.SegmentSpec{MemberRemovalPolicy: tc.policy}}
			var observed *chatbot.Segment
			if tc.seen {
				observed = &chatbot.Segment{ID: "x", Name: "n"}
			}
			added := ledger.New(tc.added...)
			p := For(seg, added, desired, observed)
			if got := p.NotRemovableAfter(); got != tc.want {
				t.Errorf("NotRemovableAfter = %d, want %d", got, tc.want)
			}
			if !p.Create && !p.Recreate { // what apply leaves: the plan's members added to the record
				added.Add(p.Add...)
				if got := added.NotIn(desired); got != tc.want {
					t.Errorf("the record after the adds counts %d not removable, the plan %d", got, tc.want)
				}
			}
		})
	}
}
