package metrics

import (
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

const namespace = "cri_enricherd"

// rpcBuckets spans the runtime's floor (~0.2 ms) to the default timeout (2 s).
var rpcBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// Metrics holds the daemon's own series. Create one with New per process.
type Metrics struct {
	registry *prometheus.Registry

	criRequests     *prometheus.CounterVec
	criDuration     *prometheus.HistogramVec
	lookups         *prometheus.CounterVec
	lookupFailures  *prometheus.CounterVec
	fallbackHits    *prometheus.CounterVec
	retries         *prometheus.CounterVec
	waits           *prometheus.CounterVec
	ondemandRefused prometheus.Counter
	cgroupEvents    *prometheus.CounterVec
	runtimeEvents   *prometheus.CounterVec
	containerdEvs   *prometheus.CounterVec
	streamUp        prometheus.Gauge
	streamMode      *prometheus.GaugeVec
	streamReconn    prometheus.Counter
	relists         *prometheus.CounterVec
	relistRepairs   *prometheus.CounterVec
	trimmed         prometheus.Counter
	ready           prometheus.Gauge
	watchDropped    prometheus.Counter
	lastSyncNanos   atomic.Int64 // 0 before the first sync
}

// BuildInfo names the running binary and the node it runs on.
type BuildInfo struct {
	Version string
	// Node is the Kubernetes node name (config node_name), empty when
	// unset.
	Node string
}

// New creates the daemon's registry (never the global one) with its series,
// the build info, and the Go and process collectors.
func New(info BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{registry: reg}
	m.criRequests = counterVec(reg, "cri_requests_total", "CRI requests sent to the runtime, by RPC and gRPC code.", "rpc", "code")
	m.criDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "cri_request_duration_seconds",
		Help: "Latency of CRI requests, by RPC.", Buckets: rpcBuckets,
	}, []string{"rpc"})
	reg.MustRegister(m.criDuration)
	m.lookups = counterVec(reg, "lookups_total", "Finished lookups of a container or sandbox ID, by result.", "result")
	m.lookupFailures = counterVec(reg, "lookup_failures_total", "Failed lookup steps, by stage and reason (a gRPC code or a parse reason).", "stage", "reason")
	m.fallbackHits = counterVec(reg, "fallback_hits_total", "Records whose pod data did not come from a fresh PodSandboxStatus, by the source used instead.", "source")
	m.retries = counterVec(reg, "lookup_retries_total", "Lookup steps tried again after a transient failure, by RPC and reason (a gRPC code).", "rpc", "reason")
	m.waits = counterVec(reg, "lookup_waits_total", "IDs whose status was asked only once cheap List calls showed the runtime had started them, by reason (not_started, not_registered).", "reason")
	m.ondemandRefused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "ondemand_lookups_refused_total", Help: "API requests for unknown IDs refused (429) because they exceeded the on-demand lookup rate."})
	m.cgroupEvents = counterVec(reg, "cgroup_events_total", "Container cgroups seen appearing or disappearing, by kind.", "kind")
	m.runtimeEvents = counterVec(reg, "runtime_events_total", "CRI container events received, by type.", "type")
	m.containerdEvs = counterVec(reg, "containerd_events_total", "containerd's own events received where the runtime has no CRI event stream, by topic (container_create, task_start), malformed (unreadable) or skipped (not about a CRI container).", "topic")
	m.streamReconn = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "event_stream_reconnects_total", Help: "Times the CRI event stream was opened again after it ended."})
	m.streamUp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "event_stream_connected", Help: "1 while the CRI event stream is open."})
	m.streamMode = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "event_source_info", Help: "Which sources feed lookups: mode is events (CRI event stream and cgroups), containerd (containerd's own events and cgroups) or cgroup (cgroup watcher alone)."}, []string{"mode"})
	m.relists = counterVec(reg, "relists_total", "Relists of the runtime's containers and sandboxes, by result.", "result")
	m.relistRepairs = counterVec(reg, "relist_repairs_total", "Cache entries a relist repaired, by action (added, deleted).", "action")
	m.trimmed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "trimmed_values_total", Help: "Labels or annotation values dropped or shortened because they exceeded the configured bounds."})
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "ready", Help: "1 while the daemon is ready: synced with a reachable runtime."})
	m.watchDropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "watchers_dropped_total", Help: "Watch streams dropped because the client fell too far behind."})
	reg.MustRegister(m.streamReconn, m.streamUp, m.streamMode, m.trimmed, m.ready, m.watchDropped, m.ondemandRefused)
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info", Help: "The running build and the node it runs on: always 1."}, []string{"version", "goversion", "node"})
	buildInfo.WithLabelValues(info.Version, runtime.Version(), info.Node).Set(1)
	reg.MustRegister(buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func counterVec(reg *prometheus.Registry, name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	reg.MustRegister(c)
	return c
}

// Registry is the daemon's registry, for collectors other packages build.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the exposition of the daemon's registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry, EnableOpenMetrics: false})
}

// ObserveRPC counts one CRI request and its latency.
func (m *Metrics) ObserveRPC(rpc string, code codes.Code, took time.Duration) {
	m.criRequests.WithLabelValues(rpc, code.String()).Inc()
	m.criDuration.WithLabelValues(rpc).Observe(took.Seconds())
}

// LookupDone counts a finished lookup by result.
func (m *Metrics) LookupDone(result string) { m.lookups.WithLabelValues(result).Inc() }

// LookupFailed counts a failed lookup step.
func (m *Metrics) LookupFailed(stage, reason string) {
	m.lookupFailures.WithLabelValues(stage, reason).Inc()
}

// FallbackHit counts a record whose pod data came from a fallback source.
func (m *Metrics) FallbackHit(source string) { m.fallbackHits.WithLabelValues(source).Inc() }

// Retry counts a retried lookup step.
func (m *Metrics) Retry(rpc, reason string) { m.retries.WithLabelValues(rpc, reason).Inc() }

// Waited counts an ID that waited for the runtime to start it before its
// status was asked.
func (m *Metrics) Waited(reason string) { m.waits.WithLabelValues(reason).Inc() }

// OnDemandRefused counts an API lookup refused by the on-demand rate.
func (m *Metrics) OnDemandRefused() { m.ondemandRefused.Inc() }

// CgroupEvent counts a container cgroup appearing or disappearing.
func (m *Metrics) CgroupEvent(kind string) { m.cgroupEvents.WithLabelValues(kind).Inc() }

// RuntimeEvent counts one CRI container event by type.
func (m *Metrics) RuntimeEvent(eventType string) { m.runtimeEvents.WithLabelValues(eventType).Inc() }

// ContainerdEvent counts one of containerd's own events by topic label.
func (m *Metrics) ContainerdEvent(topic string) { m.containerdEvs.WithLabelValues(topic).Inc() }

// EventStreamState records whether the CRI event stream is open.
func (m *Metrics) EventStreamState(connected bool) { m.streamUp.Set(boolFloat(connected)) }

// EventStreamReconnect counts a reopening of the event stream.
func (m *Metrics) EventStreamReconnect() { m.streamReconn.Inc() }

// EventSource records which mode feeds lookups: "events", "containerd" or
// "cgroup".
func (m *Metrics) EventSource(mode string) {
	m.streamMode.Reset()
	m.streamMode.WithLabelValues(mode).Set(1)
}

// RelistDone counts a relist and what it repaired.
func (m *Metrics) RelistDone(ok bool, added, deleted int) {
	if !ok {
		m.relists.WithLabelValues("error").Inc()
		return
	}
	m.relists.WithLabelValues("ok").Inc()
	m.relistRepairs.WithLabelValues("added").Add(float64(added))
	m.relistRepairs.WithLabelValues("deleted").Add(float64(deleted))
}

// Synced records the time of a successful full sync.
func (m *Metrics) Synced(at time.Time) { m.lastSyncNanos.Store(at.UnixNano()) }

// Trimmed counts values cut to the configured bounds.
func (m *Metrics) Trimmed(n int) { m.trimmed.Add(float64(n)) }

// WatcherDropped counts a watch stream dropped for being too slow.
func (m *Metrics) WatcherDropped() { m.watchDropped.Inc() }

// Ready records the daemon's readiness.
func (m *Metrics) Ready(ready bool) { m.ready.Set(boolFloat(ready)) }

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
