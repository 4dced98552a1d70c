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
	"sync"
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
//
// The socket is made in a private directory beside path, given its group
// and mode there, and only then renamed to path: bound in place, it would
// accept connections with the umask's wider mode until the chmod, and a
// connection made in that moment outlives it.
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
	l, err := bind(path, opts)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return &listener{Listener: l, path: path, file: fi}, nil
}

// bind makes the socket at path with its group and mode set before it is
// there. A path too long to bind from the private directory (its name adds
// up to 14 bytes) is bound in place and chmod-ed at once, as before.
func bind(path string, opts Options) (*net.UnixListener, error) {
	private, err := os.MkdirTemp(filepath.Dir(path), ".")
	if err != nil {
		return nil, fmt.Errorf("api socket %s: private dir: %w", path, err)
	}
	defer os.RemoveAll(private)
	bound := filepath.Join(private, "s")
	if len(bound) > maxSocketPath {
		bound = path
	}
	nl, err := net.Listen("unix", bound)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	l := nl.(*net.UnixListener)
	// The name bound goes with the private directory; the listener that
	// Listen returns removes path on Close.
	l.SetUnlinkOnClose(false)
	if err := setOwnership(bound, opts); err != nil {
		_ = l.Close()
		return nil, err
	}
	if bound != path {
		if err := os.Rename(bound, path); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("api socket %s: %w", path, err)
		}
	}
	return l, nil
}

// maxSocketPath is the longest path a unix socket can be bound to on Linux
// (sun_path holds 108 bytes, the last one the terminating NUL).
const maxSocketPath = 107

// listener removes its socket file on Close, unless the file is no longer
// the one it made (another process took the path over).
type listener struct {
	net.Listener
	path string
	file os.FileInfo
	once sync.Once
}

func (l *listener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			_ = os.Remove(l.path)
		}
	})
	return err
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
