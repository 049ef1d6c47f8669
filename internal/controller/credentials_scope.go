package controller

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
)

// SecretScope says whether the manager reads credentials Secrets (spec.credentialsRef):
// in every namespace, or in none (then it has no use for any access to Secrets). It is the
// manager flag --namespace-credentials.
//
// There is deliberately no list of namespaces: with access to Secrets granted by
// RoleBindings in those namespaces, deleting one deletes the RoleBinding with the rest,
// and the manager could no longer take its credentials-in-use finalizer off the Secret (the
// namespace would hang); and a namespace whose RoleBinding is missing would keep the
// manager's Secret watch from ever syncing, which stops the manager at its next start, for
// every tenant.
type SecretScope struct {
	// All: every namespace (cluster-wide RBAC on Secrets); otherwise none.
	All bool
}

// ParseSecretScope reads --namespace-credentials: "*" for every namespace, "none" for none.
func ParseSecretScope(s string) (SecretScope, error) {
	switch strings.TrimSpace(s) {
	case "*":
		return SecretScope{All: true}, nil
	case "none":
		return SecretScope{}, nil
	}
	return SecretScope{}, fmt.Errorf("--namespace-credentials: want * (every namespace) or none, got %q", s)
}

// Off reports whether no namespace's Secrets are read.
func (s SecretScope) Off() bool { return !s.All }

// refusal explains why a Segment may not name a credentials Secret.
func (s SecretScope) refusal() error {
	return fmt.Errorf("this manager reads no credentials Secrets (--namespace-credentials=none): remove spec.credentialsRef " +
		"to use the manager's own token, where an administrator granted it to the namespace")
}

// CacheOptions restrict what the manager's cache holds: of Secrets, only credentials
// Secrets (labelled users.chatbot.com/credentials=true), and of those only the keys it
// reads; of ConfigMaps, only a little metadata of member lists (labelled
// users.chatbot.com/members=true, see membersOnly); of every object, no managedFields (the
// manager never reads them). With per-namespace credentials off, no Secret is watched.
func CacheOptions(scope SecretScope) cache.Options {
	opts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.MembersLabel: "true"}),
		Transform: membersOnly,
	}}
	if scope.Off() {
		return opts
	}
	opts.ByObject[&corev1.Secret{}] = cache.ByObject{
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.CredentialsLabel: "true"}),
		Transform: credentialsOnly,
	}
	return opts
}

// membersOnly keeps of a member list ConfigMap only what the manager reads of its metadata
// (see readSource): name, namespace, UID, version and the members label. Any editor may
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
