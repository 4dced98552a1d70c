package socket

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestListen_CreatesTheSocketWithMode0660(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "api.sock")
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
}

func TestListen_ReplacesAStaleSocketButNotALiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // the file stays, nobody listens: a crashed daemon's leftover
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	if _, err := Listen(path, Options{}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second listener on a live socket: err = %v, want a refusal", err)
	}
}

func TestListen_RefusesToRemoveARegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, Options{}); err == nil {
		t.Fatal("a regular file was replaced by the socket")
	}
	if data, _ := os.ReadFile(path); string(data) != "data" {
		t.Errorf("the regular file was changed")
	}
}

func TestListen_SetsTheConfiguredGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, Options{Group: "12345", Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Gid != 12345 || fi.Mode().Perm() != 0o640 {
		t.Errorf("socket gid %d mode %v, want gid 12345 mode 0640", st.Gid, fi.Mode().Perm())
	}
}

// The socket must never exist at its path with a mode wider than asked: a
// client connecting then keeps its connection after a chmod. So the name
// appears at the path only by a rename of the finished socket, never by a
// bind in place (which takes its mode from the umask), and no private
// directory is left behind.
func TestListen_TheSocketAppearsAtItsPathOnlyWithItsModeSet(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(filepath.Join(dir, "api.sock"), Options{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	buf := make([]byte, 64<<10)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("read inotify events: %v", err)
	}
	moved := false
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		switch {
		case name == "api.sock" && ev.Mask&unix.IN_CREATE != 0:
			t.Error("the socket was bound at its path, where it had the umask's mode until the chmod")
		case name == "api.sock" && ev.Mask&unix.IN_MOVED_TO != 0:
			moved = true
		}
	}
	if !moved {
		t.Error("the socket was not renamed into place")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "api.sock" {
		t.Errorf("socket dir holds %v, want only api.sock", entries)
	}
}

// Close removes the socket file it made, but not one another process put
// at the path since (a daemon started after this one was given up on).
func TestListenerClose_RemovesItsSocketFileOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: err = %v, want it removed", err)
	}
	l, err = Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_ = l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed another listener's socket file: %v", err)
	}
}
