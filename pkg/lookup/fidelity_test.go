package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// setContainer moves a fake container to state with the PID the runtime
// then reports (containerd reports 0 before the start and after the exit).
func (f *fakeRuntime) setContainer(id string, state runtimeapi.ContainerState, pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.containers[id]
	r.Status.State = state
	var info map[string]any
	_ = json.Unmarshal([]byte(r.Info["info"]), &info)
	info["pid"] = pid
	b, _ := json.Marshal(info)
	r.Info["info"] = string(b)
}

// stopSandbox makes a fake sandbox not ready, with no IP and no PID, as
// containerd reports a stopped sandbox.
func (f *fakeRuntime) stopSandbox(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.sandboxes[id]
	r.Status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	r.Status.Network = &runtimeapi.PodSandboxNetworkStatus{}
}

func newTestEvents(e *Engine) *Events {
	return NewEvents(e, nil, streamRecorder{}, zap.NewNop(), func() {}, false)
}

type streamRecorder struct{}

func (streamRecorder) RuntimeEvent(string)   {}
func (streamRecorder) EventStreamState(bool) {}
func (streamRecorder) EventStreamReconnect() {}
func (streamRecorder) EventSource(string)    {}

func event(id string, kind runtimeapi.ContainerEventType, sandboxID string) *runtimeapi.ContainerEventResponse {
	return &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: kind,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: sandboxID}}
}

func TestEvents_StartedAsksOnceForThePIDTheRuntimeReports(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	id := ctrs[0]
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_CREATED, 0)
	e, c, _ := newTestEngine(t, rt, Options{})
	ev := newTestEvents(e)
	ev.handle(event(id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, sb))
	waitFor(t, func() bool { _, err := c.Get(id); return err == nil })
	if got, _ := c.Get(id); got.State != "created" || got.PID != 0 {
		t.Fatalf("record at CREATED = state %s pid %d, want created with no PID yet", got.State, got.PID)
	}
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 4242)
	ev.handle(event(id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, sb))
	waitFor(t, func() bool { got, _ := c.Get(id); return got.PID == 4242 })
	if got, _ := c.Get(id); got.State != "running" {
		t.Errorf("state = %s, want running", got.State)
	}
	if n := rt.Calls("ContainerStatus"); n != 2 {
		t.Errorf("ContainerStatus calls = %d, want 2: CREATED, then once for the PID", n)
	}
}

func TestEvents_StoppedClearsThePIDAndAStaleRelistCannotUndoIt(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	e, c, _ := newTestEngine(t, rt, Options{})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := ctrs[0]
	newTestEvents(e).handle(event(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, sb))
	// The fake still lists the container running: a relist that listed it
	// before it stopped.
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Get(id)
	if got.State != "exited" || got.PID != 0 {
		t.Errorf("record = state %s pid %d, want exited with pid 0", got.State, got.PID)
	}
}

func TestEvents_SandboxStoppedIsAskedAgainAndItsContainersFollow(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 2)
	e, c, _ := newTestEngine(t, rt, Options{})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	pss := rt.Calls("PodSandboxStatus")
	rt.stopSandbox(sb)
	newTestEvents(e).handle(event(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, sb))
	waitFor(t, func() bool { got, _ := c.GetSandbox(sb); return got.Pod.IP == "" })
	if got, _ := c.GetSandbox(sb); got.State != "notready" || got.PID != 0 {
		t.Errorf("sandbox = state %s pid %d, want notready with pid 0", got.State, got.PID)
	}
	if n := rt.Calls("PodSandboxStatus"); n != pss+1 {
		t.Errorf("PodSandboxStatus calls = %d, want one more than %d", n, pss)
	}
	for _, id := range ctrs {
		got, _ := c.Get(id)
		if got.Pod.State != "notready" || got.Pod.IP != "" {
			t.Errorf("container %s pod = state %q ip %q, want its sandbox's notready and no IP", id[:12], got.Pod.State, got.Pod.IP)
		}
	}
	if _, ok := c.SandboxByIP("10.0.0.2"); ok {
		t.Errorf("a stopped pod still answers for its old IP")
	}
}

func TestEngine_ConcurrentEventsAndRelistsNeverLoseTheLastState(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	e, c, _ := newTestEngine(t, rt, Options{})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := ctrs[0]
	updates := []func(enrich.Record) enrich.Record{
		withState("running"), started(nil), stopped(nil), withState("created"), withState("running"),
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Update(id, updates[i%len(updates)])
		}()
	}
	wg.Wait()
	got, _ := c.Get(id)
	if got.State != "exited" || got.PID != 0 {
		t.Errorf("after interleaved updates: state %s pid %d, want exited with pid 0 whatever the order", got.State, got.PID)
	}
}

func TestEngine_AnUpdateDuringALookupIsAppliedToItsAnswer(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	rt.block = make(chan struct{})
	e, c, _ := newTestEngine(t, rt, Options{})
	id := ctrs[0]
	e.Submit(id, Hint{Exists: true})
	waitFor(t, func() bool { return e.Stats().InFlight == 1 })
	e.Update(id, stopped(nil)) // the container stopped while its status was on the wire
	close(rt.block)
	waitFor(t, func() bool { s := e.Stats(); return s.InFlight == 0 && s.Queued == 0 })
	if got, _ := c.Get(id); got.State != "exited" || got.PID != 0 {
		t.Errorf("record = state %s pid %d, want the stop applied over the earlier running answer", got.State, got.PID)
	}
}

// Without events, a container's cgroup appears while runc creates it: a
// partial record is made at once from one List, before its first process
// runs, and completed with one ContainerStatus once the runtime lists it
// running.
func TestLookup_ACreatedContainerSeenByItsCgroupIsRecordedAtOnceAndAskedOnceItStarted(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	id := ctrs[0]
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_CREATED, 0)
	e, c, rec := newTestEngine(t, rt, Options{Wait: fastWait})
	e.Submit(sb, Hint{Exists: true, Cgroup: true, NewPod: true})
	waitFor(t, func() bool { _, ok := c.GetSandbox(sb); return ok })
	e.Submit(id, Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { _, err := c.Get(id); return err == nil })
	got, _ := c.Get(id)
	if !got.Partial || got.State != "created" || got.PID != 0 || got.Pod == nil || got.Pod.SandboxID != sb || got.Pod.IP == "" {
		t.Fatalf("record while created = partial %v state %s pid %d pod %+v; want a partial record with its pod and IP", got.Partial, got.State, got.PID, got.Pod)
	}
	if n := rt.Calls("ContainerStatus"); n != 0 {
		t.Fatalf("ContainerStatus calls while the container was created = %d, want 0", n)
	}
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 777)
	waitFor(t, func() bool { got, err := c.Get(id); return err == nil && got.PID == 777 })
	if got, _ := c.Get(id); got.Partial {
		t.Errorf("the record is still partial once the container started")
	}
	if n := rt.Calls("ContainerStatus"); n != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1, for the complete record", n)
	}
	if n := rt.Calls("PodSandboxStatus"); n != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want exactly 1", n)
	}
	if rec.Get("wait:not_started") != 2 || rec.Get("retry:ContainerStatus:not_found") != 0 {
		t.Errorf("counted = %v; want two waits and no retries", rec.counts)
	}
}

// A container's cgroup can appear before the sandbox's wait sees it ready
// (the wait's gap grew while the runtime set the sandbox up): the
// container's record fetches the sandbox, and the sandbox's wait then finds
// it known and asks nothing more. One PodSandboxStatus per pod.
func TestLookup_ASandboxFetchedForItsContainerIsNotAskedAgainByItsWait(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	rt.setContainer(ctrs[0], runtimeapi.ContainerState_CONTAINER_CREATED, 0)
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.mu.Unlock()
	e, c, _ := newTestEngine(t, rt, Options{Wait: WaitOptions{First: 50 * time.Millisecond, Max: 200 * time.Millisecond, GiveUp: 5 * time.Second}})
	e.Submit(sb, Hint{Exists: true, Cgroup: true, NewPod: true})
	waitFor(t, func() bool { return rt.Calls("ListPodSandbox") > 0 })
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_READY
	rt.mu.Unlock()
	e.Submit(ctrs[0], Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { _, ok := c.GetSandbox(sb); return ok })
	waitFor(t, func() bool { return e.Stats().Waiting == 1 }) // the container, for its start
	if n := rt.Calls("PodSandboxStatus"); n != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1: the wait should find the sandbox known", n)
	}
}

// The first container of a new pod does not wait for its pod's
// PodSandboxStatus: its record is cached at once with the pod its labels
// name (no IP), and takes the sandbox's pod when that answer lands. The
// sandbox's own lookup, listed ready meanwhile, shares that one call.
func TestLookup_AContainerOfAPodNotCachedYetIsServedWithItsLabelsUntilItsSandboxLands(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	rt.setContainer(ctrs[0], runtimeapi.ContainerState_CONTAINER_CREATED, 0)
	rt.block = make(chan struct{})
	e, c, rec := newTestEngine(t, rt, Options{Wait: fastWait})
	e.Submit(ctrs[0], Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { _, err := c.Get(ctrs[0]); return err == nil })
	early, _ := c.Get(ctrs[0])
	if !early.Partial || early.Pod == nil || early.PodSource != enrich.PodSourceContainerLabels ||
		early.Pod.Name != "web-1" || early.Pod.Namespace != "shop" || early.Pod.SandboxID != sb || early.Pod.IP != "" {
		t.Fatalf("first record = partial %v, source %q, pod %+v; want partial, container_labels, web-1 in shop of %s, no IP", early.Partial, early.PodSource, early.Pod, sb)
	}
	waitFor(t, func() bool { return rt.Calls("PodSandboxStatus") == 1 }) // queued beside it, held
	e.Submit(sb, Hint{Exists: true, Cgroup: true, NewPod: true})
	time.Sleep(20 * time.Millisecond) // let the sandbox's wait reach the shared call
	close(rt.block)
	waitFor(t, func() bool { got, _ := c.Get(ctrs[0]); return got.PodSource == enrich.PodSourceSandboxStatus })
	if got, _ := c.Get(ctrs[0]); got.Pod.IP != "10.0.0.2" || got.Pod.SandboxID != sb {
		t.Errorf("record after the sandbox landed: pod %+v; want the sandbox's, IP 10.0.0.2", got.Pod)
	}
	if got, ok := c.GetSandbox(sb); !ok || got.State != "ready" {
		t.Errorf("sandbox = %+v, %v; want it cached ready", got, ok)
	}
	if n := rt.Calls("PodSandboxStatus"); n != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1", n)
	}
	if n := rec.Get("fallback:container_labels"); n != 0 {
		t.Errorf("fallback hits counted for the early record = %d, want 0: nothing failed", n)
	}
}

func TestSync_ASandboxBeingSetUpWaitsUntilItIsReady(t *testing.T) {
	rt := newFakeRuntime()
	sb, _ := rt.addPod(1, 0)
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.sandboxes[sb].Status.CreatedAt = time.Now().UnixNano()
	rt.mu.Unlock()
	e, c, _ := newTestEngine(t, rt, Options{Wait: fastWait})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rt.Calls("PodSandboxStatus"); n != 0 {
		t.Fatalf("PodSandboxStatus calls for a sandbox being set up = %d, want 0", n)
	}
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_READY
	rt.mu.Unlock()
	waitFor(t, func() bool { got, ok := c.GetSandbox(sb); return ok && got.State == "ready" })
	if n := rt.Calls("PodSandboxStatus"); n != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1", n)
	}
}

func TestLookup_OnDemandLookupsAreBoundedAndCounted(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	e, _, rec := newTestEngine(t, rt, Options{OnDemandRate: 0.001, OnDemandBurst: 2})
	for _, id := range []string{hexID('f', 1), hexID('f', 2)} {
		if _, err := lookupNow(t, e, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup %s = %v, want ErrNotFound within the burst", id[:12], err)
		}
	}
	if _, err := lookupNow(t, e, ctrs[0]); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third on-demand lookup = %v, want ErrRateLimited", err)
	}
	if rec.Get("ondemand_refused") != 1 {
		t.Errorf("refusals counted = %d, want 1", rec.Get("ondemand_refused"))
	}
	if _, err := lookupNow(t, e, hexID('f', 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a negatively cached ID = %v, want ErrNotFound without spending the budget", err)
	}
	if n := rt.Calls("ContainerStatus"); n != 2 {
		t.Errorf("ContainerStatus calls = %d, want 2: a refused lookup never reaches the runtime", n)
	}
}

func TestEvents_RequiredStreamIsAnErrorWhenTheRuntimeHasNone(t *testing.T) {
	e, _, _ := newTestEngine(t, newFakeRuntime(), Options{})
	ev := NewEvents(e, unimplementedEvents{}, streamRecorder{}, zap.NewNop(), func() {}, true)
	if err := ev.Run(context.Background()); !errors.Is(err, ErrNoEvents) {
		t.Errorf("Run = %v, want ErrNoEvents with runtime.events on", err)
	}
}

type unimplementedEvents struct{}

func (unimplementedEvents) ContainerEvents(context.Context) (runtimeapi.RuntimeService_GetContainerEventsClient, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method GetContainerEvents")
}
func (unimplementedEvents) ObserveStreamEnd(error, time.Duration) {}

func TestEvents_AStoppedSandboxIsAskedAgainUntilItsNetworkIsGone(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	e, c, rec := newTestEngine(t, rt, Options{})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The pause process died; the kubelet has not torn the network down yet.
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.mu.Unlock()
	newTestEvents(e).handle(event(sb, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, sb))
	waitFor(t, func() bool { return rec.Get("wait:stopping") == 1 })
	if got, _ := c.GetSandbox(sb); got.Pod.IP == "" {
		t.Fatalf("the runtime still reports the address; the record dropped it early")
	}
	rt.stopSandbox(sb) // StopPodSandbox: the network is gone
	waitFor(t, func() bool { got, _ := c.GetSandbox(sb); return got.Pod.IP == "" })
	if got, _ := c.Get(ctrs[0]); got.Pod.IP != "" {
		t.Errorf("container pod ip = %q, want its stopped sandbox's empty address", got.Pod.IP)
	}
	if e.Stats().Waiting != 0 {
		t.Errorf("still waiting on %d ids once the network was gone", e.Stats().Waiting)
	}
}

func TestEngine_AGoneSeenWhileALookupRunsAsksAgainAfterIt(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	id := ctrs[0]
	rt.block = make(chan struct{})
	e, c, _ := newTestEngine(t, rt, Options{})
	e.Submit(id, Hint{Exists: true})
	waitFor(t, func() bool { return e.Stats().InFlight == 1 })
	// The container exits and its cgroup goes while its answer (running)
	// is on the wire.
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_EXITED, 0)
	e.Submit(id, Hint{Gone: true})
	close(rt.block)
	waitFor(t, func() bool { got, err := c.Get(id); return err == nil && got.State == "exited" })
	if got, _ := c.Get(id); got.PID != 0 {
		t.Errorf("pid = %d, want 0 for the exited container", got.PID)
	}
}

func TestLookup_ACgroupGoneBeforeTheRuntimeRecordsTheExitWaitsForIt(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	id := ctrs[0]
	e, c, rec := newTestEngine(t, rt, Options{Wait: fastWait})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// containerd deletes the task, and its cgroup, before it records the
	// exit: the status still says running when the cgroup is gone.
	e.Submit(id, Hint{Gone: true})
	waitFor(t, func() bool { return rec.Get("wait:not_stopped") == 1 })
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_EXITED, 0)
	waitFor(t, func() bool { got, _ := c.Get(id); return got.State == "exited" })
	if got, _ := c.Get(id); got.PID != 0 || got.DeletedAt != nil {
		t.Errorf("record = pid %d deleted %v, want pid 0, not deleted (the runtime still has it)", got.PID, got.DeletedAt)
	}
}

func TestLookup_ACgroupSeenWhileARelistsLookupRunsIsFollowedToItsStart(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 1)
	id := ctrs[0]
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_CREATED, 0)
	rt.block = make(chan struct{})
	e, c, _ := newTestEngine(t, rt, Options{Wait: fastWait})
	e.Submit(id, Hint{}) // a relist listed it created
	waitFor(t, func() bool { return e.Stats().InFlight == 1 })
	e.Submit(id, Hint{Exists: true, Cgroup: true}) // then its cgroup appeared
	close(rt.block)
	waitFor(t, func() bool { return e.Stats().Waiting == 1 })
	rt.setContainer(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 4243)
	waitFor(t, func() bool { got, _ := c.Get(id); return got.PID == 4243 })
}
