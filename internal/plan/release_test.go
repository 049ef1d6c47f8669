package plan

import (
	"testing"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// What a deleted Segment's finalizer waits for, by policy and by what the Segment holds.
func TestOnDelete(t *testing.T) {
	owned := &usersv1alpha1.SegmentOwnership{ID: "x", Account: "a"}
	pending := &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{Name: "n"}}
	for _, tc := range []struct {
		name      string
		spec      usersv1alpha1.SegmentSpec
		ownership *usersv1alpha1.SegmentOwnership
		want      Release
	}{
		{"owns nothing: released at once", usersv1alpha1.SegmentSpec{}, &usersv1alpha1.SegmentOwnership{}, ReleaseNow},
		{"no record at all", usersv1alpha1.SegmentSpec{}, nil, ReleaseNow},
		{"owns one: deleted", usersv1alpha1.SegmentSpec{}, owned, DeleteRemote},
		{"a pending create: what it made is deleted", usersv1alpha1.SegmentSpec{}, pending, DeleteRemote},
		{"suspended: held", usersv1alpha1.SegmentSpec{Suspend: true}, owned, HoldSuspended},
		{"suspended, owning nothing: released", usersv1alpha1.SegmentSpec{Suspend: true}, &usersv1alpha1.SegmentOwnership{}, ReleaseNow},
		{"Orphan: left", usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan}, owned, LeaveOwned},
		{"Orphan, suspended: left", usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan, Suspend: true}, owned, LeaveOwned},
		{"ObserveOnly: left", usersv1alpha1.SegmentSpec{ManagementPolicy: usersv1alpha1.ManagementPolicyObserveOnly}, owned, LeaveOwned},
		{"Orphan, a pending create: left", usersv1alpha1.SegmentSpec{DeletionPolicy: usersv1alpha1.DeletionPolicyOrphan}, pending, LeavePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{Spec: tc.spec, Status: usersv1alpha1.SegmentStatus{Ownership: tc.ownership}}
			if got := OnDelete(seg); got != tc.want {
				t.Errorf("OnDelete = %d, want %d", got, tc.want)
			}
		})
	}
}
