package harness_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// askedImage is what the pods ask for; TagImage gives the workload image
// this name, so the kubelet finds it without a registry.
const askedImage = "cri-enricherd.test/busybox:1.36"

func TestKubelet_RunsStaticPodsOnItsOwnCgroupRootAndLeavesTheHostUntouched(t *testing.T) {
	eachKubeletVariant(t, 8*time.Minute, func(ctx context.Context, t *testing.T, v harness.Variant) {
		// A pod where the kubelet's orphan cleanup would find it with the
		// default cgroupRoot: another test's pod on the same host.
		bystander, other := startRuntimeWithPod(ctx, t, v, "bystander")
		defer bystander.Close()
		before := snapshotHost(t)

		rt, k, started := startKubelet(ctx, t, v)
		defer rt.Close()
		defer k.Close()
		web := runWebPod(ctx, t, rt, k, started)
		assertStaticPodIdentity(t, k, web)
		assertBestEffortPodInTheCRI(ctx, t, rt, k, web)
		assertPodServesKubeletHostsFile(t, k, web)
		waitIdlePod(ctx, t, k)
		assertDeletedManifestStopsContainers(ctx, t, rt, k, web)
		assertBystanderUntouched(ctx, t, bystander, other)

		closeKubeletAndRuntime(t, k, rt)
		assertHostUntouched(t, before)
	})
}

// eachKubeletVariant runs test once per containerd variant, skipped (or
// failed under CRI_ENRICHERD_E2E=1) where the kubelet mode cannot run.
func eachKubeletVariant(t *testing.T, timeout time.Duration, test func(ctx context.Context, t *testing.T, v harness.Variant)) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			harness.RequireKubelet(t, v)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			test(ctx, t, v)
		})
	}
}

// startRuntimeWithPod starts a plain runtime with one running pod, as
// another test on the host would have.
func startRuntimeWithPod(ctx context.Context, t *testing.T, v harness.Variant, name string) (*harness.Runtime, *harness.Pod) {
	t.Helper()
	rt := startRuntime(ctx, t, v)
	pod, err := rt.RunPod(ctx, harness.PodSpec{Name: name, Containers: []harness.ContainerSpec{{Name: "c"}}})
	if err != nil {
		t.Fatalf("run pod %s: %v\n%s", name, err, rt.LogTail())
	}
	return rt, pod
}

func snapshotHost(t *testing.T) harness.HostSnapshot {
	t.Helper()
	s, err := harness.SnapshotHost()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitIdlePod applies the idle manifest and waits until the pod runs.
func waitIdlePod(ctx context.Context, t *testing.T, k *harness.Kubelet) {
	t.Helper()
	if err := k.ApplyPod(idlePod()); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WaitPod(ctx, "idle-"+k.NodeName(), podRunning); err != nil {
		t.Fatal(err)
	}
}

// startKubelet starts a runtime whose bridge the host can reach and a
// kubelet on it, with the image name the pods ask for. It returns when the
// kubelet was started.
func startKubelet(ctx context.Context, t *testing.T, v harness.Variant) (*harness.Runtime, *harness.Kubelet, time.Time) {
	t.Helper()
	rt, err := harness.Start(ctx, v, harness.Options{Logf: t.Logf, HostReachable: true})
	if err != nil {
		t.Fatalf("start runtime: %v", err)
	}
	if err := rt.TagImage(ctx, harness.WorkloadImage, askedImage); err != nil {
		rt.Close()
		t.Fatal(err)
	}
	began := time.Now()
	k, err := harness.StartKubelet(ctx, rt, harness.KubeletOptions{Logf: t.Logf})
	if err != nil {
		rt.Close()
		t.Fatal(err)
	}
	t.Logf("%s: kubelet healthy in %v (node %s, cgroup root %s)", v.Name, time.Since(began).Round(time.Millisecond), k.NodeName(), k.CgroupRoot())
	return rt, k, began
}

// runWebPod applies the web manifest (an HTTP server with a readiness
// probe, and a sleeper) and waits until the pod is running and ready.
func runWebPod(ctx context.Context, t *testing.T, rt *harness.Runtime, k *harness.Kubelet, kubeletStarted time.Time) corev1.Pod {
	t.Helper()
	began := time.Now()
	if err := k.ApplyPod(webPod()); err != nil {
		t.Fatal(err)
	}
	running, err := k.WaitPod(ctx, "web-"+k.NodeName(), podRunning)
	if err != nil {
		t.Fatalf("%v\n%s", err, rt.LogTail())
	}
	t.Logf("%s: manifest to Running in %v; kubelet start to first Running pod %v", rt.Variant().Name,
		time.Since(began).Round(time.Millisecond), time.Since(kubeletStarted).Round(time.Millisecond))
	ready, err := k.WaitPod(ctx, running.Name, podReady)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: manifest to Ready (HTTP readiness probe from the host passed) in %v", rt.Variant().Name, time.Since(began).Round(time.Millisecond))
	return ready
}

func webPod() *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				{
					Name: "httpd", Image: askedImage, ImagePullPolicy: corev1.PullIfNotPresent,
					// Serves the container's /etc, including the kubelet's /etc/hosts.
					Command: []string{"busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"},
					Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/hosts", Port: intstr.FromInt32(8080)}},
						PeriodSeconds: 1,
					},
				},
				{Name: "sleeper", Image: askedImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "2147483647"}},
			},
		},
	}
}

func idlePod() *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "default"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				{Name: "idle", Image: askedImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "2147483647"}},
			},
		},
	}
}

func podRunning(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

var (
	staticPodUID = regexp.MustCompile(`^[0-9a-f]{32}$`)
	containerID  = regexp.MustCompile(`^containerd://([0-9a-f]{64})$`)
)

// assertStaticPodIdentity checks what the kubelet says of a static pod:
// its name, a config-hash UID, its QoS class and its containers.
func assertStaticPodIdentity(t *testing.T, k *harness.Kubelet, p corev1.Pod) {
	t.Helper()
	if want := "web-" + k.NodeName(); p.Name != want {
		t.Errorf("static pod name = %q, want %q", p.Name, want)
	}
	uid := string(p.UID)
	if !staticPodUID.MatchString(uid) {
		t.Errorf("static pod uid = %q, want 32 lowercase hex", uid)
	}
	if hash := p.Annotations["kubernetes.io/config.hash"]; hash != uid {
		t.Errorf("config.hash = %q, want the pod uid %q", hash, uid)
	}
	if src := p.Annotations["kubernetes.io/config.source"]; src != "file" {
		t.Errorf("config.source = %q, want file", src)
	}
	if p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("qos class = %q, want BestEffort", p.Status.QOSClass)
	}
	if len(p.Status.ContainerStatuses) != 2 {
		t.Fatalf("pod has %d container statuses, want 2", len(p.Status.ContainerStatuses))
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready || c.RestartCount != 0 || c.State.Running == nil || !containerID.MatchString(c.ContainerID) {
			t.Errorf("container %s: ready=%t restarts=%d running=%t id=%q, want ready, 0, running, containerd://<64 hex>",
				c.Name, c.Ready, c.RestartCount, c.State.Running != nil, c.ContainerID)
		}
	}
}

// assertBestEffortPodInTheCRI checks the same pod through the CRI: one
// ready sandbox named like the static pod, both containers running with
// the IDs the kubelet reports, the pod IP on the runtime's bridge, and
// every cgroup below <cgroupRoot>/kubepods/besteffort/pod<uid>.
func assertBestEffortPodInTheCRI(ctx context.Context, t *testing.T, rt *harness.Runtime, k *harness.Kubelet, p corev1.Pod) {
	t.Helper()
	sb := onlySandbox(ctx, t, rt, string(p.UID))
	if md := sb.GetMetadata(); md.GetName() != p.Name || md.GetNamespace() != "default" || md.GetUid() != string(p.UID) {
		t.Errorf("sandbox metadata = %v, want %s/default/%s", md, p.Name, p.UID)
	}
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !rt.CNISubnet().Contains(ip) {
		t.Errorf("pod IP %q not in the runtime's subnet %s", p.Status.PodIP, rt.CNISubnet())
	}
	podCgroup := k.CgroupRoot() + "/kubepods/besteffort/pod" + string(p.UID)
	if got := sandboxCgroupsPath(ctx, t, rt, sb.GetId()); got != podCgroup+"/"+sb.GetId() {
		t.Errorf("sandbox cgroups path = %q, want %s/<sandbox id>", got, podCgroup)
	}
	want := map[string]string{}
	for _, c := range p.Status.ContainerStatuses {
		want[c.Name] = containerID.FindStringSubmatch(c.ContainerID)[1]
	}
	resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb.GetId()}})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	if len(resp.GetContainers()) != len(want) {
		t.Fatalf("CRI lists %d containers in the sandbox, want %d", len(resp.GetContainers()), len(want))
	}
	for _, c := range resp.GetContainers() {
		name := c.GetMetadata().GetName()
		if c.GetId() != want[name] || c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("CRI container %s = %s %v, want %s running", name, c.GetId(), c.GetState(), want[name])
		}
		assertProcessCgroup(ctx, t, rt, c.GetId(), podCgroup+"/"+c.GetId())
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", podCgroup)); err != nil {
		t.Errorf("pod cgroup: %v", err)
	}
}

// onlySandbox returns the one ready sandbox of a pod UID.
func onlySandbox(ctx context.Context, t *testing.T, rt *harness.Runtime, uid string) *runtimeapi.PodSandbox {
	t.Helper()
	resp, err := rt.Client().ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{harness.LabelPodUID: uid},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}})
	if err != nil {
		t.Fatalf("list pod sandboxes: %v", err)
	}
	if len(resp.GetItems()) != 1 {
		t.Fatalf("CRI lists %d ready sandboxes for pod uid %s, want 1", len(resp.GetItems()), uid)
	}
	return resp.GetItems()[0]
}

func sandboxCgroupsPath(ctx context.Context, t *testing.T, rt *harness.Runtime, id string) string {
	t.Helper()
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("pod sandbox status %s: %v", id, err)
	}
	return parseVerboseInfo(t, id, resp.GetInfo()).RuntimeSpec.Linux.CgroupsPath
}

// assertProcessCgroup checks that every /proc/<pid>/cgroup line of the
// container's process names want.
func assertProcessCgroup(ctx context.Context, t *testing.T, rt *harness.Runtime, id, want string) {
	t.Helper()
	pid := containerPID(ctx, t, rt, id)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("read cgroup of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasSuffix(line, ":"+want) {
			t.Errorf("container %s pid %d cgroup line %q, want path %s", id, pid, line, want)
		}
	}
}

// assertPodServesKubeletHostsFile fetches /etc/hosts from the pod's HTTP
// server over the runtime's bridge: the host reaches the pod IP, and the
// file the kubelet wrote in its private mount namespace is what containerd
// mounted into the container.
func assertPodServesKubeletHostsFile(t *testing.T, k *harness.Kubelet, p corev1.Pod) {
	t.Helper()
	resp, err := http.Get("http://" + p.Status.PodIP + ":8080/hosts")
	if err != nil {
		t.Fatalf("get /etc/hosts from the pod: %v", err)
	}
	defer resp.Body.Close()
	served, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get /etc/hosts from the pod: %s %v", resp.Status, err)
	}
	written, err := os.ReadFile(filepath.Join(k.RootDir(), "pods", string(p.UID), "etc-hosts"))
	if err != nil {
		t.Fatalf("kubelet's hosts file: %v", err)
	}
	if string(served) != string(written) || !strings.Contains(string(served), "Kubernetes-managed hosts file") || !strings.Contains(string(served), p.Status.PodIP) {
		t.Errorf("pod serves /etc/hosts\n%s\nwant the kubelet's, with the pod IP %s:\n%s", served, p.Status.PodIP, written)
	}
}

// assertDeletedManifestStopsContainers removes web's manifest and waits
// until the kubelet no longer lists it and the CRI shows no running
// container in its sandbox.
func assertDeletedManifestStopsContainers(ctx context.Context, t *testing.T, rt *harness.Runtime, k *harness.Kubelet, p corev1.Pod) {
	t.Helper()
	sb := onlySandbox(ctx, t, rt, string(p.UID))
	began := time.Now()
	if err := k.DeletePod("web"); err != nil {
		t.Fatal(err)
	}
	for {
		running := runningContainers(ctx, t, rt, sb.GetId())
		listed := false
		pods, err := k.Pods(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, kp := range pods {
			listed = listed || kp.Name == p.Name
		}
		if running == 0 && !listed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after deleting the manifest: %d containers still running, listed by the kubelet: %t", running, listed)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%s: deleted manifest to containers stopped in %v", rt.Variant().Name, time.Since(began).Round(time.Millisecond))
}

func runningContainers(ctx context.Context, t *testing.T, rt *harness.Runtime, sandboxID string) int {
	t.Helper()
	resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		PodSandboxId: sandboxID,
		State:        &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	}})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return len(resp.GetContainers())
}

// assertBystanderUntouched checks that the other runtime's pod under
// /kubepods outlived the kubelet's orphan cleanup (every 2 s).
func assertBystanderUntouched(ctx context.Context, t *testing.T, rt *harness.Runtime, p *harness.Pod) {
	t.Helper()
	assertContainersRunning(ctx, t, rt, p, nil)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", p.CgroupParent)); err != nil {
		t.Errorf("bystander pod cgroup: %v", err)
	}
}

func closeKubeletAndRuntime(t *testing.T, k *harness.Kubelet, rt *harness.Runtime) {
	t.Helper()
	assertClosesClean(t, rt.Variant().Name+" kubelet", k)
	closeAndAssertClean(t, rt, nil)
}

// assertHostUntouched compares the host with the snapshot from before the
// test. Another test's runtime may be between two states at any moment (a
// pod cgroup made, its process not yet in it), so only what every one of
// several looks reports counts as changed.
func assertHostUntouched(t *testing.T, before harness.HostSnapshot) {
	t.Helper()
	persistent := map[string]bool{}
	for _, d := range before.Diff(snapshotHost(t)) {
		persistent[d] = true
	}
	for look := 1; look < 4 && len(persistent) > 0; look++ {
		time.Sleep(time.Second)
		seen := map[string]bool{}
		for _, d := range before.Diff(snapshotHost(t)) {
			seen[d] = true
		}
		for d := range persistent {
			if !seen[d] {
				delete(persistent, d)
			}
		}
	}
	if len(persistent) > 0 {
		t.Errorf("the host changed:\n%s", strings.Join(slices.Sorted(maps.Keys(persistent)), "\n"))
	}
}

func TestKubelet_RuntimeCloseCleansUpAfterContainerdCrashedUnderTheKubelet(t *testing.T) {
	eachKubeletVariant(t, 5*time.Minute, func(ctx context.Context, t *testing.T, v harness.Variant) {
		before := snapshotHost(t)
		rt, k, _ := startKubelet(ctx, t, v)
		defer rt.Close()
		waitIdlePod(ctx, t, k)
		// The kubelet and the pod run on; nothing can be removed through the
		// CRI now. Closing only the runtime must still close its kubelet.
		rt.Kill()
		closeAndAssertClean(t, rt, nil)
		if left := k.Leftovers(); len(left) > 0 {
			t.Errorf("kubelet left behind:\n%s", strings.Join(left, "\n"))
		}
		assertHostUntouched(t, before)
	})
}

func TestHostSnapshot_ReportsWhatAKubeletRunLeavesBehind(t *testing.T) {
	harness.Require(t, harness.Variants()[len(harness.Variants())-1])
	before := snapshotHost(t)
	dir := t.TempDir()
	// A kubelet cgroup root of a slot no runtime holds.
	cgroup := "/sys/fs/cgroup/memory/crie-kubelet-250"
	if err := os.Mkdir(cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cgroup)
	mount := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mount, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mount, unix.MNT_DETACH)
	fake := startProcessNamedKubelet(t, dir)

	diff := strings.Join(before.Diff(snapshotHost(t)), "\n")
	for _, want := range []string{"new cgroup " + cgroup, "new mount " + mount, fmt.Sprintf("new process %d kubelet", fake.Process.Pid)} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}

	_ = fake.Process.Kill()
	_ = fake.Wait()
	if err := unix.Unmount(mount, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cgroup); err != nil {
		t.Fatal(err)
	}
	assertHostUntouched(t, before)
}

// startProcessNamedKubelet runs a copy of sleep called kubelet.
func startProcessNamedKubelet(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kubelet")
	if err := os.WriteFile(bin, sleep, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func TestHostSnapshot_ExcusesWhatLiveRuntimesAndKubeletsOfOtherTestsHave(t *testing.T) {
	eachKubeletVariant(t, 4*time.Minute, func(ctx context.Context, t *testing.T, v harness.Variant) {
		before := snapshotHost(t)
		// What other tests would be running while this one looks.
		plain, _ := startRuntimeWithPod(ctx, t, v, "other")
		defer plain.Close()
		rt, k, _ := startKubelet(ctx, t, v)
		defer rt.Close()
		waitIdlePod(ctx, t, k)
		if diff := before.Diff(snapshotHost(t)); len(diff) > 0 {
			t.Errorf("live runtimes' state reported as changes:\n%s", strings.Join(diff, "\n"))
		}
		closeKubeletAndRuntime(t, k, rt)
		closeAndAssertClean(t, plain, plain.Pods())
		assertHostUntouched(t, before)
	})
}
