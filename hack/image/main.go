// Command image builds the manager image with ko, here, with no Docker and no registry on
// the network, checks it and writes it as an OCI layout tarball. `make image-tarball` runs it:
//
//	go run ./hack/image -version v1.2.3 -out dist/manager-image.tar -- bin/ko build ./cmd <flags>
//
// It starts an in-memory registry on 127.0.0.1, pushes a stand-in for .ko.yaml's base
// (gcr.io/distroless/static:nonroot cannot be pulled here) to it, and runs the command after
// "--" with KO_DEFAULTBASEIMAGE naming the stand-in, KO_DOCKER_REPO the local registry and
// VERSION set: .ko.yaml is otherwise read by ko as it is, and the command is the release's.
// It then checks that the version tag and an SBOM were pushed with the index, writes the
// index to -out, reads -out again and checks the image in it (image.Check): the manager's
// platforms and no other, each on its own platform's base, run as the base's user,
// /ko-app/cmd as the entrypoint, the Dockerfile's OCI labels, and the version stamped.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/segment-operator/segment-operator/test/image"
)

const (
	// baseRepository and baseTag name the stand-in in the local registry as .ko.yaml names
	// the real base, gcr.io/distroless/static:nonroot.
	baseRepository = "distroless/static"
	baseTag        = "nonroot"
	// repository is KO_DOCKER_REPO: with --bare, ko pushes to it as the release pushes to
	// ghcr.io/segment-operator/segment-operator.
	repository = "segment-operator"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("image: ")
	out := flag.String("out", "dist/manager-image.tar", "the OCI layout tarball to write")
	version := flag.String("version", "", "the version to stamp (VERSION for .ko.yaml), also expected in the labels and from --version")
	revision := flag.String("revision", "", "the commit expected in the org.opencontainers.image.revision label; none if empty")
	ref := flag.String("name", "", "the image reference to name the index with in the tarball (default ghcr.io/segment-operator/segment-operator:<version>)")
	dockerfile := flag.String("dockerfile", "Dockerfile", "the Dockerfile whose LABELs the image must carry")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: image -version vX.Y.Z [-out file] [flags] -- ko build ./cmd [ko flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *ref == "" {
		*ref = "ghcr.io/segment-operator/segment-operator:" + *version
	}
	if err := run(flag.Args(), *out, *version, *revision, *ref, *dockerfile); err != nil {
		log.Fatal(err)
	}
}

func run(command []string, out, version, revision, ref, dockerfile string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("-name: %w", err)
	}
	base, err := image.StandInBase()
	if err != nil {
		return err
	}
	want, err := image.ManagerWant(dockerfile, version, revision, base)
	if err != nil {
		return err
	}

	reg := image.StartRegistry()
	defer reg.Close()
	baseRef, err := reg.Push(baseRepository, baseTag, base)
	if err != nil {
		return err
	}
	log.Printf("stand-in base %s in the local registry", baseRef)

	start := time.Now()
	printed, err := runKo(command, append(os.Environ(),
		"KO_DEFAULTBASEIMAGE="+baseRef.String(),
		"KO_DOCKER_REPO="+reg.Host+"/"+repository,
		"VERSION="+version,
	))
	if err != nil {
		return err
	}
	log.Printf("%s built and pushed %s in %s", command[0], printed, time.Since(start).Round(time.Second))

	pushed, err := reg.Index(printed)
	if err != nil {
		return err
	}
	if err := checkPushed(reg, printed, version); err != nil {
		return err
	}
	if err := image.WriteArchive(out, pushed, tag); err != nil {
		return err
	}

	// Check the file written, not what is in memory: it is what a user of the tarball has.
	dir, err := os.MkdirTemp("", "manager-image-check-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	idx, err := image.ReadArchive(out, dir)
	if err != nil {
		return err
	}
	report, err := image.Check(idx, want)
	for _, line := range report {
		log.Print(line)
	}
	if err != nil {
		return fmt.Errorf("%s is not the image it should be:\n%w", out, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	log.Printf("labels checked: %s", strings.Join(sortedPairs(want.Labels), " "))
	log.Printf("wrote %s (%d MiB): %s@%s, an OCI image layout", out, st.Size()>>20, tag, digest)
	return nil
}

// runKo runs the ko command with env and returns the reference it prints last on stdout:
// the image it pushed, by digest. Its log (stderr) is passed through.
func runKo(command, env []string) (string, error) {
	var stdout bytes.Buffer
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = env
	cmd.Stdout = io.MultiWriter(&stdout, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(command, " "), err)
	}
	var last string
	for s := bufio.NewScanner(&stdout); s.Scan(); {
		if line := strings.TrimSpace(s.Text()); line != "" {
			last = line
		}
	}
	if last == "" {
		return "", errors.New("ko printed no image reference")
	}
	return last, nil
}

// checkPushed checks what the release's flags do in the registry besides the index: the
// version tag (--tags) names the index, and an SBOM (--sbom spdx) is attached to it.
func checkPushed(reg *image.Registry, printed, version string) error {
	d, err := name.NewDigest(printed)
	if err != nil {
		return fmt.Errorf("ko printed %q, not a reference by digest: %w", printed, err)
	}
	tags, err := reg.Tags(repository)
	if err != nil {
		return err
	}
	sbom := strings.Replace(d.DigestStr(), ":", "-", 1) + ".sbom"
	if !slices.Contains(tags, sbom) {
		return fmt.Errorf("no SBOM of the index (tag %s) in %s; tags: %v", sbom, repository, tags)
	}
	tagged, err := reg.Index(reg.Host + "/" + repository + ":" + version)
	if err != nil {
		return fmt.Errorf("tag %s: %w", version, err)
	}
	if got, err := tagged.Digest(); err != nil || got.String() != d.DigestStr() {
		return fmt.Errorf("tag %s is %v (%v), not the index ko printed, %s", version, got, err, d.DigestStr())
	}
	return nil
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
