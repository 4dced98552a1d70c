#!/usr/bin/env bash
# install-promtool.sh installs promtool, which the metrics tests run on the
# daemon's exposition (`promtool check metrics`). It comes from Debian's
# prometheus package; the Prometheus server in that package is never wanted,
# so the script makes sure none is left running.
#
# It is idempotent and quiet when promtool is already on PATH. Without root it
# cannot install: it says so and exits 0, and the tests that need promtool
# skip (or fail, with CRI_ENRICHERD_E2E=1).
set -euo pipefail
# shellcheck source=hack/apt-lock.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-lock.sh"

log() { echo "install-promtool: $*" >&2; }

command -v promtool >/dev/null 2>&1 && exit 0
if [[ $(id -u) -ne 0 ]]; then
	log "promtool is missing and installing it needs root; its tests will skip"
	exit 0
fi

log "apt-get install prometheus (for promtool)"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit code 101 tells invoke-rc.d not to start the server the
# package ships; an existing policy is kept as it is.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	own_policy=1
fi
trap '[[ $own_policy -eq 1 ]] && rm -f "$policy"' EXIT
apt_locked update -qq >/dev/null
apt_locked install -y -qq --no-install-recommends prometheus >/dev/null

# Where a service manager ignored the policy, stop the server it started.
if [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
	log "stopping the prometheus server the package started"
	/etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null 2>&1 || { log "promtool still missing after install"; exit 1; }
