package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoContainer means a process lives in no container cgroup: it is a host
// process, or its container's cgroup has a shape ParsePath does not know.
var ErrNoContainer = errors.New("process is not in a container cgroup")

// ErrMalformed means a /proc/<pid>/cgroup line is not
// "hierarchy-id:controllers:path".
var ErrMalformed = errors.New("malformed cgroup line")

// deletedSuffix is what the kernel appends to a cgroup v2 path whose cgroup
// has been removed while a (zombie) process still points at it.
const deletedSuffix = " (deleted)"

// ProcLine is one line of /proc/<pid>/cgroup.
type ProcLine struct {
	// HierarchyID is 0 for cgroup v2 and the v1 hierarchy's number otherwise.
	HierarchyID int
	// Controllers are the v1 controllers of the hierarchy ("cpu", "cpuacct",
	// or "name=systemd" for a named hierarchy); empty for cgroup v2.
	Controllers []string
	// Path is the cgroup's path relative to the hierarchy root.
	Path string
	// Deleted is set when the kernel marked the cgroup as removed.
	Deleted bool
}

// IsV2 reports whether the line is the unified (cgroup v2) hierarchy.
func (l ProcLine) IsV2() bool {
	return l.HierarchyID == 0
}

// ParseProcCgroup parses the contents of /proc/<pid>/cgroup: one v2 line
// ("0::/path"), v1 lines ("4:memory:/path", "1:name=systemd:/path") or both
// on a hybrid host. Empty lines are skipped; any other malformed line is an
// error wrapping ErrMalformed.
func ParseProcCgroup(data []byte) ([]ProcLine, error) {
	lines := make([]ProcLine, 0, bytes.Count(data, []byte{'\n'})+1)
	for n := 1; len(data) > 0; n++ {
		var raw []byte
		raw, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(raw) == 0 {
			continue
		}
		line, err := parseProcLine(string(raw))
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, raw, err)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// parseProcLine parses one non-empty line of /proc/<pid>/cgroup. The path is
// the rest of the line, so a colon inside it is kept.
func parseProcLine(s string) (ProcLine, error) {
	idField, rest, ok1 := strings.Cut(s, ":")
	ctrlField, path, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return ProcLine{}, ErrMalformed
	}
	id, err := strconv.Atoi(idField)
	if err != nil || id < 0 {
		return ProcLine{}, fmt.Errorf("hierarchy id %q: %w", idField, ErrMalformed)
	}
	if !strings.HasPrefix(path, "/") {
		return ProcLine{}, fmt.Errorf("path %q is not absolute: %w", path, ErrMalformed)
	}
	if id == 0 && ctrlField != "" {
		return ProcLine{}, fmt.Errorf("hierarchy 0 with controllers %q: %w", ctrlField, ErrMalformed)
	}
	line := ProcLine{HierarchyID: id}
	line.Path, line.Deleted = strings.CutSuffix(path, deletedSuffix)
	if ctrlField != "" {
		line.Controllers = strings.Split(ctrlField, ",")
	}
	return line, nil
}

// ProcResolver finds the container cgroup of a process by reading
// /proc/<pid>/cgroup under a configurable proc root.
type ProcResolver struct {
	procRoot string
}

// NewProcResolver returns a resolver reading procRoot ("/proc" when empty;
// "/host/proc" inside the DaemonSet).
func NewProcResolver(procRoot string) *ProcResolver {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &ProcResolver{procRoot: procRoot}
}

// Resolve returns the container cgroup of pid: the container-level path (cut
// back from any sub-cgroup, so it matches the watcher's events) and what it
// says about the container. It prefers the v2 line, then the first v1 line
// whose path parses. It returns ErrNoContainer for a host process and an
// error wrapping fs.ErrNotExist when there is no such process.
func (r *ProcResolver) Resolve(pid int) (path string, ref Ref, err error) {
	if pid <= 0 {
		return "", Ref{}, fmt.Errorf("invalid pid %d", pid)
	}
	data, err := os.ReadFile(filepath.Join(r.procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", Ref{}, fmt.Errorf("read cgroup of pid %d: %w", pid, notExistIfExited(err))
	}
	lines, err := ParseProcCgroup(data)
	if err != nil {
		return "", Ref{}, fmt.Errorf("parse cgroup of pid %d: %w", pid, err)
	}
	if path, ref, ok := pickContainer(lines); ok {
		return path, ref, nil
	}
	return "", Ref{}, fmt.Errorf("pid %d: %w", pid, ErrNoContainer)
}

// notExistIfExited maps ESRCH, which a read returns when the process exits
// between open and read, to fs.ErrNotExist so callers see one "gone" error.
func notExistIfExited(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// pickContainer chooses the container cgroup among a process's lines, the
// v2 line first, then the v1 lines in order.
func pickContainer(lines []ProcLine) (string, Ref, bool) {
	for _, v2 := range []bool{true, false} {
		for _, l := range lines {
			if l.IsV2() != v2 {
				continue
			}
			if path, ref, ok := ContainerPath(l.Path); ok {
				return path, ref, true
			}
		}
	}
	return "", Ref{}, false
}
