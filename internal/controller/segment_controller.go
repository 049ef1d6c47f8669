package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/keymutex"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/sources"
	"github.com/segment-operator/segment-operator/internal/text"
)

// SegmentReconciler makes each remote ChatBot segment match its Segment.
type SegmentReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Accounts *remote.Accounts
	// DefaultCredentials are used by Segments without spec.credentialsRef, in the namespaces
	// allowed to (DefaultCredentialsNamespaces, or the namespace label
	// users.chatbot.com/default-credentials=true).
	DefaultCredentials func() (remote.Credentials, error)
	// DefaultCredentialsNamespaces may use DefaultCredentials, besides the labelled ones;
	// "*" means every namespace. The manager's token reaches every segment of its account:
	// a namespace that may use it may adopt, observe and delete any of them that no other
	// Segment manages, so it is granted, not assumed.
	DefaultCredentialsNamespaces []string
	// AllowedAPIURLs are the API base URLs a credentials Secret may name under apiURL,
	// besides the default credentials' own; "*" allows any. Without this check, anyone who
	// may write a Secret in some namespace could make the manager call any URL its network
	// reaches, and read parts of the answer in status.
	AllowedAPIURLs []string
	// SecretScope is where Segments may name credentials Secrets; it must match the
	// manager's cache (CacheOptions) and its RBAC.
	SecretScope credentials.SecretScope
	// credentials, made by SetupWithManager from the fields above, tells which account a
	// Segment uses.
	credentials *credentials.Resolver
	// DriftInterval is how often a Segment is checked against the remote account, and how
	// old an account listing may be when it is used. One listing per account serves every
	// Segment of that account within the interval.
	DriftInterval time.Duration
	// MaxConcurrentReconciles is how many Segments are reconciled at once.
	MaxConcurrentReconciles int
	// NamespaceShare is the most Segments of one namespace reconciled at once (0: no
	// bound), as remote.AccountOptions.Share is of one account: a tenant cannot take more
	// workers by naming more accounts.
	NamespaceShare  int
	namespaceShares *remote.Shares

	// MemberSources are the budgets of reading spec.membersFrom (zero: the defaults).
	MemberSources sources.Limits
	sources       *sources.Reader

	// claimMu serializes claims, so that two Segments cannot both take one segment
	// between the ownership check and the record.
	claimMu sync.Mutex
	// claims are the remote IDs this process recorded as owned, by Segment: the cache can
	// lag behind such a write by a moment, in which another Segment must not claim the ID.
	claimsMu sync.Mutex
	claims   map[string]claimant
	// names is held, per account and remote name, from a create call until its ID is
	// claimed, and while a segment is chosen by name: no Segment choosing by name can take
	// a segment another's create has just made.
	names keymutex.KeyMutex
	// createsEnded is when each Segment's last create call of this process ended, by UID:
	// its resolution needs a listing begun after. A create this process did not see end
	// (another leader's, or one before a restart) ended by its intent's time plus
	// CreateTimeout.
	createsEnded sync.Map
	// createsNoEffect is the intent time of each Segment's last create of this process that
	// certainly made nothing (a 4xx, or never sent), by UID.
	createsNoEffect sync.Map
	// MemberRecordNamespace is the manager's own namespace, where the records of the
	// members added to large segments are kept (see internal/memberrecord).
	MemberRecordNamespace string
	// MemberRecordBytesPerNamespace bounds the bytes of the records of one namespace's
	// Segments kept there (0: no bound; see memberrecord.DefaultBytesPerNamespace).
	MemberRecordBytesPerNamespace int64
	records                       *memberrecord.Records
	// RecordSweepInterval and RecordSweepMinAge set the sweep of records whose Segment is
	// gone (memberrecord.Sweeper): every hour, records older than 10 minutes, when zero.
	RecordSweepInterval, RecordSweepMinAge time.Duration

	// CreateTimeout bounds a create call from its intent to its answer, rate limiter wait
	// included (default 30s): no create is sent later than that, whatever process made it.
	CreateTimeout time.Duration
}

func (r *SegmentReconciler) createTimeout() time.Duration {
	if r.CreateTimeout > 0 {
		return r.CreateTimeout
	}
	return 30 * time.Second
}

// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=users.chatbot.com,resources=segments/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Secrets: config/rbac/credentials_role.yaml, bound cluster-wide unless per-namespace
// credentials are off (see SecretScope).
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// Member records in the manager's namespace: config/rbac/member_record_role.yaml.

// Reconcile reads the Segment, handles its deletion and suspension, then manages the remote
// segment (or, observe-only, plans), and writes the outcome to status once.
func (r *SegmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	seg := &usersv1alpha1.Segment{}
	if err := r.Get(ctx, req.NamespacedName, seg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	st := newStatusWriter(r.Client, seg)
	old := migrate(seg)
	if old.intent != "" {
		r.warn(seg, "CreateIntentIgnored", "Upgrade", "The annotation %s (%q) is not read: an earlier version of the operator may "+
			"have attempted a create then, and if it made a segment that no Segment manages, that segment is left in ChatBot. "+
			"The annotation can be removed", usersv1alpha1.AnnotationCreatePending, text.Cut(old.intent, 200))
	}
	if old.hold != "" {
		if err := r.claimLegacy(ctx, seg, old.hold); err != nil {
			return ctrl.Result{}, err // no status write: the hold must survive to the next try
		}
	}
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("remoteID", seg.OwnedID()))

	if !seg.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, seg, st)
	}
	if seg.Spec.Suspend {
		setOutcome(seg, outcome{reason: usersv1alpha1.ReasonSuspended, progress: suspended,
			msg: "Reconciliation is suspended (spec.suspend): no remote call is made"})
		return ctrl.Result{}, st.write(ctx, seg)
	}

	acct, err := r.credentials.Account(ctx, seg)
	if err == nil {
		var leave func()
		if leave, err = r.enter(seg, acct); err == nil {
			defer leave()
		}
	}
	if err == nil && seg.ObserveOnly() {
		err = r.observeOnly(ctx, seg, acct)
	} else if err == nil {
		err = r.manage(ctx, seg, acct, st)
	}
	if err != nil {
		return r.fail(ctx, seg, st, err)
	}
	return ctrl.Result{RequeueAfter: r.DriftInterval}, st.write(ctx, seg)
}

// manage makes the owned remote segment match the spec: it claims or creates one if the
// Segment owns none, then carries out the plan for it.
func (r *SegmentReconciler) manage(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account, st *statusWriter) error {
	if owned := seg.OwnedID(); owned != "" && seg.Spec.ID != "" && seg.Spec.ID != owned {
		return stall(usersv1alpha1.ReasonConflict, "spec.id names remote segment %s, but this Segment already manages %s: "+
			"a Segment does not move to another segment. To manage %s, create a new Segment with that spec.id "+
			"(and delete this one, with deletionPolicy Orphan to keep %s)", seg.Spec.ID, owned, seg.Spec.ID, owned)
	}
	desired, err := r.desiredMembers(ctx, seg)
	if err != nil {
		return err // before any claim or create: nothing is made for members not known
	}
	if seg.OwnedID() == "" {
		if err := r.claim(ctx, seg, acct, st); err != nil {
			return err
		}
	}
	var observed *chatbot.Segment
	if id := seg.OwnedID(); id != "" {
		// Absence is confirmed only where it leads to a create.
		var confirmAfter time.Time
		if seg.Spec.ID == "" {
			confirmAfter = goneAfter(seg)
		}
		s, found, err := r.observe(ctx, acct, id, confirmAfter)
		switch {
		case err != nil:
			return err
		case !found && accountMoved(seg, acct):
			return errAccountMoved(seg, acct)
		case !found && seg.Spec.ID != "":
			return stall(usersv1alpha1.ReasonRemoteNotFound, "Remote segment %s named by spec.id does not exist; "+
				"an adopted segment is not recreated. Recreate the Segment without spec.id to make a new one", id)
		case !found:
			r.warn(seg, usersv1alpha1.ReasonRecreated, "Recreate",
				"Remote segment %s no longer exists (deleted outside the operator); creating it again", id)
		default:
			if err := r.rebind(ctx, seg, acct); err != nil {
				return err
			}
			observed = &s
			recordObserved(seg, s)
		}
	}
	rec, err := r.records.Load(ctx, seg, desired)
	if err != nil {
		return err
	}
	added := rec.Ledger
	if rec.Lost {
		r.warn(seg, "MemberRecordLost", "AddMembers", "The record of the members added to remote segment %s is gone "+
			"(its ConfigMap in the manager's namespace was deleted): the desired members are added again, and members "+
			"removed from the spec before now are no longer counted", seg.OwnedID())
	}
	if rec.Migrated && observed != nil {
		// An earlier version's status.addedMembers, kept compact from now on.
		if err := r.records.Save(ctx, seg, added); err != nil {
			return err
		}
	}
	p := planFor(seg, added, desired, observed)
	drift := memberDrift{unknown: true}
	if observed != nil && !p.recreate {
		drift = decideDrift(len(desired)-len(p.add), observed.Users, acct.Observations.Counted(observed.ID), seg.Status.MemberRecord.Readd())
		if drift.readd {
			p.add = desired
		}
	}
	if err := r.apply(ctx, seg, acct, st, p, added, desired); err != nil {
		return err
	}
	r.reportMissing(seg, observed, drift)
	setOutcome(seg, outcome{ready: true, reason: usersv1alpha1.ReasonSynced,
		msg: fmt.Sprintf("Remote segment %s is named %q and has all %s", seg.OwnedID(), seg.RemoteName(),
			plural(len(desired), "desired member"))})
	return nil
}

// finalize deletes the owned remote segment (policy Delete), or what a pending create
// made, or leaves it (Orphan, ObserveOnly), then releases the Segment. A suspended Segment
// is held until resumed. A Segment that owns nothing is released without a remote call,
// whoever put the finalizer on.
func (r *SegmentReconciler) finalize(ctx context.Context, seg *usersv1alpha1.Segment, st *statusWriter) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return ctrl.Result{}, nil
	}
	if forgetRequested(seg) {
		r.forgetCreate(seg)
	}
	deletes := seg.DeletionPolicyOrDefault() == usersv1alpha1.DeletionPolicyDelete && !seg.ObserveOnly()
	holds := seg.OwnedID() != "" || seg.PendingCreate() != nil
	switch {
	case deletes && holds && seg.Spec.Suspend:
		msg := "The Segment is being deleted but is suspended: its remote segment is kept, and so is the finalizer, " +
			"until spec.suspend is false (then it is deleted) or spec.deletionPolicy is Orphan"
		setOutcome(seg, outcome{reason: usersv1alpha1.ReasonSuspended, msg: msg, progress: suspended})
		return ctrl.Result{}, st.write(ctx, seg)
	case deletes && holds:
		if err := r.deleteOwned(ctx, seg); err != nil {
			setOutcome(seg, outcome{reason: usersv1alpha1.ReasonDeleting, msg: "Cannot delete the remote segment yet: " + err.Error()})
			return r.fail(ctx, seg, st, err)
		}
	case seg.OwnedID() != "":
		r.event(seg, "Orphaned", "Delete", "Left remote segment %s in ChatBot (deletionPolicy %s, managementPolicy %s)",
			seg.OwnedID(), seg.DeletionPolicyOrDefault(), seg.Spec.ManagementPolicy)
	case seg.PendingCreate() != nil:
		i := seg.PendingCreate()
		r.warn(seg, "Orphaned", "Delete", "Left in ChatBot whatever the create of a segment named %q attempted at %s made "+
			"(deletionPolicy %s, managementPolicy %s): look for a segment of that name created then", i.Name, intentTime(i),
			seg.DeletionPolicyOrDefault(), seg.Spec.ManagementPolicy)
	}
	if err := r.records.Drop(ctx, seg); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.patchMetadata(ctx, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.RemoveFinalizer(s, usersv1alpha1.SegmentFinalizer)
	}); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	r.releaseClaimsOf(seg.UID)
	r.createsEnded.Delete(seg.UID)
	r.createsNoEffect.Delete(seg.UID)
	return ctrl.Result{}, nil
}

// deleteOwned deletes the segment the Segment owns, or the one its pending create made.
func (r *SegmentReconciler) deleteOwned(ctx context.Context, seg *usersv1alpha1.Segment) error {
	acct, err := r.credentials.Account(ctx, seg)
	if err != nil {
		return err
	}
	leave, err := r.enter(seg, acct)
	if err != nil {
		return err
	}
	defer leave()
	id := seg.OwnedID()
	if id != "" && accountMoved(seg, acct) {
		// A delete in the wrong account answers 404, which must not pass for success.
		if _, found, err := r.observe(ctx, acct, id, goneAfter(seg)); err != nil {
			return err
		} else if !found {
			return errAccountMoved(seg, acct)
		}
		if err := r.rebind(ctx, seg, acct); err != nil {
			return err
		}
	}
	if intent := seg.PendingCreate(); intent != nil {
		if id, err = r.resolve(ctx, seg, acct, intent, ""); err != nil {
			return err
		}
	}
	if id == "" {
		return nil
	}
	return r.delete(ctx, seg, acct, id)
}

// rebind records the account the owned segment was found in, where the record names
// another (a rotated token) or none (an earlier version's record). Under other credentials
// the same ID may be another segment, so it is checked as a claim is: another Segment that
// owns it keeps it (Conflict), whatever an API answered this Segment's create with.
func (r *SegmentReconciler) rebind(ctx context.Context, seg *usersv1alpha1.Segment, acct *remote.Account) error {
	o := seg.Status.Ownership
	if o.Account == acct.ID {
		return nil
	}
	if o.Account != "" {
		r.claimMu.Lock()
		defer r.claimMu.Unlock()
		if owner, err := r.owner(ctx, seg, o.ID); err != nil {
			return err
		} else if owner != "" {
			return stall(usersv1alpha1.ReasonConflict, "Remote segment %s was recorded in account %s; this Segment's credentials "+
				"now name account %s, where %s manages a segment of that ID: this Segment leaves it alone", o.ID, o.Account, acct.ID, owner)
		}
	}
	o.Account = acct.ID
	return nil
}

// accountMoved reports whether the Segment's credentials now name another account than the
// one its owned segment was recorded in.
func accountMoved(seg *usersv1alpha1.Segment, acct *remote.Account) bool {
	o := seg.Status.Ownership
	return o != nil && o.ID != "" && o.Account != "" && o.Account != acct.ID
}

func errAccountMoved(seg *usersv1alpha1.Segment, acct *remote.Account) error {
	o := seg.Status.Ownership
	return stall(usersv1alpha1.ReasonAccountChanged, "Remote segment %s was recorded in account %s, but this Segment's credentials "+
		"now name account %s, where it does not exist: nothing is created or deleted there. Put spec.credentialsRef (or the "+
		"token) back to manage it; to leave it and start over, delete this Segment with deletionPolicy Orphan", o.ID, o.Account, acct.ID)
}

// ensureFinalizer puts the finalizer on before the Segment first owns or may own a remote
// segment, so that none can outlive its Segment unnoticed.
func (r *SegmentReconciler) ensureFinalizer(ctx context.Context, seg *usersv1alpha1.Segment) error {
	if controllerutil.ContainsFinalizer(seg, usersv1alpha1.SegmentFinalizer) {
		return nil
	}
	return r.patchMetadata(ctx, seg, func(s *usersv1alpha1.Segment) {
		controllerutil.AddFinalizer(s, usersv1alpha1.SegmentFinalizer)
	})
}

// patchMetadata patches seg's metadata and takes back only the metadata the API server
// returns: the status in memory may hold what this reconcile has not written yet. The
// patch is conditional: a merge patch replaces the whole finalizers list, and one built on
// a stale copy would drop another controller's finalizer.
func (r *SegmentReconciler) patchMetadata(ctx context.Context, seg *usersv1alpha1.Segment, change func(*usersv1alpha1.Segment)) error {
	obj := seg.DeepCopy()
	change(obj)
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(seg, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	seg.ObjectMeta = obj.ObjectMeta
	return nil
}

func (r *SegmentReconciler) event(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeNormal, reason, action, "%s", eventNote(note, args...))
}

func (r *SegmentReconciler) warn(seg *usersv1alpha1.Segment, reason, action, note string, args ...any) {
	r.Recorder.Eventf(seg, nil, corev1.EventTypeWarning, reason, action, "%s", eventNote(note, args...))
}

// eventNote formats an event's note and cuts it to what the API server accepts: it drops
// an event whose note is longer, and the arguments (names, IDs, API messages) may be long.
func eventNote(format string, args ...any) string {
	return text.Cut(fmt.Sprintf(format, args...), maxEventNote)
}
