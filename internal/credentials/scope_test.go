package credentials

import (
	"maps"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
