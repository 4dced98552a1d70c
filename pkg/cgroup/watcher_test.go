package cgroup

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

const eventTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a Clock whose single ticker ticks when the test says so.
type fakeClock struct{ ticks chan time.Time }

func newFakeClock() fakeClock                      { return fakeClock{ticks: make(chan time.Time)} }
func (c fakeClock) NewTicker(time.Duration) Ticker { return c }
func (c fakeClock) C() <-chan time.Time            { return c.ticks }
func (c fakeClock) Stop()                          {}

// tick blocks until the watcher has taken the tick, so the rescan runs next.
func (c fakeClock) tick() { c.ticks <- time.Now() }

// watchRun is a Watcher running in the background of a test.
type watchRun struct {
	events chan Event
	done   chan error
	cancel context.CancelFunc
}

// startWatcher runs w until the test ends and waits for its initial walk.
// keep, when not nil, drops the events it rejects (other activity on a real
// cgroup filesystem).
func startWatcher(t *testing.T, w *Watcher, keep func(Event) bool) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &watchRun{events: make(chan Event, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		r.done <- w.Run(ctx, func(ev Event) {
			if keep != nil && !keep(ev) {
				return
			}
			select {
			case r.events <- ev:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-w.Ready():
	case err := <-r.done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(eventTimeout):
		t.Fatal("watcher not ready")
	}
	return r
}

// stop cancels the run and checks that Run returned nil.
func (r *watchRun) stop(t *testing.T) {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run returned %v; want nil", err)
		}
		close(r.done)
	case <-time.After(eventTimeout):
		t.Error("Run did not return after cancel")
	}
}

// expect waits for len(want) events and compares them, in any order.
func (r *watchRun) expect(t *testing.T, want ...Event) {
	t.Helper()
	var got []Event
	timeout := time.After(eventTimeout)
	for len(got) < len(want) {
		select {
		case ev := <-r.events:
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("timed out with events %v; want %v", got, want)
		}
	}
	sortEvents(got)
	sortEvents(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events = %v; want %v", got, want)
	}
}

// expectNone asserts that no event arrives for a while.
func (r *watchRun) expectNone(t *testing.T) {
	t.Helper()
	select {
	case ev := <-r.events:
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

func sortEvents(events []Event) {
	slices.SortFunc(events, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Kind, b.Kind))
	})
}

func numID(n int) string  { return fmt.Sprintf("%064x", n) }
func numUID(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

// cgroupfsContainer is the relative cgroupfs path of container n of pod n.
func cgroupfsContainer(n int) (string, Ref) {
	return "/kubepods/burstable/pod" + numUID(n) + "/" + numID(n), Ref{ContainerID: numID(n), PodUID: numUID(n)}
}

// systemdContainer is the relative systemd path of container n of pod n.
func systemdContainer(n int) (string, Ref) {
	uid := numUID(n)
	path := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") +
		".slice/cri-containerd-" + numID(n) + ".scope"
	return path, Ref{ContainerID: numID(n), PodUID: uid, Runtime: RuntimeContainerd}
}

func mkdirs(t *testing.T, root string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestWatcher(t *testing.T, dir string, opts WatcherOptions) *Watcher {
	return NewWatcher(dir, zaptest.NewLogger(t), opts)
}

func TestWatcher_InitialWalkReportsExistingContainersOnly(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	c2, r2 := systemdContainer(2)
	mkdirs(t, dir, c1+"/sub", c2+"/init.scope", "/kubepods/pod"+numUID(3),
		filepath.Dir(c2)+"/crio-conmon-"+numID(4)+".scope", "/system.slice/foo.service")
	if err := os.WriteFile(filepath.Join(dir, c1, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := newTestWatcher(t, dir, WatcherOptions{})
	run := startWatcher(t, w, nil)
	want := []Event{{Kind: Added, Path: c1, Ref: r1}, {Kind: Added, Path: c2, Ref: r2}}
	run.expect(t, want...)
	run.expectNone(t)
}

// A container directory made right after its brand new pod directory fires
// no inotify event (the pod's watch does not exist yet); the scan after
// adding the pod's watch must find it.
func TestWatcher_ReportsContainersCreatedInsideNewDirectories(t *testing.T) {
	dir := t.TempDir()
	run := startWatcher(t, newTestWatcher(t, dir, WatcherOptions{}), nil)
	var want []Event
	for n := range 50 {
		c1, r1 := cgroupfsContainer(2 * n)
		c2, r2 := systemdContainer(2*n + 1)
		mkdirs(t, dir, c1, c2)
		want = append(want, Event{Kind: Added, Path: c1, Ref: r1}, Event{Kind: Added, Path: c2, Ref: r2})
	}
	run.expect(t, want...)
	run.expectNone(t)
}

func TestWatcher_ReportsRemovedContainers(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	c2, r2 := systemdContainer(2)
	mkdirs(t, dir, c1, c2+"/init.scope")
	run := startWatcher(t, newTestWatcher(t, dir, WatcherOptions{}), nil)
	run.expect(t, Event{Kind: Added, Path: c1, Ref: r1}, Event{Kind: Added, Path: c2, Ref: r2})

	if err := os.Remove(filepath.Join(dir, c1)); err != nil {
		t.Fatal(err)
	}
	run.expect(t, Event{Kind: Removed, Path: c1, Ref: r1})
	if err := os.RemoveAll(filepath.Join(dir, filepath.Dir(c2))); err != nil {
		t.Fatal(err)
	}
	run.expect(t, Event{Kind: Removed, Path: c2, Ref: r2})
	run.expectNone(t)
}

func TestWatcher_DoesNotReportSubCgroupsOfAContainer(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	mkdirs(t, dir, c1)
	run := startWatcher(t, newTestWatcher(t, dir, WatcherOptions{}), nil)
	run.expect(t, Event{Kind: Added, Path: c1, Ref: r1})

	mkdirs(t, dir, c1+"/init.scope", c1+"/a/b")
	c2, r2 := cgroupfsContainer(2) // a later event proves the earlier ones were handled
	mkdirs(t, dir, c2)
	run.expect(t, Event{Kind: Added, Path: c2, Ref: r2})
	run.expectNone(t)
}

func TestWatcher_FollowsRenamedDirectories(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	mkdirs(t, dir, c1)
	run := startWatcher(t, newTestWatcher(t, dir, WatcherOptions{}), nil)
	run.expect(t, Event{Kind: Added, Path: c1, Ref: r1})

	newPod := "/kubepods/burstable/pod" + numUID(9)
	if err := os.Rename(filepath.Join(dir, filepath.Dir(c1)), filepath.Join(dir, newPod)); err != nil {
		t.Fatal(err)
	}
	moved := newPod + "/" + numID(1)
	run.expect(t,
		Event{Kind: Removed, Path: c1, Ref: r1},
		Event{Kind: Added, Path: moved, Ref: Ref{ContainerID: numID(1), PodUID: numUID(9)}})

	mkdirs(t, dir, newPod+"/"+numID(2)) // the moved directory is still watched
	run.expect(t, Event{Kind: Added, Path: newPod + "/" + numID(2), Ref: Ref{ContainerID: numID(2), PodUID: numUID(9)}})
}

// The kernel may refuse a watch (ENOSPC when fs.inotify.max_user_watches is
// exhausted); a container created or removed below such a directory fires no
// event and only the periodic rescan finds it.
func TestWatcher_RescanCatchesWhatInotifyMissed(t *testing.T) {
	dir := t.TempDir()
	mkdirs(t, dir, "/kubepods")
	blockedPod := "/kubepods/pod" + numUID(1)
	clock := newFakeClock()
	w := newTestWatcher(t, dir, WatcherOptions{Clock: clock})
	w.addWatch = func(fd int, path string, mask uint32) (int, error) {
		if strings.HasPrefix(path, filepath.Join(dir, blockedPod)) {
			return -1, unix.ENOSPC
		}
		return unix.InotifyAddWatch(fd, path, mask)
	}
	run := startWatcher(t, w, nil)

	mkdirs(t, dir, blockedPod)
	sentinel, sentinelRef := cgroupfsContainer(2) // handled after the blocked pod's creation
	mkdirs(t, dir, sentinel)
	run.expect(t, Event{Kind: Added, Path: sentinel, Ref: sentinelRef})

	missed := blockedPod + "/" + numID(1)
	mkdirs(t, dir, missed)
	run.expectNone(t)
	clock.tick()
	missedRef := Ref{ContainerID: numID(1), PodUID: numUID(1)}
	run.expect(t, Event{Kind: Added, Path: missed, Ref: missedRef})

	if err := os.Remove(filepath.Join(dir, missed)); err != nil {
		t.Fatal(err)
	}
	run.expectNone(t)
	clock.tick()
	run.expect(t, Event{Kind: Removed, Path: missed, Ref: missedRef})
}

func TestWatcher_QueueOverflowTriggersFullRescan(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	c2, r2 := cgroupfsContainer(2)
	mkdirs(t, dir, c1)
	var got []Event
	w := newTestWatcher(t, dir, WatcherOptions{})
	s, err := w.open(func(ev Event) { got = append(got, ev) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.walk(); err != nil {
		t.Fatal(err)
	}
	// Nobody reads the inotify queue now: these changes are "lost".
	if err := os.Remove(filepath.Join(dir, c1)); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, dir, c2)
	if err := s.handle(inotifyEvent{wd: -1, mask: unix.IN_Q_OVERFLOW}); err != nil {
		t.Fatal(err)
	}
	want := []Event{{Kind: Added, Path: c1, Ref: r1}, {Kind: Added, Path: c2, Ref: r2}, {Kind: Removed, Path: c1, Ref: r1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v; want %v", got, want)
	}
}

func TestWatcher_RunFailsWhenDirectoryIsMissing(t *testing.T) {
	w := newTestWatcher(t, filepath.Join(t.TempDir(), "absent"), WatcherOptions{})
	if err := w.Run(context.Background(), func(Event) {}); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Run error = %v; want ENOENT", err)
	}
}

func TestWatcher_RunFailsWhenWatchedDirectoryIsRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cgroup")
	mkdirs(t, dir, "/")
	w := newTestWatcher(t, dir, WatcherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(Event) {}) }()
	<-w.Ready()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run returned nil; want an error")
		}
	case <-time.After(eventTimeout):
		t.Fatal("Run did not return")
	}
}

func TestWatcher_RunTwiceFails(t *testing.T) {
	w := newTestWatcher(t, t.TempDir(), WatcherOptions{})
	startWatcher(t, w, nil)
	if err := w.Run(context.Background(), func(Event) {}); err == nil {
		t.Error("second Run returned nil; want an error")
	}
}

func TestDecodeEvents(t *testing.T) {
	event := func(wd int32, mask uint32, name string, pad int) []byte {
		b := binary.NativeEndian.AppendUint32(nil, uint32(wd))
		b = binary.NativeEndian.AppendUint32(b, mask)
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = binary.NativeEndian.AppendUint32(b, uint32(len(name)+pad))
		return append(append(b, name...), make([]byte, pad)...)
	}
	buf := append(event(3, unix.IN_CREATE|unix.IN_ISDIR, "pod1", 4), event(-1, unix.IN_Q_OVERFLOW, "", 0)...)
	got, err := decodeEvents(buf)
	want := []inotifyEvent{{wd: 3, mask: unix.IN_CREATE | unix.IN_ISDIR, name: "pod1"}, {wd: -1, mask: unix.IN_Q_OVERFLOW}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeEvents = %+v, %v; want %+v", got, err, want)
	}
	for name, bad := range map[string][]byte{"short header": buf[:10], "name past end": buf[:18]} {
		if _, err := decodeEvents(bad); err == nil {
			t.Errorf("decodeEvents(%s) = nil error", name)
		}
	}
}

func TestKind_String(t *testing.T) {
	for k, want := range map[Kind]string{Added: "added", Removed: "removed", 0: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q; want %q", k, got, want)
		}
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestWatcher_RealCgroupFilesystem follows a fake pod on this host's real
// cgroup hierarchy (the v2 "unified" tree on a hybrid host) and resolves a
// process placed in it.
func TestWatcher_RealCgroupFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	h, err := DetectHierarchy("")
	if err != nil {
		t.Skipf("no cgroup hierarchy: %v", err)
	}
	base := "/kubepods-test-" + randomHex(t, 8)
	uid := randomHex(t, 8) + "-0000-4000-8000-" + randomHex(t, 12)
	id := randomHex(t, 64)
	container := base + "/pod" + uid + "/" + id
	keep := func(ev Event) bool { return strings.HasPrefix(ev.Path, base+"/") }
	run := startWatcher(t, newTestWatcher(t, h.Dir, WatcherOptions{}), keep)

	for _, rel := range []string{base, base + "/pod" + uid, container} {
		mkdirCgroup(t, filepath.Join(h.Dir, rel))
	}
	ref := Ref{ContainerID: id, PodUID: uid}
	run.expect(t, Event{Kind: Added, Path: container, Ref: ref})
	resolveProcessIn(t, filepath.Join(h.Dir, container), container, ref)

	if err := os.Remove(filepath.Join(h.Dir, container)); err != nil {
		t.Fatal(err)
	}
	run.expect(t, Event{Kind: Removed, Path: container, Ref: ref})
}

// mkdirCgroup creates a cgroup and removes it when the test ends; it skips
// the test when the hierarchy is not writable.
func mkdirCgroup(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) {
			t.Skipf("cgroup hierarchy not writable: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
}

// resolveProcessIn moves a child process into the cgroup at dir and checks
// that ProcResolver finds the container from the real /proc.
func resolveProcessIn(t *testing.T, dir, wantPath string, wantRef Ref) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // reaped, the process leaves the cgroup so it can be removed
	}()
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Logf("cannot move a process into the test cgroup, not resolving: %v", err)
		return
	}
	path, ref, err := NewProcResolver("/proc").Resolve(pid)
	if err != nil || path != wantPath || ref != wantRef {
		t.Errorf("Resolve(%d) = %q, %+v, %v; want %q, %+v", pid, path, ref, err, wantPath, wantRef)
	}
}

func TestWatcher_OnAV2TreeEventsCarryTheDirectorysInodeAsCgroupID(t *testing.T) {
	dir := t.TempDir()
	c1, r1 := cgroupfsContainer(1)
	mkdirs(t, dir, c1)
	run := startWatcher(t, newTestWatcher(t, dir, WatcherOptions{CgroupIDs: true}), nil)
	ino := func(rel string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	id1 := ino(c1)
	run.expect(t, Event{Kind: Added, Path: c1, Ref: r1, CgroupID: id1})
	c2, r2 := systemdContainer(2)
	mkdirs(t, dir, c2)
	run.expect(t, Event{Kind: Added, Path: c2, Ref: r2, CgroupID: ino(c2)})
	if err := os.Remove(filepath.Join(dir, c1)); err != nil {
		t.Fatal(err)
	}
	run.expect(t, Event{Kind: Removed, Path: c1, Ref: r1, CgroupID: id1})
}
