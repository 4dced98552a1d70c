// Package harness runs a real containerd with its CRI plugin for the
// end-to-end tests and `make demo`: containerd 1.6 (Debian's package) and
// containerd 2.4 (built by hack/install-test-deps.sh), each in a private
// temp dir with its own root, state, socket, CNI bridge network and offline
// busybox images, and pods created through the CRI the way the kubelet
// creates them.
//
// It is a plain library that returns errors, so a demo program can use it
// too. It needs root; Require skips a test when that or a binary is missing
// (CRI_ENRICHERD_E2E=1 makes it fail instead).
//
// # Cleanup
//
// Always `defer rt.Close()` right after Start succeeds: Close removes every
// pod (also ones made through Client), stops containerd, kills leftover
// shims and container processes (found through the pod cgroups, so it works
// after Kill), lazily unmounts everything under the temp dir, removes the
// pods' network namespaces, cgroups in every hierarchy, libcni cache files,
// shim sockets and the bridge, then the temp dir. It is idempotent and
// Leftovers lists anything that survived it. containerd runs in its own
// process group, so a terminal Ctrl-C reaches only the program: a demo
// should turn SIGINT into context cancellation (signal.NotifyContext) and let
// its deferred Close run. A test binary killed outright (go test -timeout,
// SIGKILL) cannot clean up; its leftovers are named after its temp dir
// (crie-<variant>-*) and the pod cgroups below /kubepods/burstable.
// The shared parents /kubepods and /kubepods/burstable are left in place, as
// on any node.
//
// # Where things land on this host (measured, containerd 1.6.20 and 2.4.2
// with runc 1.1.5, cgroupfs driver)
//
// The host is hybrid: v1 controllers under /sys/fs/cgroup/<controller>
// (cpu and cpuacct mounted separately), name=systemd at
// /sys/fs/cgroup/systemd and the v2 tree at /sys/fs/cgroup/unified. With the
// default cgroup parent /kubepods/burstable/pod<uid>, runc creates the same
// relative path in every hierarchy, for containers and the sandbox alike:
//
//	/sys/fs/cgroup/unified/kubepods/burstable/pod<uid>/<64-hex container id>
//	/sys/fs/cgroup/<controller>/kubepods/burstable/pod<uid>/<64-hex id>   (cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids)
//	/sys/fs/cgroup/systemd/kubepods/burstable/pod<uid>/<64-hex id>
//
// and /proc/<pid>/cgroup of a container process shows that path on every
// line (`0::/kubepods/...` and `4:memory:/kubepods/...`). The pod
// directory stays after its containers are removed; RemovePod and Close
// delete it, as the kubelet would.
//
// Network namespaces: containerd 1.6 bind-mounts them at
// /var/run/netns/cni-<uuid>; for 2.4 the harness sets
// netns_mounts_under_state_dir, so they sit under the temp dir
// (<state>/io.containerd.grpc.v1.cri/netns/cni-<uuid>). Pod IPs come from
// 10.223.<slot>.0/24 on bridge crien<slot>, a slot per live Runtime held by
// a flock under /run/cri-enricherd-test; no packet is ever sent to them.
package harness
