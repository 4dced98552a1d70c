package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

// The shapes below mirror the JSON the load programs write; only the fields
// the table shows are declared.

type apiLoad struct {
	Proto     string  `json:"proto"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
}

// apiTargets are the throughput targets, with p99 < 2 ms for both.
var apiTargets = map[string]float64{"http": 20000, "grpc": 30000}

func apiLoadRows(pattern string) ([]row, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var runs []apiLoad
	for _, p := range paths {
		var r apiLoad
		if err := readJSON(p, &r); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool {
		if runs[i].Proto != runs[j].Proto {
			return runs[i].Proto > runs[j].Proto // http first
		}
		return runs[i].Clients < runs[j].Clients
	})
	var rows []row
	for _, r := range runs {
		want := apiTargets[r.Proto]
		rows = append(rows, row{"api-load", fmt.Sprintf("%s lookups, %d clients, %.0f s", strings.ToUpper(r.Proto), r.Clients, r.Seconds),
			fmt.Sprintf("%.0f/s, p50 %.2f ms, p99 %.2f ms, %d errors", r.PerSecond, r.P50, r.P99, r.Errors),
			fmt.Sprintf(">= %.0f/s, p99 < 2 ms", want), judge(r.PerSecond >= want && r.P99 < 2 && r.Errors == 0)})
	}
	return rows, nil
}

type scaleRun struct {
	Pods             int            `json:"pods"`
	Containers       int            `json:"containers"`
	Ready            bool           `json:"ready"`
	BootstrapMS      float64        `json:"bootstrap_ms"`
	BootstrapCPU     float64        `json:"bootstrap_cpu_seconds"`
	CachedContainers int            `json:"cached_containers"`
	CachedSandboxes  int            `json:"cached_sandboxes"`
	CachedDeleted    int            `json:"cached_deleted"`
	Evictions        float64        `json:"evictions"`
	Calls            map[string]int `json:"cri_calls"`
	IdleCPU          *float64       `json:"idle_cpu_percent_of_one_core"`
	HeapInuse        float64        `json:"heap_inuse_bytes"`
	RSS              float64        `json:"rss_bytes"`
	Problem          string         `json:"problem"`
}

type scaleResult struct {
	Baseline scaleRun   `json:"baseline"`
	Node     scaleRun   `json:"node"`
	Over     []scaleRun `json:"over_bound"`
	Derived  struct {
		HeapPerContainer float64 `json:"heap_per_container_bytes"`
		HeapPerRecord    float64 `json:"heap_per_record_bytes"`
		RSSPerContainer  float64 `json:"rss_per_container_bytes"`
		CallsPerCtr      float64 `json:"status_calls_per_container"`
		Formula          float64 `json:"formula_calls_per_container"`
	} `json:"derived"`
	Settings struct {
		Events      string  `json:"events"`
		IdleSeconds float64 `json:"idle_seconds"`
	} `json:"settings"`
}

// defaultCacheBound is the daemon's default cache.size.
const defaultCacheBound = 10000

func scaleRows(file string) ([]row, error) {
	var s scaleResult
	if err := readJSON(file, &s); err != nil {
		return nil, err
	}
	n, d := s.Node, s.Derived
	area := "scale (fake CRI)"
	calls := n.Calls["ContainerStatus"] + n.Calls["PodSandboxStatus"]
	rows := []row{
		{area, fmt.Sprintf("bootstrap, %d containers in %d pods (start to /readyz 200)", n.Containers, n.Pods),
			fmt.Sprintf("%.0f ms, %.2f s CPU", n.BootstrapMS, n.BootstrapCPU), "", info},
		{area, "heap per cached container (over an empty daemon)",
			fmt.Sprintf("%.0f B (%.0f B per record incl. sandboxes)", d.HeapPerContainer, d.HeapPerRecord), "< 4096 B",
			judge(d.HeapPerContainer < 4096)},
		{area, "RSS per cached container (over an empty daemon)", fmt.Sprintf("%.0f B", d.RSSPerContainer), "", info},
		{area, "CRI status calls per container at bootstrap",
			fmt.Sprintf("%.3f (%d calls, %d List)", d.CallsPerCtr, calls, n.Calls["ListContainers"]+n.Calls["ListPodSandbox"]),
			fmt.Sprintf("<= %.3f (1 + 1/containers per pod)", d.Formula), judge(d.CallsPerCtr <= d.Formula+1e-9)},
	}
	if n.IdleCPU != nil {
		rows = append(rows, row{area, fmt.Sprintf("CPU while idle, %.0f s, %d containers", s.Settings.IdleSeconds, n.Containers),
			fmt.Sprintf("%.3f%% of one core", *n.IdleCPU), "< 1%", judge(*n.IdleCPU < 1)})
	}
	for _, o := range s.Over {
		rows = append(rows, overBoundRow(area, o))
	}
	return rows, nil
}

func overBoundRow(area string, o scaleRun) row {
	cached := o.CachedContainers + o.CachedSandboxes + o.CachedDeleted
	figure := fmt.Sprintf("%d containers in %d pods, default cache bound", o.Containers, o.Pods)
	target := "completes; cache <= 10,000; evictions counted; memory bounded"
	if !o.Ready {
		return row{area, figure, "bootstrap never completes: " + shorten(o.Problem), target, miss}
	}
	measured := fmt.Sprintf("ready in %.1f s; %d cached, %.0f evictions, %d status calls; heap %.0f MiB, RSS %.0f MiB",
		o.BootstrapMS/1000, cached, o.Evictions, o.Calls["ContainerStatus"]+o.Calls["PodSandboxStatus"], o.HeapInuse/(1<<20), o.RSS/(1<<20))
	return row{area, figure, measured, target, judge(cached <= defaultCacheBound && o.Evictions > 0)}
}

// shorten keeps the gist of a daemon log line: its error.
func shorten(problem string) string {
	if i := strings.Index(problem, `"error":"`); i >= 0 {
		problem = strings.TrimSuffix(problem[i+len(`"error":"`):], `"}`)
	}
	return problem
}

func readRuntime(file string) ([]runtimeresult.Result, error) {
	var rs []runtimeresult.Result
	err := readJSON(file, &rs)
	return rs, err
}

func runtimeRows(file string) ([]row, error) {
	rs, err := readRuntime(file)
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, r := range rs {
		rows = append(rows, runtimeRowsOf(r)...)
	}
	return rows, nil
}

func runtimeRowsOf(r runtimeresult.Result) []row {
	area := fmt.Sprintf("%s (%s)", r.Runtime, r.EventSource)
	var rows []row
	for _, c := range r.Checks {
		rows = append(rows, row{area, c.Figure, c.Measured, c.Target, judge(c.Pass)})
	}
	d, a := r.CompleteContainer, r.CompleteAfter
	return append(rows,
		row{area, fmt.Sprintf("cgroup -> container served complete (not partial), p50 / p99 (n=%d)", d.N),
			fmt.Sprintf("%.2f / %.2f ms; %.2f / %.2f ms after StartContainer returned", d.P50, d.P99, a.P50, a.P99), "", info},
		row{area, "raw ContainerStatus / PodSandboxStatus (verbose, idle runtime), p50 / p99",
			fmt.Sprintf("%.2f / %.2f ms; %.2f / %.2f ms", r.RawContainer.P50, r.RawContainer.P99, r.RawSandbox.P50, r.RawSandbox.P99), "", info},
		row{area, fmt.Sprintf("reacting peer (no daemon): cgroup appears -> ContainerStatus, then PodSandboxStatus, answered, p50 / p99 (n=%d)", r.PeerServed.N),
			fmt.Sprintf("%.2f / %.2f ms; %.2f / %.2f ms", r.PeerFirst.P50, r.PeerFirst.P99, r.PeerServed.P50, r.PeerServed.P99), "", info},
		row{area, "ContainerStatus / PodSandboxStatus as the daemon saw them while pods were created, mean",
			fmt.Sprintf("%.2f / %.2f ms", r.DaemonCSMean, r.DaemonPSMean), "", info},
		row{area, "bootstrap (start to /readyz 200)", fmt.Sprintf("%.0f ms for %d records", r.BootstrapMS, r.BootstrapRecords), "", info},
	)
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// machine describes the host: CPUs, CPU model, memory, kernel, load.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem, _, _ = strings.Cut(string(data), "\n")
		mem = strings.Join(strings.Fields(strings.TrimPrefix(mem, "MemTotal:")), " ")
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%d CPUs (%s), %s memory, kernel %s, %s, load average now %s", runtime.NumCPU(), model, mem,
		strings.TrimSpace(string(kernel)), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
}
