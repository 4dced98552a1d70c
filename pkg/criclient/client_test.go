package criclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// slowRuntime answers Version at once and ContainerStatus after delay.
type slowRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	delay time.Duration
}

func (s *slowRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "test"}, nil
}

func (s *slowRuntime) ContainerStatus(ctx context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !r.Verbose {
		return nil, status.Error(codes.InvalidArgument, "want verbose")
	}
	return nil, status.Error(codes.NotFound, "no such container")
}

// bigNode lists more containers than one status answer may ever hold.
type bigNode struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	n int
}

func (b *bigNode) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	out := make([]*runtimeapi.Container, b.n)
	for i := range out {
		id := fmt.Sprintf("%064x", i)
		out[i] = &runtimeapi.Container{Id: id, PodSandboxId: id, Labels: map[string]string{
			"io.kubernetes.pod.name": "web-" + id[:20], "io.kubernetes.pod.namespace": "shop",
			"io.kubernetes.pod.uid": id[:36], "io.kubernetes.container.name": "app"}}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func TestClient_ListsANodeLargerThanTheStatusMessageCap(t *testing.T) {
	sock := serve(t, &bigNode{n: 60000})
	c, err := Dial(sock, Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.ListContainers(context.Background(), nil)
	if err != nil || len(list) != 60000 {
		t.Fatalf("ListContainers = %d containers, %v; want all 60000 (over %d MiB)", len(list), err, maxMsgSize>>20)
	}
}

func serve(t *testing.T, srv runtimeapi.RuntimeServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, srv)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return sock
}

type observation struct {
	rpc  string
	code codes.Code
}

type recorder struct {
	mu  sync.Mutex
	obs []observation
}

func (r *recorder) ObserveRPC(rpc string, code codes.Code, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, observation{rpc, code})
}

func TestClient_ObservesEveryCallByRPCAndCode(t *testing.T) {
	sock := serve(t, &slowRuntime{})
	rec := &recorder{}
	c, err := Dial(sock, Options{Timeout: time.Second, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if c.RuntimeName() != "containerd" {
		t.Errorf("RuntimeName = %q after Version, want containerd", c.RuntimeName())
	}
	_, err = c.ContainerStatus(ctx, "abc")
	if status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus err = %v, want NotFound (and the request verbose)", err)
	}
	_, err = c.ListContainers(ctx, nil)
	want := []observation{{"Version", codes.OK}, {"ContainerStatus", codes.NotFound}, {"ListContainers", codes.Unimplemented}}
	if status.Code(err) != codes.Unimplemented || len(rec.obs) != 3 {
		t.Fatalf("observations = %v, want %v", rec.obs, want)
	}
	for i := range want {
		if rec.obs[i] != want[i] {
			t.Errorf("observation %d = %v, want %v", i, rec.obs[i], want[i])
		}
	}
}

func TestClient_BoundsEachCallByItsTimeout(t *testing.T) {
	sock := serve(t, &slowRuntime{delay: 10 * time.Second})
	rec := &recorder{}
	c, err := Dial(sock, Options{Timeout: 200 * time.Millisecond, Observer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.ContainerStatus(context.Background(), "abc")
	if Code(err) != codes.DeadlineExceeded {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("call took %s; the 200ms timeout did not bound it", took)
	}
	if len(rec.obs) != 1 || rec.obs[0].code != codes.DeadlineExceeded {
		t.Errorf("observations = %v, want one DeadlineExceeded", rec.obs)
	}
}

func TestTarget_AcceptsUnixURLsAndAbsolutePathsOnly(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock", true},
		{"/run/crio/crio.sock", "unix:///run/crio/crio.sock", true},
		{"tcp://1.2.3.4:1", "", false},
		{"relative.sock", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := Target(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Target(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestDetect_PicksTheFirstExistingSocket(t *testing.T) {
	dir := t.TempDir()
	crio := filepath.Join(dir, "crio.sock")
	l, err := net.Listen("unix", crio)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	plain := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Detect([]string{"unix://" + filepath.Join(dir, "containerd.sock"), plain, "unix://" + crio})
	if err != nil || got != "unix://"+crio {
		t.Errorf("Detect = %q, %v; want the CRI-O socket", got, err)
	}
	if _, err := Detect([]string{filepath.Join(dir, "none.sock")}); err == nil {
		t.Error("Detect found a socket where there is none")
	}
}

func TestCode_MapsContextErrorsToTheirGRPCMeaning(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.Unavailable, "x"), codes.Unavailable},
		{errors.New("plain"), codes.Unknown},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// slowLister answers List calls after delay.
type slowLister struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	delay time.Duration
}

func (s *slowLister) ListContainers(ctx context.Context, _ *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	select {
	case <-time.After(s.delay):
		return &runtimeapi.ListContainersResponse{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestClient_AWholeNodeListRunsToItsCallersDeadlineNotThePerCallTimeout(t *testing.T) {
	sock := serve(t, &slowLister{delay: 400 * time.Millisecond})
	c, err := Dial(sock, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListContainers(ctx, nil); err != nil {
		t.Errorf("a whole-node List within its caller's deadline failed: %v", err)
	}
	if _, err := c.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: "abc"}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a List filtered by ID = %v, want DeadlineExceeded at the per-call timeout", err)
	}
	if _, err := c.ListContainers(context.Background(), nil); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a whole-node List without a deadline of its own = %v, want the per-call timeout", err)
	}
}
