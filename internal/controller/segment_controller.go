// Package controller reconciles Segments with their remote ChatBot segments.
package controller

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// SegmentReconciler makes each remote ChatBot segment match its Segment.
type SegmentReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Accounts *remote.Accounts
	// Credentials picks the account a Segment belongs to.
	Credentials func(ctx context.Context, seg *usersv1alpha1.Segment) (remote.Credentials, error)
	// DriftInterval is how often a Segment is checked against the remote account, and how
	// old an account listing may be when it is used. One listing per account serves every
	// Segment of that account within the interval.
	DriftInterval time.Duration
	// MaxConcurrentReconciles is how many Segments are reconciled at once.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the Segment, handles its deletion, makes sure of the finalizer, observes
// the remote segment, then creates, renames or fills it, and writes what it found to status.
func (r *SegmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	seg := &usersv1alpha1.Segment{}
	if err := r.Get(ctx, req.NamespacedName, seg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("remoteID", seg.Status.ID))
	st := newStatusWriter(r.Client, seg)

	if !seg.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, seg, st)
	}

	acct, err := r.account(ctx, seg)
	if err != nil {
		return r.fail(ctx, seg, st, err)
	}

	if !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		// The finalizer goes on before the first remote create, so that no remote segment
		// can outlive its Segment unnoticed.
		base := seg.DeepCopy()
		controllerutil.AddFinalizer(seg, usersv1alpha1.SegmentFinalizer)
		if err := r.Patch(ctx, seg, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, err
		}
	}

	if err := r.sync(ctx, seg, acct, st); err != nil {
		return r.fail(ctx, seg, st, err)
	}
	r.ready(seg)
	if err := st.write(ctx, seg); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.DriftInterval}, nil
}

// sync makes the remote segment match the spec: it observes, then creates or renames, then
// adds the missing members.
func (r *SegmentReconciler) sync(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	if seg.Status.ID != "" {
		observed, found, err := r.observe(ctx, acct, seg.Status.ID)
		if err != nil {
			return err
		}
		if !found {
			r.warn(seg, usersv1alpha1.ReasonRecreated, "Recreate",
				"Remote segment %s no longer exists (deleted outside the operator); creating it again", seg.Status.ID)
			resetRemote(seg)
		} else {
			recordObserved(seg, observed)
			if observed.Name != seg.RemoteName() {
				if err := r.rename(ctx, seg, acct); err != nil {
					return err
				}
			}
		}
	}
	if seg.Status.ID == "" {
		if err := r.create(ctx, seg, acct, st); err != nil {
			return err
		}
	}
	if err := r.addMembers(ctx, seg, acct); err != nil {
		return err
	}
	r.reportNotRemovable(seg)
	return nil
}

// finalize deletes the remote segment, if one was created, then releases the Segment.
func (r *SegmentReconciler) finalize(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return ctrl.Result{}, nil
	}
	if seg.Status.ID != "" {
		acct, err := r.account(ctx, seg)
		if err == nil {
			err = r.delete(ctx, seg, acct)
		}
		if err != nil {
			setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonDeleting,
				"Cannot delete remote segment "+seg.Status.ID+" yet: "+err.Error())
			return r.fail(ctx, seg, st, err)
		}
	}
	base := seg.DeepCopy()
	controllerutil.RemoveFinalizer(seg, usersv1alpha1.SegmentFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, seg, client.MergeFrom(base)))
}

// account returns the ChatBot account the Segment belongs to.
func (r *SegmentReconciler) account(ctx context.Context, seg *usersv1alpha1.Segment) (*remote.Account, error) {
	creds, err := r.Credentials(ctx, seg)
	if err != nil {
		return nil, &credentialsError{err: err}
	}
	acct, err := r.Accounts.For(creds)
	if err != nil {
		return nil, &credentialsError{err: err}
	}
	return acct, nil
}

// credentialsError means the Segment's credentials could not be had or used.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

func isCredentialsError(err error) bool {
	var ce *credentialsError
	return errors.As(err, &ce)
}

func (r *SegmentReconciler) event(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeNormal, reason, action, note, args...)
}

func (r *SegmentReconciler) warn(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeWarning, reason, action, note, args...)
}

// SetupWithManager registers the reconciler. Segments are reconciled when their spec or
// annotations change, and every DriftInterval; status updates do not trigger a reconcile.
func (r *SegmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&usersv1alpha1.Segment{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				500*time.Millisecond, 5*time.Minute),
		}).
		Named("segment").
		Complete(r)
}
