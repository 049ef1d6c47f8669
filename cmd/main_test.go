package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag builds the manager as `make build` does, stamping a version with -ldflags,
// and checks that --version prints it and exits 0 without a cluster to talk to.
func TestVersionFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager binary")
	}
	const stamped = "v1.2.3-test"
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/segment-operator/segment-operator/internal/version.Version="+stamped, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "--version")
	cmd.Env = []string{"KUBECONFIG=/nonexistent"} // it must not need one
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("manager --version: %v (want exit 0)", err)
	}
	if got, want := strings.TrimSpace(string(out)), "segment-operator "+stamped; got != want {
		t.Errorf("manager --version printed %q, want %q", got, want)
	}
}
