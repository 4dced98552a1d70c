package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/internal/daemonproc"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture this daemon ships for.
const clockTicks = 100

// daemon is a cri-enricherd process under measurement.
type daemon struct{ *daemonproc.Process }

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
	p, err := daemonproc.Start(daemonproc.Options{Binary: bin, Endpoint: endpoint, Dir: dir,
		Args: append([]string{"--cgroup-root", cgroupRoot, "--proc-root", "/proc", "--debug-pprof"}, extra...)})
	if err != nil {
		return nil, err
	}
	return &daemon{p}, nil
}

func (d *daemon) stop() { _ = d.Stop(time.Minute) }

// waitReady polls /readyz every 5 ms until it answers 200. A daemon whose
// sync keeps failing (the log says so) is given up on after three tries.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("not ready within %s", timeout))
	defer cancel()
	ctx, giveUp := context.WithCancelCause(ctx)
	defer giveUp(nil)
	go func() {
		for ctx.Err() == nil {
			if d.syncFailures() >= 3 {
				giveUp(errors.New("sync failed 3 times"))
			}
			time.Sleep(time.Second)
		}
	}()
	if err := d.WaitReady(ctx, 5*time.Millisecond); err != nil {
		return fmt.Errorf("%w; last log line: %s", err, d.LogTail(1))
	}
	return nil
}

// syncFailures counts the failed syncs the daemon logged.
func (d *daemon) syncFailures() int {
	data, _ := os.ReadFile(d.LogPath)
	return strings.Count(string(data), "sync with runtime failed")
}

// cpuTicks returns the process's utime + stime in clock ticks.
func (d *daemon) cpuTicks() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.PID()))
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
	stats, err := d.Fetch("/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return err
	}
	r.HeapInuseBytes = memStat(stats, "HeapInuse")
	r.HeapAllocBytes = memStat(stats, "HeapAlloc")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.PID()))
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
	data, err := d.Fetch("/debug/pprof/heap?gc=1")
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
	m, _, err := d.Scrape()
	if err != nil {
		return err
	}
	r.CachedContainers = int(m.Sum("cri_enricherd_cache_entries", `kind="container"`))
	r.CachedSandboxes = int(m.Sum("cri_enricherd_cache_entries", `kind="sandbox"`))
	r.CachedDeleted = int(m.Sum("cri_enricherd_cache_entries", `kind="deleted"`))
	r.Evictions = m.Sum("cri_enricherd_cache_evictions_total")
	r.MetricsHeapInuseBytes = m.Sum("go_memstats_heap_inuse_bytes")
	r.LookupRetries = m.Sum("cri_enricherd_lookup_retries_total")
	return nil
}
