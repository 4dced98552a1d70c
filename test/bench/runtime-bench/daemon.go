package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/test/internal/daemonproc"
)

// daemon is a cri-enricherd process under measurement.
type daemon struct{ *daemonproc.Process }

// startDaemon runs the daemon with its periodic relist out of the way, so
// the calls counted are those the creations caused, and the runtime's own
// flags after.
func startDaemon(bin, endpoint string, args []string) (*daemon, error) {
	p, err := daemonproc.Start(daemonproc.Options{Binary: bin, Endpoint: endpoint,
		Args: append([]string{"--runtime-relist-interval", "1h"}, args...)})
	if err != nil {
		return nil, err
	}
	return &daemon{p}, nil
}

func (d *daemon) stop() { _ = d.Stop(time.Minute) }

// waitReady polls /readyz every millisecond: the bootstrap figure is read
// off it.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := d.WaitReady(ctx, time.Millisecond); err != nil {
		return fmt.Errorf("%w; daemon log:\n%s", err, d.LogTail(20))
	}
	return nil
}

// waitEventSource waits until the daemon has settled on its source of
// lookups: a runtime whose stream ends at once with EOF is only taken for
// one without events after a few quick ends (and a resync after each), and
// the run measures the steady state, not that start.
//
// "cgroup" may yet turn into "containerd": the daemon follows containerd's
// own events once the CRI stream turned out absent and the subscription
// stayed open a second, so "cgroup" counts as settled only after
// cgroupSettle.
func (d *daemon) waitEventSource(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const cgroupSettle = 3 * time.Second
	var cgroupSince time.Time
	for {
		m, err := d.scrape()
		switch src := eventSource(m); {
		case err != nil || src == "unknown":
		case src != "cgroup":
			return nil
		case cgroupSince.IsZero():
			cgroupSince = time.Now()
		case time.Since(cgroupSince) >= cgroupSettle:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no event source reported: %w (last scrape: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scrape returns the daemon's samples by series.
func (d *daemon) scrape() (promtext.Samples, error) {
	m, _, err := d.Scrape()
	return m, err
}

func eventSource(m promtext.Samples) string {
	for _, mode := range []string{"events", "containerd", "cgroup"} {
		if m.Sum("cri_enricherd_event_source_info", `mode="`+mode+`"`) == 1 {
			return mode
		}
	}
	return "unknown"
}

// meanLatencyMS is the mean latency of rpc as the daemon saw it between two
// scrapes, from its duration histogram: how fast the runtime answered while
// it was busy creating the pods, beside the raw round trips measured idle.
func meanLatencyMS(before, after promtext.Samples, rpc string) float64 {
	label := `rpc="` + rpc + `"`
	sum := after.Sum("cri_enricherd_cri_request_duration_seconds_sum", label) -
		before.Sum("cri_enricherd_cri_request_duration_seconds_sum", label)
	n := after.Sum("cri_enricherd_cri_request_duration_seconds_count", label) -
		before.Sum("cri_enricherd_cri_request_duration_seconds_count", label)
	if n == 0 {
		return 0
	}
	return sum / n * 1000
}
