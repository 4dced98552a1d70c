package main

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// runtimeUnderTest is what the measurement needs of a runtime, real or
// fake: pods made as the kubelet makes them, the calls it received, and a
// client of its own for the raw floor.
type runtimeUnderTest interface {
	// runPod creates pod number p with perPod containers and starts them.
	runPod(ctx context.Context, p, perPod int) (createdPod, error)
	// counter counts what reached the runtime through daemonEndpoint.
	counter() callCounter
	// client talks to the runtime directly, uncounted where a proxy counts.
	client() runtimeapi.RuntimeServiceClient
	// daemonEndpoint is where the measured daemon connects, endpoint the
	// runtime itself (for the bootstrap daemon, which is not counted).
	daemonEndpoint() string
	endpoint() string
	// cgroupDir is the hierarchy in which the pods' cgroups appear.
	cgroupDir() string
	// daemonArgs are the flags the daemon needs for this runtime.
	daemonArgs() []string
	close() error
}

// callCounter is how harness.CRIProxy and fakecri.Runtime count calls.
type callCounter interface {
	Calls(rpc string) int
	CallsFor(rpc, id string) int
}

// createdPod is one pod the benchmark made, and how long the runtime took.
type createdPod struct {
	sandbox    string
	containers []string
	// runSandbox is how long RunPodSandbox took to return.
	runSandbox time.Duration
	// started is when each container's StartContainer returned.
	started []time.Time
}

func (p createdPod) ids() []string { return append([]string{p.sandbox}, p.containers...) }

// fakeCRIO names the fake runtime in CRI-O's shape among the variants.
const fakeCRIO = "fake-crio"

// containerd16Cgroup is containerd 1.6 with the daemon's
// runtime.containerd_events off: the cgroup watcher and Lists alone tell
// when to ask, as before the daemon followed containerd's own events.
const containerd16Cgroup = harness.Containerd16 + "-cgroup"

func startRuntime(ctx context.Context, name string, o options) (runtimeUnderTest, error) {
	if name == fakeCRIO {
		return startFakeCRIO(o)
	}
	var args []string
	if name == containerd16Cgroup {
		name, args = harness.Containerd16, []string{"--runtime-containerd-events=false"}
	}
	v, err := harness.VariantByName(name)
	if err != nil {
		return nil, err
	}
	if err := harness.Usable(v); err != nil {
		return nil, err
	}
	return startContainerd(ctx, v, args)
}

// podName and the labels are the same for every runtime, so records are
// alike in size.
func podName(p int) string { return fmt.Sprintf("bench-%d", p) }

var podLabels = map[string]string{"app": "bench", "pod-template-hash": "5d8f7c9b6"}

const podNamespace = "bench"
