package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Limits applied to every HTTP server of the daemon, so a slow or hostile
// local client cannot hold connections or memory.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 90 * time.Second
	MaxHeaderBytes    = 16 << 10
)

// NewServer wraps h in an http.Server with the daemon's limits.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// SocketOptions say how the API socket file is created.
type SocketOptions struct {
	Mode  os.FileMode // default 0660
	Group string      // group name or numeric GID; "" keeps the daemon's
}

// ListenUnix listens on a unix socket at path with the given mode and
// group. A stale socket file (nobody listening) is replaced; a live one is
// an error, so two daemons never steal each other's socket.
func ListenUnix(path string, opts SocketOptions) (net.Listener, error) {
	if opts.Mode == 0 {
		opts.Mode = 0o660
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket dir: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := setOwnership(path, opts); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("api socket %s: exists and is not a socket; refusing to remove it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("api socket %s: another process is serving on it", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("api socket %s: removing stale socket: %w", path, err)
	}
	return nil
}

func setOwnership(path string, opts SocketOptions) error {
	if opts.Group != "" {
		gid, err := lookupGroup(opts.Group)
		if err != nil {
			return err
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("api socket %s: chown group %s: %w", path, opts.Group, err)
		}
	}
	if err := os.Chmod(path, opts.Mode); err != nil {
		return fmt.Errorf("api socket %s: chmod: %w", path, err)
	}
	return nil
}

func lookupGroup(g string) (int, error) {
	if gid, err := strconv.Atoi(g); err == nil {
		return gid, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("api socket group %q: %w", g, err)
	}
	return strconv.Atoi(grp.Gid)
}

// Serve serves srv on l until ctx ends, then drains it.
func Serve(ctx context.Context, srv *http.Server, l net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	// ctx is already done: draining needs a fresh context of its own, or
	// Shutdown would return at once and cut requests in flight.
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain %s: %w", l.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	}
	return nil
}
