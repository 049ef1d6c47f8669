package controller

import (
	"cmp"
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// Field indexes on Segments.
const (
	indexRemoteID      = "status.ownership.id"
	indexPendingCreate = "status.ownership.createPending"
	indexCredentials   = "spec.credentialsRef.name"
)

// indexByRemoteID indexes Segments by the remote segment they own (status.ownership.id,
// or a hold an earlier version recorded and not yet claimed): one that only observes a
// segment does not keep another from managing it.
func indexByRemoteID(o client.Object) []string {
	seg := o.(*usersv1alpha1.Segment)
	if id := cmp.Or(seg.OwnedID(), legacyHold(seg)); id != "" {
		return []string{id}
	}
	return nil
}

// indexByPendingCreate indexes Segments by the name of their pending create: a segment
// such a create may have made is not free for others to claim.
func indexByPendingCreate(o client.Object) []string {
	if i := o.(*usersv1alpha1.Segment).PendingCreate(); i != nil {
		return []string{i.Name}
	}
	return nil
}

func indexByCredentials(o client.Object) []string {
	if ref := o.(*usersv1alpha1.Segment).Spec.CredentialsRef; ref != nil {
		return []string{ref.Name}
	}
	return nil
}

// credentialsOnly keeps of a Secret what the manager reads (its token and apiURL keys, its
// name and version) and drops the rest before it is cached: any editor may label a Secret
// of up to 1 MiB, and kubectl's last-applied annotation copies every key.
func credentialsOnly(in any) (any, error) {
	s, ok := in.(*corev1.Secret)
	if !ok {
		return in, nil
	}
	kept := map[string][]byte{}
	for _, k := range []string{usersv1alpha1.CredentialsTokenKey, usersv1alpha1.CredentialsURLKey} {
		if v, ok := s.Data[k]; ok {
			kept[k] = v
		}
	}
	s.Data, s.StringData, s.Annotations, s.ManagedFields = kept, nil, nil, nil
	return s, nil
}

// account returns the ChatBot account the Segment belongs to.
func (r *SegmentReconciler) account(ctx context.Context, seg *usersv1alpha1.Segment) (*remote.Account, error) {
	creds, secret, err := r.credentials(ctx, seg)
	if err != nil {
		return nil, &credentialsError{err: err}
	}
	get := r.Accounts.For
	if holdsAccount(seg, creds) {
		get = r.Accounts.Held
	}
	acct, err := get(creds, seg.Namespace)
	if err != nil {
		return nil, &credentialsError{err: err}
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
func (r *SegmentReconciler) credentials(ctx context.Context, seg *usersv1alpha1.Segment) (remote.Credentials, *corev1.Secret, error) {
	ref := seg.Spec.CredentialsRef
	if ref == nil {
		if err := r.defaultCredentialsGranted(ctx, seg.Namespace); err != nil {
			return remote.Credentials{}, nil, err
		}
		creds, err := r.DefaultCredentials()
		return creds, nil, err
	}
	if !r.SecretScope.Allows(seg.Namespace) {
		return remote.Credentials{}, nil, r.SecretScope.refusal(seg.Namespace)
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
	def, _ := r.DefaultCredentials()
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
func (r *SegmentReconciler) defaultCredentialsGranted(ctx context.Context, ns string) error {
	if slices.Contains(r.DefaultCredentialsNamespaces, "*") || slices.Contains(r.DefaultCredentialsNamespaces, ns) {
		return nil
	}
	// Metadata only: the cache keeps no more of a Namespace than its labels need.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: ns}, meta); err != nil {
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
func (r *SegmentReconciler) apiURLAllowed(u, defaultURL string) bool {
	norm := func(s string) string { return strings.TrimRight(strings.TrimSpace(s), "/") }
	if norm(u) == norm(defaultURL) {
		return true
	}
	for _, allowed := range r.AllowedAPIURLs {
		if allowed == "*" || norm(allowed) == norm(u) {
			return true
		}
	}
	return false
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

// namespaceHandler enqueues the Segments of a namespace that use the manager's own
// credentials when its labels change: the grant may have come or gone.
func (r *SegmentReconciler) namespaceHandler() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list usersv1alpha1.SegmentList
		if err := r.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
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

// credentialsError means the Segment's credentials could not be had or used.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

func isCredentialsError(err error) bool {
	var ce *credentialsError
	return errors.As(err, &ce)
}
