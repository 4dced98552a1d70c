package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// daemon is a cri-enricherd process under measurement.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	metrics string
	api     *http.Client
	exited  chan struct{}
}

func startDaemon(bin, endpoint string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "cri-enricherd-bench-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	sock := filepath.Join(dir, "api.sock")
	d := &daemon{dir: dir, metrics: addr, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "--runtime-endpoint", endpoint, "--api-socket", sock, "--api-grpc-socket", filepath.Join(dir, "grpc.sock"),
		"--metrics-address", addr, "--log-level", "warn", "--runtime-relist-interval", "1h")
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = d.cmd.Wait(); logf.Close(); close(d.exited) }()
	d.api = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	return d, nil
}

func (d *daemon) stop() {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.exited
	}
	os.RemoveAll(d.dir)
}

func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.exited:
			return fmt.Errorf("daemon exited: %s", d.log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return fmt.Errorf("daemon not ready within %s: %s", timeout, d.log())
}

func (d *daemon) log() string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	return string(data)
}

// served reports whether the API serves a record for the ID from its cache
// alone: a 63-character prefix never triggers an on-demand lookup, so this
// measures the daemon's own pipeline, not the benchmark's questions.
func (d *daemon) served(id string) (enrich.Record, bool) {
	resp, err := d.api.Get("http://cri-enricherd/v1/containers/" + id[:63])
	if err != nil {
		return enrich.Record{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return enrich.Record{}, false
	}
	var rec enrich.Record
	if json.NewDecoder(resp.Body).Decode(&rec) != nil || rec.Pod == nil {
		return rec, false
	}
	return rec, true
}

// count returns how many records the daemon lists.
func (d *daemon) count() (int, error) {
	resp, err := d.api.Get("http://cri-enricherd/v1/containers")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Items []enrich.Record `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return len(out.Items), err
}

// scrape returns the daemon's samples by series text.
func (d *daemon) scrape() (promtext.Samples, error) {
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return promtext.Parse(resp.Body)
}

func sumSeries(m promtext.Samples, name string, contains ...string) float64 {
	return m.Sum(name, contains...)
}

func statusCalls(m promtext.Samples) float64 {
	return sumSeries(m, "cri_enricherd_cri_requests_total", `rpc="ContainerStatus"`) +
		sumSeries(m, "cri_enricherd_cri_requests_total", `rpc="PodSandboxStatus"`)
}

func eventSource(m promtext.Samples) string {
	for _, mode := range []string{"events", "cgroup"} {
		if sumSeries(m, "cri_enricherd_event_source_info", `mode="`+mode+`"`) == 1 {
			return mode
		}
	}
	return "unknown"
}

// meanLatencyMS is the mean latency of rpc as the daemon saw it between two
// scrapes, from its duration histogram: how fast the runtime answered while
// it was busy creating the pods, beside the raw round trips measured idle.
func meanLatencyMS(before, after promtext.Samples, rpc string) float64 {
	label := `rpc="` + rpc + `"`
	sum := sumSeries(after, "cri_enricherd_cri_request_duration_seconds_sum", label) -
		sumSeries(before, "cri_enricherd_cri_request_duration_seconds_sum", label)
	n := sumSeries(after, "cri_enricherd_cri_request_duration_seconds_count", label) -
		sumSeries(before, "cri_enricherd_cri_request_duration_seconds_count", label)
	if n == 0 {
		return 0
	}
	return sum / n * 1000
}
