package credentials

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// SecretScope says where the manager reads credentials Secrets (spec.credentialsRef): in
// every namespace (cluster-wide RBAC on Secrets), in listed namespaces only (RBAC granted by
// a RoleBinding in each, see namespacedSecrets), or in none (then it has no use for any
// access to Secrets). It is the manager flag --namespace-credentials.
type SecretScope struct {
	// All: every namespace.
	All bool
	// Namespaces, unless All: the only namespaces whose Segments may name a Secret.
	Namespaces []string
}

// ParseSecretScope reads --namespace-credentials: "*" for every namespace, "none" for none,
// or a comma-separated list of namespaces.
func ParseSecretScope(s string) (SecretScope, error) {
	switch strings.TrimSpace(s) {
	case "*":
		return SecretScope{All: true}, nil
	case "none":
		return SecretScope{}, nil
	}
	var scope SecretScope
	for ns := range strings.SplitSeq(s, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if ns == "*" || ns == "none" {
			return SecretScope{}, fmt.Errorf("--namespace-credentials: %q cannot be part of a list of namespaces", ns)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return SecretScope{}, fmt.Errorf("--namespace-credentials: %q is no namespace name: %s", ns, strings.Join(errs, "; "))
		}
		scope.Namespaces = append(scope.Namespaces, ns)
	}
	if len(scope.Namespaces) == 0 {
		return SecretScope{}, fmt.Errorf("--namespace-credentials: want * (every namespace), none, or namespaces separated by commas, got %q", s)
	}
	slices.Sort(scope.Namespaces)
	scope.Namespaces = slices.Compact(scope.Namespaces)
	return scope, nil
}

// Off reports whether no namespace's Secrets are read.
func (s SecretScope) Off() bool { return !s.All && len(s.Namespaces) == 0 }

// Listed reports whether the Secrets read are those of listed namespaces, each granted by a
// RoleBinding there.
func (s SecretScope) Listed() bool { return !s.All && len(s.Namespaces) > 0 }

// Allows reports whether Segments of namespace ns may name a credentials Secret.
func (s SecretScope) Allows(ns string) bool { return s.All || slices.Contains(s.Namespaces, ns) }

// refusal explains why a Segment of namespace ns may not name a credentials Secret.
func (s SecretScope) refusal(ns string) error {
	if s.Off() {
		return fmt.Errorf("this manager reads no credentials Secrets (--namespace-credentials=none): remove spec.credentialsRef " +
			"to use the manager's own token, where an administrator granted it to the namespace")
	}
	return fmt.Errorf("this manager reads credentials Secrets only in the namespaces its administrator lists "+
		"(--namespace-credentials), and %q is not one of them: remove spec.credentialsRef to use the manager's own token, "+
		"where an administrator granted it to the namespace, or ask for the namespace to be listed", ns)
}

// SharedCache returns what the manager's shared cache holds of Secrets, and whether it
// holds any: only with credentials Secrets read in every namespace, and then only those
// labelled users.chatbot.com/credentials=true. Listed namespaces have caches of their own
// (namespacedSecrets).
func (s SecretScope) SharedCache() (cache.ByObject, bool) {
	if !s.All {
		return cache.ByObject{}, false
	}
	return secretsCache(), true
}

// secretsCache is what a cache holds of Secrets: credentials Secrets, and of those only the
// keys the manager reads.
func secretsCache() cache.ByObject {
	return cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.CredentialsLabel: "true"}),
		Transform: credentialsOnly,
	}
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
