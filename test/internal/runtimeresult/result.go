// Package runtimeresult is the JSON that test/bench/runtime-bench writes and
// test/bench/report reads: one runtime's measurements, and the calls per
// container by RPC that both print. One definition keeps the two programs
// from drifting apart.
package runtimeresult

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The RPCs whose calls per container are reported, in the order a lookup
// makes them.
const (
	ContainerStatus  = "ContainerStatus"
	PodSandboxStatus = "PodSandboxStatus"
	ListContainers   = "ListContainers"
	ListPodSandbox   = "ListPodSandbox"
)

// RPCs lists the reported RPCs.
var RPCs = []string{ContainerStatus, PodSandboxStatus, ListContainers, ListPodSandbox}

// Result is one runtime's measurements; durations in milliseconds.
type Result struct {
	Runtime     string `json:"runtime"`
	EventSource string `json:"event_source"`
	Pods        int    `json:"pods"`
	Containers  int    `json:"containers"`

	ServedContainer   Summary `json:"cgroup_to_served_container_ms"`
	ServedKnownPod    Summary `json:"cgroup_to_served_container_known_pod_ms"`
	ServedSandbox     Summary `json:"cgroup_to_served_sandbox_ms"`
	CompleteContainer Summary `json:"cgroup_to_complete_container_ms"`
	CompleteAfter     Summary `json:"start_to_complete_container_ms"`
	RunPodSandbox     Summary `json:"run_pod_sandbox_ms"`
	RawContainer      Summary `json:"raw_container_status_verbose_ms"`
	RawSandbox        Summary `json:"raw_pod_sandbox_status_verbose_ms"`
	// PeerServed is a per-container enricher reacting to the cgroups of
	// more pods, with no daemon running: cgroup appears -> its
	// ContainerStatus and PodSandboxStatus answered, from an idle client;
	// PeerFirst to its ContainerStatus alone.
	PeerServed Summary `json:"reacting_peer_cgroup_to_cs_pss_ms"`
	PeerFirst  Summary `json:"reacting_peer_cgroup_to_cs_ms"`

	// DaemonCalls are the calls the runtime received from the daemon for
	// the run's IDs, by RPC, plus the Lists of the whole node;
	// OtherIDCalls those naming IDs of no pod of the run (cgroups of other
	// work on a shared host).
	DaemonCalls  map[string]int     `json:"daemon_calls"`
	OtherIDCalls map[string]int     `json:"daemon_calls_other_ids"`
	NaiveCalls   map[string]int     `json:"per_container_enricher_calls"`
	Retries      map[string]float64 `json:"daemon_retries_by_rpc_reason"`
	Waits        map[string]float64 `json:"daemon_waits_by_reason"`
	DaemonCSMean float64            `json:"daemon_container_status_mean_ms"`
	DaemonPSMean float64            `json:"daemon_pod_sandbox_status_mean_ms"`

	BootstrapMS       float64 `json:"bootstrap_ms"`
	BootstrapRecords  int     `json:"bootstrap_records"`
	MissedRecords     int     `json:"missed_records"`
	CgroupNotObserved int     `json:"cgroups_not_observed"`

	// Checks are the figures with a target, judged once by runtime-bench.
	Checks []Check `json:"checks"`
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Check is one figure beside its target and whether it meets it.
type Check struct {
	Figure   string `json:"figure"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Pass     bool   `json:"pass"`
}

// Verdict is PASS or MISS.
func (c Check) Verdict() string {
	if c.Pass {
		return "PASS"
	}
	return "MISS"
}

// StatusCalls adds ContainerStatus and PodSandboxStatus.
func StatusCalls(calls map[string]int) int {
	return calls[ContainerStatus] + calls[PodSandboxStatus]
}

// PerContainer is each RPC's calls per container, then the status calls
// per container with their count.
func PerContainer(calls map[string]int, containers int) []string {
	var cells []string
	for _, rpc := range RPCs {
		cells = append(cells, fmt.Sprintf("%.2f", float64(calls[rpc])/float64(containers)))
	}
	status := StatusCalls(calls)
	return append(cells, fmt.Sprintf("%.2f (%d)", float64(status)/float64(containers), status))
}

// ByReason prints counts by reason as "a 3, b 1", or "0".
func ByReason(m map[string]float64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Total adds a map's counts.
func Total[V int | float64](m map[string]V) V {
	var t V
	for _, v := range m {
		t += v
	}
	return t
}

// CallsHeader heads the calls table that CallsRows fills.
var CallsHeader = []string{"runtime", "who", "CS", "PSS", "ListContainers", "ListPodSandbox",
	"status calls", "retries (rpc/reason)", "waits (reason)", "calls naming other IDs"}

// CallsRows is the calls table: per container and by RPC, the daemon's
// calls (counted on the runtime's side of the socket) beside the
// per-container enricher's, with the daemon's retries and waits by reason.
func CallsRows(rs []Result) [][]string {
	var rows [][]string
	for _, r := range rs {
		daemon := append([]string{r.Runtime, "daemon"}, PerContainer(r.DaemonCalls, r.Containers)...)
		rows = append(rows, append(daemon, ByReason(r.Retries), ByReason(r.Waits), fmt.Sprint(Total(r.OtherIDCalls))))
		naive := append([]string{r.Runtime, "per-container enricher"}, PerContainer(r.NaiveCalls, r.Containers)...)
		rows = append(rows, append(naive, "-", "-", "-"))
	}
	return rows
}
