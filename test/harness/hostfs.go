package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point  string
	fstype string
}

func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var mounts []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := parseMountInfoLine(sc.Text()); ok {
			mounts = append(mounts, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountInfoLine reads the mount point (field 5) and the filesystem
// type (the first field after the " - " separator).
func parseMountInfoLine(line string) (mountEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	fields, postFields := strings.Fields(pre), strings.Fields(post)
	if !ok || len(fields) < 5 || len(postFields) < 1 {
		return mountEntry{}, false
	}
	return mountEntry{point: unescapeOctal(fields[4]), fstype: postFields[0]}, true
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var points []string
	for _, m := range mounts {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			points = append(points, m.point)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(points), nil
}

// unmountUnder lazily unmounts everything at or below dir. Stacked mounts
// need several passes.
func unmountUnder(dir string) error {
	for range 5 {
		points, err := mountsUnder(dir)
		if err != nil || len(points) == 0 {
			return err
		}
		for _, p := range points {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
	points, err := mountsUnder(dir)
	if err == nil && len(points) > 0 {
		err = fmt.Errorf("still mounted after unmounting: %v", points)
	}
	return err
}

// cgroupRoots returns the mount point of every cgroup hierarchy: on this
// hybrid host each v1 controller, name=systemd, and the unified v2 tree.
func cgroupRoots() ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, m := range mounts {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			roots = append(roots, m.point)
		}
	}
	return roots, nil
}

// cgroupDirs returns every existing directory of the cgroup at parent (a
// cgroupfs path like /kubepods/burstable/pod<uid>), in every hierarchy,
// children before parents.
func cgroupDirs(parent string) ([]string, error) {
	roots, err := cgroupRoots()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, root := range roots {
		top := filepath.Join(root, parent)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone while walking, or never there
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", top, err)
		}
	}
	slices.Reverse(dirs) // WalkDir lists parents first
	return dirs, nil
}

// killCgroupProcesses SIGKILLs every process in the cgroup at parent and
// below, in every hierarchy, until none is left. Needed when containerd or
// its shims were killed and left containers running.
func killCgroupProcesses(parent string) error {
	return killUntilGone("in cgroup "+parent, func() ([]int, error) { return cgroupPIDs(parent) })
}

// createCgroup makes the cgroup at rel in every hierarchy, as a node's boot
// would make a kubelet's cgroup root. A new v1 cpuset starts with no CPUs
// and memory nodes, so it gets its parent's.
func createCgroup(rel string) error {
	roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	for _, root := range roots {
		dir := filepath.Join(root, rel)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			if err := copyIfEmpty(filepath.Join(filepath.Dir(dir), file), filepath.Join(dir, file)); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyIfEmpty copies a cgroup control file's value from src to an empty
// dst; a file that does not exist in this hierarchy is skipped.
func copyIfEmpty(src, dst string) error {
	cur, err := os.ReadFile(dst)
	if errors.Is(err, os.ErrNotExist) || (err == nil && strings.TrimSpace(string(cur)) != "") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dst, err)
	}
	value, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, value, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// removeUnmountedDir deletes dir, but never while something is mounted
// below it: RemoveAll would walk into the mounted filesystem.
func removeUnmountedDir(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %v", dir, mounts)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func cgroupPIDs(parent string) ([]int, error) {
	dirs, err := cgroupDirs(parent)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// removeCgroup removes the cgroup at parent and its children in every
// hierarchy. rmdir can briefly fail with EBUSY while exiting tasks leave.
func removeCgroup(parent string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		dirs, err := cgroupDirs(parent)
		if err != nil || len(dirs) == 0 {
			return err
		}
		var busy []string
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				busy = append(busy, fmt.Sprintf("%s: %v", d, err))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %s", parent, strings.Join(busy, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
