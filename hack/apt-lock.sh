# apt-lock.sh, sourced by the install scripts: apt_locked runs apt-get under
# one lock that all of them share (and waits for dpkg's own lock too), so
# `make test` can install the runtimes in the background while the tests
# that need none install promtool and buildah beside it.
apt_locked() {
	flock -w 900 /run/lock/cri-enricherd-apt.lock \
		apt-get -o DPkg::Lock::Timeout=300 "$@"
}
