package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Member records are kept in the namespace the flag names, else $POD_NAMESPACE (in a
// cluster), else the kubeconfig's current context's (make run, out of a cluster).
func TestRecordNamespace(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: dev, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: dev, user: {}}]
contexts: [{name: dev, context: {cluster: dev, user: dev, namespace: team-dev}}]
current-context: dev
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	for _, tc := range []struct {
		name, flag, env, want, from string
	}{
		{"the flag", "records", "pod-ns", "records", "--member-record-namespace"},
		{"in a cluster", "", "pod-ns", "pod-ns", "$POD_NAMESPACE"},
		{"out of a cluster: the context's", "", "", "team-dev", "the kubeconfig's current context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", tc.env)
			ns, from, err := recordNamespace(tc.flag)
			if err != nil || ns != tc.want || from != tc.from {
				t.Fatalf("recordNamespace(%q) = %q, %q, %v; want %q from %q", tc.flag, ns, from, err, tc.want, tc.from)
			}
		})
	}
}

func TestBytesFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"16Mi", 16 << 20, false},
		{"8388608", 8 << 20, false},
		{"1G", 1_000_000_000, false},
		{"0", 0, false},
		{"-1Mi", 0, true},
		{"lots", 0, true},
	} {
		var b bytesFlag
		err := b.Set(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && int64(b) != tc.want) {
			t.Errorf("Set(%q) = %d, %v", tc.in, b, err)
		}
	}
	if b := bytesFlag(16 << 20); b.String() != "16Mi" {
		t.Errorf("String() = %q", b.String())
	}
}
