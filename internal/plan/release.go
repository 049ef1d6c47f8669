package plan

import usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"

// Release is what a deleted Segment's finalizer waits for.
type Release int

// The releases OnDelete chooses between.
const (
	ReleaseNow    Release = iota // it holds nothing: let go without a remote call
	HoldSuspended                // deletionPolicy Delete, but suspended: keep all until resumed
	DeleteRemote                 // delete the owned segment, or what the pending create made
	LeaveOwned                   // Orphan or ObserveOnly: leave the owned segment, and say so
	LeavePending                 // Orphan or ObserveOnly: leave what the pending create made, and say so
)

// OnDelete decides what the finalizer of a deleted Segment waits for: the controller
// carries it out, and kubectl segments plan --prune shows it.
func OnDelete(seg *usersv1alpha1.Segment) Release {
	deletes := seg.DeletionPolicyOrDefault() == usersv1alpha1.DeletionPolicyDelete && !seg.ObserveOnly()
	holds := seg.OwnedID() != "" || seg.PendingCreate() != nil
	switch {
	case deletes && holds && seg.Spec.Suspend:
		return HoldSuspended
	case deletes && holds:
		return DeleteRemote
	case seg.OwnedID() != "":
		return LeaveOwned
	case seg.PendingCreate() != nil:
		return LeavePending
	}
	return ReleaseNow
}
