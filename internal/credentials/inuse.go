package credentials

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// A credentials Secret carries usersv1alpha1.CredentialsInUseFinalizer while a Segment
// may still need it: a namespace's deletion deletes its Secrets and its Segments in no
// particular order, and a Segment whose Secret went first could not delete its remote
// segment (it stayed Terminating, and so did the namespace). Crossplane keeps a
// ProviderConfig the same way while ProviderConfigUsages name it.
//
// The Segment controller puts the finalizer on before a Segment's first call with the
// Secret (Resolver.Account); the credentials controller below takes it off once no Segment
// needs the Secret.

// secretFinalizerChange is what the credentials-in-use finalizer needs on a Secret.
type secretFinalizerChange int

const (
	keepSecretFinalizer secretFinalizerChange = iota
	addSecretFinalizer
	removeSecretFinalizer
)

// decideSecretFinalizer decides the credentials-in-use finalizer of a Secret: on while a
// Segment needs it (an unlabelled Secret is not read, so it serves none), off otherwise.
// A Secret being deleted takes no new finalizer (the API server would refuse it).
func decideSecretFinalizer(labelled, deleting, has bool, needed bool) secretFinalizerChange {
	switch {
	case has && (!labelled || !needed):
		return removeSecretFinalizer
	case !has && labelled && needed && !deleting:
		return addSecretFinalizer
	}
	return keepSecretFinalizer
}

// needsCredentials reports whether a Segment may still call ChatBot with its credentials:
// until it is deleted and has let go of its finalizer.
func needsCredentials(seg *usersv1alpha1.Segment) bool {
	return seg.DeletionTimestamp.IsZero() || controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer)
}

// holdSecret puts the credentials-in-use finalizer on the Segment's Secret, read from the
// cache, unless it is there or the Secret is being deleted; in a namespace listed by
// --namespace-credentials, on the RoleBinding that grants access to it first.
func (r *Resolver) holdSecret(ctx context.Context, secret *corev1.Secret) error {
	if r.listed != nil {
		// Checked even when the Secret is held already (the credentials controller may have
		// held it first): a Secret held without its RoleBinding would hang the namespace's
		// deletion. Most often answered from memory.
		if err := r.listed.holdBinding(ctx, secret.Namespace); err != nil {
			return err
		}
	}
	if controllerutil.ContainsFinalizer(secret, usersv1alpha1.CredentialsInUseFinalizer) || !secret.DeletionTimestamp.IsZero() {
		return nil
	}
	return patchSecretFinalizers(ctx, r.opts.Client, secret, addSecretFinalizer)
}

// patchSecretFinalizers adds or removes the credentials-in-use finalizer on a Secret. Only
// metadata is sent: the cached Secret holds two keys of its data, the patch none.
func patchSecretFinalizers(ctx context.Context, c client.Writer, secret *corev1.Secret, change secretFinalizerChange) error {
	return patchInUseFinalizer(ctx, c, &corev1.Secret{ObjectMeta: *secret.ObjectMeta.DeepCopy()}, change)
}

// patchInUseFinalizer adds or removes the credentials-in-use finalizer on obj, an object
// holding only the metadata read, conditional on its resourceVersion (a merge patch replaces
// the whole finalizers list). One already gone is fine.
func patchInUseFinalizer(ctx context.Context, c client.Writer, obj client.Object, change secretFinalizerChange) error {
	base := obj.DeepCopyObject().(client.Object)
	if change == addSecretFinalizer {
		controllerutil.AddFinalizer(obj, usersv1alpha1.CredentialsInUseFinalizer)
	} else {
		controllerutil.RemoveFinalizer(obj, usersv1alpha1.CredentialsInUseFinalizer)
	}
	return client.IgnoreNotFound(c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}

// inUseReconciler takes the credentials-in-use finalizer off Secrets no Segment needs
// any more (and puts it on those that a Segment needs, should it be missing).
type inUseReconciler struct {
	client.Client
	// Secrets reads credentials Secrets: the manager's cache, or listed's.
	Secrets client.Reader
	// APIReader reads a Secret the cache does not hold: one whose credentials label was
	// removed while it carried the finalizer.
	APIReader client.Reader
	// listed is set when the Secrets read are those of listed namespaces: the RoleBinding
	// that grants access there is held while any Secret is (settleBinding).
	listed *namespacedSecrets
}

func (r *inUseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.listed != nil {
		if _, listed := r.listed.caches[req.Namespace]; !listed {
			return ctrl.Result{}, nil // a Segment there names a Secret: the manager reads none there
		}
		if _, err := r.listed.ready(req.Namespace); err != nil {
			// Not readable yet (no RoleBinding, or the first list under way): looked at again
			// when it may be, without an error to log each time.
			return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
		}
	}
	secret := &corev1.Secret{}
	err := r.Secrets.Get(ctx, req.NamespacedName, secret)
	if apierrors.IsNotFound(err) {
		// Gone, or no longer labelled (the cache holds only labelled Secrets): its metadata
		// is all that is read of it, not its data.
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.APIReader.Get(ctx, req.NamespacedName, meta); apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.settle(ctx, req.NamespacedName, keepSecretFinalizer)
		} else if r.listed != nil && apierrors.IsForbidden(err) {
			return ctrl.Result{}, nil // access gone with the RoleBinding: nothing left to let go of here
		} else if err != nil {
			return ctrl.Result{}, err
		}
		secret = &corev1.Secret{ObjectMeta: meta.ObjectMeta}
	} else if err != nil {
		return ctrl.Result{}, err
	}
	var list usersv1alpha1.SegmentList
	if err := r.List(ctx, &list, client.InNamespace(req.Namespace), client.MatchingFields{indexCredentials: req.Name}); err != nil {
		return ctrl.Result{}, err
	}
	needed := false
	for i := range list.Items {
		needed = needed || needsCredentials(&list.Items[i])
	}
	change := decideSecretFinalizer(secret.Labels[usersv1alpha1.CredentialsLabel] == "true", !secret.DeletionTimestamp.IsZero(),
		controllerutil.ContainsFinalizer(secret, usersv1alpha1.CredentialsInUseFinalizer), needed)
	if change == addSecretFinalizer && r.listed != nil {
		if err := r.listed.holdBinding(ctx, req.Namespace); err != nil {
			return ctrl.Result{}, err // the Secret is not held without its RoleBinding
		}
	}
	if change != keepSecretFinalizer {
		if err := patchSecretFinalizers(ctx, r.Client, secret, change); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.settle(ctx, req.NamespacedName, change)
}

// settle keeps the finalizer on the RoleBinding of a listed namespace while a Secret there
// has it, after the change just made to the Secret named key.
func (r *inUseReconciler) settle(ctx context.Context, key types.NamespacedName, change secretFinalizerChange) error {
	if r.listed == nil {
		return nil
	}
	inUse, err := r.anySecretHeld(ctx, key, change)
	if err != nil {
		return err
	}
	return r.listed.settleBinding(ctx, key.Namespace, inUse)
}

// anySecretHeld reports whether a credentials Secret of the namespace carries the
// credentials-in-use finalizer, after the change just made to the one named key (the cache
// may not show it yet).
func (r *inUseReconciler) anySecretHeld(ctx context.Context, key types.NamespacedName, change secretFinalizerChange) (bool, error) {
	if change == addSecretFinalizer {
		return true, nil
	}
	var list corev1.SecretList
	if err := r.Secrets.List(ctx, &list, client.InNamespace(key.Namespace)); err != nil {
		return false, err
	}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Name == key.Name && change == removeSecretFinalizer {
			continue
		}
		if controllerutil.ContainsFinalizer(s, usersv1alpha1.CredentialsInUseFinalizer) {
			return true, nil
		}
	}
	return false, nil
}

// setupInUseController runs the credentials controller: it looks at a labelled
// Secret when it changes or goes, and when a Segment naming it changes or goes. Secrets are
// read and watched through the manager's cache, or through listed's when set.
func setupInUseController(mgr ctrl.Manager, c client.Client, listed *namespacedSecrets) error {
	r := &inUseReconciler{Client: c, Secrets: c, APIReader: mgr.GetAPIReader()}
	b := ctrl.NewControllerManagedBy(mgr)
	if listed == nil {
		b = b.For(&corev1.Secret{})
	} else {
		r.Secrets, r.listed = listed, listed
		for _, src := range listed.sources(&handler.EnqueueRequestForObject{}) {
			b = b.WatchesRawSource(src)
		}
	}
	return b.
		Watches(&usersv1alpha1.Segment{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if ref := o.(*usersv1alpha1.Segment).Spec.CredentialsRef; ref != nil {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
			}
			return nil
		}), builder.WithPredicates(segmentCredentialsChanged())).
		Named("credentials").
		Complete(r)
}

// segmentCredentialsChanged passes the Segment events that may change whether a Secret is
// needed: not the status writes, which are most of them.
func segmentCredentialsChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, seg := e.ObjectOld.(*usersv1alpha1.Segment), e.ObjectNew.(*usersv1alpha1.Segment)
		return !equality.Semantic.DeepEqual(old.Spec.CredentialsRef, seg.Spec.CredentialsRef) ||
			needsCredentials(old) != needsCredentials(seg)
	}}
}
