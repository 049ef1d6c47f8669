package shard

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

func labelled(labels map[string]string) *usersv1alpha1.Segment {
	return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team", Labels: labels}}
}

// A selector is read as Flux reads --watch-label-selector; one that selects every Segment
// is refused (leave the flag empty for that), and a bad one says which flag.
func TestParseAndOwns(t *testing.T) {
	for _, tc := range []struct {
		selector string
		wantErr  bool
		owns     map[string]bool // label value of Key ("" for none) → owned
	}{
		{"", false, map[string]bool{"": true, "a": true}},
		{Key + "=a", false, map[string]bool{"": false, "a": true, "b": false}},
		{"!" + Key, false, map[string]bool{"": true, "a": false}},
		{Key + " notin (a,b)", false, map[string]bool{"": true, "a": false, "b": false, "c": true}},
		{"=a", true, nil},
		{"(", true, nil},
	} {
		sh, err := Parse(tc.selector)
		if (err != nil) != tc.wantErr {
			t.Errorf("Parse(%q) error = %v, want error %v", tc.selector, err, tc.wantErr)
			continue
		}
		for value, want := range tc.owns {
			labels := map[string]string{"team": "x"}
			if value != "" {
				labels[Key] = value
			}
			if got := sh.Owns(labelled(labels)); got != want {
				t.Errorf("%q owns a Segment labelled %q: %v, want %v", tc.selector, value, got, want)
			}
		}
	}
}

// Each selector has its leader election lease; one manager, and the main shard, keep the
// one it always had.
func TestLeaderElectionID(t *testing.T) {
	a, _ := Parse(Key + "=a")
	b, _ := Parse(Key + "=b")
	var none *Shard
	if got := none.LeaderElectionID("op.example.com"); got != "op.example.com" {
		t.Errorf("without a shard: %q", got)
	}
	if a.LeaderElectionID("op.example.com") == b.LeaderElectionID("op.example.com") {
		t.Error("two shards share a leader election lease")
	}
	again, _ := Parse(Key + "=a")
	if a.LeaderElectionID("x") != again.LeaderElectionID("x") {
		t.Error("replicas of one shard elect on different leases")
	}
	// The main shard keeps one manager's lease, whatever the shards beside it.
	for _, sel := range []string{"!" + Key, Key + " notin (a)", Key + " notin (a,b)"} {
		main, _ := Parse(sel)
		if got := main.LeaderElectionID("op.example.com"); got != "op.example.com" {
			t.Errorf("main shard %q elects on %q", sel, got)
		}
	}
}

// The controller sees its own Segments' changes, and a Segment moved in by a relabelling
// (no generation or annotation changes with it); never another shard's.
func TestPredicate(t *testing.T) {
	sh, _ := Parse(Key + "=a")
	changed := predicate.GenerationChangedPredicate{}
	p := sh.Predicate(changed)
	mine, theirs := labelled(map[string]string{Key: "a"}), labelled(map[string]string{Key: "b"})
	for _, tc := range []struct {
		name     string
		old, new *usersv1alpha1.Segment
		want     bool
	}{
		{"moved in", theirs, mine, true},
		{"moved out: to let go of it", mine, theirs, true},
		{"another shard's changed", theirs, bump(theirs), false},
		{"its own changed", mine, bump(mine), true},
		{"its own, status only", mine, mine.DeepCopy(), false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !p.Create(event.CreateEvent{Object: mine}) || p.Create(event.CreateEvent{Object: theirs}) {
		t.Error("creates: its own passes, another's does not")
	}
	if !p.Delete(event.DeleteEvent{Object: mine}) || p.Delete(event.DeleteEvent{Object: theirs}) || p.Generic(event.GenericEvent{Object: theirs}) {
		t.Error("deletes and generic events: its own pass, another's do not")
	}
	var none *Shard
	all := none.Predicate(changed)
	if !all.Update(event.UpdateEvent{ObjectOld: theirs, ObjectNew: bump(theirs)}) || all.Update(event.UpdateEvent{ObjectOld: mine, ObjectNew: theirs}) {
		t.Error("without a shard the predicate is the controller's own: generation changes only")
	}
}

func bump(s *usersv1alpha1.Segment) *usersv1alpha1.Segment {
	out := s.DeepCopy()
	out.Generation++
	return out
}

// Another shard's Segment is kept as what the checks of every shard read, and no more;
// the shard's own is kept whole.
func TestView(t *testing.T) {
	sh, _ := Parse(Key + "=a")
	big := &usersv1alpha1.Segment{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team", UID: "u", Generation: 3,
			Labels:        map[string]string{Key: "b", "app": "x"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			Finalizers:    []string{"example.com/tenant", usersv1alpha1.SegmentFinalizer},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: usersv1alpha1.SegmentSpec{Name: "vip", Members: []string{"u1", "u2"},
			CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "creds"}, ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly},
		Status: usersv1alpha1.SegmentStatus{ID: "s-1", ObservedGeneration: 3,
			Ownership:    &usersv1alpha1.SegmentOwnership{ID: "s-1", Account: "acct"},
			MemberRecord: &usersv1alpha1.MemberRecord{Added: 2, Digests: []byte("12345678"), ConfigMap: "segment-members-u"},
			Conditions: []metav1.Condition{{Type: usersv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: usersv1alpha1.ReasonSynced, Message: "long"},
				{Type: "Stalled", Status: metav1.ConditionFalse}}},
	}
	got, _ := sh.View()(big.DeepCopy())
	cut := got.(*usersv1alpha1.Segment)
	switch {
	case cut.Labels[Key] != "b" || len(cut.Labels) != 1:
		t.Errorf("labels %v: only the selector's are kept", cut.Labels)
	case len(cut.Annotations) != 0 || len(cut.ManagedFields) != 0 || len(cut.Spec.Members) != 0 || cut.Spec.Name != "":
		t.Errorf("kept what no check reads: %+v", cut)
	case len(cut.Finalizers) != 1 || cut.Finalizers[0] != usersv1alpha1.SegmentFinalizer:
		t.Errorf("finalizers %v: only the operator's", cut.Finalizers)
	case cut.Spec.CredentialsRef == nil || !cut.ObserveOnly() || cut.UID != "u" || cut.Generation != 3:
		t.Errorf("lost what the checks read: %+v", cut)
	case cut.OwnedID() != "s-1" || cut.Status.ID != "s-1" || cut.Status.ObservedGeneration != 3:
		t.Errorf("lost the ownership: %+v", cut.Status)
	case cut.Status.MemberRecord == nil || cut.Status.MemberRecord.ConfigMap != "segment-members-u" || cut.Status.MemberRecord.Digests != nil:
		t.Errorf("member record %+v: its name only", cut.Status.MemberRecord)
	case len(cut.Status.Conditions) != 1 || cut.Status.Conditions[0].Reason != usersv1alpha1.ReasonSynced || cut.Status.Conditions[0].Message != "":
		t.Errorf("conditions %+v: Ready's status and reason only", cut.Status.Conditions)
	case sh.Owns(cut):
		t.Error("the cut of another shard's Segment passes for the shard's own")
	}

	mine := big.DeepCopy()
	mine.Labels[Key] = "a"
	got, _ = sh.View()(mine.DeepCopy())
	whole := got.(*usersv1alpha1.Segment)
	if len(whole.ManagedFields) != 0 || len(whole.Spec.Members) != 2 || whole.Annotations == nil || whole.Status.MemberRecord.Digests == nil {
		t.Errorf("the shard's own Segment is not kept whole (but for managedFields): %+v", whole)
	}
}
