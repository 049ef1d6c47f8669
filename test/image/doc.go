// Package image checks the manager image that ko builds from .ko.yaml, here, with no Docker
// and no registry on the network.
//
//   - The stand-in base (StandInBase) takes the place of gcr.io/distroless/static:nonroot,
//     which cannot be pulled here: a multi-platform index with distroless's user (65532),
//     one more platform than the manager is built for, and a layer of its own per platform.
//   - The local registry (StartRegistry) is go-containerregistry's in-memory registry on
//     127.0.0.1. ko pulls the stand-in from it (KO_DEFAULTBASEIMAGE) and pushes the image
//     to it (KO_DOCKER_REPO), with the release's flags (the Makefile's KO_BUILD_FLAGS).
//   - Check reads the image back: the manager's platforms and no other, each on its own
//     platform's base, the base's user, /ko-app/cmd as the entrypoint and executable by that
//     user, the Dockerfile's OCI labels, a static binary of ./cmd and the version stamped
//     into it (`--version`, for the host's platform).
//
// `make image-tarball` does all this (hack/image) and writes the image as an OCI image
// layout in a tar archive (WriteArchive). image_test.go runs that target, checks the archive
// it wrote, then breaks the image one way at a time to show that each check catches what it
// is for.
//
// What it cannot show: that the real distroless image is what the stand-in says it is, that
// the image starts under a container runtime, and the release's push to ghcr.io and cosign
// signature.
package image
