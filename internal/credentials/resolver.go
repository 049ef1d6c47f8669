package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// Options are what a Resolver decides from.
type Options struct {
	// Client reads Segments and Namespaces, and credentials Secrets when the manager's cache
	// holds them (SecretScope.All); it writes the credentials-in-use finalizer.
	Client client.Client
	// Accounts hands out the account of a Segment's credentials, within the bound of its
	// namespace (remote.AccountOptions.PerTenant).
	Accounts *remote.Accounts
	// DefaultCredentials are the manager's own, for Segments without spec.credentialsRef in
	// the namespaces granted them; their base URL is also that of every Secret without apiURL.
	DefaultCredentials func() (remote.Credentials, error)
	// DefaultCredentialsNamespaces may use DefaultCredentials, besides the namespaces
	// labelled users.chatbot.com/default-credentials=true; "*" means every namespace.
	DefaultCredentialsNamespaces []string
	// AllowedAPIURLs are the API base URLs a credentials Secret may name under apiURL,
	// besides the default credentials' own; "*" allows any.
	AllowedAPIURLs []string
	// SecretScope is where Segments may name credentials Secrets; it must match the
	// manager's cache and its RBAC.
	SecretScope SecretScope
}

// Resolver tells which ChatBot account a Segment uses (Account), and keeps the
// credentials Secret it uses from going while the Segment needs it.
type Resolver struct {
	opts Options
	// secrets reads credentials Secrets: the manager's cache, or listed when the scope
	// lists namespaces.
	secrets client.Reader
	listed  *namespacedSecrets
}

// New sets up the reading of credentials Secrets on mgr (the manager's cache, or a cache per
// listed namespace), the credentials controller that keeps the credentials-in-use
// finalizer, and the index of Segments by the Secret they name. Call it before the manager
// starts.
func New(ctx context.Context, mgr ctrl.Manager, opts Options) (*Resolver, error) {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &usersv1alpha1.Segment{}, indexCredentials, indexByCredentials); err != nil {
		return nil, err
	}
	r := &Resolver{opts: opts, secrets: opts.Client}
	switch {
	case opts.SecretScope.All:
		if err := setupInUseController(mgr, opts.Client, nil); err != nil {
			return nil, err
		}
	case opts.SecretScope.Listed():
		listed, err := newNamespacedSecrets(mgr, opts.SecretScope.Namespaces, opts.Client)
		if err != nil {
			return nil, err
		}
		r.secrets, r.listed = listed, listed
		if err := setupInUseController(mgr, opts.Client, listed); err != nil {
			return nil, err
		}
	} // else no Secret is watched or read: the RBAC may grant none
	return r, nil
}

// Watch adds to the Segment controller's builder b what may change a Segment's account:
// its credentials Secret, through the handler namedBy returns for the index of Segments by
// the Secret they name; and, for Segments using the manager's own credentials, the labels
// of their namespace (the grant may have come or gone).
func (r *Resolver) Watch(b *builder.Builder, namedBy func(index string) handler.EventHandler) *builder.Builder {
	b = b.Watches(&corev1.Namespace{}, r.namespaceHandler(), builder.OnlyMetadata,
		builder.WithPredicates(predicate.LabelChangedPredicate{}))
	switch {
	case r.opts.SecretScope.All:
		b = b.Watches(&corev1.Secret{}, namedBy(indexCredentials))
	case r.listed != nil:
		for _, src := range r.listed.sources(namedBy(indexCredentials)) {
			b = b.WatchesRawSource(src)
		}
	}
	return b
}

// indexCredentials indexes Segments by the Secret their spec.credentialsRef names.
const indexCredentials = "spec.credentialsRef.name"

func indexByCredentials(o client.Object) []string {
	if ref := o.(*usersv1alpha1.Segment).Spec.CredentialsRef; ref != nil {
		return []string{ref.Name}
	}
	return nil
}

// Account returns the ChatBot account the Segment belongs to. Its credentials Secret is
// marked in use before it serves a call. An *Error means the credentials could not be had
// or used.
func (r *Resolver) Account(ctx context.Context, seg *usersv1alpha1.Segment) (*remote.Account, error) {
	creds, secret, err := r.credentials(ctx, seg)
	if err != nil {
		return nil, &Error{err: err}
	}
	get := r.opts.Accounts.For
	if holdsAccount(seg, creds) {
		get = r.opts.Accounts.Held
	}
	acct, err := get(creds, seg.Namespace)
	if err != nil {
		return nil, &Error{err: err}
	}
	if secret != nil {
		// Before the Secret serves a call: the Segment will need it again to delete what it
		// makes. A failure here (a conflict with another writer) is retried, not reported as
		// bad credentials.
		if err := r.holdSecret(ctx, secret); err != nil {
			return nil, fmt.Errorf("mark Secret %q in use: %w", secret.Name, err)
		}
	}
	return acct, nil
}

// holdsAccount says whether the Segment owns a segment in the account creds name, or has a
// create pending there: it must reach it to delete it, however many accounts its
// namespace uses meanwhile (--max-accounts-per-namespace), so it is not refused; but it
// counts toward that bound as any other use does.
func holdsAccount(seg *usersv1alpha1.Segment, creds remote.Credentials) bool {
	var recorded string
	if o := seg.Status.Ownership; o != nil && o.ID != "" {
		recorded = o.Account
	} else if i := seg.PendingCreate(); i != nil {
		recorded = i.Account
	}
	return recorded != "" && recorded == creds.AccountID()
}

// HeldAccounts returns a function that lists, from the cache c, the accounts the Segments
// of a namespace have a segment (or a create pending) in, as their status records:
// remote.AccountOptions.Held.
func HeldAccounts(c client.Reader) func(namespace string) []string {
	return func(namespace string) []string {
		var list usersv1alpha1.SegmentList
		if err := c.List(context.Background(), &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
			return nil // the cache is not started: nothing is reconciled either
		}
		held := sets.New[string]()
		for i := range list.Items {
			if o := list.Items[i].Status.Ownership; o != nil && o.ID != "" && o.Account != "" {
				held.Insert(o.Account)
			} else if p := list.Items[i].PendingCreate(); p != nil && p.Account != "" {
				held.Insert(p.Account)
			}
		}
		return sets.List(held)
	}
}

// credentials reads the Segment's credentials Secret (returned too), or returns the
// manager's own. Only a Secret in the Segment's namespace can be named: there is no
// cross-namespace reference.
func (r *Resolver) credentials(ctx context.Context, seg *usersv1alpha1.Segment) (remote.Credentials, *corev1.Secret, error) {
	ref := seg.Spec.CredentialsRef
	if ref == nil {
		if err := r.defaultCredentialsGranted(ctx, seg.Namespace); err != nil {
			return remote.Credentials{}, nil, err
		}
		creds, err := r.opts.DefaultCredentials()
		return creds, nil, err
	}
	if !r.opts.SecretScope.Allows(seg.Namespace) {
		return remote.Credentials{}, nil, r.opts.SecretScope.refusal(seg.Namespace)
	}
	var secret corev1.Secret
	err := r.secrets.Get(ctx, types.NamespacedName{Namespace: seg.Namespace, Name: ref.Name}, &secret)
	if apierrors.IsNotFound(err) {
		return remote.Credentials{}, nil, fmt.Errorf("Secret %q not found in namespace %q (it must exist and carry the label %s=true)",
			ref.Name, seg.Namespace, usersv1alpha1.CredentialsLabel)
	}
	if err != nil {
		return remote.Credentials{}, nil, fmt.Errorf("read Secret %q: %w", ref.Name, err)
	}
	token := strings.TrimSpace(string(secret.Data[usersv1alpha1.CredentialsTokenKey]))
	if token == "" {
		return remote.Credentials{}, nil, fmt.Errorf("Secret %q has no key %q with the ChatBot Developer access token",
			ref.Name, usersv1alpha1.CredentialsTokenKey)
	}
	// Only the default base URL is used here, which comes even when the default token does not.
	def, _ := r.opts.DefaultCredentials()
	creds := remote.Credentials{Token: token, BaseURL: def.BaseURL}
	if u := strings.TrimSpace(string(secret.Data[usersv1alpha1.CredentialsURLKey])); u != "" {
		if !r.apiURLAllowed(u, def.BaseURL) {
			return remote.Credentials{}, nil, fmt.Errorf("Secret %q names %s %q, which this manager does not allow: "+
				"leave %s out to use %q, or have the manager's administrator add it to --allowed-api-urls",
				ref.Name, usersv1alpha1.CredentialsURLKey, chatbot.RedactURL(u), usersv1alpha1.CredentialsURLKey, chatbot.RedactURL(def.BaseURL))
		}
		creds.BaseURL = u
	}
	return creds, &secret, nil
}

// defaultCredentialsGranted returns nil if Segments of namespace ns may use the manager's
// own credentials, and else an error that says how they may.
func (r *Resolver) defaultCredentialsGranted(ctx context.Context, ns string) error {
	if slices.Contains(r.opts.DefaultCredentialsNamespaces, "*") || slices.Contains(r.opts.DefaultCredentialsNamespaces, ns) {
		return nil
	}
	// Metadata only: the cache keeps no more of a Namespace than its labels need.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.opts.Client.Get(ctx, types.NamespacedName{Name: ns}, meta); err != nil {
		return fmt.Errorf("read namespace %q: %w", ns, err)
	}
	if meta.Labels[usersv1alpha1.DefaultCredentialsLabel] == "true" {
		return nil
	}
	return fmt.Errorf("namespace %q may not use the manager's own ChatBot credentials: set spec.credentialsRef to a "+
		"credentials Secret of this namespace, or have an administrator label the namespace %s=true "+
		"(or list it in the manager's --default-credentials-namespaces)", ns, usersv1alpha1.DefaultCredentialsLabel)
}

// apiURLAllowed reports whether a credentials Secret may send the manager to u.
func (r *Resolver) apiURLAllowed(u, defaultURL string) bool {
	norm := func(s string) string { return strings.TrimRight(strings.TrimSpace(s), "/") }
	if norm(u) == norm(defaultURL) {
		return true
	}
	for _, allowed := range r.opts.AllowedAPIURLs {
		if allowed == "*" || norm(allowed) == norm(u) {
			return true
		}
	}
	return false
}

// namespaceHandler enqueues the Segments of a namespace that use the manager's own
// credentials when its labels change: the grant may have come or gone.
func (r *Resolver) namespaceHandler() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list usersv1alpha1.SegmentList
		if err := r.opts.Client.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, seg := range list.Items {
			if seg.Spec.CredentialsRef == nil {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&seg)})
			}
		}
		return reqs
	})
}

// Error means a Segment's credentials could not be had or used: a retry does not mend
// that, a change to its spec, its Secret or its namespace's grant does.
type Error struct{ err error }

func (e *Error) Error() string { return "credentials: " + e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

// IsError reports whether err is, or wraps, an *Error.
func IsError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}
