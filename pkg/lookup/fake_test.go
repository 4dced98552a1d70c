package lookup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
)

// fakeRuntime is a small, honest CRI fake: it answers from its maps, counts
// every call, and fails calls on demand.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]*runtimeapi.ContainerStatusResponse
	sandboxes  map[string]*runtimeapi.PodSandboxStatusResponse
	calls      map[string]int
	// fail returns an error for an RPC and ID, or nil to answer normally.
	fail  func(rpc, id string) error
	block chan struct{} // when set, every status call waits on it
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		containers: map[string]*runtimeapi.ContainerStatusResponse{},
		sandboxes:  map[string]*runtimeapi.PodSandboxStatusResponse{},
		calls:      map[string]int{},
	}
}

func (f *fakeRuntime) RuntimeName() string { return "containerd" }

func (f *fakeRuntime) Version(context.Context) (*runtimeapi.VersionResponse, error) {
	if err := f.count("Version", ""); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "test"}, nil
}

func (f *fakeRuntime) count(rpc, id string) error {
	f.mu.Lock()
	f.calls[rpc]++
	fail, block := f.fail, f.block
	f.mu.Unlock()
	if block != nil && strings.HasSuffix(rpc, "Status") {
		<-block
	}
	if fail != nil {
		return fail(rpc, id)
	}
	return nil
}

func (f *fakeRuntime) Calls(rpc string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[rpc]
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, id string) (*runtimeapi.ContainerStatusResponse, error) {
	if err := f.count("ContainerStatus", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.containers[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q not found", id)
	}
	return r, nil
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, id string) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := f.count("PodSandboxStatus", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.sandboxes[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sandbox %q not found", id)
	}
	return r, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	if err := f.count("ListContainers", filter.GetId()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for id, r := range f.containers {
		if filter.GetId() != "" && filter.GetId() != id {
			continue
		}
		st := r.GetStatus()
		out = append(out, &runtimeapi.Container{Id: id, State: st.GetState(), PodSandboxId: sandboxOf(r), CreatedAt: st.GetCreatedAt(),
			Metadata: st.GetMetadata(), Image: st.GetImage(), ImageRef: st.GetImageRef(), Labels: st.GetLabels()})
	}
	return out, nil
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	if err := f.count("ListPodSandbox", filter.GetId()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for id, r := range f.sandboxes {
		if filter.GetId() != "" && filter.GetId() != id {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{Id: id, State: r.GetStatus().GetState(), CreatedAt: r.GetStatus().GetCreatedAt()})
	}
	return out, nil
}

func sandboxOf(r *runtimeapi.ContainerStatusResponse) string {
	var info struct {
		SandboxID string `json:"sandboxID"`
	}
	_ = json.Unmarshal([]byte(r.GetInfo()["info"]), &info)
	return info.SandboxID
}

// setState changes a container's state as the runtime reports it.
func (f *fakeRuntime) setState(id string, st runtimeapi.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers[id].Status.State = st
}

// hexID makes a distinct 64-hex ID from a small number and a kind prefix.
func hexID(kind byte, n int) string {
	return fmt.Sprintf("%c%063x", kind, n)
}

// addPod adds a running pod with n containers and returns the IDs.
func (f *fakeRuntime) addPod(p int, n int) (sandbox string, containers []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sandbox = hexID('a', p)
	uid := fmt.Sprintf("00000000-0000-0000-0000-%012d", p)
	name := fmt.Sprintf("web-%d", p)
	sbInfo, _ := json.Marshal(map[string]any{
		"pid": 1000 + p, "image": "pause:1",
		"runtimeSpec": map[string]any{"linux": map[string]any{"cgroupsPath": "/kubepods/burstable/pod" + uid + "/" + sandbox}},
	})
	f.sandboxes[sandbox] = &runtimeapi.PodSandboxStatusResponse{
		Status: &runtimeapi.PodSandboxStatus{
			Id:        sandbox,
			Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "shop", Uid: uid},
			State:     runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: time.Unix(1700000000, 0).UnixNano(),
			Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: fmt.Sprintf("10.0.0.%d", p%250+1)},
			Labels:    map[string]string{"app": "web"},
		},
		Info: map[string]string{"info": string(sbInfo)},
	}
	for c := 0; c < n; c++ {
		id := hexID('c', p*100+c)
		info, _ := json.Marshal(map[string]any{
			"sandboxID": sandbox, "pid": 2000 + p*100 + c,
			"runtimeSpec": map[string]any{
				"linux":       map[string]any{"cgroupsPath": "/kubepods/burstable/pod" + uid + "/" + id},
				"annotations": map[string]string{"io.kubernetes.cri.sandbox-id": sandbox, "io.kubernetes.cri.sandbox-name": name, "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": uid},
			},
		})
		f.containers[id] = &runtimeapi.ContainerStatusResponse{
			Status: &runtimeapi.ContainerStatus{
				Id:        id,
				Metadata:  &runtimeapi.ContainerMetadata{Name: fmt.Sprintf("app-%d", c)},
				State:     runtimeapi.ContainerState_CONTAINER_RUNNING,
				CreatedAt: time.Unix(1700000001, 0).UnixNano(),
				StartedAt: time.Unix(1700000002, 0).UnixNano(),
				Image:     &runtimeapi.ImageSpec{Image: "busybox:1"},
				ImageRef:  "sha256:" + hexID('e', 1),
				Labels: map[string]string{
					"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "shop",
					"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": fmt.Sprintf("app-%d", c),
				},
			},
			Info: map[string]string{"info": string(info)},
		}
		containers = append(containers, id)
	}
	return sandbox, containers
}

// recorder counts what the engine reports.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRecorder() *recorder { return &recorder{counts: map[string]int{}} }

func (r *recorder) add(k string) {
	r.mu.Lock()
	r.counts[k]++
	r.mu.Unlock()
}

func (r *recorder) Get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}

func (r *recorder) LookupDone(result string)          { r.add("lookup:" + result) }
func (r *recorder) LookupFailed(stage, reason string) { r.add("fail:" + stage + ":" + reason) }
func (r *recorder) FallbackHit(source string)         { r.add("fallback:" + source) }
func (r *recorder) Retry(rpc, reason string)          { r.add("retry:" + rpc + ":" + reason) }
func (r *recorder) Waited(reason string)              { r.add("wait:" + reason) }
func (r *recorder) OnDemandRefused()                  { r.add("ondemand_refused") }
func (r *recorder) Trimmed(n int)                     { r.add("trimmed") }
func (r *recorder) RelistDone(ok bool, a, d int)      { r.add(fmt.Sprintf("relist:%v", ok)) }
func (r *recorder) Synced(time.Time)                  { r.add("synced") }

// newTestEngine runs an engine over rt with instant retries until the test ends.
func newTestEngine(t *testing.T, rt Runtime, opts Options) (*Engine, *cache.Cache, *recorder) {
	t.Helper()
	c := cache.New()
	rec := newRecorder()
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	}
	e := New(rt, c, rec, zap.NewNop(), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, c, rec
}

// fastWait polls the fake runtime's lists every millisecond or two.
var fastWait = WaitOptions{First: time.Millisecond, Max: 2 * time.Millisecond, GiveUp: 5 * time.Second}
