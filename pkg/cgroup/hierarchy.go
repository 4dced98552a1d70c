package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoHierarchy means no cgroup hierarchy was found under the given root.
var ErrNoHierarchy = errors.New("no cgroup hierarchy found")

// Mode is how a host mounts its cgroups.
type Mode uint8

// The cgroup modes DetectHierarchy tells apart.
const (
	// ModeV2 is a unified (cgroup v2 only) host.
	ModeV2 Mode = iota + 1
	// ModeHybrid is a host with v1 controllers and a v2 tree at "unified".
	ModeHybrid
	// ModeV1 is a host with v1 controller hierarchies only.
	ModeV1
)

var modeNames = [...]string{ModeV2: "v2", ModeHybrid: "hybrid", ModeV1: "v1"}

// String returns "v2", "hybrid" or "v1", fit for a metric label.
func (m Mode) String() string {
	if m < ModeV2 || m > ModeV1 {
		return "unknown"
	}
	return modeNames[m]
}

// Hierarchy is the cgroup tree a watcher should watch.
type Hierarchy struct {
	// Dir is the hierarchy's root directory on this host.
	Dir string
	// Mode is how the host mounts its cgroups.
	Mode Mode
}

// DetectHierarchy picks the cgroup tree to watch under root ("/sys/fs/cgroup"
// when empty; "/host/sys/fs/cgroup" inside the DaemonSet). It prefers cgroup
// v2 at the root, then the v2 tree a hybrid host mounts at "unified" (runc
// and systemd mirror every container cgroup there), then one v1 controller
// hierarchy in which every container gets a cgroup.
func DetectHierarchy(root string) (Hierarchy, error) {
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	if exists(filepath.Join(root, "cgroup.controllers")) {
		return Hierarchy{Dir: root, Mode: ModeV2}, nil
	}
	unified := filepath.Join(root, "unified")
	if exists(filepath.Join(unified, "cgroup.controllers")) {
		return Hierarchy{Dir: unified, Mode: ModeHybrid}, nil
	}
	for _, name := range []string{"cpu,cpuacct", "cpu", "memory", "pids", "systemd"} {
		dir := filepath.Join(root, name)
		if exists(filepath.Join(dir, "cgroup.procs")) {
			return Hierarchy{Dir: dir, Mode: ModeV1}, nil
		}
	}
	return Hierarchy{}, fmt.Errorf("%s: %w", root, ErrNoHierarchy)
}

// IsV2 says whether Dir is a cgroup v2 tree (the whole hierarchy, or a
// hybrid host's unified tree), where a directory's inode is its cgroup ID.
func (h Hierarchy) IsV2() bool { return h.Mode == ModeV2 || h.Mode == ModeHybrid }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
