package preview

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/ledger"
)

// What each kind of input comes to, and the line that says it.
func TestDecide(t *testing.T) {
	manifest := func(spec usersv1alpha1.SegmentSpec) *usersv1alpha1.Segment {
		return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s"}, Spec: spec}
	}
	// live is the cluster's Segment, owning id (if not "") named name with users members.
	live := func(spec usersv1alpha1.SegmentSpec, id, name string, users int) *usersv1alpha1.Segment {
		s := manifest(spec)
		s.Status.Ownership = &usersv1alpha1.SegmentOwnership{ID: id}
		s.Status.ID, s.Status.Name, s.Status.RemoteMembers = id, name, int32(users)
		return s
	}
	named := usersv1alpha1.SegmentSpec{Name: "S"}
	byName := usersv1alpha1.SegmentSpec{Name: "S", AdoptionPolicy: usersv1alpha1.AdoptionPolicyAdoptByName}
	owners := func(id string) string {
		if id == "taken" {
			return "team/other"
		}
		return ""
	}
	abc := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name string
		in   Input
		want Kind
		// line is a part of the change's line.
		line string
		// add is the members to add, when not exact.
		add *Count
	}{
		{name: "new: created with its members", in: Input{Manifest: manifest(named), Members: abc},
			want: KindCreate, line: `+ team/s: create segment "S" with 3 members`},
		{name: "refused by admission", in: Input{Manifest: manifest(named), Refused: `spec.members[0]: Invalid value: "a-b"`},
			want: KindRefused, line: `! team/s: refused by the API server: spec.members[0]: Invalid value: "a-b"`},
		{name: "suspended", in: Input{Manifest: manifest(usersv1alpha1.SegmentSpec{Suspend: true}), Members: abc},
			want: KindNone, line: "= team/s: no change: suspended"},
		{name: "spec.id names another segment than the owned one",
			in:   Input{Manifest: manifest(usersv1alpha1.SegmentSpec{ID: "r2"}), Live: live(named, "r1", "S", 0)},
			want: KindConflict, line: "spec.id names remote segment r2, but this Segment already manages r1"},
		{name: "spec.id names another Segment's segment", in: Input{Manifest: manifest(usersv1alpha1.SegmentSpec{ID: "taken"}), OwnerOf: owners},
			want: KindConflict, line: "! team/s: conflict: remote segment taken is already managed by team/other"},
		{name: "members that cannot be read", in: Input{Manifest: manifest(named), MembersError: `ConfigMap "m" not found`},
			want: KindStalled, line: `stalled (MembersSourceError): ConfigMap "m" not found`},
		{name: "spec.id, without --live: adopted, its name not known",
			in:   Input{Manifest: manifest(usersv1alpha1.SegmentSpec{ID: "r9", Name: "S"}), Members: abc},
			want: KindAdopt, line: "~ team/s: adopt segment r9 (by spec.id), add 3 members to segment r9"},
		{name: "spec.id, --live: adopted and renamed",
			in: Input{Manifest: manifest(usersv1alpha1.SegmentSpec{ID: "r9", Name: "S"}), Members: abc, Listed: true,
				Account: []chatbot.Segment{{ID: "r9", Name: "Theirs", Users: 7}}},
			want: KindAdopt, line: `adopt segment r9 (by spec.id), rename segment r9 from "Theirs" to "S", add 3 members`},
		{name: "spec.id, --live: not there", in: Input{Manifest: manifest(usersv1alpha1.SegmentSpec{ID: "r9"}), Listed: true},
			want: KindStalled, line: "remote segment r9 named by spec.id does not exist"},
		{name: "AdoptByName without --live", in: Input{Manifest: manifest(byName), Members: abc},
			want: KindUnknown, line: "? team/s: unknown: adoptionPolicy AdoptByName"},
		{name: "AdoptByName, --live: the one unmanaged segment of the name",
			in: Input{Manifest: manifest(byName), Members: abc, Listed: true, OwnerOf: owners,
				Account: []chatbot.Segment{{ID: "taken", Name: "S"}, {ID: "free", Name: "S"}, {ID: "x", Name: "T"}}},
			want: KindAdopt, line: "adopt segment free (by name), add 3 members to segment free"},
		{name: "AdoptByName, --live: none", in: Input{Manifest: manifest(byName), Members: abc, Listed: true},
			want: KindCreate},
		{name: "AdoptByName, --live: several", in: Input{Manifest: manifest(byName), Listed: true,
			Account: []chatbot.Segment{{ID: "r1", Name: "S"}, {ID: "r2", Name: "S"}}},
			want: KindStalled, line: `2 remote segments are named "S"`},
		{name: "a pending create", in: Input{Manifest: manifest(named), Live: &usersv1alpha1.Segment{Status: usersv1alpha1.SegmentStatus{
			Ownership: &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{Name: "S"}}}}},
			want: KindUnknown, line: "a create of a segment named \"S\" is pending"},
		{name: "observed before it managed (status.id): adopted from status",
			in: Input{Manifest: manifest(named), Live: func() *usersv1alpha1.Segment {
				s := live(named, "", "S", 2)
				s.Status.ID = "r3"
				return s
			}(), Members: abc, Record: Record{Ledger: ledger.New()}},
			want: KindAdopt, line: "adopt segment r3 (by status.id), add 3 members to segment r3"},
		{name: "record not readable: a bound",
			in: Input{Manifest: manifest(named), Live: live(named, "r1", "S", 3), Members: []string{"a", "b", "c", "d"},
				Record: Record{Added: 3, ConfigMap: "segment-members-x"}},
			want: KindAdd, add: &Count{1, 4}, line: "add 1 to 4 members to segment r1 (a bound"},
		{name: "record not readable, all added: nothing certain",
			in: Input{Manifest: manifest(named), Live: live(named, "r1", "S", 3), Members: abc,
				Record: Record{Added: 3, ConfigMap: "segment-members-x"}},
			want: KindNone, add: &Count{0, 3}, line: "= team/s: no change to segment r1, maybe add up to 3 members to segment r1 (a bound"},
		{name: "owned, in sync", in: Input{Manifest: manifest(named), Live: live(named, "r1", "S", 0), Members: abc},
			want: KindNone, line: "no change to segment r1"},
		{name: "pruned: deleted with its segment", in: Input{Live: live(named, "r1", "S", 0)},
			want: KindDelete, line: "- team/s: no file names it: delete it, and remote segment r1 (deletionPolicy Delete)"},
		{name: "pruned, Orphan", in: Input{Live: live(usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan}, "r1", "S", 0)},
			want: KindOrphan, line: "leave remote segment r1 in ChatBot (deletionPolicy Orphan)"},
		{name: "pruned, owning nothing", in: Input{Live: live(named, "", "", 0)},
			want: KindDelete, line: "delete it (it manages no remote segment)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in.Record.Ledger == nil && tc.in.Record.ConfigMap == "" {
				tc.in.Record.Ledger = ledger.New()
				if tc.in.Live != nil && tc.in.Live.OwnedID() != "" {
					tc.in.Record.Ledger = ledger.New(tc.in.Members...)
				}
			}
			got := Decide(tc.in)
			if got.Kind != tc.want || !strings.Contains(got.Line(), tc.line) {
				t.Errorf("Decide = %s: %q, want %s: %q", got.Kind, got.Line(), tc.want, tc.line)
			}
			if tc.add != nil && got.MembersToAdd != *tc.add {
				t.Errorf("members to add %+v, want %+v", got.MembersToAdd, *tc.add)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		kinds []Kind
		want  string
	}{
		{nil, "No changes; 0 unchanged."},
		{[]Kind{KindNone, KindNotRemovable}, "No changes; 2 unchanged."},
		{[]Kind{KindCreate, KindCreate, KindRename, KindAdd, KindDelete, KindNone},
			"Plan: 2 to create, 1 to rename, 1 to add members to, 1 to delete; 1 unchanged."},
		{[]Kind{KindAdopt, KindRecreate, KindOrphan, KindRefused, KindConflict, KindStalled, KindUnknown},
			"Plan: 1 to adopt, 1 to recreate, 1 to orphan; 1 refused, 1 in conflict, 1 stalled, 1 unknown; 0 unchanged."},
		{[]Kind{KindRefused}, "No changes; 1 refused; 0 unchanged."},
	} {
		var changes []Change
		for _, k := range tc.kinds {
			changes = append(changes, Change{Kind: k})
		}
		s := Summarize(changes)
		if got := s.String(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.kinds, got, tc.want)
		}
		changed := 0
		for _, k := range tc.kinds {
			if k.Changes() {
				changed++
			}
		}
		if s.Changes() != changed {
			t.Errorf("%v: %d changes, want %d", tc.kinds, s.Changes(), changed)
		}
	}
}

func TestReportIsSortedAndWritten(t *testing.T) {
	r := NewReport([]Change{
		{Namespace: "b", Name: "a", Kind: KindNone, Text: "no change"},
		{Namespace: "a", Name: "z", Kind: KindCreate, Text: "create", Notes: []string{"n"}},
	}, "admission was not checked")
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "+ a/z: create\n    note: n\n= b/a: no change\n\nNote: admission was not checked\nPlan: 1 to create; 1 unchanged.\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
