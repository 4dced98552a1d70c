package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheStats is the cache's state at scrape time.
type CacheStats struct {
	Containers, Sandboxes, Deleted int
	Evictions                      uint64
}

// LookupStats is the lookup engine's state at scrape time.
type LookupStats struct {
	Queued, InFlight, Negative int
	// Waiting is the number of IDs waiting for the runtime to start them.
	Waiting int
	// Watchers is the number of open watch streams.
	Watchers int
}

// statsCollector builds const metrics from the components' own counts at
// scrape time, so nothing has to push gauges on every change.
type statsCollector struct {
	cache    func() CacheStats
	lookups  func() LookupStats
	lastSync *atomic.Int64 // Unix nanoseconds, 0 before the first sync

	entries, evictions, queued, inFlight, waiting, negative, lastSyncAt, watchers *prometheus.Desc
}

// WatchComponents registers the scrape-time collector over the cache and
// the lookup engine.
func (m *Metrics) WatchComponents(cache func() CacheStats, lookups func() LookupStats) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	m.registry.MustRegister(&statsCollector{
		cache: cache, lookups: lookups, lastSync: &m.lastSyncNanos,
		entries:    d("cache_entries", "Records in the cache, by kind (container, sandbox, deleted).", "kind"),
		evictions:  d("cache_evictions_total", "Records evicted from the cache because it was full."),
		queued:     d("lookup_queue_depth", "IDs waiting for a lookup."),
		inFlight:   d("lookups_in_flight", "Lookups running against the runtime now."),
		waiting:    d("lookups_waiting", "IDs whose cgroup or event was seen, waiting for the runtime to list them started before their status is asked."),
		negative:   d("negative_cache_entries", "IDs recently found to be neither container nor sandbox, not asked again until their backoff ends."),
		lastSyncAt: d("last_sync_timestamp_seconds", "Unix time of the last successful full sync (bootstrap or relist) with the runtime; absent before the first. Its age is time() minus it."),
		watchers:   d("watchers", "Open watch streams (HTTP and gRPC)."),
	})
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.evictions, c.queued, c.inFlight, c.waiting, c.negative, c.lastSyncAt, c.watchers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	cs := c.cache()
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(cs.Containers), "container")
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(cs.Sandboxes), "sandbox")
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(cs.Deleted), "deleted")
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(cs.Evictions))
	ls := c.lookups()
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(ls.Queued))
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(ls.InFlight))
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(ls.Waiting))
	ch <- prometheus.MustNewConstMetric(c.negative, prometheus.GaugeValue, float64(ls.Negative))
	ch <- prometheus.MustNewConstMetric(c.watchers, prometheus.GaugeValue, float64(ls.Watchers))
	if n := c.lastSync.Load(); n != 0 {
		ch <- prometheus.MustNewConstMetric(c.lastSyncAt, prometheus.GaugeValue, float64(n)/1e9)
	}
}
