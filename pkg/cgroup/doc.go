// Package cgroup owns everything cri-enricherd learns from the cgroup
// filesystem without asking the runtime: what a cgroup path says about a
// container (ParsePath, ExpandSystemdPath), which container a process lives
// in (ParseProcCgroup, ProcResolver), which hierarchy of the host to look at
// (DetectHierarchy), and which container cgroups come and go (Watcher).
//
// It is a source: it reports container IDs and cgroup paths and never talks
// to the CRI runtime. Host paths (/proc, /sys/fs/cgroup, or their /host/...
// mounts inside the DaemonSet) are passed in by the caller.
//
// A path is read as the kernel shows it in /proc/<pid>/cgroup: relative to
// the hierarchy root and starting with "/". The container is the last path
// element that names one, so a process in a sub-cgroup of a container
// (".../cri-containerd-<id>.scope/init.scope") still resolves to that
// container, and a pod inside a nested node (kind, k3s in docker) resolves
// to the innermost container. A pod sandbox (pause container) has a cgroup
// of the same shape as its pod's containers and is reported like one; only
// the runtime can tell the two apart.
package cgroup
