package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// containerd is a real containerd from test/harness, with a counting proxy
// in front of it for the daemon: the runtime's side of the socket.
type containerd struct {
	rt       *harness.Runtime
	proxy    *harness.CRIProxy
	proxyDir string
	cgroups  string
	times    *rpcTimes
	args     []string // the daemon's extra flags
}

func startContainerd(ctx context.Context, v harness.Variant, args []string) (*containerd, error) {
	h, err := cgroup.DetectHierarchy("")
	if err != nil {
		return nil, err
	}
	times := &rpcTimes{started: map[string]time.Time{}}
	rt, err := harness.Start(ctx, v, harness.Options{UnaryInterceptor: times.intercept})
	if err != nil {
		return nil, err
	}
	c := &containerd{rt: rt, cgroups: h.Dir, times: times, args: args}
	// A short directory: a unix socket path must stay under 108 bytes.
	if c.proxyDir, err = os.MkdirTemp("", "rtbench"); err == nil {
		c.proxy, err = harness.NewCRIProxy(c.proxyDir, rt.Endpoint())
	}
	if err != nil {
		return nil, errors.Join(err, c.close())
	}
	return c, nil
}

func (c *containerd) runPod(ctx context.Context, p, perPod int) (createdPod, error) {
	spec := harness.PodSpec{Name: podName(p), Namespace: podNamespace, Labels: podLabels}
	for i := range perPod {
		spec.Containers = append(spec.Containers, harness.ContainerSpec{Name: fmt.Sprintf("c%d", i)})
	}
	pod, err := c.rt.RunPod(ctx, spec)
	if err != nil {
		return createdPod{}, err
	}
	cp := createdPod{sandbox: pod.SandboxID, runSandbox: c.times.lastRunSandbox()}
	for _, ctr := range pod.Containers {
		cp.containers = append(cp.containers, ctr.ID)
		cp.started = append(cp.started, c.times.startedAt(ctr.ID))
	}
	return cp, nil
}

func (c *containerd) counter() callCounter                    { return c.proxy }
func (c *containerd) client() runtimeapi.RuntimeServiceClient { return c.rt.Client() }
func (c *containerd) daemonEndpoint() string                  { return c.proxy.Endpoint() }
func (c *containerd) endpoint() string                        { return c.rt.Endpoint() }
func (c *containerd) cgroupDir() string                       { return c.cgroups }
func (c *containerd) daemonArgs() []string                    { return c.args }

func (c *containerd) close() error {
	var err error
	if c.proxy != nil {
		err = c.proxy.Close()
	}
	if c.proxyDir != "" {
		err = errors.Join(err, os.RemoveAll(c.proxyDir))
	}
	return errors.Join(err, c.rt.Close())
}

// rpcTimes times the benchmark's own RunPodSandbox and StartContainer calls
// (the harness's client), the runtime's side of the sandbox target and the
// start of the wait for a complete record.
type rpcTimes struct {
	mu         sync.Mutex
	runSandbox time.Duration
	started    map[string]time.Time
}

func (t *rpcTimes) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	end := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch path.Base(method) {
	case "RunPodSandbox":
		t.runSandbox = end.Sub(start)
	case "StartContainer":
		t.started[req.(*runtimeapi.StartContainerRequest).GetContainerId()] = end
	}
	return err
}

// lastRunSandbox is the time of the latest RunPodSandbox: pods are made one
// after another, so it is the pod RunPod just returned.
func (t *rpcTimes) lastRunSandbox() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runSandbox
}

func (t *rpcTimes) startedAt(id string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.started[id]
}
