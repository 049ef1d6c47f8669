package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/keymutex"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/sources"
)

// SetupWithManager registers the reconciler and its indexes. Segments are reconciled when
// their spec or annotations change, when their credentials Secret or a ConfigMap of their
// spec.membersFrom changes, and every DriftInterval; status updates (the operator's own) do not trigger a reconcile. A change
// to a namespace's labels (the grant of the manager's own credentials) reconciles the
// Segments there that use them.
func (r *SegmentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.names = keymutex.NewHashed(1024) // buckets: unrelated names rarely wait for each other
	r.namespaceShares = remote.NewShares(r.NamespaceShare)
	r.sources = sources.NewReader(r.Client, mgr.GetAPIReader(), r.MemberSources)
	r.records = memberrecord.New(r.MemberRecordNamespace, mgr.GetAPIReader(), r.Client, r.MemberRecordBytesPerNamespace)
	if r.MemberRecordNamespace != "" {
		if err := mgr.Add(r.records.Sweeper(r.Client, r.RecordSweepInterval, r.RecordSweepMinAge)); err != nil {
			return err
		}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexRemoteID, indexByRemoteID); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexPendingCreate, indexByPendingCreate); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexMembersFrom, indexByMembersFrom); err != nil {
		return err
	}
	var err error
	r.credentials, err = credentials.New(ctx, mgr, credentials.Options{
		Client:                       r.Client,
		Accounts:                     r.Accounts,
		DefaultCredentials:           r.DefaultCredentials,
		DefaultCredentialsNamespaces: r.DefaultCredentialsNamespaces,
		AllowedAPIURLs:               r.AllowedAPIURLs,
		SecretScope:                  r.SecretScope,
	})
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&usersv1alpha1.Segment{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.ConfigMap{}, r.namedBy(indexMembersFrom), builder.OnlyMetadata)
	return r.credentials.Watch(b, r.namedBy).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				500*time.Millisecond, 5*time.Minute),
		}).
		Named("segment").
		Complete(r)
}

// namedBy enqueues, when an object changes, the Segments of its namespace that name it
// under index (their credentials Secret, a ConfigMap of their spec.membersFrom).
func (r *SegmentReconciler) namedBy(index string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list usersv1alpha1.SegmentList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, seg := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&seg)})
		}
		return reqs
	})
}
