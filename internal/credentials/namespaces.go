package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/metadata"
	"github.com/segment-operator/segment-operator/internal/text"
)

// RoleBinding is the name of the RoleBinding that grants the manager access to
// credentials Secrets in a namespace listed by --namespace-credentials (it binds the
// ClusterRole of config/rbac/credentials_namespaced_role.yaml, which lets the manager patch
// no other RoleBinding).
const RoleBinding = "segment-operator-credentials"

// namespacedSecrets reads the credentials Secrets of the namespaces --namespace-credentials
// lists, with access granted by a RoleBinding in each, and none cluster-wide.
//
// Each namespace has a watch of its own, which the manager neither waits for at its start
// nor needs to serve other namespaces: a namespace whose RoleBinding is missing (never made,
// or deleted by the namespace's admin) fails its own Segments with a message that says so,
// and no other tenant's. The manager's shared cache would wait for every namespace's watch,
// and stop for all of them.
//
// Deleting a namespace deletes its RoleBinding, in no particular order with its Secrets and
// Segments: with the RoleBinding gone, the manager could no longer read the Secret to
// delete the remote segments, nor take its finalizer off the Secret, and the namespace would
// hang. So the RoleBinding carries the credentials-in-use finalizer while any Secret of its
// namespace does (holdBinding, settleBinding): it goes last.
type namespacedSecrets struct {
	caches map[string]*namespaceSecrets
	// apiReader reads RoleBindings, which are not watched (the manager may get and patch
	// only the one this package names, RoleBinding).
	apiReader client.Reader
	writer    client.Writer
}

// heldFor is how long a RoleBinding seen with the finalizer is taken to have it still
// without reading it again (someone may have taken the finalizer off by hand, and made the
// RoleBinding anew).
const heldFor = 10 * time.Minute

// namespaceSecrets is one namespace's watch of its credentials Secrets.
type namespaceSecrets struct {
	namespace string
	cache     cache.Cache
	informer  cache.Informer

	mu      sync.Mutex
	lastErr string // the watch's last error, for the message of a Segment that waits on it

	// bindingMu serializes holding and letting go of the RoleBinding, so that neither acts
	// on what the other just changed; heldAt is when this process last saw it with the
	// finalizer (zero: not known to have it).
	bindingMu sync.Mutex
	heldAt    time.Time
}

var _ client.Reader = (*namespacedSecrets)(nil)

func newNamespacedSecrets(mgr manager.Manager, namespaces []string, writer client.Writer) (*namespacedSecrets, error) {
	s := &namespacedSecrets{caches: map[string]*namespaceSecrets{}, apiReader: mgr.GetAPIReader(), writer: writer}
	for _, ns := range namespaces {
		n := &namespaceSecrets{namespace: ns}
		c, err := cache.New(mgr.GetConfig(), cache.Options{
			HTTPClient:               mgr.GetHTTPClient(),
			Scheme:                   mgr.GetScheme(),
			Mapper:                   mgr.GetRESTMapper(),
			DefaultNamespaces:        map[string]cache.Config{ns: {}},
			DefaultTransform:         cache.TransformStripManagedFields(),
			ByObject:                 map[client.Object]cache.ByObject{&corev1.Secret{}: secretsCache()},
			DefaultWatchErrorHandler: n.watchFailed,
		})
		if err != nil {
			return nil, fmt.Errorf("cache of credentials Secrets in namespace %q: %w", ns, err)
		}
		// Made before the cache starts, started with it, and not waited for.
		if n.informer, err = c.GetInformer(context.Background(), &corev1.Secret{}, cache.BlockUntilSynced(false)); err != nil {
			return nil, err
		}
		n.cache = c
		s.caches[ns] = n
	}
	return s, mgr.Add(s)
}

// watchFailed records why the watch of a namespace's Secrets fails (most often: no
// RoleBinding grants it), for the Segments that wait on it. The reflector retries with
// backoff.
func (n *namespaceSecrets) watchFailed(ctx context.Context, _ *toolscache.Reflector, err error) {
	msg := text.Cut(err.Error(), 300)
	n.mu.Lock()
	changed := n.lastErr != msg
	n.lastErr = msg
	n.mu.Unlock()
	if changed {
		logf.FromContext(ctx).Info("cannot watch credentials Secrets", "namespace", n.namespace, "error", err.Error())
	}
}

// Start runs every namespace's watch until ctx ends.
func (s *namespacedSecrets) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 0, len(s.caches))
	var mu sync.Mutex
	for _, n := range s.caches {
		wg.Go(func() {
			if err := n.cache.Start(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// NeedLeaderElection is false: a replica waiting to lead has its caches warm.
func (s *namespacedSecrets) NeedLeaderElection() bool { return false }

// sources are the event sources of the listed namespaces' Secrets, for a controller.
func (s *namespacedSecrets) sources(h handler.EventHandler) []source.Source {
	out := make([]source.Source, 0, len(s.caches))
	for _, n := range s.caches {
		out = append(out, &source.Informer{Informer: n.informer, Handler: h})
	}
	return out
}

// ready returns the namespace's watch once it has listed its Secrets, or an error that
// says why it cannot.
func (s *namespacedSecrets) ready(ns string) (*namespaceSecrets, error) {
	n, ok := s.caches[ns]
	if !ok {
		return nil, fmt.Errorf("namespace %q is not listed by --namespace-credentials", ns)
	}
	if !n.informer.HasSynced() {
		n.mu.Lock()
		why := n.lastErr
		n.mu.Unlock()
		if why == "" {
			why = "not yet listed"
		}
		return nil, fmt.Errorf("the manager cannot read credentials Secrets in namespace %q yet (%s): an administrator must "+
			"create the RoleBinding %q there, which binds the manager's credentials-namespaced ClusterRole to its "+
			"ServiceAccount (see docs/user/credentials.md)", ns, why, RoleBinding)
	}
	return n, nil
}

// Get reads a credentials Secret of a listed namespace.
func (s *namespacedSecrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	n, err := s.ready(key.Namespace)
	if err != nil {
		return err
	}
	return n.cache.Get(ctx, key, obj, opts...)
}

// List lists credentials Secrets of one listed namespace (client.InNamespace is required).
func (s *namespacedSecrets) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	var lo client.ListOptions
	lo.ApplyOptions(opts)
	n, err := s.ready(lo.Namespace)
	if err != nil {
		return err
	}
	return n.cache.List(ctx, list, opts...)
}

// holdBinding puts the credentials-in-use finalizer on the namespace's RoleBinding, before
// a Secret of that namespace takes it, and checks it is there while one has it. It fails if
// the RoleBinding is missing, going, or not readable by the manager: then the manager could
// not let go of the Secret.
func (s *namespacedSecrets) holdBinding(ctx context.Context, ns string) error {
	n, ok := s.caches[ns]
	if !ok {
		return fmt.Errorf("namespace %q is not listed by --namespace-credentials", ns)
	}
	n.bindingMu.Lock()
	defer n.bindingMu.Unlock()
	if !n.heldAt.IsZero() && time.Since(n.heldAt) < heldFor {
		return nil
	}
	rb, err := s.binding(ctx, ns)
	if err != nil {
		return err
	}
	switch {
	case controllerutil.ContainsFinalizer(rb, usersv1alpha1.CredentialsInUseFinalizer):
	case !rb.DeletionTimestamp.IsZero():
		return &Error{err: fmt.Errorf("the RoleBinding %q of namespace %q, which grants the manager its access to "+
			"credentials Secrets, is being deleted", RoleBinding, ns)}
	default:
		if err := s.patchBinding(ctx, rb, addSecretFinalizer); err != nil {
			return err
		}
	}
	n.heldAt = time.Now()
	return nil
}

// settleBinding keeps the finalizer on the namespace's RoleBinding while a Secret there
// carries it, and takes it off once none does. inUse is what the cache says; before letting
// go, the API server is asked, about every Secret of the namespace, labelled or not.
func (s *namespacedSecrets) settleBinding(ctx context.Context, ns string, inUse bool) error {
	if inUse {
		return s.holdBinding(ctx, ns)
	}
	n, ok := s.caches[ns]
	if !ok {
		return nil
	}
	n.bindingMu.Lock()
	defer n.bindingMu.Unlock()
	rb, err := s.binding(ctx, ns)
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		n.heldAt = time.Time{} // gone (with its namespace), or no longer the manager's to read
		return nil
	}
	if err != nil {
		return err
	}
	if !controllerutil.ContainsFinalizer(rb, usersv1alpha1.CredentialsInUseFinalizer) {
		n.heldAt = time.Time{}
		return nil
	}
	if held, err := s.anyHeld(ctx, ns); err != nil || held {
		return err // one that lost its label: its own reconcile lets it go, and settles again
	}
	if err := s.patchBinding(ctx, rb, removeSecretFinalizer); err != nil {
		return err
	}
	n.heldAt = time.Time{}
	return nil
}

// anyHeld asks the API server whether any Secret of the namespace, labelled or not, carries
// the credentials-in-use finalizer. Metadata only, a page at a time, up to the first: a
// tenant may have many Secrets with large annotations.
func (s *namespacedSecrets) anyHeld(ctx context.Context, ns string) (bool, error) {
	held := false
	err := metadata.Each(ctx, s.apiReader, "SecretList", 50, func(m *metav1.PartialObjectMetadata) bool {
		held = controllerutil.ContainsFinalizer(m, usersv1alpha1.CredentialsInUseFinalizer)
		return !held
	}, client.InNamespace(ns))
	if err != nil {
		return false, fmt.Errorf("list Secrets of namespace %q: %w", ns, err)
	}
	return held, nil
}

func (s *namespacedSecrets) binding(ctx context.Context, ns string) (*rbacv1.RoleBinding, error) {
	rb := &rbacv1.RoleBinding{}
	err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: RoleBinding}, rb)
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		// The Segment says so: only an administrator of the namespace can mend it.
		return nil, &Error{err: fmt.Errorf("the manager's access to the credentials Secrets of namespace %q must be "+
			"granted by a RoleBinding named %q, which it keeps until no Secret there is in use (see docs/user/credentials.md): %w",
			ns, RoleBinding, err)}
	}
	if err != nil {
		return nil, fmt.Errorf("read the RoleBinding %q of namespace %q: %w", RoleBinding, ns, err)
	}
	return rb, nil
}

// patchBinding adds or removes the finalizer on the RoleBinding; only metadata is sent (the
// API server lets a finalizer change through its RBAC escalation check).
func (s *namespacedSecrets) patchBinding(ctx context.Context, rb *rbacv1.RoleBinding, change secretFinalizerChange) error {
	return patchInUseFinalizer(ctx, s.writer, &rbacv1.RoleBinding{ObjectMeta: *rb.ObjectMeta.DeepCopy()}, change)
}
