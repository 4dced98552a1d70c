package integration

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

const (
	retriesTotal   = "cri_enricherd_lookup_retries_total"
	requestsTotal  = "cri_enricherd_cri_requests_total"
	failuresTotal  = "cri_enricherd_lookup_failures_total"
	lookupsTotal   = "cri_enricherd_lookups_total"
	fallbacksTotal = "cri_enricherd_fallback_hits_total"
)

func TestLookup_RetriesTransientCodesOnlyAndCountsThem(t *testing.T) {
	tests := []struct {
		name      string
		fault     func(id string) error
		code      codes.Code // what the failing calls answer
		failures  int        // how many calls fail
		wantFound bool
	}{
		{"two Unavailable then an answer", fakecri.FailFirst(2, codes.Unavailable), codes.Unavailable, 2, true},
		{"ResourceExhausted once then an answer", fakecri.FailFirst(1, codes.ResourceExhausted), codes.ResourceExhausted, 1, true},
		{"PermissionDenied is not retried", fakecri.Fail(codes.PermissionDenied), codes.PermissionDenied, 1, false},
		{"InvalidArgument is not retried", fakecri.Fail(codes.InvalidArgument), codes.InvalidArgument, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, sb, ids := onePod("app")
			rt.Inject(fakecri.RPCContainerStatus, tt.fault)
			s := newStack(t, rt, stackOptions{})
			rec, err := s.engine.Lookup(s.lookupCtx(), ids[0])

			reason := criclientReason(tt.code)
			wantRetries, wantOK := 0, 0
			if tt.wantFound {
				wantRetries, wantOK = tt.failures, 1
			}
			if (err == nil) != tt.wantFound {
				t.Fatalf("Lookup = %v, want found %v", err, tt.wantFound)
			}
			if got := rt.CallsFor(fakecri.RPCContainerStatus, ids[0]); got != tt.failures+wantOK {
				t.Errorf("ContainerStatus calls = %d, want %d", got, tt.failures+wantOK)
			}
			checkMetric(t, s, float64(wantRetries), retriesTotal, "rpc", "ContainerStatus", "reason", reason)
			checkMetric(t, s, float64(wantRetries), retriesTotal)
			checkMetric(t, s, float64(tt.failures), requestsTotal, "rpc", "ContainerStatus", "code", tt.code.String())
			checkMetric(t, s, float64(wantOK), requestsTotal, "rpc", "ContainerStatus", "code", "OK")
			checkMetric(t, s, float64(tt.failures), failuresTotal, "stage", "container_status", "reason", reason)
			if tt.wantFound {
				checkMetric(t, s, 1, lookupsTotal, "result", "container")
				if rec.ID != ids[0] || rec.PodSource != enrich.PodSourceSandboxStatus || rec.Pod.SandboxID != sb {
					t.Errorf("record = %s from %s, want %s from pod_sandbox_status", rec.ID, rec.PodSource, ids[0])
				}
				return
			}
			checkMetric(t, s, 1, lookupsTotal, "result", "error")
			if _, err := s.cache.Get(ids[0]); err == nil {
				t.Errorf("a failed lookup left a record in the cache")
			}
			if got := rt.CallsFor(fakecri.RPCPodSandboxStatus, ids[0]); got != 0 {
				t.Errorf("a %v made the engine ask PodSandboxStatus for the container ID %d times", tt.code, got)
			}
		})
	}
}

// criclientReason is the engine's reason label for a gRPC code.
func criclientReason(c codes.Code) string {
	return map[codes.Code]string{
		codes.Unavailable: "unavailable", codes.ResourceExhausted: "resource_exhausted",
		codes.PermissionDenied: "permission_denied", codes.InvalidArgument: "invalid_argument",
		codes.DeadlineExceeded: "deadline_exceeded", codes.NotFound: "not_found",
	}[c]
}

func checkMetric(t *testing.T, s *stack, want float64, name string, labelPairs ...string) {
	t.Helper()
	if got := s.metric(name, labelPairs...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labelPairs, got, want)
	}
}

func TestLookup_SlowContainerStatusTimesOutIsRetriedAndNeverMakesASandbox(t *testing.T) {
	rt, _, ids := onePod("app")
	rt.Delay(fakecri.RPCContainerStatus, time.Second)
	const tries = 3
	s := newStack(t, rt, stackOptions{timeout: 100 * time.Millisecond, lookup: lookup.Options{MaxRetries: tries - 1}})

	_, err := s.engine.Lookup(s.lookupCtx(), ids[0])
	if err == nil || errors.Is(err, lookup.ErrNotFound) {
		t.Fatalf("Lookup = %v, want a deadline error, not found or success", err)
	}
	if got := criclient.Code(err); got != codes.DeadlineExceeded {
		t.Errorf("Lookup error code = %v, want DeadlineExceeded", got)
	}
	if got := rt.CallsFor(fakecri.RPCContainerStatus, ids[0]); got != tries {
		t.Errorf("ContainerStatus calls = %d, want %d", got, tries)
	}
	if got := rt.CallsFor(fakecri.RPCPodSandboxStatus, ids[0]); got != 0 {
		t.Errorf("PodSandboxStatus asked %d times for a container that timed out", got)
	}
	if _, err := s.cache.Get(ids[0]); err == nil {
		t.Errorf("a timed-out lookup left a record")
	}
	if _, sandboxes, _ := s.cache.Counts(); sandboxes != 0 {
		t.Errorf("%d sandbox records after a timeout, want 0", sandboxes)
	}
	checkMetric(t, s, tries, failuresTotal, "stage", "container_status", "reason", "deadline_exceeded")
	checkMetric(t, s, tries-1, retriesTotal, "rpc", "ContainerStatus", "reason", "deadline_exceeded")
	checkMetric(t, s, tries, requestsTotal, "rpc", "ContainerStatus", "code", "DeadlineExceeded")
	checkMetric(t, s, 0, lookupsTotal, "result", "sandbox")
	checkMetric(t, s, 1, lookupsTotal, "result", "error")
	checkMetric(t, s, 0, "cri_enricherd_negative_cache_entries")
}

func TestLookup_UnknownIDIsAskedOnceThenAnsweredFromTheNegativeCache(t *testing.T) {
	rt, _, _ := onePod("app")
	s := newStack(t, rt, stackOptions{})
	unknown := fakecri.ID("never-created")
	for i := range 3 {
		if _, err := s.engine.Lookup(s.lookupCtx(), unknown); !errors.Is(err, lookup.ErrNotFound) {
			t.Fatalf("Lookup %d = %v, want ErrNotFound", i, err)
		}
	}
	s.engine.Submit(unknown, lookup.Hint{}) // a source seeing it again is answered from the negative cache too
	time.Sleep(50 * time.Millisecond)
	if got := rt.CallsFor(fakecri.RPCContainerStatus, unknown); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1", got)
	}
	if got := rt.CallsFor(fakecri.RPCPodSandboxStatus, unknown); got != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1 (NotFound from ContainerStatus alone is no verdict)", got)
	}
	checkMetric(t, s, 1, "cri_enricherd_negative_cache_entries")
	checkMetric(t, s, 1, lookupsTotal, "result", "not_found")
	checkMetric(t, s, 1, requestsTotal, "rpc", "ContainerStatus", "code", "NotFound")
	checkMetric(t, s, 0, retriesTotal)
}

func TestLookup_ConcurrentLookupsOfOneIDShareOneContainerStatus(t *testing.T) {
	rt, sb, ids := onePod("app")
	rt.Delay(fakecri.RPCContainerStatus, 200*time.Millisecond)
	s := newStack(t, rt, stackOptions{})
	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := s.engine.Lookup(s.lookupCtx(), ids[0])
			if err == nil && rec.ID != ids[0] {
				err = fmt.Errorf("got record %s", rec.ID)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Lookup: %v", err)
		}
	}
	if got := rt.CallsFor(fakecri.RPCContainerStatus, ids[0]); got != 1 {
		t.Errorf("ContainerStatus calls = %d for %d concurrent lookups, want 1", got, callers)
	}
	if got := rt.CallsFor(fakecri.RPCPodSandboxStatus, sb); got != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1", got)
	}
	checkMetric(t, s, 1, lookupsTotal, "result", "container")
}

// TestLookup_SourcesSeeingAnIDWhileItsLookupRunsJoinIt is the relist or a
// cgroup event naming an ID whose lookup is already running: the sighting
// joins the running lookup (no second ContainerStatus) and, under -race,
// proves the worker does not read the call's hint while Submit merges into it.
func TestLookup_SourcesSeeingAnIDWhileItsLookupRunsJoinIt(t *testing.T) {
	rt, _, ids := onePod("app")
	rt.Delay(fakecri.RPCContainerStatus, 200*time.Millisecond)
	s := newStack(t, rt, stackOptions{})
	done := make(chan error, 1)
	go func() {
		_, err := s.engine.Lookup(s.lookupCtx(), ids[0])
		done <- err
	}()
	// Keep sighting the ID while the lookup runs, without synchronising with
	// the runtime: a read of the hint by the worker would race these writes.
	for range 100 {
		s.engine.Submit(ids[0], lookup.Hint{Exists: true, Cgroup: true})
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rt.CallsFor(fakecri.RPCContainerStatus, ids[0]); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1", got)
	}
}

func TestSync_BootstrapAsksOnePodSandboxStatusPerPod(t *testing.T) {
	const pods, perPod = 20, 5
	rt := fakecri.New()
	for range pods {
		rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, perPod)})
	}
	s := newStack(t, rt, stackOptions{})
	rep, err := s.engine.Sync(s.lookupCtx())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sandboxes != pods || rep.Containers != pods*perPod || rep.Added != pods+pods*perPod {
		t.Errorf("sync report = %+v", rep)
	}
	for rpc, want := range map[string]int{
		fakecri.RPCListPodSandbox: 1, fakecri.RPCListContainers: 1,
		fakecri.RPCPodSandboxStatus: pods, fakecri.RPCContainerStatus: pods * perPod,
	} {
		if got := rt.Calls(rpc); got != want {
			t.Errorf("%s calls = %d, want %d", rpc, got, want)
		}
		checkMetric(t, s, float64(want), requestsTotal, "rpc", rpc, "code", "OK")
	}
	if c, sbs, _ := s.cache.Counts(); c != pods*perPod || sbs != pods {
		t.Errorf("cache holds %d containers and %d sandboxes, want %d and %d", c, sbs, pods*perPod, pods)
	}
	checkMetric(t, s, 0, fallbacksTotal)
	checkMetric(t, s, 1, "cri_enricherd_relists_total", "result", "ok")
	checkMetric(t, s, float64(pods+pods*perPod), "cri_enricherd_relist_repairs_total", "action", "added")
}

func TestSync_BootstrapAgainstASilentSocketEndsAtItsDeadline(t *testing.T) {
	s := newStack(t, nil, stackOptions{endpoint: fakecri.Silent(t), lookup: lookup.Options{SyncDeadline: time.Second}})
	start := time.Now()
	_, err := s.engine.Sync(s.ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Sync against a socket that never answers succeeded")
	}
	if took > 5*time.Second {
		t.Errorf("Sync took %v with a 1s deadline", took)
	}
	if got := criclient.Code(err); got != codes.DeadlineExceeded {
		t.Errorf("Sync error = %v, want DeadlineExceeded", err)
	}
	checkMetric(t, s, 1, "cri_enricherd_relists_total", "result", "error")
	checkMetric(t, s, 1, failuresTotal, "stage", "list", "reason", "deadline_exceeded")
	checkMetric(t, s, 1, requestsTotal, "rpc", "Version", "code", "DeadlineExceeded")

	syncer := lookup.NewSyncer(s.engine, zap.NewNop(), time.Hour, s.m.Ready)
	s.run(syncer.Run)
	eventually(t, 5*time.Second, "the syncer's own bootstrap fails", func() bool {
		return s.metric("cri_enricherd_relists_total", "result", "error") >= 2
	})
	if syncer.Ready() {
		t.Error("syncer ready without a sync")
	}
	checkMetric(t, s, 0, "cri_enricherd_ready")
	if n, err := testutil.GatherAndCount(s.m.Registry(), "cri_enricherd_last_sync_timestamp_seconds"); err != nil || n != 0 {
		t.Errorf("last_sync_timestamp_seconds has %d series (%v), want none before a sync", n, err)
	}
}

func TestLookup_FallsBackWhenPodSandboxStatusFails(t *testing.T) {
	t.Run("cached sandbox", func(t *testing.T) {
		rt, sb, _ := onePod("app")
		s := newStack(t, rt, stackOptions{})
		if _, err := s.engine.Sync(s.lookupCtx()); err != nil {
			t.Fatal(err)
		}
		cached, ok := s.cache.GetSandbox(sb)
		if !ok || cached.Pod.IP == "" {
			t.Fatalf("sandbox not cached with an IP after sync: %+v", cached)
		}
		s.engine.InvalidateSandbox(sb) // as a sandbox event would
		rt.Inject(fakecri.RPCPodSandboxStatus, fakecri.Fail(codes.Unavailable, sb))
		late := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "late"})
		rt.StartContainer(late)

		rec, err := s.engine.Lookup(s.lookupCtx(), late)
		if err != nil {
			t.Fatal(err)
		}
		if rec.PodSource != enrich.PodSourceSandboxCache || rec.Pod.IP != cached.Pod.IP || rec.Pod.Name != "web-0" {
			t.Errorf("record pod from %s = %+v, want the cached sandbox's", rec.PodSource, rec.Pod)
		}
		checkMetric(t, s, 1, fallbacksTotal, "source", "sandbox_cache")
		checkMetric(t, s, 1, fallbacksTotal)
		checkMetric(t, s, 1, failuresTotal, "stage", "pod_sandbox_status", "reason", "unavailable")
		if got := rt.CallsFor(fakecri.RPCPodSandboxStatus, sb); got != 2 {
			t.Errorf("PodSandboxStatus calls = %d, want 2 (bootstrap, then the failed refresh)", got)
		}
	})
	t.Run("uncached sandbox", func(t *testing.T) {
		rt, sb, ids := onePod("app")
		rt.Inject(fakecri.RPCPodSandboxStatus, fakecri.Fail(codes.Unavailable, sb))
		s := newStack(t, rt, stackOptions{})
		rec, err := s.engine.Lookup(s.lookupCtx(), ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if rec.PodSource != enrich.PodSourceContainerLabels || rec.Pod == nil || rec.Pod.Name != "web-0" ||
			rec.Pod.Namespace != "shop" || rec.Pod.UID == "" || rec.Pod.IP != "" {
			t.Errorf("record pod from %s = %+v, want identity from the container's labels", rec.PodSource, rec.Pod)
		}
		checkMetric(t, s, 1, fallbacksTotal, "source", "container_labels")
		checkMetric(t, s, 1, fallbacksTotal)
	})
}
