package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Want is what the manager image must be.
type Want struct {
	// Platforms the index holds, no more and no fewer.
	Platforms []v1.Platform
	// Base is the index the image is built on: each platform's image starts with the layers
	// of the base's image for the same platform.
	Base v1.ImageIndex
	// User the image runs as.
	User string
	// Entrypoint is the path of the binary the image runs, with no arguments.
	Entrypoint string
	// MainPackage is the Go main package the binary is built from.
	MainPackage string
	// Labels the image carries with these values; it may carry more.
	Labels map[string]string
	// Version is the version stamped into the binary, which `--version` prints.
	Version string
}

// ManagerWant is what the manager image built from .ko.yaml must be: linux/amd64 and
// linux/arm64, each on its platform's image of base, run as distroless's nonroot user,
// /ko-app/cmd (ko names the binary after its package, ./cmd) as the entrypoint, the
// Dockerfile's labels and, if revision is not empty, the commit's, and version stamped.
func ManagerWant(dockerfile, version, revision string, base v1.ImageIndex) (Want, error) {
	labels, err := DockerfileLabels(dockerfile, version)
	if err != nil {
		return Want{}, err
	}
	if revision != "" {
		labels["org.opencontainers.image.revision"] = revision
	}
	return Want{
		Platforms:   ManagerPlatforms,
		Base:        base,
		User:        NonrootUser,
		Entrypoint:  "/ko-app/cmd",
		MainPackage: "github.com/segment-operator/segment-operator/cmd",
		Labels:      labels,
		Version:     version,
	}, nil
}

// Check returns what it verified, a line per platform, and every way the index differs
// from want, joined. The binary of the host's platform is run (`--version`); the others
// cannot be, and their version is looked for in the binary's bytes instead.
func Check(idx v1.ImageIndex, want Want) ([]string, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var report []string
	var problems []error
	seen := map[string]bool{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			problems = append(problems, fmt.Errorf("manifest %s: no platform", d.Digest))
			continue
		}
		p := d.Platform.String()
		if !slices.ContainsFunc(want.Platforms, d.Platform.Equals) {
			problems = append(problems, fmt.Errorf("%s: a platform the manager is not built for", p))
			continue
		}
		if seen[p] {
			problems = append(problems, fmt.Errorf("%s: more than one manifest", p))
			continue
		}
		seen[p] = true
		img, err := idx.Image(d.Digest)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", p, err))
			continue
		}
		line, errs := checkImage(img, *d.Platform, want)
		report = append(report, fmt.Sprintf("%s %s: %s", p, d.Digest, line))
		for _, err := range errs {
			problems = append(problems, fmt.Errorf("%s: %w", p, err))
		}
	}
	for _, p := range want.Platforms {
		if !seen[p.String()] {
			problems = append(problems, fmt.Errorf("%s: missing", p))
		}
	}
	return report, errors.Join(problems...)
}

// checkImage checks one platform's image and says what it verified.
func checkImage(img v1.Image, p v1.Platform, want Want) (string, []error) {
	var problems []error
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", []error{fmt.Errorf("read config: %w", err)}
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
		problems = append(problems, fmt.Errorf("config is for %s/%s", cfg.OS, cfg.Architecture))
	}
	if cfg.Config.User != want.User {
		problems = append(problems, fmt.Errorf("user %q, want %q", cfg.Config.User, want.User))
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{want.Entrypoint}) || len(cfg.Config.Cmd) > 0 {
		problems = append(problems, fmt.Errorf("entrypoint %q and command %q, want entrypoint [%q] alone",
			cfg.Config.Entrypoint, cfg.Config.Cmd, want.Entrypoint))
	}
	for _, k := range slices.Sorted(maps.Keys(want.Labels)) {
		if got, ok := cfg.Config.Labels[k]; !ok || got != want.Labels[k] {
			problems = append(problems, fmt.Errorf("label %s=%q, want %q", k, got, want.Labels[k]))
		}
	}
	if err := checkBase(img, p, want.Base); err != nil {
		problems = append(problems, err)
	}
	ran, err := checkBinary(img, p, want)
	if err != nil {
		problems = append(problems, err)
	}
	return fmt.Sprintf("user %s, entrypoint %s, %d labels, %s", cfg.Config.User, want.Entrypoint,
		len(cfg.Config.Labels), ran), problems
}

// checkBase checks that img starts with the layers of base's image for platform p.
func checkBase(img v1.Image, p v1.Platform, base v1.ImageIndex) error {
	bm, err := base.IndexManifest()
	if err != nil {
		return fmt.Errorf("read base index: %w", err)
	}
	i := slices.IndexFunc(bm.Manifests, func(d v1.Descriptor) bool { return d.Platform != nil && d.Platform.Equals(p) })
	if i < 0 {
		return fmt.Errorf("the base has no image for %s", p)
	}
	baseImg, err := base.Image(bm.Manifests[i].Digest)
	if err != nil {
		return err
	}
	want, err := layerDigests(baseImg)
	if err != nil {
		return err
	}
	got, err := layerDigests(img)
	if err != nil {
		return err
	}
	if len(got) <= len(want) || !slices.Equal(got[:len(want)], want) {
		return fmt.Errorf("layers %v do not start with the base's for %s, %v", got, p, want)
	}
	return nil
}

func layerDigests(img v1.Image) ([]v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	digests := make([]v1.Hash, len(layers))
	for i, l := range layers {
		if digests[i], err = l.Digest(); err != nil {
			return nil, err
		}
	}
	return digests, nil
}

// checkBinary takes the entrypoint out of the image's filesystem and checks it: a static Go
// binary of the main package for platform p, executable by a user that does not own it
// (the image runs as 65532, ko writes it as root's), stamped with the version. It says how
// the version was checked.
func checkBinary(img v1.Image, p v1.Platform, want Want) (string, error) {
	bin, mode, err := readFile(img, want.Entrypoint)
	if err != nil {
		return "", err
	}
	if mode&0o001 == 0 {
		return "", fmt.Errorf("%s has mode %o: not executable by user %s", want.Entrypoint, mode, want.User)
	}
	dir, err := os.MkdirTemp("", "manager-binary-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	file := filepath.Join(dir, "manager")
	if err := os.WriteFile(file, bin, 0o700); err != nil {
		return "", err
	}

	info, err := buildinfo.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: not a Go binary: %w", want.Entrypoint, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if info.Path != want.MainPackage || settings["GOOS"] != p.OS || settings["GOARCH"] != p.Architecture ||
		settings["CGO_ENABLED"] != "0" {
		return "", fmt.Errorf("%s is %s for %s/%s with CGO_ENABLED=%s, want %s for %s, static", want.Entrypoint,
			info.Path, settings["GOOS"], settings["GOARCH"], settings["CGO_ENABLED"], want.MainPackage, p)
	}

	if p.OS != runtime.GOOS || p.Architecture != runtime.GOARCH {
		if !bytes.Contains(bin, []byte(want.Version)) {
			return "", fmt.Errorf("version %q does not occur in %s", want.Version, want.Entrypoint)
		}
		return fmt.Sprintf("not run here (host %s/%s), version %q found in the binary", runtime.GOOS, runtime.GOARCH, want.Version), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, file, "--version").CombinedOutput()
	got := strings.TrimSpace(string(out))
	if wantOut := "segment-operator " + want.Version; err != nil || got != wantOut {
		return "", fmt.Errorf("%s --version printed %q (%v), want %q", want.Entrypoint, got, err, wantOut)
	}
	return fmt.Sprintf("%s --version: %s", want.Entrypoint, got), nil
}

// file is a regular file read from an image, or why it could not be.
type file struct {
	data []byte
	mode int64
	err  error
}

// files memoizes readFile by the image's layer digests and the file's name: content
// addressed, so never stale. Reading the binary decompresses some 40 MiB, slow under the
// race detector, and image_test.go checks the same layers a dozen times.
var files sync.Map

// readFile reads the file at name from img's filesystem (its layers applied in order).
func readFile(img v1.Image, name string) ([]byte, int64, error) {
	layers, err := layerDigests(img)
	if err != nil {
		return nil, 0, err
	}
	key := fmt.Sprint(layers, name)
	f, ok := files.Load(key)
	if !ok {
		var read file
		read.data, read.mode, read.err = extractFile(img, name)
		f, _ = files.LoadOrStore(key, read)
	}
	return f.(file).data, f.(file).mode, f.(file).err
}

func extractFile(img v1.Image, name string) ([]byte, int64, error) {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%s: not in the image", name)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read the image's filesystem: %w", err)
		}
		if path.Clean("/"+h.Name) != path.Clean("/"+name) {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, 0, fmt.Errorf("%s: not a regular file (type %q)", name, h.Typeflag)
		}
		b, err := io.ReadAll(tr)
		return b, h.Mode, err
	}
}
