package socket

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
