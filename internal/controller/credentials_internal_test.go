package controller

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// The cache keeps only what the manager reads of a credentials Secret.
func TestCredentialsOnlyKeepsTheKeysTheManagerReads(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string][]byte
		want map[string][]byte
	}{
		{"token and apiURL", map[string][]byte{"token": []byte("t"), "apiURL": []byte("u"), "blob": make([]byte, 1<<20)},
			map[string][]byte{"token": []byte("t"), "apiURL": []byte("u")}},
		{"token only", map[string][]byte{"token": []byte("t"), "other": []byte("x")}, map[string][]byte{"token": []byte("t")}},
		{"neither", map[string][]byte{"ca.crt": []byte("x")}, map[string][]byte{}},
	} {
		in := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", ResourceVersion: "7",
			Labels:        map[string]string{"users.chatbot.com/credentials": "true"},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"token":"dA=="}}` + strings.Repeat(" ", 1000)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}, Data: tc.data}
		out, err := credentialsOnly(in)
		s := out.(*corev1.Secret)
		if err != nil || !maps.EqualFunc(s.Data, tc.want, func(a, b []byte) bool { return string(a) == string(b) }) ||
			s.Annotations != nil || s.ManagedFields != nil || s.Name != "s" || s.ResourceVersion != "7" {
			t.Errorf("%s: kept %v, annotations %v, managed fields %v (%v)", tc.name, s.Data, s.Annotations, s.ManagedFields, err)
		}
	}
	if out, _ := credentialsOnly("not a Secret"); out != "not a Secret" {
		t.Error("another type was changed")
	}
}

func TestDecideSecretFinalizer(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		labelled, deleting, has, needed bool
		want                            secretFinalizerChange
	}{
		{name: "needed, not yet held", labelled: true, needed: true, want: addSecretFinalizer},
		{name: "needed and held", labelled: true, has: true, needed: true, want: keepSecretFinalizer},
		{name: "being deleted while needed: held until the Segments are done", labelled: true, deleting: true, has: true, needed: true, want: keepSecretFinalizer},
		{name: "being deleted, needed, not held: no new finalizer on a deleted object", labelled: true, deleting: true, needed: true, want: keepSecretFinalizer},
		{name: "no Segment needs it any more", labelled: true, has: true, want: removeSecretFinalizer},
		{name: "being deleted and no longer needed: let it go", labelled: true, deleting: true, has: true, want: removeSecretFinalizer},
		{name: "label removed: it serves no Segment", has: true, needed: true, want: removeSecretFinalizer},
		{name: "unlabelled, not held", needed: true, want: keepSecretFinalizer},
		{name: "unused, not held", labelled: true, want: keepSecretFinalizer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideSecretFinalizer(tc.labelled, tc.deleting, tc.has, tc.needed); got != tc.want {
				t.Errorf("decideSecretFinalizer = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseSecretScope(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    SecretScope
		wantErr bool
	}{
		{in: "*", want: SecretScope{All: true}},
		{in: " none ", want: SecretScope{}},
		{in: "team-a", want: SecretScope{Namespaces: []string{"team-a"}}},
		{in: "team-b, team-a,,team-b", want: SecretScope{Namespaces: []string{"team-a", "team-b"}}},
		{in: "team-a,*", wantErr: true},
		{in: "team-a,none", wantErr: true},
		{in: "Team-A", wantErr: true},
		{in: "a/../b", wantErr: true},
		{in: ",", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ParseSecretScope(tc.in)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSecretScope(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSecretScopeAllows(t *testing.T) {
	listed := SecretScope{Namespaces: []string{"team-a"}}
	for _, tc := range []struct {
		scope             SecretScope
		ns                string
		allows, off, list bool
	}{
		{SecretScope{All: true}, "anything", true, false, false},
		{SecretScope{}, "team-a", false, true, false},
		{listed, "team-a", true, false, true},
		{listed, "team-b", false, false, true},
	} {
		if tc.scope.Allows(tc.ns) != tc.allows || tc.scope.Off() != tc.off || tc.scope.Listed() != tc.list {
			t.Errorf("%+v, %q: Allows %v Off %v Listed %v", tc.scope, tc.ns, tc.scope.Allows(tc.ns), tc.scope.Off(), tc.scope.Listed())
		}
		if !tc.allows && !strings.Contains(tc.scope.refusal(tc.ns).Error(), "--namespace-credentials") {
			t.Errorf("%+v: the refusal does not say which flag: %v", tc.scope, tc.scope.refusal(tc.ns))
		}
	}
}

// The manager's cache holds credentials Secrets only when Segments of every namespace may
// name them: off, the manager needs no access to any Secret; with listed namespaces, it has
// access only there, and a cache per namespace (namespacedSecrets).
func TestCacheOptionsFollowTheSecretScope(t *testing.T) {
	for _, scope := range []SecretScope{{}, {All: true}, {Namespaces: []string{"team-a"}}} {
		opts := CacheOptions(scope)
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

func TestHoldsAccount(t *testing.T) {
	creds := remote.Credentials{BaseURL: "https://api.chatbot.com", Token: "t"}
	here, elsewhere := creds.AccountID(), remote.Credentials{Token: "other"}.AccountID()
	at := metav1.NewMicroTime(time.Unix(1_000_000, 0))
	for _, tc := range []struct {
		name      string
		ownership *usersv1alpha1.SegmentOwnership
		want      bool
	}{
		{"owns nothing", nil, false},
		{"owns a segment in the account: held", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: here}, true},
		{"owns one in another account", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: elsewhere}, false},
		{"a create pending in the account", &usersv1alpha1.SegmentOwnership{
			CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: here}}, true},
		{"a create pending in another account", &usersv1alpha1.SegmentOwnership{
			CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: elsewhere}}, false},
		{"an ownership of an earlier version, no account recorded", &usersv1alpha1.SegmentOwnership{ID: "s1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: "team"}}
			seg.Status.Ownership = tc.ownership
			if got := holdsAccount(seg, creds); got != tc.want {
				t.Errorf("holdsAccount = %v, want %v", got, tc.want)
			}
		})
	}
}

// The accounts a namespace's Segments hold, from their status: owned segments' and pending
// creates', each once; not another namespace's, nor an ownership with no account recorded.
func TestHeldAccounts(t *testing.T) {
	s := runtime.NewScheme()
	_ = usersv1alpha1.AddToScheme(s)
	at := metav1.NewMicroTime(time.Unix(1_000_000, 0))
	seg := func(ns, name string, o *usersv1alpha1.SegmentOwnership) *usersv1alpha1.Segment {
		return &usersv1alpha1.Segment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Status: usersv1alpha1.SegmentStatus{Ownership: o}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		seg("team", "a", &usersv1alpha1.SegmentOwnership{ID: "s1", Account: "acct-1"}),
		seg("team", "b", &usersv1alpha1.SegmentOwnership{ID: "s2", Account: "acct-1"}),
		seg("team", "c", &usersv1alpha1.SegmentOwnership{CreatePending: &usersv1alpha1.CreateIntent{At: at, Name: "n", Account: "acct-2"}}),
		seg("team", "d", &usersv1alpha1.SegmentOwnership{ID: "s3"}),
		seg("team", "e", nil),
		seg("other", "f", &usersv1alpha1.SegmentOwnership{ID: "s4", Account: "acct-3"}),
	).Build()
	if got := HeldAccounts(c)("team"); !slices.Equal(got, []string{"acct-1", "acct-2"}) {
		t.Fatalf("held = %q", got)
	}
}
