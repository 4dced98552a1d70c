#!/usr/bin/env bash
# install-test-deps.sh installs what the real-runtime tests (test/harness,
# test/e2e, make demo) need: containerd 1.6 from Debian, containerd 2.4.2 and
# its shim built from the Go module proxy, runc, the CNI plugins, a static
# busybox for the offline test images, crictl, and a kubelet built from the
# module proxy (hack/install-kubelet.sh) for the kubelet mode. iptables is
# there so the kubelet tests can prove the kubelet added no chains.
#
# It is idempotent and quiet when everything is already there; it prints one
# line for each thing it installs. At the end it writes an env file (sourceable
# shell, KEY=VALUE) telling where everything is; the Go harness reads the same
# locations by default.
#
# Environment:
#   CRI_ENRICHERD_TEST_CACHE  cache root outside the repo
#                             (default /var/cache/cri-enricherd-test)
#   CRI_ENRICHERD_TEST_ENV    env file to write (default $CACHE/env)
set -euo pipefail
# shellcheck source=hack/apt-lock.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lock.sh"

CONTAINERD2_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0
KUBELET_VERSION=v1.34.4
APT_PACKAGES=(containerd runc containernetworking-plugins busybox-static iproute2 iptables util-linux)

cache=${CRI_ENRICHERD_TEST_CACHE:-/var/cache/cri-enricherd-test}
bin_dir=$cache/bin
containerd2_dir=$bin_dir/containerd-${CONTAINERD2_VERSION#v}
kubelet_dir=$bin_dir/kubelet-${KUBELET_VERSION#v}
env_file=${CRI_ENRICHERD_TEST_ENV:-$cache/env}

log() { echo "install-test-deps: $*" >&2; }

install_apt_packages() {
	local missing=() pkg
	for pkg in "${APT_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt_locked update -qq >/dev/null
	apt_locked install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian's containerd package enables a system containerd; the tests run
	# their own instances and never talk to it, so it may stay as it is.
}

# go_install_into DIR PKG... builds Go commands into DIR from a scratch
# directory so the repo's go.mod plays no part. Go's download chatter is
# shown only when the build fails.
go_install_into() {
	local dir=$1 work out
	shift
	mkdir -p "$dir"
	work=$(mktemp -d)
	out=$work/go-install.log
	if ! (cd "$work" && GOBIN=$dir GOFLAGS=-buildvcs=false go install "$@") >"$out" 2>&1; then
		cat "$out" >&2
		rm -rf "$work"
		return 1
	fi
	rm -rf "$work"
}

install_containerd2() {
	if [[ -x $containerd2_dir/containerd && -x $containerd2_dir/containerd-shim-runc-v2 ]]; then
		return 0
	fi
	log "building containerd $CONTAINERD2_VERSION into $containerd2_dir (about two minutes)"
	go_install_into "$containerd2_dir" -tags "no_btrfs no_devmapper no_zfs" \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD2_VERSION"
}

install_crictl() {
	[[ -x $bin_dir/crictl ]] && return 0
	log "building crictl $CRICTL_VERSION into $bin_dir"
	go_install_into "$bin_dir" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

# install_kubelet skips the build when the binary reports the right version.
install_kubelet() {
	KUBELET_VERSION=$KUBELET_VERSION bash "$(dirname "${BASH_SOURCE[0]}")/install-kubelet.sh" "$kubelet_dir"
}

write_env_file() {
	local tmp
	mkdir -p "$(dirname "$env_file")"
	tmp=$(mktemp "$env_file.XXXXXX")
	cat >"$tmp" <<EOF
CRI_ENRICHERD_TEST_CONTAINERD16=$(command -v containerd)
CRI_ENRICHERD_TEST_CONTAINERD2=$containerd2_dir/containerd
CRI_ENRICHERD_TEST_CTR=$(command -v ctr)
CRI_ENRICHERD_TEST_CRICTL=$bin_dir/crictl
CRI_ENRICHERD_TEST_BUSYBOX=/bin/busybox
CRI_ENRICHERD_TEST_CNI_BIN=/usr/lib/cni
CRI_ENRICHERD_TEST_KUBELET=$kubelet_dir/kubelet
EOF
	if ! cmp -s "$tmp" "$env_file"; then
		mv "$tmp" "$env_file"
		log "wrote $env_file"
	else
		rm -f "$tmp"
	fi
}

main() {
	if [[ $(id -u) -ne 0 ]]; then
		log "must run as root (apt-get, cgroups, network namespaces)"
		exit 1
	fi
	install_apt_packages
	install_containerd2
	install_crictl
	install_kubelet
	write_env_file
}

main "$@"
