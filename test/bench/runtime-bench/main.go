// Command runtime-bench measures cri-enricherd against a real containerd:
// the time from a container's cgroup appearing to its enriched record being
// served by the API, the raw ContainerStatus/PodSandboxStatus round trips of
// the same runtime in the same run, the daemon's CRI calls per container
// beside those of a per-container enricher (the pattern of the design this
// project comes from), and the bootstrap time for all existing containers.
//
// It is a load program, not a test: it prints a table and, with -json, the
// numbers for BENCHMARKS.md.
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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "runtime-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	pods     int
	perPod   int
	rawCalls int
	variants []string
	jsonOut  string
}

func run() error {
	var o options
	var variants string
	flag.StringVar(&o.bin, "daemon", "bin/cri-enricherd", "the cri-enricherd binary")
	flag.IntVar(&o.pods, "pods", 100, "pods to create while the daemon runs")
	flag.IntVar(&o.perPod, "containers", 2, "containers per pod")
	flag.IntVar(&o.rawCalls, "raw-calls", 2000, "raw round trips measured per RPC")
	flag.StringVar(&variants, "variants", harness.Containerd16+","+harness.Containerd24, "runtimes to measure")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	o.variants = strings.Split(variants, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []result
	for _, name := range o.variants {
		v, err := harness.VariantByName(name)
		if err != nil {
			return err
		}
		if err := harness.Usable(v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r, err := measure(ctx, v, o)
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

// result is one runtime's measurements; durations in milliseconds.
type result struct {
	Runtime           string  `json:"runtime"`
	Pods              int     `json:"pods"`
	Containers        int     `json:"containers"`
	ServedContainer   summary `json:"cgroup_to_served_container_ms"`
	ServedSandbox     summary `json:"cgroup_to_served_sandbox_ms"`
	ServedKnownPod    summary `json:"cgroup_to_served_container_known_pod_ms"`
	RawContainer      summary `json:"raw_container_status_verbose_ms"`
	RawSandbox        summary `json:"raw_pod_sandbox_status_verbose_ms"`
	DaemonCalls       float64 `json:"daemon_status_calls"`
	DaemonCSMeanMS    float64 `json:"daemon_container_status_mean_ms"`
	DaemonPSSMeanMS   float64 `json:"daemon_pod_sandbox_status_mean_ms"`
	DaemonRetries     float64 `json:"daemon_retries"`
	DaemonPerCtr      float64 `json:"daemon_calls_per_container"`
	NaiveCalls        int     `json:"per_container_enricher_calls"`
	NaivePerCtr       float64 `json:"per_container_enricher_calls_per_container"`
	BootstrapMS       float64 `json:"bootstrap_ms"`
	BootstrapRecords  int     `json:"bootstrap_records"`
	EventSource       string  `json:"event_source"`
	MissedRecords     int     `json:"missed_records"`
	CgroupNotObserved int     `json:"cgroups_not_observed"`
}

func measure(ctx context.Context, v harness.Variant, o options) (result, error) {
	r := result{Runtime: v.Name, Pods: o.pods, Containers: o.pods * o.perPod}
	rt, err := harness.Start(ctx, v, harness.Options{})
	if err != nil {
		return r, err
	}
	defer func() { _ = rt.Close() }()
	d, err := startDaemon(o.bin, rt.Endpoint())
	if err != nil {
		return r, err
	}
	defer d.stop()
	if err := d.waitReady(ctx, time.Minute); err != nil {
		return r, err
	}
	before, err := d.scrape()
	if err != nil {
		return r, err
	}
	lat, err := createAndTime(ctx, rt, d, o)
	if err != nil {
		return r, err
	}
	after, err := d.scrape()
	if err != nil {
		return r, err
	}
	r.ServedContainer, r.ServedSandbox = summarize(lat.container), summarize(lat.sandbox)
	r.ServedKnownPod = summarize(lat.knownPod)
	r.MissedRecords, r.CgroupNotObserved = lat.missed, lat.unobserved
	r.DaemonCalls = statusCalls(after) - statusCalls(before)
	r.DaemonRetries = after.Sum("cri_enricherd_lookup_retries_total") - before.Sum("cri_enricherd_lookup_retries_total")
	r.DaemonPerCtr = r.DaemonCalls / float64(r.Containers)
	r.DaemonCSMeanMS = meanLatencyMS(before, after, "ContainerStatus")
	r.DaemonPSSMeanMS = meanLatencyMS(before, after, "PodSandboxStatus")
	r.EventSource = eventSource(after)
	if r.RawContainer, r.RawSandbox, err = rawRoundTrips(ctx, rt, o.rawCalls); err != nil {
		return r, err
	}
	if r.NaiveCalls, err = perContainerEnricher(ctx, rt); err != nil {
		return r, err
	}
	r.NaivePerCtr = float64(r.NaiveCalls) / float64(r.Containers)
	d.stop()
	r.BootstrapMS, r.BootstrapRecords, err = bootstrap(ctx, o.bin, rt.Endpoint(), r.Containers+r.Pods)
	return r, err
}
