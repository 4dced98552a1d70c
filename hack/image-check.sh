#!/usr/bin/env bash
# image-check.sh proves the container image works (make image-check). It
# builds Dockerfile with buildah into a throwaway store (vfs driver, chroot
# isolation: no daemon, no overlayfs, and no registry since the base is
# scratch), then checks that
#   - the entrypoint is exec-form ["/cri-enricherd"] and the user is 0:0,
#   - every OCI label is set and the version label is $VERSION,
#   - the root filesystem holds the binary and nothing else, byte for byte
#     the one `make build` produced,
#   - the binary runs inside the image's empty root and prints
#     "cri-enricherd $VERSION" for --version (so it is truly static).
# Everything it created is removed on exit.
#
# Environment:
#   VERSION   the version bin/cri-enricherd was built with (default dev)
#   REVISION  commit, for the OCI revision label (default unknown)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "image-check: $*" >&2; }
fail() {
	log "FAIL: $*"
	exit 1
}

bin=bin/cri-enricherd
version=${VERSION:-dev}
[[ -x $bin ]] || fail "$bin is missing: run make build first"
bash hack/install-buildah.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/cri-enricherd-image-check.XXXXXX")
b() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
	b rm --all >/dev/null 2>&1 || true
	b rmi --all --force >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# Build from a snapshot of the context, so a concurrent `make build` cannot
# swap the binary between the build and the comparison below.
context=$work/context
mkdir -p "$context/bin"
cp Dockerfile .dockerignore "$context/"
cp "$bin" "$context/bin/cri-enricherd"
bin=$context/bin/cri-enricherd

image=cri-enricherd/cri-enricherd:image-check
b bud --quiet --isolation chroot -f "$context/Dockerfile" -t "$image" \
	--build-arg "VERSION=$version" --build-arg "REVISION=${REVISION:-unknown}" "$context" >/dev/null

inspect() { b inspect --type image --format "$1" "$image"; }
# buildah's --format has no json function; Docker's own config keeps the
# exec form visible as a Go slice.
entrypoint=$(inspect '{{.OCIv1.Config.Entrypoint}}')
docker_entrypoint=$(inspect '{{.Docker.Config.Entrypoint}}')
[[ $entrypoint == '[/cri-enricherd]' && $docker_entrypoint == '[/cri-enricherd]' ]] ||
	fail "entrypoint is $entrypoint, want exec-form [\"/cri-enricherd\"]"
user=$(inspect '{{.OCIv1.Config.User}}')
[[ $user == 0:0 ]] || fail "user is '$user', want 0:0"
for label in title description source version revision licenses; do
	value=$(inspect "{{index .OCIv1.Config.Labels \"org.opencontainers.image.$label\"}}")
	[[ -n $value ]] || fail "label org.opencontainers.image.$label is not set"
done
label_version=$(inspect '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}')
[[ $label_version == "$version" ]] || fail "version label is $label_version, want $version"

container=$(b from --quiet "$image")
root=$(b mount "$container")
files=$(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')
[[ $files == "./cri-enricherd " ]] || fail "image root holds $files, want ./cri-enricherd alone"
cmp -s "$root/cri-enricherd" "$bin" || fail "/cri-enricherd in the image differs from $bin"
b umount "$container" >/dev/null

out=$(b run --isolation chroot "$container" -- /cri-enricherd --version)
[[ $out == "cri-enricherd $version" ]] || fail "--version printed '$out', want 'cri-enricherd $version'"
log "ok: $image runs ($out), entrypoint $entrypoint, user $user, OCI labels set"
