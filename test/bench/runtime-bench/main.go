// Command runtime-bench measures cri-enricherd against a container runtime,
// one after another in one run: real containerd 1.6 (no CRI event stream:
// the cgroup watcher and containerd's own create and task-start events feed
// lookups), the same with containerd's events off (the cgroup watcher
// alone), real containerd 2.4 (CRI event stream),
// and the fake runtime in CRI-O's shape (test/fakecri named "cri-o", its
// event stream ending at once with EOF, systemd-driver cgroups that the
// benchmark makes itself in a private cgroup v2-looking directory).
//
// For each runtime it reports what the runtime received per container,
// split by RPC and counted on the runtime's side of the socket, beside a
// per-container enricher's (ContainerStatus + PodSandboxStatus for every
// container), with the daemon's own retries and waits by reason; the time
// from a cgroup appearing to its record being served with its pod, and from
// the runtime starting a container to its complete record (PID set, not
// partial); the raw ContainerStatus/PodSandboxStatus round trips and the
// RunPodSandbox time of the same run; the bootstrap of a fresh daemon; and
// every figure with a target as PASS or MISS.
//
// It is a load program, not a test: it prints tables and, with -json, the
// numbers test/bench/report and BENCHMARKS.md read.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func main() {
	runPeerIfAsked()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runtime-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin         string
	pods        int
	perPod      int
	rawCalls    int
	variants    []string
	crioStart   time.Duration
	crioSandbox time.Duration
	jsonOut     string
	settleTime  time.Duration
}

// allVariants is what one run measures unless -variants says otherwise.
var allVariants = []string{harness.Containerd16, containerd16Cgroup, harness.Containerd24, fakeCRIO}

func run() error {
	var o options
	var variants string
	flag.StringVar(&o.bin, "daemon", "bin/cri-enricherd", "the cri-enricherd binary")
	flag.IntVar(&o.pods, "pods", 100, "pods to create while the daemon runs")
	flag.IntVar(&o.perPod, "containers", 2, "containers per pod")
	flag.IntVar(&o.rawCalls, "raw-calls", 2000, "raw round trips measured per RPC")
	flag.StringVar(&variants, "variants", strings.Join(allVariants, ","), "runtimes to measure, comma-separated: "+strings.Join(allVariants, ", "))
	flag.DurationVar(&o.crioStart, "crio-start-delay", 3*time.Millisecond, "fake-crio: time between a container's CreateContainer (its cgroup appears) and its StartContainer")
	flag.DurationVar(&o.crioSandbox, "crio-sandbox-delay", 20*time.Millisecond, "fake-crio: time between a sandbox's cgroup appearing and the runtime listing it ready (its network set up); RunPodSandbox takes this long")
	flag.DurationVar(&o.settleTime, "settle", 500*time.Millisecond, "wait after the last record is complete before the calls are counted, for lookups still on their way")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	if o.pods <= 0 || o.perPod <= 0 {
		return fmt.Errorf("-pods and -containers must be positive")
	}
	o.variants = strings.Split(variants, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []result
	for _, name := range o.variants {
		fmt.Fprintf(os.Stderr, "runtime-bench: %s, %d pods of %d containers\n", name, o.pods, o.perPod)
		r, err := measure(ctx, name, o)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	printResults(os.Stdout, results)
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(o.jsonOut, data, 0o644)
	}
	return nil
}
