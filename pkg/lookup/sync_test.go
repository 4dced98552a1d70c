package lookup

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestSync_BootstrapListsTwiceAndFetchesEachSandboxOnce(t *testing.T) {
	rt := newFakeRuntime()
	for p := 0; p < 10; p++ {
		rt.addPod(p, 3)
	}
	e, c, rec := newTestEngine(t, rt, Options{Concurrency: 4})
	rep, err := e.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sandboxes != 10 || rep.Containers != 30 || rep.Added != 40 {
		t.Errorf("report = %+v, want 10 sandboxes, 30 containers, 40 looked up", rep)
	}
	calls := map[string]int{
		"ListPodSandbox": 1, "ListContainers": 1, "PodSandboxStatus": 10, "ContainerStatus": 30,
	}
	for rpc, want := range calls {
		if got := rt.Calls(rpc); got != want {
			t.Errorf("%s calls = %d, want %d", rpc, got, want)
		}
	}
	if c.Len() != 40 {
		t.Errorf("cached = %d, want 40", c.Len())
	}
	if rec.Get("synced") != 1 {
		t.Errorf("a successful sync was not recorded")
	}
	// Nothing changed: a second sync lists, and asks nothing else.
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.Calls("ContainerStatus") != 30 || rt.Calls("PodSandboxStatus") != 10 {
		t.Errorf("a relist with nothing new asked for statuses again: %v", rt.calls)
	}
}

func TestSync_RelistMarksWhatTheRuntimeLostAsDeleted(t *testing.T) {
	rt := newFakeRuntime()
	_, ctrs := rt.addPod(1, 2)
	e, c, _ := newTestEngine(t, rt, Options{})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	delete(rt.containers, ctrs[0])
	rt.mu.Unlock()
	rep, err := e.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != 1 {
		t.Errorf("deleted = %d, want 1", rep.Deleted)
	}
	got, err := c.Get(ctrs[0])
	if err != nil || got.DeletedAt == nil {
		t.Errorf("record = %+v, err %v; want it kept, marked deleted", got, err)
	}
	if live := c.List(cache.Filter{}); len(live) != 2 {
		t.Errorf("live records = %d, want the other container and the sandbox", len(live))
	}
}

// TestSync_IsBoundedWhenTheRuntimeNeverAnswers uses a runtime whose List
// calls block until their context ends: the sync deadline must end them.
func TestSync_IsBoundedWhenTheRuntimeNeverAnswers(t *testing.T) {
	e, _, rec := newTestEngine(t, hangingRuntime{fakeRuntime: newFakeRuntime()}, Options{SyncDeadline: 50 * time.Millisecond})
	start := time.Now()
	_, err := e.Sync(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("sync took %s, the deadline did not bound it", time.Since(start))
	}
	if rec.Get("relist:false") != 1 {
		t.Errorf("the failed sync was not counted")
	}
}

type hangingRuntime struct{ *fakeRuntime }

func (hangingRuntime) ListPodSandbox(ctx context.Context, _ *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestSync_ASandboxWhoseStateChangedIsFetchedAgainForItsNextContainer(t *testing.T) {
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	e, c, rec := newTestEngine(t, rt, Options{MaxRetries: 1})
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	rt.sandboxes[sb].Status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	rt.fail = func(rpc, id string) error {
		if rpc == "PodSandboxStatus" {
			return status.Error(codes.Unavailable, "down")
		}
		return nil
	}
	rt.mu.Unlock()
	if _, err := e.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetSandbox(sb); got.State != "notready" {
		t.Errorf("relisted sandbox state = %q, want notready", got.State)
	}
	// A fresh lookup of a container of the pod, as a new container gets.
	e.Submit(ctrs[0], Hint{Force: true})
	waitFor(t, func() bool {
		got, err := c.Get(ctrs[0])
		return err == nil && got.PodSource == enrich.PodSourceSandboxCache
	})
	if n := rec.Get("fallback:sandbox_cache"); n != 1 {
		t.Errorf("fallback_hits{sandbox_cache} = %d, want 1", n)
	}
	if n := rt.Calls("PodSandboxStatus"); n < 2 {
		t.Errorf("PodSandboxStatus calls = %d; the changed sandbox was not fetched again", n)
	}
}
