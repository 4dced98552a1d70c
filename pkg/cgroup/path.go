package cgroup

import (
	"strings"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// The runtimes a cgroup name can point to. A bare ID says nothing about the
// runtime (containerd's and dockerd's cgroupfs drivers both use it), so its
// Runtime is empty.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
	RuntimeNerdctl    = "nerdctl"
)

// Ref is what a cgroup path says about a container.
type Ref struct {
	// ContainerID is the full 64-character lowercase hex ID.
	ContainerID string
	// PodUID is the pod's UID in its dashed form, or "" when the container's
	// parent cgroup is not a pod cgroup.
	PodUID string
	// Runtime is one of the Runtime constants, or "" when the cgroup name is
	// a bare ID (the cgroupfs driver of containerd).
	Runtime string
}

// ParsePath reports the container a cgroup path belongs to. It accepts the
// cgroupfs and systemd layouts of containerd, CRI-O, cri-dockerd, podman and
// nerdctl under any prefix, and paths below a container's cgroup. It does
// not allocate except to turn a systemd pod slice's underscores into dashes.
func ParsePath(path string) (Ref, bool) {
	_, ref, ok := ContainerPath(path)
	return ref, ok
}

// ContainerPath is ParsePath that also returns the container-level prefix of
// path: the path up to and including the element naming the container. A
// watcher compares it with the path itself to tell a container's cgroup
// from a cgroup nested inside it.
func ContainerPath(path string) (string, Ref, bool) {
	end := len(path)
	for end > 0 {
		end = trimSlashes(path, end)
		start := strings.LastIndexByte(path[:end], '/') + 1
		if id, runtime, ok := parseContainerName(path[start:end]); ok {
			ref := Ref{ContainerID: id, PodUID: podUIDOf(path[:start]), Runtime: runtime}
			return path[:end], ref, true
		}
		end = start
	}
	return "", Ref{}, false
}

// trimSlashes moves end back over trailing slashes of path[:end].
func trimSlashes(path string, end int) int {
	for end > 0 && path[end-1] == '/' {
		end--
	}
	return end
}

// parseContainerName reads one path element as a container cgroup name:
// a bare ID or "<prefix>-<id>" with an optional ".scope" suffix.
func parseContainerName(name string) (containerID, runtime string, ok bool) {
	if len(name) == id.Len {
		return name, "", id.IsFull(name)
	}
	name = strings.TrimSuffix(name, ".scope")
	if len(name) <= id.Len {
		return "", "", false
	}
	prefix, cid := name[:len(name)-id.Len], name[len(name)-id.Len:]
	runtime = runtimeOfPrefix(prefix)
	if runtime == "" || !id.IsFull(cid) {
		return "", "", false
	}
	return cid, runtime, true
}

// runtimeOfPrefix maps a cgroup name prefix to its runtime. CRI-O's monitor
// scope ("crio-conmon-<id>.scope") and podman's ("libpod-conmon-") do not
// match because "conmon-" is part of their prefix.
func runtimeOfPrefix(prefix string) string {
	switch prefix {
	case "cri-containerd-":
		return RuntimeContainerd
	case "crio-":
		return RuntimeCRIO
	case "docker-":
		return RuntimeDocker
	case "libpod-":
		return RuntimePodman
	case "nerdctl-":
		return RuntimeNerdctl
	}
	return ""
}

// podUIDOf reads the pod UID from the last element of parent, the cgroup
// that holds a container: "pod<uid>" (cgroupfs) or
// "kubepods-<qos>-pod<uid_>.slice" (systemd).
func podUIDOf(parent string) string {
	end := trimSlashes(parent, len(parent))
	elem := parent[strings.LastIndexByte(parent[:end], '/')+1 : end]
	if slice, ok := strings.CutSuffix(elem, ".slice"); ok {
		uid, ok := strings.CutPrefix(slice[strings.LastIndexByte(slice, '-')+1:], "pod")
		if !ok || !isPodUID(uid, '_') {
			return ""
		}
		return strings.ReplaceAll(uid, "_", "-")
	}
	uid, ok := strings.CutPrefix(elem, "pod")
	if !ok || !isPodUID(uid, '-') {
		return ""
	}
	return uid
}

// isPodUID accepts a UUID whose groups are joined by sep, or the 32 hex
// digits the kubelet uses as the UID of a static pod.
func isPodUID(s string, sep byte) bool {
	switch len(s) {
	case 32:
		return isHexExcept(s, 0)
	case 36:
		return s[8] == sep && s[13] == sep && s[18] == sep && s[23] == sep && isHexExcept(s, sep)
	}
	return false
}

// isHexExcept reports whether every byte of s is lowercase hex or sep.
func isHexExcept(s string, sep byte) bool {
	for i := range len(s) {
		if s[i] != sep && !id.IsHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// ExpandSystemdPath turns a runtime spec's linux.cgroupsPath in the systemd
// driver's "slice:prefix:name" form into the cgroup path it denotes:
//
//	kubepods-burstable-pod<uid_>.slice:cri-containerd:<id>
//	-> /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//
// Each dash in a slice name opens a nested slice; "-.slice" is the root and
// an empty slice means "system.slice", as in runc. A path starting with "/"
// (the cgroupfs form) and anything malformed are returned unchanged.
func ExpandSystemdPath(p string) string {
	if p == "" || p[0] == '/' {
		return p
	}
	slice, prefix, name, ok := splitSystemdPath(p)
	if !ok {
		return p
	}
	dir, ok := expandSlice(slice)
	if !ok {
		return p
	}
	return dir + "/" + unitName(prefix, name)
}

// splitSystemdPath splits "slice:prefix:name" into its three parts.
func splitSystemdPath(p string) (slice, prefix, name string, ok bool) {
	slice, rest, ok := strings.Cut(p, ":")
	if !ok {
		return "", "", "", false
	}
	prefix, name, ok = strings.Cut(rest, ":")
	if !ok || name == "" || strings.ContainsAny(name, ":/") || strings.Contains(prefix, "/") {
		return "", "", "", false
	}
	return slice, prefix, name, true
}

// expandSlice maps a slice unit to its cgroup directory, without a trailing
// slash ("" for the root slice).
func expandSlice(slice string) (string, bool) {
	switch slice {
	case "":
		slice = "system.slice"
	case "-.slice":
		return "", true
	}
	base, ok := strings.CutSuffix(slice, ".slice")
	if !ok || base == "" || strings.Contains(base, "/") || base[0] == '-' ||
		base[len(base)-1] == '-' || strings.Contains(base, "--") {
		return "", false
	}
	var b strings.Builder
	for i := range len(base) {
		if base[i] == '-' {
			b.WriteString("/" + base[:i] + ".slice")
		}
	}
	b.WriteString("/" + slice)
	return b.String(), true
}

// unitName names the systemd unit a container runs in: a scope, unless the
// name is itself a slice.
func unitName(prefix, name string) string {
	switch {
	case strings.HasSuffix(name, ".slice"):
		return name
	case prefix == "":
		return name + ".scope"
	}
	return prefix + "-" + name + ".scope"
}
