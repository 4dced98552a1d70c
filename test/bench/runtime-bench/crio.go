package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// fakeCRIORuntime is test/fakecri in CRI-O's shape, the case no real
// runtime here can show: named cri-o, its event stream ending at once with
// EOF (CRI-O with enable_pod_events off, its default), and containers in
// systemd-driver cgroups (crio-<id>.scope) that the benchmark makes itself
// in a private directory that looks like a cgroup v2 root.
type fakeCRIORuntime struct {
	rt   *fakecri.Runtime
	dir  string
	root string
	stop func()
	conn *grpc.ClientConn
	cli  runtimeapi.RuntimeServiceClient
	// sandboxDelay is how long after the sandbox's cgroup appears the
	// runtime lists it (its network being set up); startDelay how long a
	// container stays created, its cgroup there, before StartContainer.
	sandboxDelay, startDelay time.Duration
}

func startFakeCRIO(o options) (*fakeCRIORuntime, error) {
	dir, err := os.MkdirTemp("", "rtbench-crio")
	if err != nil {
		return nil, err
	}
	f := &fakeCRIORuntime{rt: fakecri.New(), dir: dir, root: filepath.Join(dir, "cgroup"),
		sandboxDelay: o.crioSandbox, startDelay: o.crioStart}
	if err := f.start(); err != nil {
		return nil, errors.Join(err, f.close())
	}
	return f, nil
}

func (f *fakeCRIORuntime) start() error {
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		return err
	}
	// The daemon and the benchmark's watcher take a root holding this file
	// for a cgroup v2 hierarchy.
	if err := os.WriteFile(filepath.Join(f.root, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		return err
	}
	f.rt.SetVersion("cri-o", "1.36.0-fakecri")
	f.rt.SetEvents(fakecri.EventsEOF)
	sock := filepath.Join(f.dir, "crio.sock")
	stop, err := f.rt.Serve(sock)
	if err != nil {
		return err
	}
	f.stop = stop
	if f.conn, err = grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fmt.Errorf("dial %s: %w", sock, err)
	}
	f.cli = runtimeapi.NewRuntimeServiceClient(f.conn)
	return nil
}

// runPod does what CRI-O does for the kubelet, in order: the sandbox's
// cgroup, then (after the network is set up) the sandbox listed ready; for
// each container, CreateContainer with its conmon's and its own cgroup,
// then StartContainer after startDelay.
func (f *fakeCRIORuntime) runPod(_ context.Context, p, perPod int) (createdPod, error) {
	seed := fmt.Sprintf("runtime-bench/%d", p)
	uid := podUIDOf(fakecri.ID("uid/" + seed))
	slice := filepath.Join(f.root, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	cp := createdPod{sandbox: fakecri.ID("sandbox/" + seed)}
	start := time.Now()
	if err := mkScope(slice, cp.sandbox); err != nil {
		return cp, err
	}
	time.Sleep(f.sandboxDelay)
	f.rt.AddPod(fakecri.PodSpec{ID: cp.sandbox, Name: podName(p), Namespace: podNamespace, UID: uid, Labels: podLabels})
	cp.runSandbox = time.Since(start)
	for i := range perPod {
		id := f.rt.CreateContainer(cp.sandbox, fakecri.ContainerSpec{Name: fmt.Sprintf("c%d", i)})
		if err := mkScope(slice, id); err != nil {
			return cp, err
		}
		time.Sleep(f.startDelay)
		if !f.rt.StartContainer(id) {
			return cp, fmt.Errorf("start container %s: not created", id)
		}
		cp.containers = append(cp.containers, id)
		cp.started = append(cp.started, time.Now())
	}
	return cp, nil
}

// mkScope makes the cgroups CRI-O's systemd driver makes for a container
// or sandbox: its conmon's scope first (not a container: the daemon must
// ignore it), then the container's own.
func mkScope(slice, id string) error {
	for _, name := range []string{"crio-conmon-" + id + ".scope", "crio-" + id + ".scope"} {
		if err := os.MkdirAll(filepath.Join(slice, name), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// podUIDOf shapes 32 hex digits as a pod UID (8-4-4-4-12).
func podUIDOf(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (f *fakeCRIORuntime) counter() callCounter { return f.rt }

// client is counted by the fake like the daemon: the measurement reads the
// daemon's calls before the raw round trips begin.
func (f *fakeCRIORuntime) client() runtimeapi.RuntimeServiceClient { return f.cli }
func (f *fakeCRIORuntime) daemonEndpoint() string                  { return f.endpoint() }
func (f *fakeCRIORuntime) endpoint() string                        { return "unix://" + filepath.Join(f.dir, "crio.sock") }
func (f *fakeCRIORuntime) cgroupDir() string                       { return f.root }

func (f *fakeCRIORuntime) daemonArgs() []string {
	return []string{"--cgroup-root", f.root, "--proc-root", "/proc"}
}

func (f *fakeCRIORuntime) close() error {
	var err error
	if f.conn != nil {
		err = f.conn.Close()
	}
	if f.stop != nil {
		f.stop()
	}
	return errors.Join(err, os.RemoveAll(f.dir))
}
