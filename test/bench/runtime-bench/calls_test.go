package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
)

func TestByLabels_CountsTheIncreaseByLabelValues(t *testing.T) {
	const name = "cri_enricherd_lookup_retries_total"
	before := promtext.Samples{
		name + `{reason="NotFound", rpc="PodSandboxStatus"}`: 2,
	}
	after := promtext.Samples{
		name + `{reason="NotFound", rpc="PodSandboxStatus"}`:        5,
		name + `{reason="Unavailable", rpc="ContainerStatus"}`:      1,
		name + `{reason="DeadlineExceeded", rpc="ContainerStatus"}`: 0,
		`cri_enricherd_lookup_waits_total{reason="not_started"}`:    7,
	}
	got := byLabels(before, after, name, "rpc", "reason")
	want := map[string]float64{"PodSandboxStatus/NotFound": 3, "ContainerStatus/Unavailable": 1}
	if !maps.Equal(got, want) {
		t.Errorf("byLabels = %v, want %v", got, want)
	}
}

// counts is a callCounter over fixed per-ID counts; Calls adds them all.
type counts map[[2]string]int

func (c counts) CallsFor(rpc, id string) int { return c[[2]string{rpc, id}] }

func (c counts) Calls(rpc string) int {
	n := 0
	for k, v := range c {
		if k[0] == rpc {
			n += v
		}
	}
	return n
}

func TestCallSnapshot_SplitsTheRunsCallsFromOtherIDs(t *testing.T) {
	c := counts{{"ListContainers", ""}: 1} // the daemon's start-up sync
	snap := snapshotCalls(c)
	c[[2]string{"ListContainers", ""}] = 2      // a resync during the run
	c[[2]string{"ContainerStatus", "ours"}] = 1 // a container of the run
	c[[2]string{"ContainerStatus", "theirs"}] = 4
	c[[2]string{"ListContainers", "ours"}] = 3
	ours, other := snap.since(c, map[string]bool{"ours": true})
	tests := []struct {
		rpc               string
		wantOurs, wantOth int
	}{
		{"ContainerStatus", 1, 4},
		{"ListContainers", 4, 0},
		{"PodSandboxStatus", 0, 0},
	}
	for _, tt := range tests {
		if ours[tt.rpc] != tt.wantOurs || other[tt.rpc] != tt.wantOth {
			t.Errorf("%s: ours %d, other %d; want %d, %d", tt.rpc, ours[tt.rpc], other[tt.rpc], tt.wantOurs, tt.wantOth)
		}
	}
}

func TestChecks_JudgeIssue12sTargets(t *testing.T) {
	r := result{Pods: 10, Containers: 20,
		DaemonCalls:    map[string]int{"ContainerStatus": 20, "PodSandboxStatus": 11},
		Retries:        map[string]float64{"ContainerStatus/Unavailable": 1},
		ServedKnownPod: summary{N: 10, P50: 1.5}, ServedContainer: summary{N: 20, P99: 19.9},
		RawContainer: summary{P50: 0.4}, RawSandbox: summary{P50: 0.6},
		ServedSandbox: summary{N: 10, P50: 40}, RunPodSandbox: summary{P50: 20},
	}
	want := []bool{false, true, true, true, true, true} // 31 status calls > 30
	for i, c := range checks(r) {
		if c.Pass != want[i] {
			t.Errorf("%s: %s against %s judged %v, want %v", c.Figure, c.Measured, c.Target, c.Pass, want[i])
		}
	}
}

// The known-pod target is judged against the warm raw round trips, as
// issue 12 defines it; the reacting peer is reported, never judged.
func TestKnownPodCheck_JudgesAgainstTheWarmRawCallsAndReportsThePeer(t *testing.T) {
	base := result{ServedKnownPod: summary{N: 10, P50: 0.3}, RawContainer: summary{P50: 0.1}, RawSandbox: summary{P50: 0.1}}
	tests := []struct {
		name   string
		served float64
		peer   summary
		want   bool
	}{
		{"within 1.5x of the warm pair", 0.3, summary{}, true},
		{"over 1.5x of the warm pair, under the peer", 0.31, summary{N: 10, P50: 1}, false},
	}
	for _, tt := range tests {
		r := base
		r.ServedKnownPod.P50, r.PeerServed, r.PeerFirst = tt.served, tt.peer, summary{N: tt.peer.N, P50: tt.peer.P50 / 2}
		got := knownPodCheck(r)
		if got.Pass != tt.want {
			t.Errorf("%s: %s against %s judged %v, want %v", tt.name, got.Measured, got.Target, got.Pass, tt.want)
		}
		if reported := strings.Contains(got.Measured, "reacting peer"); reported != (tt.peer.N > 0) {
			t.Errorf("%s: %q reports the peer: %v, want %v", tt.name, got.Measured, reported, tt.peer.N > 0)
		}
	}
}
