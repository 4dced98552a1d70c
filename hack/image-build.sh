#!/usr/bin/env bash
# image-build.sh builds the container image from Dockerfile (make image).
# It uses docker or podman when one is installed and answers, else buildah
# (installed from Debian when missing) with the vfs storage driver and
# chroot isolation, which need neither a daemon nor overlayfs.
#
# Environment:
#   IMAGE           repository (default cri-enricherd/cri-enricherd)
#   IMAGE_TAG       tag (default $VERSION)
#   VERSION         stamped into the OCI version label (default dev)
#   REVISION        commit, for the OCI revision label (default unknown)
#   CONTAINER_TOOL  docker, podman or buildah, to skip the detection
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image-build: $*" >&2; }

version=${VERSION:-dev}
image=${IMAGE:-cri-enricherd/cri-enricherd}:${IMAGE_TAG:-$version}
if [[ ! -x bin/cri-enricherd ]]; then
	log "bin/cri-enricherd is missing: run make build first"
	exit 1
fi

tool=${CONTAINER_TOOL:-}
if [[ -z $tool ]]; then
	for candidate in docker podman; do
		if command -v "$candidate" >/dev/null 2>&1 && timeout 20 "$candidate" info >/dev/null 2>&1; then
			tool=$candidate
			break
		fi
	done
fi
tool=${tool:-buildah}

args=(--build-arg "VERSION=$version" --build-arg "REVISION=${REVISION:-unknown}" -f Dockerfile -t "$image")
case $tool in
docker | podman)
	"$tool" build "${args[@]}" .
	;;
buildah)
	bash hack/install-buildah.sh
	buildah --storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}" bud --isolation chroot "${args[@]}" .
	;;
*)
	log "unknown CONTAINER_TOOL $tool (want docker, podman or buildah)"
	exit 1
	;;
esac
log "built $image with $tool"
