package daemonproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say how Start runs the daemon.
type Options struct {
	Binary   string   // the cri-enricherd binary
	Endpoint string   // the runtime's CRI endpoint (unix://...)
	Dir      string   // for the sockets and daemon.log; empty: a temporary directory that Stop removes
	LogLevel string   // warn when empty
	Args     []string // more flags, after the ones Start sets (so they win)
}

// Process is a daemon that Start runs, and a client of it.
type Process struct {
	*Client
	LogPath string // the daemon's stdout and stderr

	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error // set before exited is closed
	tempDir  string
	stopOnce sync.Once
}

// Start runs the daemon on opts.Endpoint with its API and gRPC sockets in
// the directory and its metrics on a loopback port free right now.
func Start(opts Options) (*Process, error) {
	dir, tempDir := opts.Dir, ""
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "cri-enricherd-"); err != nil {
			return nil, err
		}
		tempDir = dir
	}
	p, err := start(opts, dir)
	if err != nil {
		removeTemp(tempDir)
		return nil, err
	}
	p.tempDir = tempDir
	return p, nil
}

func start(opts Options, dir string) (*Process, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	p := &Process{Client: NewClient(filepath.Join(dir, "api.sock"), addr),
		LogPath: filepath.Join(dir, "daemon.log"), exited: make(chan struct{})}
	level := opts.LogLevel
	if level == "" {
		level = "warn"
	}
	args := append([]string{"--runtime-endpoint", opts.Endpoint, "--api-socket", p.Socket,
		"--api-grpc-socket", filepath.Join(dir, "grpc.sock"), "--metrics-address", addr, "--log-level", level}, opts.Args...)
	log, err := os.Create(p.LogPath)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	p.cmd = exec.Command(opts.Binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// freeLoopbackAddr returns a loopback address whose port is free right now.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func removeTemp(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// PID is the daemon's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the daemon has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitReady polls /readyz every poll until it answers 200. It gives up when
// the daemon exits or ctx ends, naming context.Cause as the reason.
func (p *Process) WaitReady(ctx context.Context, poll time.Duration) error {
	for {
		code := p.Probe("/readyz")
		if code == http.StatusOK {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("daemon exited before it was ready: %w", p.exitStatus())
		case <-ctx.Done():
			return fmt.Errorf("daemon not ready (last /readyz %d): %w", code, context.Cause(ctx))
		case <-time.After(poll):
		}
	}
}

// Stop sends SIGTERM and waits up to grace for the daemon to exit, then
// kills it, and removes the temporary directory Start made. It reports a
// daemon that did not exit with status 0 after SIGTERM, or had exited
// before. Only the first call stops; later ones return nil.
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.stopOnce.Do(func() {
		defer removeTemp(p.tempDir)
		err = p.stop(grace)
	})
	return err
}

func (p *Process) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("daemon exited before it was stopped: %w", p.exitStatus())
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.exitErr != nil {
			return fmt.Errorf("daemon exited with %w after SIGTERM, want status 0", p.exitErr)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("daemon did not stop within %s of SIGTERM", grace)
	}
}

// exitStatus is how the daemon exited, status 0 included; call it only
// once exited is closed.
func (p *Process) exitStatus() error {
	if p.exitErr == nil {
		return errors.New("exit status 0")
	}
	return p.exitErr
}

// LogTail returns the last n lines of the daemon's log (gone once Stop has
// removed a temporary directory).
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no daemon log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
