// Package controller reconciles Segments with their remote ChatBot segments.
package controller

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	// DefaultCredentials are used by Segments without spec.credentialsRef.
	DefaultCredentials func() (remote.Credentials, error)
	// AllowedAPIURLs are the API base URLs a credentials Secret may name under apiURL,
	// besides the default credentials' own; "*" allows any. Without this check, anyone who
	// may write a Secret in some namespace could make the manager call any URL its network
	// reaches, and read parts of the answer in status.
	AllowedAPIURLs []string
	// DriftInterval is how often a Segment is checked against the remote account, and how
	// old an account listing may be when it is used. One listing per account serves every
	// Segment of that account within the interval.
	DriftInterval time.Duration
	// MaxConcurrentReconciles is how many Segments are reconciled at once.
	MaxConcurrentReconciles int

	// claimMu serializes taking over existing remote segments, so that two Segments cannot
	// both adopt one between a check and a status write.
	claimMu sync.Mutex
	// claims are the remote IDs recorded by this process, by Segment.
	claimsMu sync.Mutex
	claims   map[string]claimant
	// names are held while a segment of that name is created or chosen by name.
	names nameLocks
}

// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconcile reads the Segment, handles its deletion and suspension, makes sure of the
// finalizer, observes the remote segment, then creates, adopts, renames or fills it (or,
// observe-only, plans), and writes what it found to status.
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
	if seg.Spec.Suspend {
		return ctrl.Result{}, r.suspend(ctx, seg, st, "Reconciliation is suspended (spec.suspend): no remote call is made")
	}
	removeCondition(seg, usersv1alpha1.ConditionSuspended)

	acct, err := r.account(ctx, seg)
	if err != nil {
		return r.fail(ctx, seg, st, err)
	}

	if seg.Status.ID != "" && seg.Annotations[usersv1alpha1.AnnotationCreatePending] != "" {
		// An ID is only stored after the intent it resolves (a replaced ID is cleared from
		// status before a new intent is set), so this intent is settled: its removal failed.
		// Left, it would be taken for a live one once the ID is gone.
		if err := r.clearCreateIntent(ctx, seg); err != nil {
			return ctrl.Result{}, fmt.Errorf("clear settled create intent: %w", err)
		}
	}
	if seg.ObserveOnly() {
		if err := r.plan(ctx, seg, acct); err != nil {
			return r.fail(ctx, seg, st, err)
		}
	} else {
		if err := r.sync(ctx, seg, acct, st); err != nil {
			return r.fail(ctx, seg, st, err)
		}
		r.ready(seg)
	}
	if err := st.write(ctx, seg); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.DriftInterval}, nil
}

// sync makes the remote segment match the spec: it finds or creates the remote segment,
// renames it, recreates it if members must go and the policy says so, and adds the
// missing members.
func (r *SegmentReconciler) sync(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	if holds(seg) && seg.Spec.ID != "" && seg.Spec.ID != seg.Status.ID {
		return stall(usersv1alpha1.ReasonConflict, "spec.id names remote segment %s, but this Segment already manages %s: "+
			"a Segment does not move to another segment. To manage %s, create a new Segment with that spec.id "+
			"(and delete this one, with deletionPolicy Orphan to keep %s)", seg.Spec.ID, seg.Status.ID, seg.Spec.ID, seg.Status.ID)
	}
	if !holds(seg) {
		if err := r.claim(ctx, seg, acct, st); err != nil {
			return err
		}
	}
	if seg.Status.ID != "" {
		observed, found, err := r.observe(ctx, acct, seg.Status.ID)
		if err != nil {
			return err
		}
		switch {
		case !found && seg.Spec.ID != "":
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist; "+
				"an adopted segment is not recreated. Remove spec.id by recreating the Segment to make a new one", seg.Spec.ID)
		case !found:
			r.warn(seg, usersv1alpha1.ReasonRecreated, "Recreate",
				"Remote segment %s no longer exists (deleted outside the operator); creating it again", seg.Status.ID)
			resetRemote(seg)
		default:
			recordObserved(seg, observed)
		}
	}
	if seg.Status.ID == "" {
		if err := r.create(ctx, seg, acct, st); err != nil {
			return err
		}
	}
	if seg.Status.Name != seg.RemoteName() {
		if err := r.rename(ctx, seg, acct); err != nil {
			return err
		}
	}
	if err := r.recreateToRemoveMembers(ctx, seg, acct, st); err != nil {
		return err
	}
	if err := r.addMembers(ctx, seg, acct); err != nil {
		return err
	}
	r.reportNotRemovable(seg)
	return nil
}

// holds reports whether the Segment manages the remote segment in status.id. The finalizer
// goes on with the create intent or the adoption, before the ID is recorded, so a Segment
// without it holds nothing: its status.id was only observed (managementPolicy ObserveOnly),
// or the finalizer was removed by hand. Such an ID is claimed anew, with the ownership check.
func holds(seg *usersv1alpha1.Segment) bool {
	return seg.Status.ID != "" && controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer)
}

// finalize deletes the remote segment (policy Delete), or leaves it (Orphan, ObserveOnly),
// then releases the Segment. A suspended Segment is held until resumed.
func (r *SegmentReconciler) finalize(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return ctrl.Result{}, nil
	}
	pending := seg.Status.ID == "" && seg.Annotations[usersv1alpha1.AnnotationCreatePending] != ""
	remoteDelete := (seg.Status.ID != "" || pending) && seg.DeletionPolicyOrDefault() == usersv1alpha1.DeletionPolicyDelete && !seg.ObserveOnly()
	switch {
	case remoteDelete && seg.Spec.Suspend:
		return ctrl.Result{}, r.suspend(ctx, seg, st, "The Segment is being deleted but is suspended: remote segment "+seg.Status.ID+
			" is kept, and so is the finalizer, until spec.suspend is false (then it is deleted) or spec.deletionPolicy is Orphan")
	case remoteDelete:
		acct, err := r.account(ctx, seg)
		if err == nil && pending {
			// A create was attempted and its ID never recorded: the segment it made, if
			// any, must not be left behind.
			seg.Status.ID, err = r.resolveCreate(ctx, seg, acct)
		}
		if err == nil && seg.Status.ID != "" {
			err = r.delete(ctx, seg, acct)
		}
		if err != nil {
			setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonDeleting,
				"Cannot delete remote segment "+seg.Status.ID+" yet: "+err.Error())
			return r.fail(ctx, seg, st, err)
		}
	case seg.Status.ID != "":
		r.releaseClaim(seg.Status.ID)
		r.event(seg, "Orphaned", "Delete", "Left remote segment %s in ChatBot (deletionPolicy %s, managementPolicy %s)",
			seg.Status.ID, seg.DeletionPolicyOrDefault(), seg.Spec.ManagementPolicy)
	}
	if err := r.patchMetadata(ctx, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.RemoveFinalizer(s, usersv1alpha1.SegmentFinalizer)
	}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	r.releaseClaimsOf(seg.UID)
	return ctrl.Result{}, nil
}

// ensureFinalizer puts the finalizer on before the first remote create, so that no remote
// segment can outlive its Segment unnoticed.
func (r *SegmentReconciler) ensureFinalizer(ctx context.Context, seg *usersv1alpha1.Segment) error {
	if controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return nil
	}
	return r.patchMetadata(ctx, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.AddFinalizer(s, usersv1alpha1.SegmentFinalizer)
	})
}

// suspend records that no remote call is being made.
func (r *SegmentReconciler) suspend(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter, msg string) error {
	setCondition(seg, usersv1alpha1.ConditionSuspended, true, usersv1alpha1.ReasonSuspended, msg)
	setCondition(seg, usersv1alpha1.ConditionReady, false, usersv1alpha1.ReasonSuspended, msg)
	removeCondition(seg, usersv1alpha1.ConditionReconciling)
	removeCondition(seg, usersv1alpha1.ConditionStalled)
	return st.write(ctx, seg)
}

func (r *SegmentReconciler) event(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeNormal, reason, action, note, args...)
}

func (r *SegmentReconciler) warn(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeWarning, reason, action, note, args...)
}

// userAnnotationsChanged passes updates that change annotations other than the operator's
// own create-pending record. Reacting to our own bookkeeping would start a reconcile from a
// cached object that may predate our latest status write, and would skip a Retry-After wait.
func userAnnotationsChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return false
		}
		strip := func(m map[string]string) map[string]string {
			out := maps.Clone(m)
			delete(out, usersv1alpha1.AnnotationCreatePending)
			return out
		}
		return !maps.Equal(strip(e.ObjectOld.GetAnnotations()), strip(e.ObjectNew.GetAnnotations()))
	}}
}

// SetupWithManager registers the reconciler and its indexes. Segments are reconciled when
// their spec or annotations change, when their credentials Secret changes, and every
// DriftInterval; status updates do not trigger a reconcile.
func (r *SegmentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexRemoteID, indexByRemoteID); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexCredentials, indexByCredentials); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&usersv1alpha1.Segment{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, userAnnotationsChanged()))).
		Watches(&corev1.Secret{}, r.secretHandler()).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				500*time.Millisecond, 5*time.Minute),
		}).
		Named("segment").
		Complete(r)
}
