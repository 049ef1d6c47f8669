package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonrootUser is the user of gcr.io/distroless/static:nonroot (65532, "nonroot"), which the
// stand-in base carries in its config as distroless does; ko keeps the base's user.
const NonrootUser = "65532"

// ManagerPlatforms are the platforms .ko.yaml builds the manager for.
var ManagerPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// basePlatforms are the stand-in's: the manager's and one more, as distroless offers more
// platforms than .ko.yaml asks for; ko must build only those .ko.yaml names.
var basePlatforms = slices.Concat(ManagerPlatforms, []v1.Platform{{OS: "linux", Architecture: "s390x"}})

// StandInBase returns a multi-platform index that stands in for
// gcr.io/distroless/static:nonroot where no registry can be reached: for each platform an
// image of one layer (/etc/passwd and /etc/group with root and nonroot, /home/nonroot, /tmp,
// and a file naming the platform, so that each platform's layer is its own) and distroless's
// config (user 65532, working directory /home/nonroot, PATH and SSL_CERT_FILE). It is the
// same on every call.
func StandInBase() (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range basePlatforms {
		img, err := standInImage(p)
		if err != nil {
			return nil, fmt.Errorf("stand-in base for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, nil
}

func standInImage(p v1.Platform) (v1.Image, error) {
	layer, err := standInLayer(p)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = p.OS, p.Architecture
	cfg.Config.User = NonrootUser
	cfg.Config.WorkingDir = "/home/nonroot"
	cfg.Config.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
	}
	return mutate.ConfigFile(img, cfg)
}

func standInLayer(p v1.Platform) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, f := range []struct {
		name, body string
		mode       int64
		uid        int
	}{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, body: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		{name: "etc/group", mode: 0o644, body: "root:x:0:\nnonroot:x:65532:\n"},
		{name: "etc/stand-in-platform", mode: 0o644, body: p.String() + "\n"},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: 65532},
		{name: "tmp/", mode: 0o1777},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: epoch,
			Typeflag: tar.TypeReg, Size: int64(len(f.body))}
		if f.name[len(f.name)-1] == '/' {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
