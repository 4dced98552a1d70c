package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

// rawRoundTrips times verbose status calls straight to the runtime, after
// the pods exist: the floor the served latencies are judged against.
func rawRoundTrips(ctx context.Context, c runtimeapi.RuntimeServiceClient, pod createdPod, n int) (summary, summary, error) {
	if len(pod.containers) == 0 {
		return summary{}, summary{}, fmt.Errorf("no container to measure")
	}
	ctr := &runtimeapi.ContainerStatusRequest{ContainerId: pod.containers[0], Verbose: true}
	sb := &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.sandbox, Verbose: true}
	cs := make([]time.Duration, 0, n)
	ps := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.ContainerStatus(ctx, ctr); err != nil {
			return summary{}, summary{}, err
		}
		cs = append(cs, time.Since(start))
		start = time.Now()
		if _, err := c.PodSandboxStatus(ctx, sb); err != nil {
			return summary{}, summary{}, err
		}
		ps = append(ps, time.Since(start))
	}
	return summarize(cs), summarize(ps), nil
}

// perContainerEnricher is the straightforward pattern: one List, then for
// every container ContainerStatus and PodSandboxStatus. It returns the
// calls it made, by RPC.
func perContainerEnricher(ctx context.Context, c runtimeapi.RuntimeServiceClient) (map[string]int, error) {
	list, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	calls := map[string]int{runtimeresult.ListContainers: 1}
	for _, ctr := range list.GetContainers() {
		if _, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.GetId(), Verbose: true}); err != nil {
			return calls, err
		}
		calls[runtimeresult.ContainerStatus]++
		if _, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: ctr.GetPodSandboxId(), Verbose: true}); err != nil {
			return calls, err
		}
		calls[runtimeresult.PodSandboxStatus]++
	}
	return calls, nil
}

// bootstrap times a fresh daemon from start to ready with want records.
func bootstrap(ctx context.Context, bin, endpoint string, args []string, want int) (float64, int, error) {
	start := time.Now()
	d, err := startDaemon(bin, endpoint, args)
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

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) float64 { return ms(ds[int(math.Ceil(p*float64(len(ds))))-1]) }
	return summary{N: len(ds), P50: q(0.50), P99: q(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
