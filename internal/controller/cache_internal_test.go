package controller

import (
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
)

// The manager's cache holds credentials Secrets only when Segments of every namespace may
// name them: off, the manager needs no access to any Secret; with listed namespaces, it has
// access only there, and a cache per namespace (namespacedSecrets).
func TestCacheOptionsFollowTheSecretScope(t *testing.T) {
	for _, scope := range []credentials.SecretScope{{}, {All: true}, {Namespaces: []string{"team-a"}}} {
		opts := CacheOptions(scope, nil)
		if opts.DefaultTransform == nil {
			t.Errorf("%+v: managedFields kept", scope)
		}
		var secrets *cache.ByObject
		for obj, by := range opts.ByObject {
			if _, ok := obj.(*corev1.Secret); ok {
				secrets = &by
			}
		}
		switch {
		case !scope.All && secrets != nil:
			t.Errorf("%+v: Secrets cached cluster-wide", scope)
		case scope.All && (secrets == nil || secrets.Label.String() != usersv1alpha1.CredentialsLabel+"=true" || secrets.Transform == nil):
			t.Errorf("all: %+v", secrets)
		}
		var configMaps *cache.ByObject
		for obj, by := range opts.ByObject {
			if _, ok := obj.(*corev1.ConfigMap); ok {
				configMaps = &by
			}
		}
		if configMaps == nil || configMaps.Label.String() != usersv1alpha1.MembersLabel+"=true" || configMaps.Transform == nil {
			t.Fatalf("%+v: ConfigMaps cached beyond member lists: %+v", scope, configMaps)
		}
		in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "list", Namespace: "team", UID: "u",
			ResourceVersion: "7", Labels: map[string]string{usersv1alpha1.MembersLabel: "true", "big": strings.Repeat("x", 63)},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: strings.Repeat("u1\n", 1000)},
			Finalizers:  []string{"example.com/" + strings.Repeat("f", 200)}, OwnerReferences: []metav1.OwnerReference{{Name: "x"}}}}
		out, err := configMaps.Transform(in)
		kept, _ := out.(*metav1.PartialObjectMetadata)
		if err != nil || kept == nil || kept.Name != "list" || kept.Namespace != "team" || kept.UID != "u" || kept.ResourceVersion != "7" ||
			!maps.Equal(kept.Labels, map[string]string{usersv1alpha1.MembersLabel: "true"}) ||
			kept.Annotations != nil || kept.Finalizers != nil || kept.OwnerReferences != nil {
			t.Errorf("%+v: a member list cached as %+v", scope, out)
		}
	}
}
