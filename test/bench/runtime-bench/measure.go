package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

type latencies struct {
	mu                 sync.Mutex
	container, sandbox []time.Duration
	// knownPod are the containers whose sandbox was already served when
	// their cgroup appeared: the case the 2x target is about.
	knownPod           []time.Duration
	sandboxServed      map[string]time.Time
	missed, unobserved int
}

// createAndTime creates the pods one after another while a cgroup watcher
// of its own timestamps each container cgroup; a poller per cgroup then
// measures when the daemon serves the record.
func createAndTime(ctx context.Context, rt *harness.Runtime, d *daemon, o options) (*latencies, error) {
	h, err := cgroup.DetectHierarchy("")
	if err != nil {
		return nil, err
	}
	w := cgroup.NewWatcher(h.Dir, zap.NewNop(), cgroup.WatcherOptions{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := &latencies{sandboxServed: map[string]time.Time{}}
	var polls sync.WaitGroup
	seen := map[string]bool{}
	var seenMu sync.Mutex
	go func() {
		_ = w.Run(wctx, func(ev cgroup.Event) {
			if ev.Kind != cgroup.Added {
				return
			}
			at := time.Now()
			seenMu.Lock()
			seen[ev.Ref.ContainerID] = true
			seenMu.Unlock()
			polls.Add(1)
			go func() { defer polls.Done(); lat.poll(wctx, d, ev.Ref.ContainerID, at) }()
		})
	}()
	<-w.Ready()
	var ids []string
	for p := 0; p < o.pods; p++ {
		spec := harness.PodSpec{Name: fmt.Sprintf("bench-%d", p), Namespace: "bench",
			Labels: map[string]string{"app": "bench", "pod-template-hash": "5d8f7c9b6"}}
		for c := 0; c < o.perPod; c++ {
			spec.Containers = append(spec.Containers, harness.ContainerSpec{Name: fmt.Sprintf("c%d", c)})
		}
		pod, err := rt.RunPod(ctx, spec)
		if err != nil {
			return nil, err
		}
		ids = append(ids, pod.SandboxID)
		for _, c := range pod.Containers {
			ids = append(ids, c.ID)
		}
	}
	done := make(chan struct{})
	go func() { polls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("records not served within a minute")
	}
	seenMu.Lock()
	for _, id := range ids {
		if !seen[id] {
			lat.unobserved++
		}
	}
	seenMu.Unlock()
	return lat, nil
}

func (l *latencies) poll(ctx context.Context, d *daemon, id string, since time.Time) {
	deadline := since.Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if rec, ok := d.served(id); ok {
			now := time.Now()
			took := now.Sub(since)
			l.mu.Lock()
			if rec.IsPodSandbox {
				l.sandbox = append(l.sandbox, took)
				l.sandboxServed[rec.ID] = now
			} else {
				l.container = append(l.container, took)
				if at, ok := l.sandboxServed[rec.Pod.SandboxID]; ok && at.Before(since) {
					l.knownPod = append(l.knownPod, took)
				}
			}
			l.mu.Unlock()
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	l.mu.Lock()
	l.missed++
	l.mu.Unlock()
}

// rawRoundTrips times verbose status calls straight to the runtime.
func rawRoundTrips(ctx context.Context, rt *harness.Runtime, n int) (summary, summary, error) {
	pods := rt.Pods()
	if len(pods) == 0 || len(pods[0].Containers) == 0 {
		return summary{}, summary{}, fmt.Errorf("no pod to measure")
	}
	c := rt.Client()
	ctr, sb := pods[0].Containers[0].ID, pods[0].SandboxID
	cs := make([]time.Duration, 0, n)
	ps := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr, Verbose: true}); err != nil {
			return summary{}, summary{}, err
		}
		cs = append(cs, time.Since(start))
		start = time.Now()
		if _, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb, Verbose: true}); err != nil {
			return summary{}, summary{}, err
		}
		ps = append(ps, time.Since(start))
	}
	return summarize(cs), summarize(ps), nil
}

// perContainerEnricher is the straightforward pattern: for every container,
// ContainerStatus and PodSandboxStatus. It returns the status calls made.
func perContainerEnricher(ctx context.Context, rt *harness.Runtime) (int, error) {
	c := rt.Client()
	list, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return 0, err
	}
	calls := 0
	for _, ctr := range list.GetContainers() {
		if _, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.GetId(), Verbose: true}); err != nil {
			return calls, err
		}
		calls++
		if _, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: ctr.GetPodSandboxId(), Verbose: true}); err != nil {
			return calls, err
		}
		calls++
	}
	return calls, nil
}

// bootstrap times a fresh daemon from start to ready with want records.
func bootstrap(ctx context.Context, bin, endpoint string, want int) (float64, int, error) {
	start := time.Now()
	d, err := startDaemon(bin, endpoint)
	if err != nil {
		return 0, 0, err
	}
	defer d.stop()
	if err := d.waitReady(ctx, time.Minute); err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	recs, err := d.Records()
	n := len(recs)
	if err == nil && n < want {
		err = fmt.Errorf("ready with %d records, want %d", n, want)
	}
	return ms(took), n, err
}

// summary is a latency distribution in milliseconds.
type summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) float64 { return ms(ds[int(math.Ceil(p*float64(len(ds))))-1]) }
	return summary{N: len(ds), P50: q(0.50), P99: q(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func printResults(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNTIME\tSOURCE\tWHAT\tN\tP50 ms\tP99 ms\tMAX ms")
	for _, r := range rs {
		rows := []struct {
			what string
			s    summary
		}{
			{"cgroup appears -> container served", r.ServedContainer},
			{"  of which the pod was already known", r.ServedKnownPod},
			{"cgroup appears -> sandbox served", r.ServedSandbox},
			{"raw ContainerStatus(verbose)", r.RawContainer},
			{"raw PodSandboxStatus(verbose)", r.RawSandbox},
		}
		for _, row := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.2f\n", r.Runtime, r.EventSource, row.what, row.s.N, row.s.P50, row.s.P99, row.s.Max)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNTIME\tCONTAINERS\tDAEMON CALLS\t(RETRIES)\tPER CONTAINER\tPER-CONTAINER ENRICHER\tPER CONTAINER\tBOOTSTRAP ms\tRECORDS\tMISSED\tDAEMON CS/PSS MEAN ms")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%d\t%.2f\t%.1f\t%d\t%d\t%.2f / %.2f\n", r.Runtime, r.Containers, r.DaemonCalls, r.DaemonRetries,
			r.DaemonPerCtr, r.NaiveCalls, r.NaivePerCtr, r.BootstrapMS, r.BootstrapRecords, r.MissedRecords+r.CgroupNotObserved,
			r.DaemonCSMeanMS, r.DaemonPSSMeanMS)
	}
	_ = tw.Flush()
}
