package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture this daemon ships for.
const clockTicks = 100

// daemon is a cri-enricherd process under measurement.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	metrics string
	http    *http.Client
	exited  chan struct{}
}

// startDaemon runs bin on endpoint with its sockets and an empty
// v2-looking cgroup root under dir, then extra flags. pprof is on only so
// that the heap can be read right after a forced GC (/debug/pprof/heap?gc=1).
func startDaemon(bin, endpoint, dir string, extra []string) (*daemon, error) {
	cgroupRoot := filepath.Join(dir, "cgroup")
	if err := os.MkdirAll(cgroupRoot, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, metrics: addr, exited: make(chan struct{}), http: &http.Client{Timeout: 30 * time.Second}}
	d.cmd = exec.Command(bin, "--runtime-endpoint", endpoint, "--cgroup-root", cgroupRoot, "--proc-root", "/proc",
		"--api-socket", filepath.Join(dir, "api.sock"), "--api-grpc-socket", filepath.Join(dir, "grpc.sock"),
		"--metrics-address", addr, "--log-level", "warn", "--debug-pprof")
	d.cmd.Args = append(d.cmd.Args, extra...)
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = d.cmd.Wait(); logf.Close(); close(d.exited) }()
	return d, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (d *daemon) stop() {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.exited
	}
}

// waitReady polls /readyz every 5 ms until it answers 200. A daemon whose
// sync keeps failing (the log says so) is given up on after three tries.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for polls := 0; time.Now().Before(deadline); polls++ {
		if resp, err := d.http.Get("http://" + d.metrics + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if polls%200 == 0 && d.syncFailures() >= 3 {
			return fmt.Errorf("sync failed 3 times; last: %s", d.logTail())
		}
		select {
		case <-d.exited:
			return fmt.Errorf("daemon exited: %s", d.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready within %s; daemon log: %s", timeout, d.logTail())
}

// syncFailures counts the failed syncs the daemon logged.
func (d *daemon) syncFailures() int {
	data, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	return strings.Count(string(data), "sync with runtime failed")
}

// logTail returns the daemon log's last line.
func (d *daemon) logTail() string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

// cpuTicks returns the process's utime + stime in clock ticks.
func (d *daemon) cpuTicks() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/<pid>/stat")
	}
	utime, err := strconv.ParseUint(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse utime: %w", err)
	}
	stime, err := strconv.ParseUint(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stime: %w", err)
	}
	return utime + stime, nil
}

// idleCPU returns the CPU the process used over d, in percent of one core.
// Nothing talks to the daemon meanwhile.
func (d *daemon) idleCPU(ctx context.Context, span time.Duration) (float64, error) {
	before, err := d.cpuTicks()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-time.After(span):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, err := d.cpuTicks()
	if err != nil {
		return 0, err
	}
	return float64(after-before) / clockTicks / time.Since(start).Seconds() * 100, nil
}

// readMemory forces a GC and reads the heap from the runtime's MemStats
// (the heap profile's debug output), then VmRSS from /proc/<pid>/status.
func (d *daemon) readMemory(r *daemonRun) error {
	stats, err := d.get("/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return err
	}
	r.HeapInuseBytes = memStat(stats, "HeapInuse")
	r.HeapAllocBytes = memStat(stats, "HeapAlloc")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			r.RSSBytes = kb << 10
		}
	}
	return nil
}

// saveHeapProfile writes the heap profile, taken after a GC, to path.
func (d *daemon) saveHeapProfile(path string) error {
	data, err := d.get("/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// memStat reads "# Name = value" from a heap profile's debug output.
func memStat(profile []byte, name string) uint64 {
	prefix := "# " + name + " = "
	for line := range strings.SplitSeq(string(profile), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// readCounters scrapes /metrics for the cache's size and evictions, the
// retries, and the Go collector's view of the heap.
func (d *daemon) readCounters(r *daemonRun) error {
	m, err := d.scrape()
	if err != nil {
		return err
	}
	r.CachedContainers = int(m[`cri_enricherd_cache_entries{kind="container"}`])
	r.CachedSandboxes = int(m[`cri_enricherd_cache_entries{kind="sandbox"}`])
	r.CachedDeleted = int(m[`cri_enricherd_cache_entries{kind="deleted"}`])
	r.Evictions = m["cri_enricherd_cache_evictions_total"]
	r.MetricsHeapInuseBytes = m["go_memstats_heap_inuse_bytes"]
	for k, v := range m {
		if strings.HasPrefix(k, "cri_enricherd_lookup_retries_total") {
			r.LookupRetries += v
		}
	}
	return nil
}

func (d *daemon) get(path string) ([]byte, error) {
	resp, err := d.http.Get("http://" + d.metrics + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// scrape returns the samples of /metrics by series text.
func (d *daemon) scrape() (promtext.Samples, error) {
	data, err := d.get("/metrics")
	if err != nil {
		return nil, err
	}
	return promtext.Parse(bytes.NewReader(data))
}
