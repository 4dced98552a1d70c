// Command scale measures the real daemon binary against the in-process fake
// runtime (test/fakecri) at node scale: bootstrap time for 5,000 containers
// in 1,000 pods, heap and RSS per cached container over an empty daemon's,
// CPU while idle, the CRI calls it made, and how it behaves at 50,000
// containers with the default cache bound of 10,000 records.
//
// The daemon runs as its own process, exactly as deployed, so RSS and CPU
// are the process's own (/proc/<pid>/status and /proc/<pid>/stat). Its
// cgroup root is an empty directory that looks like cgroup v2: every
// container is found by the bootstrap's List calls, none by cgroups.
//
// It is a load program, not a test: it prints a table and, with -json, the
// numbers the bench report reads.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type options struct {
	bin          string
	pods, perPod int
	overPods     []int
	idle         time.Duration
	idleFor      time.Duration // this run's idle measurement; 0 skips it
	readyTimeout time.Duration
	events       fakecri.EventsMode
	jsonOut      string
	heapProfile  string
	daemonArgs   []string
}

func run() error {
	var o options
	var events string
	flag.StringVar(&o.bin, "daemon", "bin/cri-enricherd", "the cri-enricherd binary")
	flag.IntVar(&o.pods, "pods", 1000, "pods of the node-sized run")
	flag.IntVar(&o.perPod, "containers", 5, "containers per pod")
	over := flag.String("over-pods", "3000,10000", "pods of the runs beyond the default cache bound of 10,000 records, comma-separated (empty skips them)")
	flag.DurationVar(&o.idle, "idle", time.Minute, "how long CPU is measured while idle")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 5*time.Minute, "how long to wait for /readyz")
	flag.StringVar(&events, "events", "stream", "the fake's GetContainerEvents: stream (containerd 2.x) or unimplemented (containerd 1.6)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	daemonArgs := flag.String("daemon-args", "", "extra daemon flags, space-separated (for example --runtime-relist-interval 20s)")
	flag.StringVar(&o.heapProfile, "heap-profile", "", "save the node run's heap profile (after a GC) to this file, for go tool pprof")
	flag.Parse()
	o.daemonArgs = strings.Fields(*daemonArgs)
	for _, f := range strings.FieldsFunc(*over, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-over-pods %q: want positive pod counts", *over)
		}
		o.overPods = append(o.overPods, n)
	}
	switch events {
	case "stream":
		o.events = fakecri.EventsStream
	case "unimplemented":
		o.events = fakecri.EventsUnimplemented
	default:
		return fmt.Errorf("-events %q: want stream or unimplemented", events)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := measureAll(ctx, o)
	if err != nil {
		return err
	}
	printResult(os.Stdout, res)
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(o.jsonOut, data, 0o644)
	}
	return nil
}

// result holds the runs and what is derived from them.
type result struct {
	Baseline daemonRun   `json:"baseline"`
	Node     daemonRun   `json:"node"`
	Over     []daemonRun `json:"over_bound"`
	Derived  derived     `json:"derived"`
	Settings settings    `json:"settings"`
}

type settings struct {
	Events      string  `json:"events"`
	IdleSeconds float64 `json:"idle_seconds"`
	ClockTicks  int     `json:"clock_ticks_per_second"`
}

// derived are the per-container figures of the node-sized run over the
// empty baseline.
type derived struct {
	HeapPerContainerBytes float64 `json:"heap_per_container_bytes"`
	HeapPerRecordBytes    float64 `json:"heap_per_record_bytes"`
	RSSPerContainerBytes  float64 `json:"rss_per_container_bytes"`
	StatusCallsPerCtr     float64 `json:"status_calls_per_container"`
	FormulaPerCtr         float64 `json:"formula_calls_per_container"`
}

func measureAll(ctx context.Context, o options) (result, error) {
	r := result{Settings: settings{Events: eventsName(o.events), IdleSeconds: o.idle.Seconds(), ClockTicks: clockTicks}}
	var err error
	fmt.Fprintln(os.Stderr, "scale: empty daemon (baseline)")
	if r.Baseline, err = measure(ctx, o, 0); err != nil {
		return r, fmt.Errorf("baseline: %w", err)
	}
	fmt.Fprintf(os.Stderr, "scale: %d containers in %d pods, then %s idle\n", o.pods*o.perPod, o.pods, o.idle)
	node := o
	node.idleFor = o.idle
	if r.Node, err = measure(ctx, node, o.pods); err != nil {
		return r, fmt.Errorf("node run: %w", err)
	}
	for _, pods := range o.overPods {
		fmt.Fprintf(os.Stderr, "scale: %d containers in %d pods, default cache bound\n", pods*o.perPod, pods)
		over, err := measure(ctx, o, pods)
		if err != nil {
			return r, fmt.Errorf("run of %d pods: %w", pods, err)
		}
		r.Over = append(r.Over, over)
	}
	r.Derived = derive(r.Baseline, r.Node)
	return r, nil
}

func derive(base, node daemonRun) derived {
	ctrs := float64(node.Containers)
	records := float64(node.CachedContainers + node.CachedSandboxes)
	return derived{
		HeapPerContainerBytes: float64(node.HeapInuseBytes-base.HeapInuseBytes) / ctrs,
		HeapPerRecordBytes:    float64(node.HeapInuseBytes-base.HeapInuseBytes) / records,
		RSSPerContainerBytes:  float64(node.RSSBytes-base.RSSBytes) / ctrs,
		StatusCallsPerCtr:     float64(node.Calls[fakecri.RPCContainerStatus]+node.Calls[fakecri.RPCPodSandboxStatus]) / ctrs,
		FormulaPerCtr:         1 + float64(node.Pods)/ctrs,
	}
}

func eventsName(m fakecri.EventsMode) string {
	if m == fakecri.EventsStream {
		return "stream"
	}
	return "unimplemented"
}
