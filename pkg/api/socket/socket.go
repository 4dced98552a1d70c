// Package socket creates the unix sockets the daemon's APIs listen on: the
// directory, the file mode and group that decide who may ask, and the
// replacement of a stale socket left by an earlier run. Both the HTTP and
// the gRPC API are served on listeners it makes.
package socket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Options say how a socket file is created.
type Options struct {
	Mode  os.FileMode // default 0660
	Group string      // group name or numeric GID; "" keeps the daemon's
}

// Listen listens on a unix socket at path with the given mode and group.
// A stale socket file (nobody listening) is replaced; a live one is an
// error, so two daemons never steal each other's socket.
func Listen(path string, opts Options) (net.Listener, error) {
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

func setOwnership(path string, opts Options) error {
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
