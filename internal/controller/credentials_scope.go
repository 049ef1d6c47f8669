package controller

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// CacheOptions restrict what the manager's cache holds: of Secrets, only credentials
// Secrets (labelled users.chatbot.com/credentials=true), and of those only the keys it
// reads; of ConfigMaps, only a little metadata of member lists (labelled
// users.chatbot.com/members=true, see membersOnly); of every object, no managedFields (the
// manager never reads them). Only with credentials Secrets read in every namespace are
// Secrets watched by this cache.
func CacheOptions(scope SecretScope) cache.Options {
	opts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.MembersLabel: "true"}),
		Transform: membersOnly,
	}}
	if !scope.All { // listed namespaces have caches of their own (namespacedSecrets)
		return opts
	}
	opts.ByObject[&corev1.Secret{}] = cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.CredentialsLabel: "true"}),
		Transform: credentialsOnly,
	}
	return opts
}

// membersOnly keeps of a member list ConfigMap only what the manager reads of its metadata
// (see internal/sources): name, namespace, UID, version and the members label. Any editor may
// label many ConfigMaps, with annotations (kubectl apply's copy of the data), labels and
// finalizers of up to a few hundred KiB each.
func membersOnly(in any) (any, error) {
	obj, err := meta.Accessor(in)
	if err != nil {
		return in, nil
	}
	kept := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: obj.GetName(), Namespace: obj.GetNamespace(), UID: obj.GetUID(),
			ResourceVersion: obj.GetResourceVersion()},
	}
	if v, ok := obj.GetLabels()[usersv1alpha1.MembersLabel]; ok {
		kept.Labels = map[string]string{usersv1alpha1.MembersLabel: v}
	}
	if _, typed := in.(*corev1.ConfigMap); typed { // should a typed read ever cache one
		return &corev1.ConfigMap{ObjectMeta: kept.ObjectMeta}, nil
	}
	return kept, nil
}
