package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/test/internal/daemonproc"
)

// daemon is a cri-enricherd under test: a client of its API and metrics,
// and the process when the test started it.
type daemon struct {
	*daemonproc.Client
	t    *testing.T
	proc *daemonproc.Process // nil for a daemon the test did not start
}

// binary is the daemon built by `make build`; CRI_ENRICHERD_BIN names it.
func binary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CRI_ENRICHERD_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin", "cri-enricherd")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CRI_ENRICHERD_E2E") == "1" {
			t.Fatalf("daemon binary: %v (run make build)", err)
		}
		t.Skipf("daemon binary: %v (run make build)", err)
	}
	return bin
}

// startDaemon runs the daemon against endpoint with extra flags; it is
// stopped (SIGTERM) when the test ends, and its log shown if the test failed.
func startDaemon(t *testing.T, endpoint string, extra ...string) *daemon {
	t.Helper()
	p, err := daemonproc.Start(daemonproc.Options{Binary: binary(t), Endpoint: endpoint, Dir: t.TempDir(),
		LogLevel: "debug", Args: extra})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{Client: p.Client, t: t, proc: p}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.LogTail(60))
		}
	})
	return d
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *daemon) Stop() {
	if err := d.proc.Stop(15 * time.Second); err != nil {
		d.t.Error(err)
	}
}

// waitReady waits for /readyz on the metrics port.
func (d *daemon) waitReady(timeout time.Duration) {
	d.t.Helper()
	ctx, cancel := contextWithTimeout(timeout)
	defer cancel()
	if err := d.proc.WaitReady(ctx, 50*time.Millisecond); err != nil {
		d.t.Fatal(err)
	}
}

// metrics scrapes the daemon: its samples and the raw page.
func (d *daemon) metrics() (promtext.Samples, string) {
	d.t.Helper()
	samples, page, err := d.Scrape()
	if err != nil {
		d.t.Fatal(err)
	}
	return samples, string(page)
}

// eventually retries fn until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
