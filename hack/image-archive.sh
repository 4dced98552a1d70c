#!/usr/bin/env bash
# image-archive.sh builds the container image from Dockerfile with buildah in
# a throwaway store and writes it as an OCI archive that `ctr images import`
# (or any OCI tool) reads, without touching the host's image storage. The
# chart-as-pod test imports it into its own containerd.
#
# Usage: image-archive.sh OUT.tar IMAGE-NAME
#   IMAGE-NAME is the full reference the archive names the image, e.g.
#   cri-enricherd.test/cri-enricherd:dev (no registry is ever contacted).
# Environment: VERSION, REVISION as for make image.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: image-archive.sh OUT.tar IMAGE-NAME}
name=${2:?usage: image-archive.sh OUT.tar IMAGE-NAME}
[[ -x bin/cri-enricherd ]] || { echo "image-archive: bin/cri-enricherd is missing: run make build first" >&2; exit 1; }
bash hack/install-buildah.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/cri-enricherd-image-archive.XXXXXX")
b() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
	b rmi --all --force >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

context=$work/context
mkdir -p "$context/bin"
cp Dockerfile .dockerignore "$context/"
cp bin/cri-enricherd "$context/bin/cri-enricherd"
b bud --quiet --isolation chroot -f "$context/Dockerfile" -t "$name" \
	--build-arg "VERSION=${VERSION:-dev}" --build-arg "REVISION=${REVISION:-unknown}" "$context" >/dev/null
rm -f "$out"
b push --quiet "$name" "oci-archive:$out:$name" >/dev/null
