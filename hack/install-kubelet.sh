#!/usr/bin/env bash
# install-kubelet.sh builds a real kubelet from the Go module proxy for the
# kubelet end-to-end tests (test/harness kubelet mode, test/e2e kubelet tests).
#
# `go install k8s.io/kubernetes/cmd/kubelet@VERSION` is refused because
# k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api,
# k8s.io/client-go, ...) with local directories and requires them at v0.0.0.
# A throwaway wrapper module fixes that: it requires k8s.io/kubernetes and
# replaces each k8s.io/* module that kubernetes requires at v0.0.0 with its
# published release (v0.<minor>.<patch>). The list is read from kubernetes's
# own go.mod, so it follows the version.
#
# Usage: install-kubelet.sh DIR   (builds DIR/kubelet; idempotent)
set -euo pipefail

KUBELET_VERSION=${KUBELET_VERSION:-v1.34.4}
dir=${1:?usage: install-kubelet.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin=$dir/kubelet

log() { echo "install-kubelet: $*" >&2; }

if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "Kubernetes $KUBELET_VERSION"; then
	exit 0
fi
log "building kubelet $KUBELET_VERSION into $dir (about ten minutes cold on 2 cores)"
work=$(mktemp -d)
out=$work/build.log
# Go's chatter is shown only when the build fails. The trap may run while
# the build's redirection is in effect, so it writes to a copy of stderr.
exec 3>&2
trap 'rc=$?; if [[ $rc -ne 0 ]]; then cat "$out" >&3; echo "install-kubelet: build failed" >&3; fi; rm -rf "$work"' EXIT
staging=v0.${KUBELET_VERSION#v1.}
rm -f "$bin.tmp"
{
	cd "$work"
	export GOFLAGS=-mod=mod GOWORK=off
	go mod init cri-enricherd.test/kubelet-build
	# On failure the JSON holds the reason in its Error field.
	info=$(go mod download -json "k8s.io/kubernetes@$KUBELET_VERSION") || { echo "$info"; exit 1; }
	mod=$(sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p' <<<"$info")
	# Every k8s.io/* requirement at exactly v0.0.0 is a staging module.
	for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$mod"); do
		go mod edit -replace "$m=$m@$staging"
	done
	go mod edit -require "k8s.io/kubernetes@$KUBELET_VERSION"
	go get "k8s.io/kubernetes/cmd/kubelet@$KUBELET_VERSION"
	ver=k8s.io/component-base/version
	CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" -ldflags "-s -w \
		-X $ver.gitVersion=$KUBELET_VERSION -X $ver.gitMajor=1 \
		-X $ver.gitMinor=$(echo "$KUBELET_VERSION" | cut -d. -f2) \
		-X $ver.gitTreeState=clean -X $ver.buildDate=1970-01-01T00:00:00Z" \
		k8s.io/kubernetes/cmd/kubelet
} >"$out" 2>&1
"$bin.tmp" --version | grep -qx "Kubernetes $KUBELET_VERSION"
mv "$bin.tmp" "$bin"
log "built $("$bin" --version) in ${SECONDS}s"
