package cgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FirstPID returns the first process of the cgroup at path (as a container
// spec or /proc/<pid>/cgroup names it, relative to the hierarchy), or 0 when
// it has none or cannot be read. A container's init process is the first
// one its runtime puts into the cgroup, so this gives its host PID without
// asking the runtime again.
func (h Hierarchy) FirstPID(path string) int {
	if h.Dir == "" || path == "" || strings.Contains(path, "..") {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(h.Dir, filepath.Clean("/"+path), "cgroup.procs"))
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
