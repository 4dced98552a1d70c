package integration

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// TestChurn_CacheStaysBoundedAndMemoryReturnsAfterThousandsOfContainers
// creates and deletes 1,000 pods (5,000 containers) through the fake
// runtime in rounds, feeding the engine as the daemon's sources do (a
// Submit per new ID, then a relist), with a cache bounded to 1,000 records:
// the live set fits, the deleted records of earlier rounds must be evicted.
// The bound must hold at every check, evictions must be counted, the heap
// must come back near where it started, and every goroutine must stop.
func TestChurn_CacheStaysBoundedAndMemoryReturnsAfterThousandsOfContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("churn takes seconds")
	}
	const (
		capacity  = 1000
		rounds    = 10
		podsRound = 100
		perPod    = 5
		heapSlack = 32 << 20
	)
	leaks := goleak.IgnoreCurrent()
	rt := fakecri.New()
	s := newStack(t, rt, stackOptions{cache: []cache.Option{cache.WithCapacity(capacity)}, lookup: lookup.Options{Concurrency: 8}})
	ctx := s.ctx // each relist is bounded by the engine's sync deadline
	baseline := heapAfterGC()

	maxLen, stopWatch := watchLen(s.cache)
	check := func(when string) {
		t.Helper()
		if n := s.cache.Len(); n > capacity {
			t.Fatalf("%s: cache holds %d records, bound is %d", when, n, capacity)
		}
	}
	var prev []string
	peak := baseline
	for r := range rounds {
		for _, sb := range prev {
			rt.RemovePod(sb)
		}
		relist(t, ctx, s, "after deleting round", r)
		check("after the relist that deleted a round")
		prev = prev[:0]
		for range podsRound {
			sb, ids := rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, perPod)})
			prev = append(prev, sb)
			s.engine.Submit(sb, lookup.Hint{Sandbox: true, Exists: true})
			for _, id := range ids {
				s.engine.Submit(id, lookup.Hint{Exists: true})
			}
		}
		check("after submitting a round")
		relist(t, ctx, s, "after adding round", r)
		check("after the relist that added a round")
		peak = max(peak, heapNow())
	}
	for _, sb := range prev {
		rt.RemovePod(sb)
	}
	relist(t, ctx, s, "final", rounds)
	check("at the end")
	if got := stopWatch(); got > capacity {
		t.Errorf("cache held %d records at some point, bound is %d", got, capacity)
	}
	if got := maxLen.Load(); got == 0 {
		t.Error("the length watcher saw nothing")
	}

	if sandboxes, containers := rt.Len(); sandboxes != 0 || containers != 0 {
		t.Errorf("runtime still holds %d sandboxes and %d containers", sandboxes, containers)
	}
	if c, sb, _ := s.cache.Counts(); c != 0 || sb != 0 {
		t.Errorf("cache still holds %d live containers and %d live sandboxes after every pod was deleted", c, sb)
	}
	evictions := s.metric("cri_enricherd_cache_evictions_total")
	if evictions == 0 || evictions != float64(s.cache.Evictions()) {
		t.Errorf("cache_evictions_total = %v (cache says %d), want > 0", evictions, s.cache.Evictions())
	}
	// The live set (600 records a round) fits the bound, so only deleted
	// records are evicted: no record is ever fetched twice.
	if got, want := rt.Calls(fakecri.RPCContainerStatus), rounds*podsRound*perPod; got != want {
		t.Errorf("ContainerStatus calls = %d, want one per container (%d)", got, want)
	}
	if got, want := rt.Calls(fakecri.RPCPodSandboxStatus), rounds*podsRound; got != want {
		t.Errorf("PodSandboxStatus calls = %d, want one per pod (%d)", got, want)
	}
	after := heapAfterGC()
	t.Logf("heap: baseline %.1f MiB, peak %.1f MiB, after churn and GC %.1f MiB; cache max %d, evictions %v; CRI calls: ContainerStatus %d, PodSandboxStatus %d, ListContainers %d",
		mib(baseline), mib(peak), mib(after), maxLen.Load(), evictions,
		rt.Calls(fakecri.RPCContainerStatus), rt.Calls(fakecri.RPCPodSandboxStatus), rt.Calls(fakecri.RPCListContainers))
	if after > baseline+heapSlack {
		t.Errorf("heap after churn = %.1f MiB, want below baseline %.1f MiB + %d MiB", mib(after), mib(baseline), heapSlack>>20)
	}

	s.Close()
	goleak.VerifyNone(t, leaks)
}

func relist(t *testing.T, ctx context.Context, s *stack, when string, round int) {
	t.Helper()
	if _, err := s.engine.Sync(ctx); err != nil {
		t.Fatalf("relist %s %d: %v", when, round, err)
	}
}

// watchLen samples the cache's length every millisecond until stopped and
// returns the largest it saw.
func watchLen(c *cache.Cache) (*atomic.Int64, func() int64) {
	var maxLen atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := int64(c.Len()); n > maxLen.Load() {
					maxLen.Store(n)
				}
			}
		}
	}()
	return &maxLen, func() int64 {
		close(done)
		wg.Wait()
		return maxLen.Load()
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first one's finalizers released
	return heapNow()
}

func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
