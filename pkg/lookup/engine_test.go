package lookup

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func lookupNow(t *testing.T, e *Engine, id string) (enrich.Record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.Lookup(ctx, id)
}

func TestLookup_ContainerGetsPodFromPodSandboxStatus(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	e, _, rec := newTestEngine(t, rt, Options{})
	got, err := lookupNow(t, e, ctrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.IsPodSandbox || got.Pod == nil || got.Pod.SandboxID != sb || got.Pod.Name != "web-1" || got.Pod.IP != "10.0.0.2" {
		t.Fatalf("record = %+v, pod %+v; want container of pod web-1 with its IP", got, got.Pod)
	}
	if got.PodSource != enrich.PodSourceSandboxStatus {
		t.Errorf("pod_source = %q, want %q", got.PodSource, enrich.PodSourceSandboxStatus)
	}
	if n := rec.Get("lookup:container"); n != 1 {
		t.Errorf("lookups{container} = %d, want 1", n)
	}
}

func TestLookup_SandboxIsAnIDThatPodSandboxStatusAnswers(t *testing.T) {
	rt := newFakeRuntime()
	sb, _ := rt.addPod(1, 1)
	e, _, rec := newTestEngine(t, rt, Options{})
	got, err := lookupNow(t, e, sb)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsPodSandbox || got.ID != sb || got.Pod == nil || got.Pod.SandboxID != sb {
		t.Fatalf("record = %+v; want a sandbox whose id equals its sandbox id", got)
	}
	if rt.Calls("ContainerStatus") != 1 || rt.Calls("PodSandboxStatus") != 1 {
		t.Errorf("calls = %v; want ContainerStatus (NotFound) then PodSandboxStatus", rt.calls)
	}
	if rec.Get("lookup:sandbox") != 1 {
		t.Errorf("lookups{sandbox} = %d, want 1", rec.Get("lookup:sandbox"))
	}
}

// A runtime that answers ContainerStatus for a pause container gives it
// the sandbox's record, from PodSandboxStatus (state, IP), as a runtime
// answering NotFound does, not a workload record of the pause image.
func TestLookup_ContainerStatusOfAPauseContainerGivesTheSandboxsRecord(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	pause := proto.Clone(rt.containers[ctrs[0]].Status).(*runtimeapi.ContainerStatus)
	pause.Id = sb
	rt.containers[sb] = &runtimeapi.ContainerStatusResponse{Status: pause,
		Info: map[string]string{"info": `{"sandboxID":"` + sb + `","pid":1001}`}}
	e, _, _ := newTestEngine(t, rt, Options{})
	got, err := lookupNow(t, e, sb)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsPodSandbox || got.State != "ready" || got.Pod == nil || got.Pod.SandboxID != sb || got.Pod.IP != "10.0.0.2" {
		t.Fatalf("record = %+v, pod %+v; want the ready sandbox of pod web-1 with its IP", got, got.Pod)
	}
	if rt.Calls("ContainerStatus") != 1 || rt.Calls("PodSandboxStatus") != 1 {
		t.Errorf("calls = %v; want one ContainerStatus and one PodSandboxStatus", rt.calls)
	}
}

func TestLookup_TimeoutNeverMakesASandbox(t *testing.T) {
	rt := newFakeRuntime()
	sb, _ := rt.addPod(1, 1)
	rt.fail = func(rpc, id string) error {
		if rpc == "ContainerStatus" {
			return status.Error(codes.DeadlineExceeded, "slow runtime")
		}
		return nil
	}
	e, c, rec := newTestEngine(t, rt, Options{MaxRetries: 2})
	_, err := lookupNow(t, e, sb)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v; want the timeout, not a verdict", err)
	}
	if _, err := c.Get(sb); err == nil {
		t.Errorf("a timed-out ID was cached as a record")
	}
	if rt.Calls("PodSandboxStatus") != 0 {
		t.Errorf("PodSandboxStatus asked %d times after a timeout; a timeout is no evidence of a sandbox", rt.Calls("PodSandboxStatus"))
	}
	if got := rt.Calls("ContainerStatus"); got != 3 {
		t.Errorf("ContainerStatus calls = %d, want 1 + 2 retries", got)
	}
	if n := rec.Get("retry:ContainerStatus:deadline_exceeded"); n != 2 {
		t.Errorf("retries counted = %d, want 2", n)
	}
	if n := rec.Get("fail:container_status:deadline_exceeded"); n != 3 {
		t.Errorf("failures counted = %d, want 3", n)
	}
}

func TestLookup_FallsBackToCachedSandboxWhenPodSandboxStatusFails(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 2)
	e, _, rec := newTestEngine(t, rt, Options{MaxRetries: 1})
	if _, err := lookupNow(t, e, ctrs[0]); err != nil {
		t.Fatal(err)
	}
	e.InvalidateSandbox(sb)                // a sandbox event asks for fresh pod data...
	rt.fail = func(rpc, id string) error { // ...but the runtime cannot give it
		if rpc == "PodSandboxStatus" {
			return status.Error(codes.Unavailable, "down")
		}
		return nil
	}
	got, err := lookupNow(t, e, ctrs[1])
	if err != nil {
		t.Fatal(err)
	}
	if got.PodSource != enrich.PodSourceSandboxCache || got.Pod == nil || got.Pod.IP != "10.0.0.2" {
		t.Fatalf("pod_source = %q pod = %+v; want the cached sandbox's pod", got.PodSource, got.Pod)
	}
	if n := rec.Get("fallback:sandbox_cache"); n != 1 {
		t.Errorf("fallback_hits{sandbox_cache} = %d, want 1", n)
	}
	if n := rec.Get("fail:pod_sandbox_status:unavailable"); n == 0 {
		t.Errorf("the PodSandboxStatus failure was not counted")
	}
}

func TestLookup_FallsBackToContainerLabelsWhenNoSandboxIsCached(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(7, 1)
	rt.fail = func(rpc, id string) error {
		if rpc == "PodSandboxStatus" {
			return status.Error(codes.Internal, "broken")
		}
		return nil
	}
	e, _, rec := newTestEngine(t, rt, Options{})
	got, err := lookupNow(t, e, ctrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.PodSource != enrich.PodSourceContainerLabels || got.Pod == nil || got.Pod.Name != "web-7" || got.Pod.Namespace != "shop" {
		t.Fatalf("pod_source = %q pod = %+v; want identity from the container's labels", got.PodSource, got.Pod)
	}
	if n := rec.Get("fallback:container_labels"); n != 1 {
		t.Errorf("fallback_hits{container_labels} = %d, want 1", n)
	}
}

func TestLookup_OnePodSandboxStatusPerPod(t *testing.T) {
	rt := newFakeRuntime()
	const pods, perPod = 5, 4
	var all []string
	for p := 0; p < pods; p++ {
		_, ctrs := rt.addPod(p, perPod)
		all = append(all, ctrs...)
	}
	e, c, _ := newTestEngine(t, rt, Options{Concurrency: 4})
	for _, id := range all {
		e.Submit(id, Hint{Exists: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Wait(ctx, all); err != nil {
		t.Fatal(err)
	}
	if got := rt.Calls("PodSandboxStatus"); got != pods {
		t.Errorf("PodSandboxStatus calls = %d, want one per pod (%d)", got, pods)
	}
	if got := rt.Calls("ContainerStatus"); got != pods*perPod {
		t.Errorf("ContainerStatus calls = %d, want one per container (%d)", got, pods*perPod)
	}
	if got := c.Len(); got != pods*(perPod+1) {
		t.Errorf("cached records = %d, want containers and sandboxes (%d)", got, pods*(perPod+1))
	}
}

func TestLookup_ConcurrentRequestsForOneIDShareOneLookup(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	rt.block = make(chan struct{})
	e, _, _ := newTestEngine(t, rt, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := lookupNow(t, e, ctrs[0])
			errs <- err
		}()
	}
	waitFor(t, func() bool { return e.Stats().InFlight == 1 })
	close(rt.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := rt.Calls("ContainerStatus"); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1 shared by 10 requests", got)
	}
}

func TestLookup_RetriesTransientCodesOnly(t *testing.T) {
	tests := []struct {
		name      string
		code      codes.Code
		wantCalls int
	}{
		{"unavailable is retried", codes.Unavailable, 4},
		{"deadline exceeded is retried", codes.DeadlineExceeded, 4},
		{"invalid argument is not", codes.InvalidArgument, 1},
		{"permission denied is not", codes.PermissionDenied, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFakeRuntime()
			_, ctrs := rt.addPod(1, 1)
			rt.fail = func(rpc, id string) error { return status.Error(tt.code, "injected") }
			e, _, _ := newTestEngine(t, rt, Options{MaxRetries: 3})
			if _, err := lookupNow(t, e, ctrs[0]); err == nil {
				t.Fatal("lookup succeeded against a failing runtime")
			}
			if got := rt.Calls("ContainerStatus"); got != tt.wantCalls {
				t.Errorf("ContainerStatus calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestLookup_ACgroupTheRuntimeDoesNotKnowYetWaitsOnListsNotStatusCalls(t *testing.T) {
	rt := newFakeRuntime()
	e, c, rec := newTestEngine(t, rt, Options{MaxRetries: 2, Wait: fastWait})
	id := hexID('c', 100) // the first container of pod 1, before the runtime has it
	e.Submit(id, Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { return rt.Calls("ListContainers") >= 3 })
	if got := rt.Calls("ContainerStatus") + rt.Calls("PodSandboxStatus"); got != 0 {
		t.Fatalf("status calls while the runtime did not list the ID = %d, want 0", got)
	}
	if e.Stats().Waiting != 1 || rec.Get("wait:not_started") != 1 {
		t.Fatalf("waiting = %d, waits counted %v; want 1 waiting, counted once", e.Stats().Waiting, rec.counts)
	}
	sb, ctrs := rt.addPod(1, 1)
	waitFor(t, func() bool { _, err := c.Get(ctrs[0]); return err == nil })
	if got := rt.Calls("ContainerStatus"); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1 once the runtime listed the container running", got)
	}
	if got, _ := c.Get(ctrs[0]); got.PID == 0 || got.Pod == nil || got.Pod.SandboxID != sb {
		t.Errorf("record = pid %d, pod %+v; want the runtime's PID and its pod", got.PID, got.Pod)
	}
	if e.Stats().Waiting != 0 || rec.Get("retry:ContainerStatus:not_found") != 0 {
		t.Errorf("waiting = %d, retries %v; want none left and no retries", e.Stats().Waiting, rec.counts)
	}
	other := hexID('f', 2)
	if _, err := lookupNow(t, e, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if got := rt.Calls("ContainerStatus"); got != 2 {
		t.Errorf("an on-demand lookup of an unknown ID was retried: ContainerStatus calls = %d, want 2", got)
	}
}

// A cgroup the runtime never lists (another runtime's, a leaked one) costs
// no status call, and its Lists back off past Max: at most a dozen polls in
// GiveUp, where Max alone would allow a hundred.
func TestLookup_WaitForACgroupTheRuntimeNeverListsBacksOffAndEndsInTheNegativeCache(t *testing.T) {
	rt := newFakeRuntime()
	e, _, _ := newTestEngine(t, rt, Options{Wait: WaitOptions{First: time.Millisecond, Max: 2 * time.Millisecond, GiveUp: 200 * time.Millisecond}})
	id := hexID('f', 9)
	e.Submit(id, Hint{Exists: true, Cgroup: true, NewPod: true})
	waitFor(t, func() bool { s := e.Stats(); return s.Waiting == 0 && s.Negative == 1 })
	if got := rt.Calls("ContainerStatus") + rt.Calls("PodSandboxStatus"); got != 0 {
		t.Errorf("status calls for an ID never listed = %d, want 0", got)
	}
	// Gaps 1, 2, 4, 8, 16, then 25ms (GiveUp/8): about 12 polls of two Lists.
	if got := rt.Calls("ListContainers") + rt.Calls("ListPodSandbox"); got > 40 {
		t.Errorf("Lists for an ID never listed = %d, want at most 40: the gap should grow past Max", got)
	}
}

func TestLookup_NegativeCacheStopsRepeatedQuestions(t *testing.T) {
	rt := newFakeRuntime()
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, _, _ := newTestEngine(t, rt, Options{NegativeTTL: 30 * time.Second, Now: clock})
	id := hexID('f', 3)
	for i := 0; i < 5; i++ {
		if _, err := lookupNow(t, e, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if got := rt.Calls("ContainerStatus"); got != 1 {
		t.Fatalf("ContainerStatus calls = %d, want 1: the negative cache should answer the rest", got)
	}
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	_, _ = lookupNow(t, e, id)
	if got := rt.Calls("ContainerStatus"); got != 2 {
		t.Fatalf("ContainerStatus calls = %d, want 2 after the first backoff ended", got)
	}
	mu.Lock()
	now = now.Add(31 * time.Second) // the backoff doubled to 60s
	mu.Unlock()
	_, _ = lookupNow(t, e, id)
	if got := rt.Calls("ContainerStatus"); got != 2 {
		t.Errorf("ContainerStatus calls = %d, want still 2: the backoff should have doubled", got)
	}
	if e.Stats().Negative != 1 {
		t.Errorf("negative entries = %d, want 1", e.Stats().Negative)
	}
}

func TestLookup_MalformedInfoIsACountedFailureNotAPanic(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	rt.containers[ctrs[0]].Info["info"] = "{not json"
	e, c, rec := newTestEngine(t, rt, Options{})
	if _, err := lookupNow(t, e, ctrs[0]); err == nil {
		t.Fatal("lookup of a malformed answer succeeded")
	}
	if n := rec.Get("fail:parse:bad_info_json"); n != 1 {
		t.Errorf("lookup_failures{parse,bad_info_json} = %d, want 1", n)
	}
	if rt.Calls("ContainerStatus") != 1 {
		t.Errorf("a malformed answer was retried: the same answer would come back")
	}
	if _, err := c.Get(ctrs[0]); err == nil {
		t.Errorf("a malformed answer was cached")
	}
}

func TestEngine_DeletionDuringALookupIsNotUndone(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	rt.block = make(chan struct{})
	e, c, _ := newTestEngine(t, rt, Options{})
	e.Submit(ctrs[0], Hint{Exists: true})
	waitFor(t, func() bool { return e.Stats().InFlight == 1 })
	e.MarkDeleted(ctrs[0])
	close(rt.block)
	waitFor(t, func() bool { return e.Stats().InFlight == 0 && e.Stats().Queued == 0 })
	got, err := c.Get(ctrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.DeletedAt == nil {
		t.Errorf("the lookup's answer revived a container deleted while it ran")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A burst of cgroups waiting at once costs one unfiltered List per round,
// not one filtered List per ID: the first ID's List is held until nine more
// wait behind it, and those nine are answered from a single List.
func TestLookup_ABurstOfWaitingIDsSharesOneList(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	lists := map[string]int{} // ID filter ("" = unfiltered) -> ListContainers calls
	rt.fail = func(rpc, id string) error {
		if rpc != "ListContainers" {
			return nil
		}
		mu.Lock()
		lists[id]++
		first := id == ctrs[0] && lists[id] == 1
		mu.Unlock()
		if first {
			<-release
		}
		return nil
	}
	e, c, _ := newTestEngine(t, rt, Options{Wait: fastWait})
	var releaseOnce sync.Once
	unhold := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unhold) // before the engine stops: a failed wait must not hang the test
	e.Submit(ctrs[0], Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { return rt.Calls("ListContainers") == 1 })
	for _, id := range ctrs[1:] {
		e.Submit(id, Hint{Exists: true, Cgroup: true})
	}
	unhold()
	waitFor(t, func() bool { return c.Len() == len(ctrs)+1 })
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{ctrs[0]: 1, "": 1}
	if !reflect.DeepEqual(lists, want) {
		t.Errorf("ListContainers calls by ID filter = %v, want %v (one filtered for the first ID, one unfiltered for the nine after it)", lists, want)
	}
	if got := rt.Calls("ContainerStatus"); got != len(ctrs) {
		t.Errorf("ContainerStatus calls = %d, want one per container (%d)", got, len(ctrs))
	}
}
