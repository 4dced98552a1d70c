package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListenUnix_CreatesTheSocketWithMode0660(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "api.sock")
	l, err := ListenUnix(path, SocketOptions{})
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

func TestListenUnix_ReplacesAStaleSocketButNotALiveOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // the file stays, nobody listens: a crashed daemon's leftover
	l, err := ListenUnix(path, SocketOptions{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	if _, err := ListenUnix(path, SocketOptions{}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second listener on a live socket: err = %v, want a refusal", err)
	}
}

func TestListenUnix_RefusesToRemoveARegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(path, SocketOptions{}); err == nil {
		t.Fatal("a regular file was replaced by the socket")
	}
	if data, _ := os.ReadFile(path); string(data) != "data" {
		t.Errorf("the regular file was changed")
	}
}

func TestListenUnix_SetsTheConfiguredGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := ListenUnix(path, SocketOptions{Group: "12345", Mode: 0o640})
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

func TestNewServer_HasEveryTimeoutAndAHeaderLimit(t *testing.T) {
	s := NewServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("server limits = %+v; every timeout and the header limit must be set", s)
	}
}

func TestServe_DrainsOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := ListenUnix(path, SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewServer(http.NotFoundHandler()), l, time.Second) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want a clean stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}
