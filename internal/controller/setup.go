package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/keymutex"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
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
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexCredentials, indexByCredentials); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexMembersFrom, indexByMembersFrom); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&usersv1alpha1.Segment{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Namespace{}, r.namespaceHandler(), builder.OnlyMetadata,
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.ConfigMap{}, r.namedBy(indexMembersFrom), builder.OnlyMetadata)
	r.secrets = r.Client
	switch {
	case r.SecretScope.All:
		if err := setupCredentialsController(mgr, r.Client, nil); err != nil {
			return err
		}
		b = b.Watches(&corev1.Secret{}, r.namedBy(indexCredentials))
	case r.SecretScope.Listed():
		listed, err := newNamespacedSecrets(mgr, r.SecretScope.Namespaces, r.Client)
		if err != nil {
			return err
		}
		r.secrets, r.listedSecrets = listed, listed
		if err := setupCredentialsController(mgr, r.Client, listed); err != nil {
			return err
		}
		for _, src := range listed.sources(r.namedBy(indexCredentials)) {
			b = b.WatchesRawSource(src)
		}
	} // else no Secret is watched or read: the RBAC may grant none
	return b.
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				500*time.Millisecond, 5*time.Minute),
		}).
		Named("segment").
		Complete(r)
}
