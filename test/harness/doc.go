// Package harness runs a real containerd with its CRI plugin for the
// end-to-end tests and `make demo`: containerd 1.6 (Debian's package) and
// containerd 2.4 (built by hack/install-test-deps.sh), each in a private
// temp dir with its own root, state, socket, CNI bridge network and offline
// busybox images, and pods created through the CRI the way the kubelet
// creates them, or by a real kubelet (see Kubelet mode below).
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
// a flock under /run/cri-enricherd-test. No packet is sent to them unless
// Options.HostReachable gives the bridge the subnet's first address (the
// harness makes the bridge itself: the CNI plugin's isGateway would also
// switch on the host's ip_forward); then only the host reaches the pods.
//
// # Kubelet mode
//
// StartKubelet runs a real kubelet (v1.34.4, built by hack/install-kubelet.sh
// from `make deps`, found through EnvKubelet) standalone on a Runtime: no API
// server, static pods from a manifest dir (ApplyPod, DeletePod), its own view
// of them from its read-only port's /pods (Pods, WaitPod). The runtime
// becomes the kubelet's: the kubelet stops any pod it did not make, RunPod's
// included. It runs on both variants, measured here: containerd 2.4.2, and
// containerd 1.6.20, where the kubelet logs that RuntimeConfig is
// Unimplemented and falls back to the cgroupDriver of its config (cgroupfs,
// what the runtime uses); nothing else differs. On this kind of machine the
// kubelet is healthy about 0.5 s after it starts and runs its first static
// pod about 1 s later (3 to 5 s in all while a build competes for the CPUs).
//
// A kubelet does not leave a host alone by itself; this one is kept off
// everything shared:
//   - cgroupRoot is /crie-kubelet-<slot>, made in every hierarchy before it
//     starts. With the default "/" its orphan cleanup kills every
//     /kubepods/*/pod* cgroup on the host, other tests' pods included.
//   - It runs in a private mount namespace (`unshare --mount --propagation
//     private` and a script that mounts, then execs the kubelet; a failed
//     mount stops it before the kubelet starts). There the sysctls it
//     rewrites (vm.overcommit_memory, vm.panic_on_oom, kernel.panic,
//     kernel.panic_on_oops, kernel.keys.root_maxkeys and root_maxbytes) are
//     files of its temp dir, and each host path it uses whatever --root-dir
//     says (/var/lib/kubelet/device-plugins, /var/log/containers,
//     /usr/libexec/kubernetes) is an empty dir of its temp dir when it
//     exists, else an overlay over its nearest existing parent whose writes
//     land in the temp dir, so the path is never made on the host.
//   - --root-dir, --cert-dir, staticPodPath, podLogsDir and volumePluginDir
//     are in its temp dir (below the runtime's dir), its listeners on
//     127.0.0.1, and makeIPTablesUtilChains is off, so it adds no iptables
//     chains.
//
// Files the kubelet writes below its root dir stay visible to containerd,
// which runs in the host's namespace: containers' /etc/hosts and
// /dev/termination-log come from RootDir()/pods/<uid>/. The kubelet's bind
// of its root dir onto itself stays in its namespace. That namespace holds
// copies of the host mounts that existed when it started (the host has no
// shared mounts to propagate), so a mount another test unmounts meanwhile
// lives on in it, unseen by the host, until the kubelet exits.
//
// Kubelet.Close (and Runtime.Close, which closes the runtime's kubelet)
// stops it, kills the processes of its namespace, removes every pod through
// the CRI (the kubelet does not stop pods when it stops), the pods' processes
// through its cgroup root, the cgroup root in every hierarchy, and its temp
// dir; after Runtime.Kill the runtime's Close finds the pods' cgroups and
// network namespaces in containerd's task bundles instead. SnapshotHost and
// HostSnapshot.Diff let a test prove the host is as it was: cgroups,
// interfaces, mounts, network namespaces, CNI results, kubelet, containerd
// and shim processes, iptables chains, those sysctls and host paths, with
// what other tests' live runtimes hold excused. A test binary killed
// outright leaves its kubelet running, like its containerd (its command line
// names the crie-* dir); the next kubelet on that slot kills what is left in
// the stale cgroup root and removes it.
package harness
