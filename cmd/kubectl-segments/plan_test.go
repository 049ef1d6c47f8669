package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// What plan reads from files and directories, and what it refuses, naming the file and
// the kind.
func TestReadManifests(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `apiVersion: users.chatbot.com/v1alpha1
kind: Segment
metadata: {name: a}
spec: {members: [u1]}
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: m, labels: {users.chatbot.com/members: "true"}}
data: {ids: "u2\n"}
`)
	write(t, dir, "sub/b.json", `{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "users.chatbot.com/v1alpha1", "kind": "Segment", "metadata": {"name": "b", "namespace": "other"}}]}`)
	write(t, dir, "kustomization.yaml", "resources: [a.yaml]\n")
	write(t, dir, "README.md", "not read")

	var m manifests
	if err := m.readFiles([]string{dir}); err != nil {
		t.Fatal(err)
	}
	if err := m.defaultNamespace("team"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.segments {
		got = append(got, s.seg.Namespace+"/"+s.seg.Name)
	}
	if strings.Join(got, " ") != "team/a other/b" || len(m.configMaps) != 1 || m.configMaps[0].Namespace != "team" {
		t.Fatalf("read %v and %d ConfigMaps", got, len(m.configMaps))
	}
	if ns := m.segments[0].object.GetNamespace(); ns != "team" {
		t.Errorf("the object applied has namespace %q", ns)
	}

	for _, tc := range []struct{ name, content, want string }{
		{"deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
			"deploy.yaml: document 1 is a Deployment (apps/v1), not a Segment (users.chatbot.com/v1alpha1)"},
		{"second.yaml", "apiVersion: users.chatbot.com/v1alpha1\nkind: Segment\nmetadata: {name: a}\n---\nfoo: bar\n",
			"second.yaml: document 2 is not a Kubernetes object (no kind)"},
		{"bad.yaml", "apiVersion: users.chatbot.com/v1alpha1\nkind: Segment\nmetadata: {name: a}\nspec: {members: 3}\n",
			`bad.yaml: document 1: Segment "a"`},
		{"broken.json", `{"apiVersion": `, "broken.json: document 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m manifests
			err := m.readFiles([]string{write(t, t.TempDir(), tc.name, tc.content)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	t.Run("-k: what kustomize builds", func(t *testing.T) {
		var m manifests
		if err := m.readKustomization(dir); err != nil {
			t.Fatal(err)
		}
		if len(m.segments) != 1 || m.segments[0].seg.Name != "a" || len(m.configMaps) != 1 {
			t.Fatalf("read %d Segments, %d ConfigMaps", len(m.segments), len(m.configMaps))
		}
	})
	t.Run("a Segment twice", func(t *testing.T) {
		var m manifests
		d := t.TempDir()
		seg := "apiVersion: users.chatbot.com/v1alpha1\nkind: Segment\nmetadata: {name: a}\n"
		write(t, d, "1.yaml", seg)
		write(t, d, "2.yaml", seg)
		if err := m.readFiles([]string{d}); err != nil {
			t.Fatal(err)
		}
		if err := m.defaultNamespace("team"); err == nil || !strings.Contains(err.Error(), "Segment team/a is in") {
			t.Errorf("error %v", err)
		}
	})
}

// Bad input is an error, said on stderr, and exit 1.
func TestPlanBadInput(t *testing.T) {
	dir := t.TempDir()
	seg := write(t, dir, "s.yaml", "apiVersion: users.chatbot.com/v1alpha1\nkind: Segment\nmetadata: {name: a}\n")
	cm := write(t, dir, "cm.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no manifests", []string{"plan"}, "give the manifests with -f"},
		{"not a Segment", []string{"plan", "-f", cm}, "cm.yaml: document 1 is a Secret (v1), not a Segment"},
		{"a missing file", []string{"plan", "-f", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"a bad output", []string{"plan", "-f", seg, "-o", "yaml"}, "--output must be text or json"},
		{"a missing kubeconfig", []string{"plan", "-f", seg, "--kubeconfig", filepath.Join(dir, "missing")}, "kubeconfig"},
		{"a missing kustomization", []string{"plan", "-k", filepath.Join(dir, "nokust")}, "kustomize build"},
		{"an unreachable API", []string{"plan", "-f", seg, "--server", "https://127.0.0.1:1", "--insecure-skip-tls-verify"},
			"list Segments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			t.Setenv("KUBECONFIG", filepath.Join(dir, "none"))
			code := run(tc.args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}
