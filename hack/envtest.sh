#!/usr/bin/env bash
# envtest.sh builds the envtest control plane (kube-apiserver and etcd) and kubectl from the
# Go module proxy and prints the directory that holds them, for KUBEBUILDER_ASSETS.
#
# setup-envtest downloads prebuilt binaries from a bucket that is not reachable from every
# machine (ours included), so both binaries are compiled from source instead. The versions
# and every dependency are pinned by the go.mod/go.sum files under hack/envtest/. The result
# is cached: a second call returns at once. A cold build takes 5-8 minutes on 2 cores.
#
# Usage: hack/envtest.sh <bin-dir>     (prints <bin-dir>/k8s/<version>-<os>-<arch>)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bindir=${1:-$root/bin}
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)

k8s_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/envtest/kube-apiserver/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$root/hack/envtest/etcd/go.mod")
: "${k8s_version:?cannot read the k8s.io/kubernetes version from hack/envtest/kube-apiserver/go.mod}"
: "${etcd_version:?cannot read the etcd version from hack/envtest/etcd/go.mod}"

out="$bindir/k8s/${k8s_version#v}-$(go env GOOS)-$(go env GOARCH)"
stamp="$out/.built-from"
# "version-stamped": binaries built before the version ldflags below said v0.0.0-master.
want="kube-apiserver $k8s_version, kubectl $k8s_version, version-stamped, etcd $etcd_version"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -x "$out/kubectl" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$out"
log() { echo "envtest: $*" >&2; }

# The version Kubernetes' own build stamps (hack/lib/version.sh): without it the server says
# v0.0.0-master+$Format:%H$, which `kubectl version` and other version checks cannot parse.
# The build is from a pinned module, not a git tree: no commit is stamped, and the date is
# left at its default (the epoch) so that the binary is reproducible.
version_ldflags=()
if [[ $k8s_version =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_ldflags+=(
      "-X $pkg.gitVersion=$k8s_version"
      "-X $pkg.gitMajor=${BASH_REMATCH[1]}"
      "-X $pkg.gitMinor=${BASH_REMATCH[2]}"
      "-X $pkg.gitCommit="
      "-X $pkg.gitTreeState=clean"
    )
  done
else
  log "cannot read a version vX.Y.Z from $k8s_version"; exit 1
fi

build() { # build <module dir> <package> <output>
  local dir=$1 pkg=$2 dst=$3
  log "building $pkg (cached afterwards; a cold build takes minutes)"
  # -mod=readonly: go.sum is the pin; a missing or changed hash is an error, never an update.
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
    -ldflags="-s -w ${version_ldflags[*]}" -o "$dst.tmp" "$pkg")
  mv "$dst.tmp" "$dst"
}

[[ -x "$out/etcd" && -f "$stamp" ]] && grep -q "etcd $etcd_version" "$stamp" ||
  build "$root/hack/envtest/etcd" go.etcd.io/etcd/server/v3 "$out/etcd"
build "$root/hack/envtest/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$out/kube-apiserver"
build "$root/hack/envtest/kube-apiserver" k8s.io/kubernetes/cmd/kubectl "$out/kubectl"
echo "$want" > "$stamp"
log "built $want into $out"
echo "$out"
