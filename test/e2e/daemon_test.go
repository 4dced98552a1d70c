package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// daemon is a running cri-enricherd binary under test.
type daemon struct {
	t           *testing.T
	cmd         *exec.Cmd
	socket      string
	metricsAddr string
	logPath     string
	api         *http.Client
	exited      chan error
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon runs the daemon against endpoint with extra flags; it is
// stopped (SIGTERM) when the test ends.
func startDaemon(t *testing.T, endpoint string, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{
		t: t, socket: filepath.Join(dir, "api.sock"), metricsAddr: freePort(t),
		logPath: filepath.Join(dir, "daemon.log"), exited: make(chan error, 1),
	}
	args := append([]string{
		"--runtime-endpoint", endpoint,
		"--api-socket", d.socket,
		"--api-grpc-socket", filepath.Join(dir, "grpc.sock"),
		"--metrics-address", d.metricsAddr,
		"--log-level", "debug",
	}, extra...)
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(binary(t), args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait(); logf.Close() }()
	d.api = unixClient(d.socket)
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", tail(d.logPath, 60))
		}
	})
	return d
}

// unixClient is an HTTP client of the API on a unix socket.
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *daemon) Stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("daemon exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		d.t.Errorf("daemon did not stop within 15s of SIGTERM")
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for /readyz on the metrics port.
func (d *daemon) waitReady(timeout time.Duration) {
	d.t.Helper()
	eventually(d.t, timeout, "daemon ready", func() error {
		resp, err := http.Get("http://" + d.metricsAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz = %d", resp.StatusCode)
		}
		return nil
	})
}

// get fetches an API path and decodes a 200 answer into out.
func (d *daemon) get(path string, out any) (int, error) {
	resp, err := d.api.Get("http://cri-enricherd" + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s = %d: %s", path, resp.StatusCode, body)
	}
	return resp.StatusCode, json.Unmarshal(body, out)
}

func (d *daemon) record(id string) (enrich.Record, error) {
	var rec enrich.Record
	_, err := d.get("/v1/containers/"+id, &rec)
	return rec, err
}

// metrics scrapes the daemon: its samples and the raw page.
func (d *daemon) metrics() (promtext.Samples, string) {
	d.t.Helper()
	resp, err := http.Get("http://" + d.metricsAddr + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	samples, err := promtext.Parse(bytes.NewReader(raw))
	if err != nil {
		d.t.Fatal(err)
	}
	return samples, string(raw)
}

// sum adds the samples of a metric whose labels contain every given pair.
func sum(m promtext.Samples, name string, labels ...string) float64 { return m.Sum(name, labels...) }

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
