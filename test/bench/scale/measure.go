package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// daemonRun is one daemon's measurements against one fake runtime.
type daemonRun struct {
	Pods       int `json:"pods"`
	Containers int `json:"containers"`

	Ready               bool    `json:"ready"`
	BootstrapMS         float64 `json:"bootstrap_ms"`
	BootstrapCPUSeconds float64 `json:"bootstrap_cpu_seconds"`

	CachedContainers int     `json:"cached_containers"`
	CachedSandboxes  int     `json:"cached_sandboxes"`
	CachedDeleted    int     `json:"cached_deleted"`
	Evictions        float64 `json:"evictions"`
	LookupRetries    float64 `json:"lookup_retries"`

	// Calls are the CRI calls the fake answered, by RPC.
	Calls map[string]int `json:"cri_calls"`

	IdleCPUPercent *float64 `json:"idle_cpu_percent_of_one_core,omitempty"`

	// HeapInuseBytes is runtime.MemStats.HeapInuse right after a forced
	// GC; MetricsHeapInuseBytes is go_memstats_heap_inuse_bytes of the
	// scrape that follows (it includes the scrape's own garbage).
	HeapInuseBytes        uint64  `json:"heap_inuse_bytes"`
	HeapAllocBytes        uint64  `json:"heap_alloc_bytes"`
	MetricsHeapInuseBytes float64 `json:"metrics_heap_inuse_bytes"`
	RSSBytes              uint64  `json:"rss_bytes"`

	Problem string `json:"problem,omitempty"`
}

// measure starts a fake runtime holding pods pods, runs the daemon on it
// until ready, measures idle CPU for o.idleFor, and reads memory and calls;
// the heap profile is saved when this is the idle-measured run.
func measure(ctx context.Context, o options, pods int) (daemonRun, error) {
	r := daemonRun{Pods: pods, Containers: pods * o.perPod}
	dir, err := os.MkdirTemp("", "cri-enricherd-scale-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	rt := fakecri.New()
	rt.SetEvents(o.events)
	populate(rt, pods, o.perPod)
	stopFake, err := rt.Serve(filepath.Join(dir, "cri.sock"))
	if err != nil {
		return r, err
	}
	defer stopFake()

	start := time.Now()
	d, err := startDaemon(o.bin, "unix://"+filepath.Join(dir, "cri.sock"), dir, o.daemonArgs)
	if err != nil {
		return r, err
	}
	defer d.stop()
	if err := d.waitReady(ctx, o.readyTimeout); err != nil {
		r.Problem = err.Error()
		r.Calls = callsOf(rt)
		fmt.Fprintf(os.Stderr, "scale: not ready: %v\n", err)
		return r, d.readMemory(&r) // what a daemon that never got ready holds is a finding too
	}
	r.Ready, r.BootstrapMS = true, ms(time.Since(start))
	if t, err := d.cpuTicks(); err == nil {
		r.BootstrapCPUSeconds = float64(t) / clockTicks
	}
	if o.idleFor > 0 {
		pct, err := d.idleCPU(ctx, o.idleFor)
		if err != nil {
			return r, err
		}
		r.IdleCPUPercent = &pct
	}
	r.Calls = callsOf(rt)
	if err := d.readMemory(&r); err != nil {
		return r, err
	}
	if o.idleFor > 0 && o.heapProfile != "" {
		if err := d.saveHeapProfile(o.heapProfile); err != nil {
			return r, err
		}
	}
	return r, d.readCounters(&r)
}

func callsOf(rt *fakecri.Runtime) map[string]int {
	out := map[string]int{}
	for _, rpc := range []string{fakecri.RPCVersion, fakecri.RPCListPodSandbox, fakecri.RPCListContainers,
		fakecri.RPCContainerStatus, fakecri.RPCPodSandboxStatus, fakecri.RPCGetContainerEvents} {
		out[rpc] = rt.Calls(rpc)
	}
	return out
}

// The workloads of the fake node: a pod runs one of these apps with its
// sidecars, like a Deployment's pods do.
var (
	apps       = []string{"checkout", "cart", "catalog", "payments", "search", "frontend", "recommendations", "shipping"}
	containers = []struct{ name, image string }{
		{"app", "registry.example.com/shop/%s:2.14.1"},
		{"istio-proxy", "docker.io/istio/proxyv2:1.24.2"},
		{"log-shipper", "cr.fluentbit.io/fluent/fluent-bit:3.2.4"},
		{"metrics-exporter", "quay.io/prometheus/statsd-exporter:v0.28.0"},
		{"config-reloader", "ghcr.io/stakater/reloader:v1.2.1"},
	}
)

// populate adds pods pods of perPod containers each with kubelet-sized
// metadata: eight pod labels (the kubelet's three io.kubernetes.pod.* and
// five of a Deployment) and the kubelet's four labels per container.
func populate(rt *fakecri.Runtime, pods, perPod int) {
	for i := range pods {
		app := apps[i%len(apps)]
		hash := fakecri.ID(app)[:10]
		spec := fakecri.PodSpec{
			Name:      fmt.Sprintf("%s-%s-%05d", app, hash, i),
			Namespace: fmt.Sprintf("team-%02d", i%20),
			Labels: map[string]string{
				"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app + "-prod",
				"app.kubernetes.io/component": "api", "app.kubernetes.io/version": "2.14.1",
				"pod-template-hash": hash,
			},
		}
		for c := range perPod {
			ct := containers[c%len(containers)]
			name := ct.name
			if c >= len(containers) {
				name = fmt.Sprintf("%s-%d", ct.name, c)
			}
			image := ct.image
			if strings.Contains(image, "%s") {
				image = fmt.Sprintf(image, app)
			}
			spec.Containers = append(spec.Containers, fakecri.ContainerSpec{Name: name, Image: image})
		}
		rt.AddPod(spec)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printResult(w io.Writer, r result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCONTAINERS\tREADY\tBOOTSTRAP ms\tBOOTSTRAP CPU s\tCACHED\tEVICTIONS\tSTATUS CALLS\tLIST CALLS\tHEAP MiB\tRSS MiB\tIDLE CPU %")
	rows := []struct {
		name string
		r    *daemonRun
	}{{"empty", &r.Baseline}, {"node", &r.Node}}
	for i := range r.Over {
		rows = append(rows, struct {
			name string
			r    *daemonRun
		}{"over bound", &r.Over[i]})
	}
	for _, row := range rows {
		x := row.r
		idle := "-"
		if x.IdleCPUPercent != nil {
			idle = fmt.Sprintf("%.3f", *x.IdleCPUPercent)
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%.0f\t%.2f\t%d\t%.0f\t%d\t%d\t%.1f\t%.1f\t%s\n", row.name, x.Containers, x.Ready, x.BootstrapMS,
			x.BootstrapCPUSeconds, x.CachedContainers+x.CachedSandboxes+x.CachedDeleted, x.Evictions,
			x.Calls[fakecri.RPCContainerStatus]+x.Calls[fakecri.RPCPodSandboxStatus],
			x.Calls[fakecri.RPCListContainers]+x.Calls[fakecri.RPCListPodSandbox], mib(x.HeapInuseBytes), mib(x.RSSBytes), idle)
	}
	_ = tw.Flush()
	d := r.Derived
	fmt.Fprintf(w, "\nper container (node run over empty): heap %.0f B (%.0f B per cached record), RSS %.0f B; status calls %.3f per container (1 + 1/containers-per-pod = %.3f)\n",
		d.HeapPerContainerBytes, d.HeapPerRecordBytes, d.RSSPerContainerBytes, d.StatusCallsPerCtr, d.FormulaPerCtr)
	for _, row := range rows {
		if row.r.Problem != "" {
			fmt.Fprintf(w, "%d containers: %s\n", row.r.Containers, row.r.Problem)
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
