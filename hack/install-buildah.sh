#!/usr/bin/env bash
# install-buildah.sh installs buildah from Debian when it is missing, for
# `make image` (when neither docker nor podman answers) and `make image-check`.
# It is quiet when buildah is already there; apt's output is shown only when
# the install fails.
set -euo pipefail
# shellcheck source=hack/apt-lock.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lock.sh"
command -v buildah >/dev/null 2>&1 && exit 0
echo "install-buildah: apt-get install buildah" >&2
export DEBIAN_FRONTEND=noninteractive
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! { apt_locked update -qq && apt_locked install -y -qq --no-install-recommends buildah; } >"$out" 2>&1; then
	cat "$out" >&2
	exit 1
fi
buildah version >/dev/null
