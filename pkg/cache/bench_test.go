package cache

import (
	"testing"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

const benchEntries = 10000

func benchCache(b *testing.B) (*Cache, []string) {
	b.Helper()
	c := New()
	idList := make([]string, benchEntries)
	for i := range idList {
		idList[i] = testID(i)
		c.Put(plainRecord(idList[i]))
	}
	return c, idList
}

func BenchmarkGetFullID(b *testing.B) {
	c, idList := benchCache(b)
	i := 0
	for b.Loop() {
		if _, err := c.Get(idList[i%benchEntries]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetPrefix(b *testing.B) {
	c, idList := benchCache(b)
	prefixes := make([]string, len(idList))
	for i, id := range idList {
		prefixes[i] = id[:MinPrefixLen]
	}
	i := 0
	for b.Loop() {
		if _, err := c.Get(prefixes[i%benchEntries]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPutReplace(b *testing.B) {
	c, idList := benchCache(b)
	recs := make([]enrich.Record, len(idList))
	for i, id := range idList {
		recs[i] = plainRecord(id)
	}
	i := 0
	for b.Loop() {
		c.Put(recs[i%benchEntries])
		i++
	}
}
