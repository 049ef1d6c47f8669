package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const root = "../.."

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// TestManagerImage builds the image with `make image-tarball`, the release's ko command
// against the stand-in base, reads the tarball it writes and checks it; then shows, on the
// same image broken one way at a time, that each check catches what it is for.
func TestManagerImage(t *testing.T) {
	ctx, cancel := deadline(t)
	defer cancel()
	if out, err := runMake(ctx, "ko"); err != nil {
		t.Skipf("ko could not be built, so the image is not checked (make ko: %v):\n%s", err, out)
	}

	const version = "v0.0.0-imagetest"
	archive := filepath.Join(t.TempDir(), "manager-image.tar")
	out, err := runMake(ctx, "image-tarball", "VERSION="+version, "IMAGE_TARBALL="+archive)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("make image-tarball did not finish before the test's deadline: the first build of ko "+
			"and of the manager for two platforms takes minutes; run `make image-tarball` once or "+
			"raise go test's -timeout. Its output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("make image-tarball: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "image: ") {
			t.Log(strings.TrimSpace(line))
		}
	}

	idx, err := ReadArchive(archive, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base, err := StandInBase()
	if err != nil {
		t.Fatal(err)
	}
	revision, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	want, err := ManagerWant(filepath.Join(root, "Dockerfile"), version, strings.TrimSpace(string(revision)), base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(idx, want); err != nil {
		t.Fatalf("%s:\n%v", archive, err)
	}

	swapped := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: platformImage(t, base, arm64), Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: platformImage(t, base, amd64), Descriptor: v1.Descriptor{Platform: &arm64}})
	for _, tc := range []struct {
		name    string
		index   v1.ImageIndex
		want    func(*Want)
		problem string
	}{{
		name:    "a platform missing",
		index:   mutate.RemoveManifests(idx, match.Platforms(arm64)),
		problem: "linux/arm64: missing",
	}, {
		name:    "a platform too many",
		want:    func(w *Want) { w.Platforms = []v1.Platform{amd64} },
		problem: "linux/arm64: a platform the manager is not built for",
	}, {
		name:    "another platform's base",
		want:    func(w *Want) { w.Base = swapped },
		problem: "linux/amd64: layers",
	}, {
		name:    "root",
		index:   withConfig(t, idx, amd64, func(c *v1.ConfigFile) { c.Config.User = "" }),
		problem: `linux/amd64: user "", want "65532"`,
	}, {
		name:    "a command after the entrypoint",
		index:   withConfig(t, idx, arm64, func(c *v1.ConfigFile) { c.Config.Cmd = []string{"--help"} }),
		problem: "linux/arm64: entrypoint",
	}, {
		name:    "another entrypoint",
		want:    func(w *Want) { w.Entrypoint = "/manager" },
		problem: "/manager: not in the image",
	}, {
		name:    "a binary only its owner can run",
		index:   withFile(t, idx, arm64, "ko-app/cmd", 0o500),
		problem: "linux/arm64: /ko-app/cmd has mode 500: not executable by user 65532",
	}, {
		name:    "a label missing",
		index:   withConfig(t, idx, amd64, func(c *v1.ConfigFile) { delete(c.Config.Labels, "org.opencontainers.image.licenses") }),
		problem: "linux/amd64: label org.opencontainers.image.licenses",
	}, {
		name:    "another source",
		want:    func(w *Want) { w.Labels["org.opencontainers.image.source"] = "https://example.com/fork" },
		problem: "label org.opencontainers.image.source",
	}, {
		name:    "another version stamped",
		want:    func(w *Want) { w.Version = "v9.9.9"; w.Labels = nil },
		problem: "v9.9.9",
	}, {
		name:    "another main package",
		want:    func(w *Want) { w.MainPackage = "github.com/segment-operator/segment-operator/cmd/chatbot-sim" },
		problem: "want github.com/segment-operator/segment-operator/cmd/chatbot-sim",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := want
			w.Labels = maps.Clone(want.Labels)
			if tc.want != nil {
				tc.want(&w)
			}
			index := idx
			if tc.index != nil {
				index = tc.index
			}
			_, err := Check(index, w)
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("Check = %v, want a problem containing %q", err, tc.problem)
			}
		})
	}
}

// deadline is the test's deadline less a minute, to report a build that is too slow.
func deadline(t *testing.T) (context.Context, context.CancelFunc) {
	d, ok := t.Deadline()
	if !ok {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), d.Add(-time.Minute))
}

// runMake runs a target of the Makefile as a user would, not as a sub-make of `make test`.
// It runs at the lowest CPU priority: under `make test` the envtest suites run beside it,
// and their waits should not starve behind a build for two platforms.
func runMake(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "19", "make", "-s", "-C", root}, args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "MAKEFLAGS" || k == "MFLAGS" || k == "MAKELEVEL"
	})
	return cmd.CombinedOutput()
}

// withFile returns idx with a layer added to platform p's image that writes a file at name
// with mode, over what is there.
func withFile(t *testing.T, idx v1.ImageIndex, p v1.Platform, name string, mode int64) v1.ImageIndex {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "not the manager\n"
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(platformImage(t, idx, p), layer)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(mutate.RemoveManifests(idx, match.Platforms(p)),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
}

func platformImage(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Equals(p) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s image", p)
	return nil
}

// withConfig returns idx with platform p's image config changed by edit.
func withConfig(t *testing.T, idx v1.ImageIndex, p v1.Platform, edit func(*v1.ConfigFile)) v1.ImageIndex {
	t.Helper()
	img := platformImage(t, idx, p)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	edit(cfg)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(mutate.RemoveManifests(idx, match.Platforms(p)),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
}
