package controller

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// SecretScope says where the manager reads credentials Secrets (spec.credentialsRef):
// in every namespace, in none (then it has no use for any Secret access), or in the listed
// namespaces only (then its RBAC can be RoleBindings there). It is the manager flag
// --namespace-credentials.
type SecretScope struct {
	// All: every namespace (cluster-wide RBAC on Secrets).
	All bool
	// Namespaces, unless All: the only namespaces read; none means per-namespace
	// credentials are off.
	Namespaces []string
}

// ParseSecretScope reads --namespace-credentials: "*" for every namespace, "none" for
// none, or a comma-separated list of namespaces.
func ParseSecretScope(s string) (SecretScope, error) {
	switch s = strings.TrimSpace(s); s {
	case "*":
		return SecretScope{All: true}, nil
	case "none":
		return SecretScope{}, nil
	}
	var scope SecretScope
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		switch {
		case ns == "":
			continue
		case ns == "*" || ns == "none":
			return SecretScope{}, fmt.Errorf("--namespace-credentials: %q stands alone, not in a list", ns)
		case !slices.Contains(scope.Namespaces, ns):
			scope.Namespaces = append(scope.Namespaces, ns)
		}
	}
	if len(scope.Namespaces) == 0 {
		return SecretScope{}, fmt.Errorf("--namespace-credentials: want *, none or namespaces, got %q", s)
	}
	return scope, nil
}

// Off reports whether no namespace's Secrets are read.
func (s SecretScope) Off() bool { return !s.All && len(s.Namespaces) == 0 }

// Allows reports whether Segments of namespace ns may name a credentials Secret.
func (s SecretScope) Allows(ns string) bool { return s.All || slices.Contains(s.Namespaces, ns) }

// refusal explains why a Segment of namespace ns may not name a credentials Secret.
func (s SecretScope) refusal(ns string) error {
	if s.Off() {
		return fmt.Errorf("this manager reads no credentials Secrets (--namespace-credentials=none): remove spec.credentialsRef " +
			"to use the manager's own token, where an administrator granted it to the namespace")
	}
	return fmt.Errorf("this manager reads credentials Secrets only in the namespaces its administrator listed "+
		"(--namespace-credentials), and %q is not one of them", ns)
}

// CacheOptions restrict what the manager's cache holds: of Secrets, only credentials
// Secrets (labelled users.chatbot.com/credentials=true) in the namespaces scope allows, and
// of those only the keys it reads; of every object, no managedFields (the manager never
// reads them). With per-namespace credentials off, no Secret is watched at all.
func CacheOptions(scope SecretScope) cache.Options {
	opts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if scope.Off() {
		return opts
	}
	secrets := cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.CredentialsLabel: "true"}),
		Transform: credentialsOnly,
	}
	if !scope.All {
		secrets.Namespaces = map[string]cache.Config{}
		for _, ns := range scope.Namespaces {
			secrets.Namespaces[ns] = cache.Config{}
		}
	}
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.Secret{}: secrets}
	return opts
}
