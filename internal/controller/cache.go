package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/shard"
)

// CacheOptions restrict what the manager's cache holds: of Secrets, only credentials
// Secrets (labelled users.chatbot.com/credentials=true), and of those only the keys it
// reads; of ConfigMaps, only a little metadata of member lists (labelled
// users.chatbot.com/members=true, see membersOnly); of every object, no managedFields (the
// manager never reads them). Only with credentials Secrets read in every namespace are
// Secrets watched by this cache (credentials.SecretScope.SharedCache). Of Segments, every
// one, and whole those of sh (nil: all); another shard's are cut down (shard.View).
func CacheOptions(scope credentials.SecretScope, sh *shard.Shard) cache.Options {
	opts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.MembersLabel: "true"}),
		Transform: membersOnly,
	}}
	if sh != nil {
		opts.ByObject[&usersv1alpha1.Segment{}] = cache.ByObject{Transform: sh.View()}
	}
	if secrets, ok := scope.SharedCache(); ok {
		opts.ByObject[&corev1.Secret{}] = secrets
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
