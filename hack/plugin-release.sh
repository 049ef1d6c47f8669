#!/usr/bin/env bash
# plugin-release.sh VERSION DIST builds the kubectl plugin (cmd/kubectl-segments) for each
# platform krew serves into DIST, one archive each (the binary and LICENSE), and writes the
# krew plugin manifest DIST/segments.yaml with their addresses and SHA-256 digests.
#
# PLATFORMS (default: linux and darwin, amd64 and arm64) and RELEASE_URL (where the
# archives are downloaded from; default: the GitHub release of VERSION) may be set.
set -euo pipefail

version=${1:?usage: plugin-release.sh VERSION DIST}
dist=${2:?usage: plugin-release.sh VERSION DIST}
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
url=${RELEASE_URL:-https://github.com/segment-operator/segment-operator/releases/download/$version}
root=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

entries=
for platform in $platforms; do
  os=${platform%/*} arch=${platform#*/}
  archive=kubectl-segments_${version}_${os}_${arch}.tar.gz
  mkdir -p "$work/$os-$arch"
  (cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
    -ldflags "-s -w -X github.com/segment-operator/segment-operator/internal/version.Version=$version" \
    -o "$work/$os-$arch/kubectl-segments" ./cmd/kubectl-segments)
  cp "$root/LICENSE" "$work/$os-$arch/"
  # Reproducible: fixed order, owner and times.
  tar -C "$work/$os-$arch" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -cf - kubectl-segments LICENSE | gzip -n > "$dist/$archive"
  sha=$(sha256sum "$dist/$archive" | cut -d' ' -f1)
  entries+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url/$archive
    sha256: $sha
    bin: kubectl-segments
    files:
    - from: kubectl-segments
      to: .
    - from: LICENSE
      to: .
"
done

cat > "$dist/segments.yaml" <<MANIFEST
# The krew plugin manifest of kubectl segments $version: kubectl krew install --manifest=segments.yaml
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: segments
spec:
  version: $version
  homepage: https://github.com/segment-operator/segment-operator
  shortDescription: Bring a ChatBot account into Git and preview Segment changes
  description: |
    kubectl segments works with the Segments of segment-operator, which manages
    ChatBot.com user segments. export writes Segment manifests that adopt an
    account's existing segments; plan shows what applying Segment manifests will do
    in ChatBot (create, adopt, rename, add members, conflicts, admission refusals);
    status explains one Segment. It never writes to ChatBot, and writes to the
    cluster only server-side dry runs.
  platforms:
${entries%$'\n'}
MANIFEST
echo "$dist: kubectl-segments for $platforms, and segments.yaml (krew)"
