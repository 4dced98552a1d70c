package integration

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/pkg/metrics"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// stack is the daemon's lookup path as cmd/cri-enricherd wires it: a real
// CRI client observed by a real metrics registry, the lookup engine and a
// cache, all running until Close.
type stack struct {
	t      testing.TB
	client *criclient.Client
	m      *metrics.Metrics
	cache  *cache.Cache
	engine *lookup.Engine

	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	stopServer func()
	closeOnce  sync.Once
}

// stackOptions tune a stack; zero values are the test defaults.
type stackOptions struct {
	endpoint string        // a socket to use instead of serving rt (fakecri.Silent)
	timeout  time.Duration // the client's per-RPC timeout (2s, the daemon's default)
	lookup   lookup.Options
	cache    []cache.Option
}

// newStack serves rt (unless o.endpoint is set) and starts the engine on
// it. Close, or the test's cleanup, stops every goroutine it started.
func newStack(t testing.TB, rt *fakecri.Runtime, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, m: metrics.New(metrics.BuildInfo{Version: "integration"}), cache: cache.New(o.cache...)}
	endpoint := o.endpoint
	if endpoint == "" {
		endpoint = s.serve(rt)
	}
	client, err := criclient.Dial(endpoint, criclient.Options{Timeout: o.timeout, Observer: s.m})
	if err != nil {
		t.Fatal(err)
	}
	s.client = client
	lo := o.lookup
	if lo.MaxRetries == 0 { // the daemon's configured default; the engine's zero means "never retry"
		lo.MaxRetries = 4
	}
	if lo.RetryBase == 0 { // fast retries: the tests count them, they need not wait for them
		lo.RetryBase, lo.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	}
	s.engine = lookup.New(client, s.cache, s.m, zap.NewNop(), lo)
	s.m.WatchComponents(s.cacheStats, s.lookupStats)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.run(s.engine.Run)
	t.Cleanup(s.Close)
	return s
}

func (s *stack) serve(rt *fakecri.Runtime) string {
	dir, err := os.MkdirTemp("", "integration") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "cri.sock")
	stop, err := rt.Serve(sock)
	if err != nil {
		s.t.Fatal(err)
	}
	s.stopServer = stop
	return "unix://" + sock
}

// run runs fn until Close and returns a channel that receives its result.
func (s *stack) run(fn func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		done <- fn(s.ctx)
	}()
	return done
}

// Close stops the components, waits for their goroutines, closes the
// client and stops the fake server, in that order.
func (s *stack) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		_ = s.client.Close()
		if s.stopServer != nil {
			s.stopServer()
		}
	})
}

func (s *stack) cacheStats() metrics.CacheStats {
	c, sb, del := s.cache.Counts()
	return metrics.CacheStats{Containers: c, Sandboxes: sb, Deleted: del, Evictions: s.cache.Evictions()}
}

func (s *stack) lookupStats() metrics.LookupStats {
	st := s.engine.Stats()
	return metrics.LookupStats{Queued: st.Queued, InFlight: st.InFlight, Negative: st.Negative}
}

// lookupCtx bounds one test lookup generously; the engine's own timeouts
// are what the tests exercise.
func (s *stack) lookupCtx() context.Context {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

// metric sums the samples of the named series whose labels include the
// given name/value pairs: metric("cri_enricherd_lookups_total", "result", "container").
func (s *stack) metric(name string, labelPairs ...string) float64 {
	s.t.Helper()
	return gatherSum(s.t, s.m.Registry(), name, labelPairs...)
}

func gatherSum(t testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		want[labelPairs[i]] = labelPairs[i+1]
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
					matched++
				}
			}
			if matched == len(want) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onePod returns a fake runtime holding one pod with the named containers.
func onePod(names ...string) (rt *fakecri.Runtime, sandboxID string, containerIDs []string) {
	rt = fakecri.New()
	spec := fakecri.PodSpec{Name: "web-0", Namespace: "shop"}
	for _, n := range names {
		spec.Containers = append(spec.Containers, fakecri.ContainerSpec{Name: n})
	}
	sandboxID, containerIDs = rt.AddPod(spec)
	return rt, sandboxID, containerIDs
}
