package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// ensureFinalizer puts the finalizer on before the Segment first owns or may own a remote
// segment, so that none can outlive its Segment unnoticed.
func ensureFinalizer(ctx context.Context, c client.Writer, seg *usersv1alpha1.Segment) error {
	if controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return nil
	}
	return patchMetadata(ctx, c, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.AddFinalizer(s, usersv1alpha1.SegmentFinalizer)
	})
}

// patchMetadata patches seg's metadata and takes back only the metadata the API server
// returns: the status in memory may hold what this reconcile has not written yet. The
// patch is conditional: a merge patch replaces the whole finalizers list, and one built on
// a stale copy would drop another controller's finalizer.
func patchMetadata(ctx context.Context, c client.Writer, seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) error {
	obj := seg.DeepCopy()
	change(obj)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(seg, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	seg.ObjectMeta = obj.ObjectMeta
	return nil
}
