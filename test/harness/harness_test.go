package harness_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func TestRuntime_RunsKubeletStylePodsAndLeavesNothingBehind(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			harness.Require(t, v)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rt := startRuntime(ctx, t, v)
			defer rt.Close()

			began := time.Now()
			web, err := rt.RunPod(ctx, harness.PodSpec{
				Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"},
				Containers: []harness.ContainerSpec{
					{Name: "app", Labels: map[string]string{"tier": "frontend"}},
					{Name: "sidecar", Command: []string{"sh", "-c", "exec sleep 2147483647"}},
				},
			})
			if err != nil {
				t.Fatalf("run cni pod: %v\n%s", err, rt.LogTail())
			}
			t.Logf("%s: cni pod with 2 containers ready in %v", v.Name, time.Since(began).Round(time.Millisecond))
			began = time.Now()
			host, err := rt.RunPod(ctx, harness.PodSpec{
				Name: "agent", Namespace: "kube-system", HostNetwork: true,
				Containers: []harness.ContainerSpec{{Name: "agent"}},
			})
			if err != nil {
				t.Fatalf("run host-network pod: %v\n%s", err, rt.LogTail())
			}
			t.Logf("%s: host-network pod ready in %v", v.Name, time.Since(began).Round(time.Millisecond))

			assertPodNetwork(ctx, t, rt, web, rt.CNISubnet())
			assertPodNetwork(ctx, t, rt, host, netip.Prefix{})
			assertContainersRunning(ctx, t, rt, web, map[string]string{"tier": "frontend"})
			assertContainersRunning(ctx, t, rt, host, nil)
			assertCgroups(ctx, t, rt, web)

			closeAndAssertClean(t, rt, []*harness.Pod{web, host})
		})
	}
}

func TestRuntime_RestartsAfterKillAndCleansUpAfterACrash(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			harness.Require(t, v)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rt := startRuntime(ctx, t, v)
			defer rt.Close()
			pod, err := rt.RunPod(ctx, harness.PodSpec{Name: "survivor", Containers: []harness.ContainerSpec{{Name: "c"}}})
			if err != nil {
				t.Fatalf("run pod: %v\n%s", err, rt.LogTail())
			}

			rt.Kill()
			if _, err := rt.Client().Version(ctx, &runtimeapi.VersionRequest{}); err == nil {
				t.Fatal("version answered after Kill")
			}
			began := time.Now()
			if err := rt.Restart(ctx); err != nil {
				t.Fatalf("restart: %v", err)
			}
			t.Logf("%s: restart after kill took %v", v.Name, time.Since(began).Round(time.Millisecond))
			assertContainersRunning(ctx, t, rt, pod, nil)

			// A crash leaves shims, containers, mounts and netns behind:
			// Close must remove them without containerd's help.
			rt.Kill()
			closeAndAssertClean(t, rt, []*harness.Pod{pod})
		})
	}
}

func startRuntime(ctx context.Context, t *testing.T, v harness.Variant) *harness.Runtime {
	t.Helper()
	began := time.Now()
	rt, err := harness.Start(ctx, v, harness.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("%s: started (CRI ready, images imported) in %v at %s", v.Name, time.Since(began).Round(time.Millisecond), rt.Endpoint())
	return rt
}

func assertPodNetwork(ctx context.Context, t *testing.T, rt *harness.Runtime, pod *harness.Pod, subnet netip.Prefix) {
	t.Helper()
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.SandboxID})
	if err != nil {
		t.Fatalf("pod sandbox status %s: %v", pod.Name, err)
	}
	st := resp.GetStatus()
	ip := st.GetNetwork().GetIp()
	wantMode := runtimeapi.NamespaceMode_POD
	if !subnet.IsValid() {
		wantMode = runtimeapi.NamespaceMode_NODE
	}
	if got := st.GetLinux().GetNamespaces().GetOptions().GetNetwork(); got != wantMode {
		t.Errorf("pod %s network namespace mode = %v, want %v", pod.Name, got, wantMode)
	}
	switch {
	case !subnet.IsValid() && ip != "":
		t.Errorf("host-network pod %s has IP %q, want none", pod.Name, ip)
	case subnet.IsValid():
		addr, err := netip.ParseAddr(ip)
		if err != nil || !subnet.Contains(addr) || pod.IP != ip {
			t.Errorf("pod %s IP = %q (harness saw %q), want one in %s", pod.Name, ip, pod.IP, subnet)
		}
	}
	for k, want := range map[string]string{"io.kubernetes.pod.name": pod.Name, "io.kubernetes.pod.namespace": pod.Namespace, "io.kubernetes.pod.uid": pod.UID} {
		if got := st.GetLabels()[k]; got != want {
			t.Errorf("pod %s sandbox label %s = %q, want %q", pod.Name, k, got, want)
		}
	}
}

func assertContainersRunning(ctx context.Context, t *testing.T, rt *harness.Runtime, pod *harness.Pod, userLabels map[string]string) {
	t.Helper()
	resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod.SandboxID},
	})
	if err != nil {
		t.Fatalf("list containers of %s: %v", pod.Name, err)
	}
	if len(resp.GetContainers()) != len(pod.Containers) {
		t.Fatalf("pod %s has %d containers in the CRI, want %d", pod.Name, len(resp.GetContainers()), len(pod.Containers))
	}
	for _, c := range resp.GetContainers() {
		if c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s state = %v, want running", c.GetMetadata().GetName(), c.GetState())
		}
		want := map[string]string{
			"io.kubernetes.container.name": c.GetMetadata().GetName(), "io.kubernetes.pod.name": pod.Name,
			"io.kubernetes.pod.namespace": pod.Namespace, "io.kubernetes.pod.uid": pod.UID,
		}
		if c.GetMetadata().GetName() == "app" {
			for k, v := range userLabels {
				want[k] = v
			}
		}
		for k, v := range want {
			if got := c.GetLabels()[k]; got != v {
				t.Errorf("container %s label %s = %q, want %q", c.GetMetadata().GetName(), k, got, v)
			}
		}
	}
}

// assertCgroups checks where runc put each container's cgroup on this
// hybrid host: the unified tree and every v1 controller, named after the
// pod's cgroup_parent and the container ID, and that /proc/<pid>/cgroup
// agrees.
func assertCgroups(ctx context.Context, t *testing.T, rt *harness.Runtime, pod *harness.Pod) {
	t.Helper()
	for _, c := range pod.Containers {
		rel := pod.CgroupParent + "/" + c.ID
		for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd"} {
			if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
				t.Errorf("container %s cgroup: %v", c.Name, err)
			}
		}
		pid := containerPID(ctx, t, rt, c.ID)
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatalf("read cgroup of pid %d: %v", pid, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !strings.HasSuffix(line, ":"+rel) {
				t.Errorf("container %s pid %d cgroup line %q, want path %s", c.Name, pid, line, rel)
			}
		}
	}
}

func containerPID(ctx context.Context, t *testing.T, rt *harness.Runtime, id string) int {
	t.Helper()
	resp, err := rt.Client().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("container status %s: %v", id, err)
	}
	info := parseVerboseInfo(t, id, resp.GetInfo())
	if info.PID == 0 {
		t.Fatalf("container %s verbose info has no pid", id)
	}
	return info.PID
}

// verboseInfo is what the tests read of containerd's verbose info of a
// container or sandbox.
type verboseInfo struct {
	PID         int `json:"pid"`
	RuntimeSpec struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func parseVerboseInfo(t *testing.T, id string, info map[string]string) verboseInfo {
	t.Helper()
	var v verboseInfo
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		t.Fatalf("verbose info of %s: %v", id, err)
	}
	return v
}

func closeAndAssertClean(t *testing.T, rt *harness.Runtime, pods []*harness.Pod) {
	t.Helper()
	assertClosesClean(t, rt.Variant().Name+" runtime", rt)
	for _, p := range pods {
		if p.NetNSPath != "" && exists(p.NetNSPath) {
			t.Errorf("pod %s netns %s still exists", p.Name, p.NetNSPath)
		}
		for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd"} {
			if dir := filepath.Join(root, p.CgroupParent); exists(dir) {
				t.Errorf("pod %s cgroup %s still exists", p.Name, dir)
			}
		}
	}
	if exists(filepath.Join("/sys/class/net", rt.BridgeName())) {
		t.Errorf("bridge %s still exists", rt.BridgeName())
	}
}

// cleanable is what a Runtime and a Kubelet share.
type cleanable interface {
	Close() error
	Leftovers() []string
}

// assertClosesClean closes c, expects nothing left behind, and expects a
// second Close to do nothing.
func assertClosesClean(t *testing.T, name string, c cleanable) {
	t.Helper()
	began := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("close %s: %v", name, err)
	}
	t.Logf("%s: close took %v", name, time.Since(began).Round(time.Millisecond))
	if left := c.Leftovers(); len(left) > 0 {
		t.Errorf("%s left behind after close:\n%s", name, strings.Join(left, "\n"))
	}
	if err := c.Close(); err != nil {
		t.Errorf("second close of %s: %v", name, err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestRuntime_TwoRuntimesCoexistWithSeparateNetworks(t *testing.T) {
	v := harness.Variants()[len(harness.Variants())-1]
	harness.Require(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := startRuntime(ctx, t, v)
	defer first.Close()
	second := startRuntime(ctx, t, v)
	defer second.Close()
	if first.CNISubnet() == second.CNISubnet() || first.BridgeName() == second.BridgeName() {
		t.Fatalf("runtimes share a network: %s/%s and %s/%s", first.BridgeName(), first.CNISubnet(), second.BridgeName(), second.CNISubnet())
	}
	for _, rt := range []*harness.Runtime{first, second} {
		pod, err := rt.RunPod(ctx, harness.PodSpec{Name: "twin", Containers: []harness.ContainerSpec{{Name: "c"}}})
		if err != nil {
			t.Fatalf("run pod: %v\n%s", err, rt.LogTail())
		}
		assertPodNetwork(ctx, t, rt, pod, rt.CNISubnet())
		if got := len(rt.Pods()); got != 1 {
			t.Errorf("runtime %s sees %d pods of its own, want 1", rt.Endpoint(), got)
		}
	}
	closeAndAssertClean(t, first, first.Pods())
	closeAndAssertClean(t, second, second.Pods())
}

func TestStart_ReturnsLogTailAndCleansUpWhenContainerdDies(t *testing.T) {
	v := harness.Variants()[0]
	harness.Require(t, v)
	v.Binary = "/bin/false" // exits at once, like a containerd rejecting its config
	// t.TempDir's long name would trip the unix socket path limit.
	base, err := os.MkdirTemp("", "crie-fail-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	_, err = harness.Start(context.Background(), v, harness.Options{BaseDir: base, Logf: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "containerd exited") || !strings.Contains(err.Error(), "containerd log tail") {
		t.Fatalf("start error = %v, want one saying containerd exited with its log tail", err)
	}
	if entries, _ := os.ReadDir(base); len(entries) > 0 {
		t.Errorf("failed start left %d entries in %s", len(entries), base)
	}
}

func TestRunPod_FailedContainerStartIsStillCleanedUpByClose(t *testing.T) {
	v := harness.Variants()[len(harness.Variants())-1]
	harness.Require(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt := startRuntime(ctx, t, v)
	defer rt.Close()
	_, err := rt.RunPod(ctx, harness.PodSpec{Name: "broken", Containers: []harness.ContainerSpec{
		{Name: "ok"}, {Name: "bad", Command: []string{"/no/such/binary"}},
	}})
	if err == nil {
		t.Fatal("run pod with a missing binary succeeded")
	}
	pods := rt.Pods()
	if len(pods) != 1 || len(pods[0].Containers) != 2 {
		t.Fatalf("tracked pods after failure = %+v, want the pod with both containers", pods)
	}
	closeAndAssertClean(t, rt, pods)
}
