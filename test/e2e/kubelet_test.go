package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// Image names the kubelet pods ask for: one image under two tags; containerd
// answers status.image.image with its first tag (aaa:1), whichever was asked
// for.
// The names are fully qualified under the harness's neutral registry name:
// nothing is ever pulled, and no real registry is named.
const (
	kubeletImage = "cri-enricherd.test/busybox:1.36"
	aliasImage   = "cri-enricherd.test/aaa:1"
)

// kubeletEnv is a throwaway containerd with a standalone kubelet on it.
type kubeletEnv struct {
	rt *harness.Runtime
	k  *harness.Kubelet
}

func startKubeletEnv(ctx context.Context, t *testing.T, v harness.Variant) *kubeletEnv {
	t.Helper()
	harness.RequireKubelet(t, v)
	before, err := harness.SnapshotHost()
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the daemon, the kubelet and
	// the runtime are gone, the host must be as it was.
	t.Cleanup(func() {
		after, err := harness.SnapshotHost()
		if err != nil {
			t.Error(err)
			return
		}
		if diff := before.Diff(after); len(diff) > 0 {
			t.Errorf("the host changed: %s", strings.Join(diff, "; "))
		}
	})
	rt, err := harness.Start(ctx, v, harness.Options{Logf: t.Logf, HostReachable: true})
	if err != nil {
		t.Fatalf("start %s: %v", v.Name, err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("runtime cleanup: %v", err)
		}
	})
	for _, name := range []string{kubeletImage, aliasImage} {
		if err := rt.TagImage(ctx, harness.WorkloadImage, name); err != nil {
			t.Fatal(err)
		}
	}
	k, err := harness.StartKubelet(ctx, rt, harness.KubeletOptions{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start kubelet: %v\n%s", err, rt.LogTail())
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("kubelet cleanup: %v", err)
		}
	})
	return &kubeletEnv{rt: rt, k: k}
}

// apply writes a static pod manifest and waits until the kubelet reports
// it running.
func (e *kubeletEnv) apply(ctx context.Context, t *testing.T, pod *corev1.Pod) corev1.Pod {
	t.Helper()
	if err := e.k.ApplyPod(pod); err != nil {
		t.Fatal(err)
	}
	p, err := e.k.WaitPod(ctx, pod.Name+"-"+e.k.NodeName(), func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if err != nil {
		t.Fatalf("pod %s: %v\n%s\n%s", pod.Name, err, e.k.LogTail(), e.rt.LogTail())
	}
	return p
}

func quantity(s string) resource.Quantity { return resource.MustParse(s) }

func container(name, image string, command ...string) corev1.Container {
	if len(command) == 0 {
		command = []string{"sleep", "2147483647"}
	}
	return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Command: command}
}

func staticPod(name string, spec corev1.PodSpec) *corev1.Pod {
	grace := int64(2)
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = &grace
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": name}}, Spec: spec}
}

// kubeletPods are the pods the kubelet tests run: one per QoS class, an
// init container, a container that exits and is restarted, an image asked
// for under its second tag and one asked for by digest, a host-network pod.
func kubeletPods(digestRef string) []*corev1.Pod {
	guaranteed := container("server", kubeletImage)
	guaranteed.Resources = corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: quantity("100m"), corev1.ResourceMemory: quantity("64Mi")},
	}
	guaranteed.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	burstable := container("app", kubeletImage)
	burstable.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: quantity("50m")}}
	grace := int64(7)
	return []*corev1.Pod{
		staticPod("api", corev1.PodSpec{Containers: []corev1.Container{guaranteed}, TerminationGracePeriodSeconds: &grace}),
		staticPod("web", corev1.PodSpec{Containers: []corev1.Container{burstable,
			container("flaky", kubeletImage, "sh", "-c", "sleep 2; exit 3")}}),
		staticPod("batch", corev1.PodSpec{
			InitContainers: []corev1.Container{container("init", kubeletImage, "true")},
			Containers:     []corev1.Container{container("worker", kubeletImage)},
		}),
		staticPod("pinned", corev1.PodSpec{Containers: []corev1.Container{container("app", digestRef)}}),
		staticPod("agent", corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{container("agent", kubeletImage)}}),
	}
}

// TestKubelet_RecordsEqualTheRuntimeThroughAPodsLife runs pods the way users
// do, made by a real kubelet, with the daemon on the host: every container
// and sandbox record equals the runtime's answers (PID, image, IP and state
// included) while the pods run, after a container is restarted, after the
// pause process is killed and the kubelet makes a new sandbox, and after a
// manifest is deleted.
func TestKubelet_RecordsEqualTheRuntimeThroughAPodsLife(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			e := startKubeletEnv(ctx, t, v)
			// Without an event stream (containerd 1.6) nothing tells the
			// daemon that the kubelet removed an exited container or a
			// stopped sandbox until a relist: 15 s instead of 5 min keeps
			// the deletion check short.
			d := startDaemon(t, e.rt.Endpoint(), "--enrich-export-annotations", "--cache-deleted-grace", "10m",
				"--runtime-relist-interval", "15s")
			d.waitReady(60 * time.Second)
			testRecordsThroughAPodsLife(ctx, t, e, d, truthOptions{annotations: true})
		})
	}
}

// testRecordsThroughAPodsLife is the scenario the host daemon and the
// chart's pod both go through.
func testRecordsThroughAPodsLife(ctx context.Context, t *testing.T, e *kubeletEnv, d *daemon, o truthOptions) {
	t.Helper()
	digestRef := imageDigestRef(ctx, t, e.rt)
	pods := map[string]corev1.Pod{}
	for _, p := range kubeletPods(digestRef) {
		pods[p.Name] = e.apply(ctx, t, p)
	}
	waitContainerAttempt(ctx, t, e.rt, "flaky", 1)
	assertRecordsEqualTheRuntime(ctx, t, e.rt, d, o, time.Minute)
	assertKubeletShapes(ctx, t, e, d, pods, o)
	assertImages(t, e, d, digestRef)

	oldIP := podIP(ctx, t, e.rt, sandboxOfPod(ctx, t, e.rt, string(pods["web"].UID)).GetId())
	old := recreateSandbox(ctx, t, e, pods["web"])
	assertRecordsEqualTheRuntime(ctx, t, e.rt, d, o, time.Minute)
	assertStoppedSandboxHoldsNoIP(t, d, old)
	current := sandboxOfPod(ctx, t, e.rt, string(pods["web"].UID)).GetId()
	newIP := podIP(ctx, t, e.rt, current)
	assertPodByIP(t, d, newIP, current)
	if oldIP != newIP {
		if code, _ := d.Get("/v1/ips/"+oldIP, &struct{}{}); code != http.StatusNotFound {
			t.Errorf("/v1/ips/%s (the stopped sandbox's address) = %d, want 404", oldIP, code)
		}
	}

	deleted := sandboxOfPod(ctx, t, e.rt, string(pods["batch"].UID))
	if err := e.k.DeletePod("batch"); err != nil {
		t.Fatal(err)
	}
	waitNoRunningContainer(ctx, t, e.rt, deleted.GetId())
	assertRecordsEqualTheRuntime(ctx, t, e.rt, d, o, time.Minute)
	waitSandboxRemoved(ctx, t, e.rt, deleted.GetId())
	eventually(t, 45*time.Second, "removed sandbox reported deleted", func() error {
		rec, err := d.Record(deleted.GetId())
		if err == nil && rec.DeletedAt == nil {
			err = fmt.Errorf("sandbox %s not marked deleted", deleted.GetId()[:12])
		}
		return err
	})
	assertRecordsEqualTheRuntime(ctx, t, e.rt, d, o, time.Minute)
}

// imageDigestRef names the test image by repository and manifest digest,
// as a pod pinning its image asks for it, and gives the image that name too
// (a digest reference resolves only to an image so named when nothing is
// pulled).
func imageDigestRef(ctx context.Context, t *testing.T, rt *harness.Runtime) string {
	t.Helper()
	digest, err := rt.ImageDigest(ctx, harness.WorkloadImage)
	if err != nil {
		t.Fatal(err)
	}
	ref := "cri-enricherd.test/pinned@" + digest
	if err := rt.TagImage(ctx, harness.WorkloadImage, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

var (
	staticUID  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	qosParents = map[string]string{"api": "kubepods/pod", "web": "kubepods/burstable/pod", "batch": "kubepods/besteffort/pod",
		"pinned": "kubepods/besteffort/pod", "agent": "kubepods/besteffort/pod"}
)

// assertKubeletShapes checks what the kubelet sends that the crictl-style
// harness never did, as the records show it: static pod UIDs and names,
// cgroup parents by QoS class, the kubelet's mounts and resources.
func assertKubeletShapes(ctx context.Context, t *testing.T, e *kubeletEnv, d *daemon, pods map[string]corev1.Pod, o truthOptions) {
	t.Helper()
	for name, p := range pods {
		sb := sandboxOfPod(ctx, t, e.rt, string(p.UID))
		rec, err := d.Record(sb.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if !staticUID.MatchString(rec.Pod.UID) || rec.Pod.UID != p.Annotations["kubernetes.io/config.hash"] {
			t.Errorf("pod %s uid %q, want 32 hex equal to config.hash %q", name, rec.Pod.UID, p.Annotations["kubernetes.io/config.hash"])
		}
		if want := name + "-" + e.k.NodeName(); rec.Pod.Name != want {
			t.Errorf("pod name %q, want %q", rec.Pod.Name, want)
		}
		parent := e.k.CgroupRoot() + "/" + qosParents[name] + rec.Pod.UID + "/"
		if !strings.HasPrefix(rec.CgroupPath, parent) {
			t.Errorf("pod %s sandbox cgroup %s, want under %s", name, rec.CgroupPath, parent)
		}
	}
	// The oom_score_adj the kubelet asks for a Guaranteed container (-997)
	// cannot be set here: containerd runs with restrict_oom_score_adj, so
	// the runtime reports its own 0 instead; the comparison with the
	// runtime covers it.
	api := containerRecord(ctx, t, e.rt, d, "server", 0)
	if r := api.Resources; r.CPUShares != 102 || r.CPUQuota != 10000 || r.CPUPeriod != 100000 || r.MemoryLimitInBytes != 64<<20 {
		t.Errorf("Guaranteed container resources = %+v, want shares 102, quota 10000/100000, 64 MiB", r)
	}
	if !hasMount(api, "/etc/hosts") || !hasMount(api, "/dev/termination-log") {
		t.Errorf("container mounts %+v lack the kubelet's /etc/hosts and /dev/termination-log", api.Mounts)
	}
	if o.annotations && (api.Annotations["io.kubernetes.container.ports"] == "" || api.Annotations["io.kubernetes.pod.terminationGracePeriod"] != "7") {
		t.Errorf("container annotations %v lack the ports and the 7 s grace period", api.Annotations)
	}
	if r := containerRecord(ctx, t, e.rt, d, "worker", 0).Resources; r.CPUShares != 2 || r.OOMScoreAdj != 1000 {
		t.Errorf("BestEffort container resources = %+v, want shares 2, oom_score_adj 1000", r)
	}
	if r := containerRecordOfPod(ctx, t, e, d, "web", "app").Resources; r.CPUShares != 51 {
		t.Errorf("Burstable container cpu_shares = %d, want 51 (a 50m request)", r.CPUShares)
	}
	if init := containerRecord(ctx, t, e.rt, d, "init", 0); init.State != "exited" || init.PID != 0 {
		t.Errorf("init container = state %s pid %d, want exited with pid 0", init.State, init.PID)
	}
	if again := containerRecord(ctx, t, e.rt, d, "flaky", 1); again.Attempt != 1 {
		t.Errorf("restarted container attempt = %d, want 1", again.Attempt)
	}
}

// assertImages checks the image under two tags and the image asked for by
// digest: the name is what the pod asked for, the resolved name what the
// runtime answers (the image's first tag). containerd 1.6 never learns what
// the pod asked for (it drops user_specified_image), so there the name is
// the resolved one.
func assertImages(t *testing.T, e *kubeletEnv, d *daemon, digestRef string) {
	t.Helper()
	ctx := context.Background()
	worker, pinned := containerRecord(ctx, t, e.rt, d, "worker", 0), containerRecordOfPod(ctx, t, e, d, "pinned", "app")
	if e.rt.Variant().Name == harness.Containerd16 {
		t.Logf("containerd 1.6: image name of %s is %q (asked %s), resolved %q", worker.Name, worker.Image.Name, kubeletImage, worker.Image.Resolved)
		return
	}
	if worker.Image.Name != kubeletImage || worker.Image.Resolved != aliasImage {
		t.Errorf("image under two tags: name %q resolved %q, want the asked %s beside the runtime's first tag %s",
			worker.Image.Name, worker.Image.Resolved, kubeletImage, aliasImage)
	}
	if pinned.Image.Name != digestRef {
		t.Errorf("image asked for by digest: name %q, want %s", pinned.Image.Name, digestRef)
	}
}

// recreateSandbox kills a pod's pause process and waits for the kubelet's
// new sandbox (same pod UID, attempt 1); it returns the old one.
func recreateSandbox(ctx context.Context, t *testing.T, e *kubeletEnv, p corev1.Pod) *runtimeapi.PodSandbox {
	t.Helper()
	old := sandboxOfPod(ctx, t, e.rt, string(p.UID))
	resp, err := e.rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: old.GetId(), Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := parseInfo(t, old.GetId(), resp.GetInfo()).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill pause process %d: %v", pid, err)
	}
	eventually(t, 2*time.Minute, "a new sandbox for pod "+p.Name, func() error {
		sb := sandboxOfPod(ctx, t, e.rt, string(p.UID))
		if sb.GetId() == old.GetId() || sb.GetMetadata().GetAttempt() != 1 {
			return fmt.Errorf("ready sandbox of %s is still %s", p.Name, sb.GetId()[:12])
		}
		return waitContainersRunning(ctx, e.rt, sb.GetId())
	})
	return old
}

// assertStoppedSandboxHoldsNoIP checks that a stopped sandbox's address
// answers its new sandbox, never the old one, and that the old sandbox and
// its containers no longer carry it.
func assertStoppedSandboxHoldsNoIP(t *testing.T, d *daemon, old *runtimeapi.PodSandbox) {
	t.Helper()
	rec, err := d.Record(old.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != "notready" || rec.Pod.IP != "" || rec.PID != 0 {
		t.Errorf("stopped sandbox = state %s ip %q pid %d, want notready, no IP, pid 0", rec.State, rec.Pod.IP, rec.PID)
	}
	var list struct {
		Items []enrich.Record `json:"items"`
	}
	if _, err := d.Get("/v1/containers?sandboxes=false&sandbox="+old.GetId(), &list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		if c.Pod.IP != "" || c.State != "exited" {
			t.Errorf("container %s of the stopped sandbox = state %s pod ip %q, want exited without IP", c.Name, c.State, c.Pod.IP)
		}
	}
}

// assertPodByIP checks /v1/ips/{ip} for a pod's current address.
func assertPodByIP(t *testing.T, d *daemon, ip, sandboxID string) {
	t.Helper()
	var pod struct {
		Sandbox enrich.Record `json:"sandbox"`
	}
	if code, err := d.Get("/v1/ips/"+ip, &pod); code != http.StatusOK || pod.Sandbox.ID != sandboxID {
		t.Errorf("/v1/ips/%s = %d %s, %v; want sandbox %s", ip, code, pod.Sandbox.ID, err, sandboxID)
	}
}

// podIP is a sandbox's address as the runtime reports it.
func podIP(ctx context.Context, t *testing.T, rt *harness.Runtime, id string) string {
	t.Helper()
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil || resp.GetStatus().GetNetwork().GetIp() == "" {
		t.Fatalf("ip of sandbox %s: %q, %v", id[:12], resp.GetStatus().GetNetwork().GetIp(), err)
	}
	return resp.GetStatus().GetNetwork().GetIp()
}

// sandboxOfPod is the pod UID's ready sandbox, else its newest one.
func sandboxOfPod(ctx context.Context, t *testing.T, rt *harness.Runtime, uid string) *runtimeapi.PodSandbox {
	t.Helper()
	resp, err := rt.Client().ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}}})
	if err != nil {
		t.Fatal(err)
	}
	var best *runtimeapi.PodSandbox
	for _, sb := range resp.GetItems() {
		if best == nil || sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY && best.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY ||
			sb.GetState() == best.GetState() && sb.GetCreatedAt() > best.GetCreatedAt() {
			best = sb
		}
	}
	if best == nil {
		t.Fatalf("no sandbox for pod uid %s", uid)
	}
	return best
}

// containerRecord is the daemon's record of the container with this name
// and attempt, found through the runtime.
func containerRecord(ctx context.Context, t *testing.T, rt *harness.Runtime, d *daemon, name string, attempt uint32) enrich.Record {
	t.Helper()
	resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.GetContainers() {
		if c.GetMetadata().GetName() == name && c.GetMetadata().GetAttempt() == attempt {
			rec, err := d.Record(c.GetId())
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}
	}
	t.Fatalf("no container %s attempt %d", name, attempt)
	return enrich.Record{}
}

func containerRecordOfPod(ctx context.Context, t *testing.T, e *kubeletEnv, d *daemon, pod, name string) enrich.Record {
	t.Helper()
	resp, err := e.rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": pod + "-" + e.k.NodeName(), "io.kubernetes.container.name": name}}})
	if err != nil || len(resp.GetContainers()) == 0 {
		t.Fatalf("container %s of pod %s: %v", name, pod, err)
	}
	rec, err := d.Record(resp.GetContainers()[0].GetId())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func hasMount(rec enrich.Record, containerPath string) bool {
	for _, m := range rec.Mounts {
		if m.ContainerPath == containerPath {
			return true
		}
	}
	return false
}

// waitContainerAttempt waits until the runtime lists a container with this
// name at this attempt (the kubelet restarts an exited container as a new
// one).
func waitContainerAttempt(ctx context.Context, t *testing.T, rt *harness.Runtime, name string, attempt uint32) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("container %s attempt %d", name, attempt), func() error {
		resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			return err
		}
		for _, c := range resp.GetContainers() {
			if c.GetMetadata().GetName() == name && c.GetMetadata().GetAttempt() >= attempt {
				return nil
			}
		}
		return fmt.Errorf("not listed yet")
	})
}

func waitContainersRunning(ctx context.Context, rt *harness.Runtime, sandboxID string) error {
	resp, err := rt.Client().ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID}})
	if err != nil {
		return err
	}
	running := 0
	for _, c := range resp.GetContainers() {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running++
		}
	}
	if running == 0 {
		return fmt.Errorf("no container of %s running yet", sandboxID[:12])
	}
	return nil
}

func waitNoRunningContainer(ctx context.Context, t *testing.T, rt *harness.Runtime, sandboxID string) {
	t.Helper()
	eventually(t, time.Minute, "containers of "+sandboxID[:12]+" stopped", func() error {
		if waitContainersRunning(ctx, rt, sandboxID) == nil {
			return fmt.Errorf("still running")
		}
		return nil
	})
}

// waitSandboxRemoved waits for the kubelet's cleanup (about once a minute)
// to remove a deleted pod's sandbox.
func waitSandboxRemoved(ctx context.Context, t *testing.T, rt *harness.Runtime, id string) {
	t.Helper()
	eventually(t, 3*time.Minute, "sandbox "+id[:12]+" removed by the kubelet", func() error {
		resp, err := rt.Client().ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: id}})
		if err != nil {
			return err
		}
		if len(resp.GetItems()) > 0 {
			return fmt.Errorf("still listed")
		}
		return nil
	})
}
