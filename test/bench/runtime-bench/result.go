package main

import (
	"context"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

// The JSON shapes are shared with test/bench/report.
type (
	result  = runtimeresult.Result
	summary = runtimeresult.Summary
	check   = runtimeresult.Check
)

// measure runs one variant from start to finish: the runtime, the daemon
// in front of it, the pods, then the raw floor, the bootstrap and the
// reacting peer.
func measure(ctx context.Context, name string, o options) (result, error) {
	r := result{Runtime: name, Pods: o.pods, Containers: o.pods * o.perPod}
	rt, err := startRuntime(ctx, name, o)
	if err != nil {
		return r, err
	}
	defer func() { _ = rt.close() }()
	first, err := measureDaemon(ctx, rt, o, &r)
	if err != nil {
		return r, err
	}
	if r.RawContainer, r.RawSandbox, err = rawRoundTrips(ctx, rt.client(), first, o.rawCalls); err != nil {
		return r, err
	}
	if r.NaiveCalls, err = perContainerEnricher(ctx, rt.client()); err != nil {
		return r, err
	}
	if r.BootstrapMS, r.BootstrapRecords, err = bootstrap(ctx, o.bin, rt.endpoint(), rt.daemonArgs(), r.Containers+r.Pods); err != nil {
		return r, err
	}
	// Last, so that its pods do not count in the bootstrap above.
	r.PeerServed, r.PeerFirst, err = reactingPeer(ctx, rt, o, o.pods, peerPods(o.pods))
	r.Checks = checks(r)
	return r, err
}

// peerPods is how many pods the reacting peer is timed on: half the
// daemon's, at least 10.
func peerPods(pods int) int { return max(pods/2, 10) }

// measureDaemon creates the pods while a daemon runs and records what it
// served and what it cost. The calls are read before anything else talks
// to the runtime, since the fake counts every client on its socket. It
// returns the first pod, for the raw round trips.
func measureDaemon(ctx context.Context, rt runtimeUnderTest, o options, r *result) (createdPod, error) {
	d, err := startDaemon(o.bin, rt.daemonEndpoint(), rt.daemonArgs())
	if err != nil {
		return createdPod{}, err
	}
	defer d.stop()
	if err := d.waitReady(ctx, time.Minute); err != nil {
		return createdPod{}, err
	}
	if err := d.waitEventSource(ctx, 20*time.Second); err != nil {
		return createdPod{}, err
	}
	before, err := d.scrape()
	if err != nil {
		return createdPod{}, err
	}
	calls := snapshotCalls(rt.counter())
	lat, err := createAndTime(ctx, rt, d, o)
	if err != nil {
		return createdPod{}, err
	}
	time.Sleep(o.settleTime) // lookups still in flight count too
	after, err := d.scrape()
	if err != nil {
		return createdPod{}, err
	}
	r.DaemonCalls, r.OtherIDCalls = calls.since(rt.counter(), lat.ids)
	lat.fill(r)
	r.Retries = byLabels(before, after, "cri_enricherd_lookup_retries_total", "rpc", "reason")
	r.Waits = byLabels(before, after, "cri_enricherd_lookup_waits_total", "reason")
	r.DaemonCSMean = meanLatencyMS(before, after, "ContainerStatus")
	r.DaemonPSMean = meanLatencyMS(before, after, "PodSandboxStatus")
	r.EventSource = eventSource(after)
	return lat.pods[0], nil
}
