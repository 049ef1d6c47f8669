// Package plugin checks the kubectl plugin's release as a user of krew gets it.
package plugin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of a krew plugin manifest a user's krew reads.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version   string `json:"version"`
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// hack/plugin-release.sh, for this machine's platform: the manifest names the archive by
// address and digest, and the binary in it runs and says its version.
func TestReleaseArchiveAndKrewManifest(t *testing.T) {
	const version = "v0.0.0-test"
	dist := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command(filepath.Join("..", "..", "hack", "plugin-release.sh"), version, dist)
	cmd.Env = append(os.Environ(), "PLATFORMS="+platform, "RELEASE_URL=https://example.com/r/"+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plugin-release.sh: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dist, "segments.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m krewPlugin
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segments.yaml: %v", err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "segments" ||
		m.Spec.Version != version || len(m.Spec.Platforms) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	p := m.Spec.Platforms[0]
	archive := "kubectl-segments_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	if p.URI != "https://example.com/r/"+version+"/"+archive || p.Bin != "kubectl-segments" ||
		p.Selector.MatchLabels["os"] != runtime.GOOS || p.Selector.MatchLabels["arch"] != runtime.GOARCH {
		t.Fatalf("platform %+v", p)
	}
	b, err := os.ReadFile(filepath.Join(dist, archive))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.SHA256 {
		t.Fatalf("sha256 %s in the manifest, %x of the archive", p.SHA256, sum)
	}

	bin := filepath.Join(t.TempDir(), "kubectl-segments")
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "kubectl-segments" {
			out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if slices.Sort(names); strings.Join(names, ",") != "LICENSE,kubectl-segments" {
		t.Fatalf("archive holds %q", names)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != version {
		t.Fatalf("kubectl-segments version: %q, %v", out, err)
	}
}
