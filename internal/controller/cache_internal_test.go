package controller

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/credentials"
	"github.com/segment-operator/segment-operator/internal/shard"
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

// The cache keeps a Segment's members as they were, in one string and a slice of their
// length; a Segment without members, and another shard's (cut), are left as they are.
func TestSegmentsTransformKeepsMembersCompact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []string
	}{
		{"none", nil},
		{"one", []string{"u1"}},
		{"several, of several lengths, one empty", []string{"u1", "", "user-000002", "ü3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grown := append(make([]string, 0, 2*len(tc.members)), tc.members...) // as decoded: grown by doubling
			in := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns",
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}, Spec: usersv1alpha1.SegmentSpec{Members: grown}}
			out, err := segments(nil)(in)
			if err != nil {
				t.Fatal(err)
			}
			seg := out.(*usersv1alpha1.Segment)
			if !slices.Equal(seg.Spec.Members, tc.members) || seg.ManagedFields != nil {
				t.Fatalf("members %q, managedFields %v; want %q and none", seg.Spec.Members, seg.ManagedFields, tc.members)
			}
			if len(tc.members) > 0 && cap(seg.Spec.Members) != len(tc.members) {
				t.Errorf("a slice of capacity %d for %d members", cap(seg.Spec.Members), len(tc.members))
			}
		})
	}
	sh, err := shard.Parse(shard.Key + "=a")
	if err != nil {
		t.Fatal(err)
	}
	other := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{shard.Key: "b"}},
		Spec: usersv1alpha1.SegmentSpec{Members: []string{"u1"}}}
	out, _ := segments(sh)(other)
	if seg := out.(*usersv1alpha1.Segment); len(seg.Spec.Members) != 0 {
		t.Errorf("another shard's Segment keeps its members: %q", seg.Spec.Members)
	}
}

func TestSegmentsTransformSharesRepeatedStrings(t *testing.T) {
	decoded := func(name string) *usersv1alpha1.Segment {
		// Each string its own allocation, as the decoder makes them.
		s := func(v string) string { return string([]byte(v)) }
		return &usersv1alpha1.Segment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s("team-a"), Finalizers: []string{s(usersv1alpha1.SegmentFinalizer)}},
			Spec: usersv1alpha1.SegmentSpec{Name: s("Segment " + name), DeletionPolicy: usersv1alpha1.DeletionPolicy(s("Delete")),
				AdoptionPolicy: usersv1alpha1.AdoptionPolicy(s("None")), ManagementPolicy: usersv1alpha1.ManagementPolicy(s("Manage")),
				MemberRemovalPolicy: usersv1alpha1.MemberRemovalPolicy(s("Warn"))},
			Status: usersv1alpha1.SegmentStatus{ID: s("id-" + name), Name: s("Segment " + name),
				Ownership:  &usersv1alpha1.SegmentOwnership{ID: s("id-" + name), Account: s("6b140ccb9cad")},
				Conditions: []metav1.Condition{{Type: s("Ready"), Status: metav1.ConditionStatus(s("True")), Reason: s("Synced"), Message: s("in sync")}}},
		}
	}
	transform := segments(nil)
	var out []*usersv1alpha1.Segment
	for _, name := range []string{"a", "b"} {
		in := decoded(name)
		want := in.DeepCopy()
		got, err := transform(in)
		if err != nil {
			t.Fatal(err)
		}
		seg := got.(*usersv1alpha1.Segment)
		if !equality.Semantic.DeepEqual(seg, want) {
			t.Fatalf("the transform changed a value:\n%+v\nwant\n%+v", seg, want)
		}
		out = append(out, seg)
	}
	same := func(what string, x, y string) {
		t.Helper()
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: two copies of %q", what, x)
		}
	}
	a, b := out[0], out[1]
	same("namespace", a.Namespace, b.Namespace)
	same("finalizer", a.Finalizers[0], b.Finalizers[0])
	same("deletionPolicy", string(a.Spec.DeletionPolicy), string(b.Spec.DeletionPolicy))
	same("adoptionPolicy", string(a.Spec.AdoptionPolicy), string(b.Spec.AdoptionPolicy))
	same("managementPolicy", string(a.Spec.ManagementPolicy), string(b.Spec.ManagementPolicy))
	same("memberRemovalPolicy", string(a.Spec.MemberRemovalPolicy), string(b.Spec.MemberRemovalPolicy))
	same("account", a.Status.Ownership.Account, b.Status.Ownership.Account)
	same("condition type", a.Status.Conditions[0].Type, b.Status.Conditions[0].Type)
	same("condition status", string(a.Status.Conditions[0].Status), string(b.Status.Conditions[0].Status))
	same("condition reason", a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason)
	same("remote ID, in status and ownership", a.Status.ID, a.Status.Ownership.ID)
	same("name, in spec and status", a.Spec.Name, a.Status.Name)
}
