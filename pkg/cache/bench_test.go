package cache

import (
	"testing"

	"github.com/cri-enricherd/cri-enricherd/internal/benchdata"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// benchContainers fills a default-sized cache: 8,000 kubelet-sized
// containers in 2,000 pods plus their 2,000 sandboxes.
const benchContainers, benchPerPod = 8000, 4

func benchCache(b *testing.B) (*Cache, []enrich.Record) {
	b.Helper()
	c := New()
	containers, sandboxes := benchdata.Records(benchContainers, benchPerPod)
	for _, rec := range sandboxes {
		c.Put(rec)
	}
	for _, rec := range containers {
		c.Put(rec)
	}
	if c.Len() != DefaultCapacity {
		b.Fatalf("cache holds %d records, want it full at %d", c.Len(), DefaultCapacity)
	}
	return c, containers
}

func benchmarkGet(b *testing.B, keyLen int) {
	c, recs := benchCache(b)
	keys := make([]string, len(recs))
	for i, rec := range recs {
		keys[i] = rec.ID[:keyLen]
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get(keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetFullID(b *testing.B) { benchmarkGet(b, 64) }

// BenchmarkGetPrefix asks for 12-character prefixes, as crictl prints them.
func BenchmarkGetPrefix(b *testing.B) { benchmarkGet(b, MinPrefixLen) }

// BenchmarkByCgroupID resolves the number an eBPF program hands its
// consumer, for a full cache of containers whose cgroups were seen.
func BenchmarkByCgroupID(b *testing.B) {
	c, recs := benchCache(b)
	for i, rec := range recs {
		c.CgroupSeen(rec.ID, uint64(1000+i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := c.ByCgroupID(uint64(1000 + i%len(recs))); !ok {
			b.Fatal("cgroup id not found")
		}
		i++
	}
}

func BenchmarkPutReplace(b *testing.B) {
	c, recs := benchCache(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Put(recs[i%len(recs)])
		i++
	}
}

// BenchmarkGetFullIDParallel reads from every core at once, as the API's
// clients and the lookup engine do.
func BenchmarkGetFullIDParallel(b *testing.B) {
	c, recs := benchCache(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Get(recs[i%len(recs)].ID); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}
