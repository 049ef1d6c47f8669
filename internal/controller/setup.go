package controller

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/memberrecord"
	"github.com/segment-operator/segment-operator/internal/ownership"
	"github.com/segment-operator/segment-operator/internal/remote"
	"github.com/segment-operator/segment-operator/internal/shard"
	"github.com/segment-operator/segment-operator/internal/sources"
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
	// manager's cache (credentials.CacheOptions) and its RBAC.
	SecretScope credentials.SecretScope
	// DriftInterval is how often a Segment is checked against the remote account, and how
	// old an account listing may be when it is used. One listing per account serves every
	// Segment of that account within the interval.
	DriftInterval time.Duration
	// MaxConcurrentReconciles is how many Segments are reconciled at once.
	MaxConcurrentReconciles int
	// NamespaceShare is the most Segments of one namespace reconciled at once (0: no
	// bound), as remote.AccountOptions.Share is of one account: a tenant cannot take more
	// workers by naming more accounts.
	NamespaceShare int
	// MemberSources are the budgets of reading spec.membersFrom (zero: the defaults).
	MemberSources sources.Limits
	// MemberRecordNamespace is the manager's own namespace, where the records of the
	// members added to large segments are kept (see internal/memberrecord).
	MemberRecordNamespace string
	// MemberRecordBytesPerNamespace bounds the bytes of the records of one namespace's
	// Segments kept there (0: no bound; see memberrecord.DefaultBytesPerNamespace).
	MemberRecordBytesPerNamespace int64
	// RecordSweepInterval and RecordSweepMinAge set the sweep of records whose Segment is
	// gone (memberrecord.Sweeper): every hour, records older than 10 minutes, when zero.
	RecordSweepInterval, RecordSweepMinAge time.Duration
	// CreateTimeout bounds a create call from its intent to its answer, rate limiter wait
	// included (default 30s): no create is sent later than that, whatever process made it.
	CreateTimeout time.Duration
	// Shard is the Segments this manager reconciles (--watch-label-selector); nil: all. The
	// cache must hold every Segment, through CacheOptions with the same shard: the others'
	// cut down to what the ownership check reads. Claims and name locks are then held among
	// managers too, as Leases in MemberRecordNamespace.
	Shard *shard.Shard

	// The concerns the story calls, made by SetupWithManager.
	credentials *credentials.Resolver
	owners      *ownership.Registry
	sources     *sources.Reader
	records     *memberrecord.Records
	shares      *remote.Shares // of the workers, by namespace
	// wakeups queue the Segments a Share turned away, when a place frees (see wake).
	wakeups chan event.GenericEvent
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

// SetupWithManager makes the concerns the story calls, and registers the reconciler and
// its indexes. Segments are reconciled when their spec or annotations change, when their
// credentials Secret or a ConfigMap of their spec.membersFrom changes, and every
// DriftInterval; status updates (the operator's own) do not trigger a reconcile. A change
// to a namespace's labels (the grant of the manager's own credentials) reconciles the
// Segments there that use them.
func (r *SegmentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.owners = ownership.NewRegistry(r.Client, r.CreateTimeout)
	if r.Shard != nil {
		if r.MemberRecordNamespace == "" {
			return errors.New("a shard needs the managers' namespace (MemberRecordNamespace), where the claims of every shard are kept")
		}
		leases := shard.NewLeases(r.Client, mgr.GetAPIReader(), r.MemberRecordNamespace, r.CreateTimeout)
		r.owners.WithPeers(leases)
		// The claims of Segments gone without letting go (no finalizer run): as often as the
		// member records of Segments gone.
		if err := mgr.Add(leases.Sweeper(r.Client, cmp.Or(r.RecordSweepInterval, memberrecord.DefaultSweepInterval))); err != nil {
			return err
		}
	}
	// A reconcile turned away for want of a place is queued again when one frees, not when
	// its backoff ends: a small batch is then as quick as the API's rate allows.
	r.wakeups = make(chan event.GenericEvent, wakeupBuffer)
	r.shares = remote.NewShares(r.NamespaceShare, r.wake)
	r.Accounts.WakeWith(r.wake)
	r.sources = sources.NewReader(r.Client, mgr.GetAPIReader(), r.MemberSources)
	r.records = memberrecord.New(r.MemberRecordNamespace, mgr.GetAPIReader(), r.Client, r.MemberRecordBytesPerNamespace)
	if r.MemberRecordNamespace != "" {
		if err := mgr.Add(r.records.Sweeper(r.Client, r.RecordSweepInterval, r.RecordSweepMinAge)); err != nil {
			return err
		}
	}
	owned, err := ownership.IndexInformer(ctx, mgr.GetCache())
	if err != nil {
		return err
	}
	r.owners.WithIndexer(owned)
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexMembersFrom, indexByMembersFrom); err != nil {
		return err
	}
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
		For(&usersv1alpha1.Segment{}, builder.WithPredicates(r.Shard.Predicate(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))).
		Watches(&corev1.ConfigMap{}, namedBy(r.Client, r.Shard, indexMembersFrom), builder.OnlyMetadata).
		WatchesRawSource(source.Channel(r.wakeups, &handler.EnqueueRequestForObject{}))
	return r.credentials.Watch(b, func(index string) handler.EventHandler { return namedBy(r.Client, r.Shard, index) }).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles),
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				500*time.Millisecond, 5*time.Minute),
		}).
		Named("segment").
		Complete(r)
}

// wakeupBuffer is how many wakeups may wait to be queued: one per place freed, taken at
// once by the controller's source; a wakeup that finds it full is dropped, and its
// Segment comes back when its backoff ends.
const wakeupBuffer = 1024

// wake queues the Segment a Share names (its caller key, namespace/name) for a reconcile
// now, without waiting.
func (r *SegmentReconciler) wake(caller string) {
	ns, name, _ := strings.Cut(caller, "/")
	select {
	case r.wakeups <- event.GenericEvent{Object: &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
	default:
	}
}

// namedBy enqueues, when an object changes, the Segments of its namespace that name it
// under index (their credentials Secret, a ConfigMap of their spec.membersFrom), of the
// shard's.
func namedBy(c client.Reader, sh *shard.Shard, index string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list usersv1alpha1.SegmentList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, seg := range list.Items {
			if sh.Owns(&seg) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&seg)})
			}
		}
		return reqs
	})
}
