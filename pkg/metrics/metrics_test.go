package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
)

func TestMetrics_CountWhatComponentsReport(t *testing.T) {
	m := New(BuildInfo{Version: "v-test"})
	m.ObserveRPC("ContainerStatus", codes.OK, time.Millisecond)
	m.ObserveRPC("ContainerStatus", codes.DeadlineExceeded, time.Second)
	m.LookupDone("container")
	m.LookupFailed("container_status", "deadline_exceeded")
	m.FallbackHit("sandbox_cache")
	m.CgroupEvent("added")
	m.RelistDone(true, 3, 1)
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"cri_requests_total{ContainerStatus,OK}", testutil.ToFloat64(m.criRequests.WithLabelValues("ContainerStatus", "OK")), 1},
		{"cri_requests_total{ContainerStatus,DeadlineExceeded}", testutil.ToFloat64(m.criRequests.WithLabelValues("ContainerStatus", "DeadlineExceeded")), 1},
		{"lookups_total{container}", testutil.ToFloat64(m.lookups.WithLabelValues("container")), 1},
		{"lookup_failures_total", testutil.ToFloat64(m.lookupFailures.WithLabelValues("container_status", "deadline_exceeded")), 1},
		{"fallback_hits_total{sandbox_cache}", testutil.ToFloat64(m.fallbackHits.WithLabelValues("sandbox_cache")), 1},
		{"cgroup_events_total{added}", testutil.ToFloat64(m.cgroupEvents.WithLabelValues("added")), 1},
		{"relist_repairs_total{added}", testutil.ToFloat64(m.relistRepairs.WithLabelValues("added")), 3},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.criDuration); n != 1 {
		t.Errorf("duration histograms = %d, want 1 (per rpc)", n)
	}
}

func TestMetrics_ComponentStatsAreReadAtScrapeTime(t *testing.T) {
	m := New(BuildInfo{Version: "v-test"})
	cs := CacheStats{Containers: 3, Sandboxes: 1, Deleted: 2, Evictions: 7}
	m.WatchComponents(func() CacheStats { return cs }, func() LookupStats { return LookupStats{Queued: 4} })
	expect := `
# HELP cri_enricherd_cache_entries Records in the cache, by kind (container, sandbox, deleted).
# TYPE cri_enricherd_cache_entries gauge
cri_enricherd_cache_entries{kind="container"} 3
cri_enricherd_cache_entries{kind="deleted"} 2
cri_enricherd_cache_entries{kind="sandbox"} 1
# HELP cri_enricherd_cache_evictions_total Records evicted from the cache because it was full.
# TYPE cri_enricherd_cache_evictions_total counter
cri_enricherd_cache_evictions_total 7
# HELP cri_enricherd_lookup_queue_depth IDs waiting for a lookup.
# TYPE cri_enricherd_lookup_queue_depth gauge
cri_enricherd_lookup_queue_depth 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(expect),
		"cri_enricherd_cache_entries", "cri_enricherd_cache_evictions_total", "cri_enricherd_lookup_queue_depth"); err != nil {
		t.Error(err)
	}
	cs.Containers = 10
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(strings.Replace(expect, `{kind="container"} 3`, `{kind="container"} 10`, 1)),
		"cri_enricherd_cache_entries", "cri_enricherd_cache_evictions_total", "cri_enricherd_lookup_queue_depth"); err != nil {
		t.Errorf("a later scrape did not read the new count: %v", err)
	}
}

func TestMetrics_LastSyncTimestampAppearsOnlyAfterTheFirstSync(t *testing.T) {
	m := New(BuildInfo{})
	m.WatchComponents(func() CacheStats { return CacheStats{} }, func() LookupStats { return LookupStats{} })
	if n, _ := testutil.GatherAndCount(m.Registry(), "cri_enricherd_last_sync_timestamp_seconds"); n != 0 {
		t.Errorf("last_sync_timestamp_seconds before any sync: %d series, want 0", n)
	}
	m.Synced(time.Now())
	if n, _ := testutil.GatherAndCount(m.Registry(), "cri_enricherd_last_sync_timestamp_seconds"); n != 1 {
		t.Errorf("last_sync_timestamp_seconds after a sync: %d series, want 1", n)
	}
}
