package controller

import (
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
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
// one, and whole those of sh (nil: all); another shard's are cut down (see segments).
func CacheOptions(scope credentials.SecretScope, sh *shard.Shard) cache.Options {
	opts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	opts.ByObject = map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {
		Label:     labels.SelectorFromSet(labels.Set{usersv1alpha1.MembersLabel: "true"}),
		Transform: membersOnly,
	}}
	opts.ByObject[&usersv1alpha1.Segment{}] = cache.ByObject{Transform: segments(sh)}
	if secrets, ok := scope.SharedCache(); ok {
		opts.ByObject[&corev1.Secret{}] = secrets
	}
	return opts
}

// segments is the cache's transform of Segments: without managedFields, another shard's
// cut down (shard.View), and the members of the shard's own kept compact (compactMembers).
func segments(sh *shard.Shard) toolscache.TransformFunc {
	view := sh.View()
	return func(in any) (any, error) {
		out, err := view(in)
		if seg, ok := out.(*usersv1alpha1.Segment); ok && err == nil {
			compactMembers(seg)
			shareStrings(seg)
		}
		return out, err
	}
}

// compactMembers keeps a Segment's members in one string and a slice of their exact
// length: decoded, each member is an allocation of its own, in a slice grown by doubling.
// At 10,000 Segments of 50 members, the cache holds 500,000 members, the most of what it
// holds, and each allocation is one more for the garbage collector to scan.
func compactMembers(seg *usersv1alpha1.Segment) {
	members := seg.Spec.Members
	if len(members) == 0 {
		return
	}
	n := 0
	for _, m := range members {
		n += len(m)
	}
	var b strings.Builder
	b.Grow(n)
	for _, m := range members {
		b.WriteString(m)
	}
	all, out := b.String(), make([]string, len(members))
	for i, m := range members {
		out[i], all = all[:len(m)], all[len(m):]
	}
	seg.Spec.Members = out
}

// shareStrings points the strings that most Segments repeat at one copy of each: the
// decoder allocates every string of every Segment anew, yet the namespace, the finalizer,
// the four policies, the account and each condition's type, status and reason take a few
// values across all Segments, and the remote ID and name are written twice in a status.
// At 10,000 Segments that is about 150,000 allocations fewer in the cache. unique.Make
// keeps a value only while some string points at it.
func shareStrings(seg *usersv1alpha1.Segment) {
	seg.Namespace = intern(seg.Namespace)
	for i, f := range seg.Finalizers {
		seg.Finalizers[i] = intern(f)
	}
	spec := &seg.Spec
	spec.AdoptionPolicy = usersv1alpha1.AdoptionPolicy(intern(string(spec.AdoptionPolicy)))
	spec.DeletionPolicy = usersv1alpha1.DeletionPolicy(intern(string(spec.DeletionPolicy)))
	spec.MemberRemovalPolicy = usersv1alpha1.MemberRemovalPolicy(intern(string(spec.MemberRemovalPolicy)))
	spec.ManagementPolicy = usersv1alpha1.ManagementPolicy(intern(string(spec.ManagementPolicy)))
	status := &seg.Status
	for i := range status.Conditions {
		c := &status.Conditions[i]
		c.Type, c.Status, c.Reason = intern(c.Type), metav1.ConditionStatus(intern(string(c.Status))), intern(c.Reason)
	}
	if o := status.Ownership; o != nil {
		o.Account = intern(o.Account)
		if o.ID == status.ID {
			o.ID = status.ID
		}
	}
	if status.Name == spec.Name {
		status.Name = spec.Name
	}
}

// intern is the one copy of s that shareStrings points at.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
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
