// Package e2e runs the built cri-enricherd binary against real containerd
// 1.6 and 2.x (real runc, cgroups and CNI) and compares what its API serves
// with what the runtime itself reports.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func startRuntime(t *testing.T, v harness.Variant) *harness.Runtime {
	t.Helper()
	harness.Require(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := harness.Start(ctx, v, harness.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start %s: %v", v.Name, err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("runtime cleanup: %v", err)
		}
	})
	return rt
}

func runPod(t *testing.T, rt *harness.Runtime, spec harness.PodSpec) *harness.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := rt.RunPod(ctx, spec)
	if err != nil {
		t.Fatalf("run pod %s: %v\n%s", spec.Name, err, rt.LogTail())
	}
	return p
}

// TestSpine_RecordsEqualWhatTheRuntimeReports is the walking skeleton: pods
// made before and after the daemon starts show up in its API, field by field
// equal to the runtime's own answers, sandboxes flagged; a removed container
// is reported deleted, then forgotten after the grace period; the metrics
// show the lookups.
func TestSpine_RecordsEqualWhatTheRuntimeReports(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) { testSpine(t, v) })
	}
}

func testSpine(t *testing.T, v harness.Variant) {
	rt := startRuntime(t, v)
	before := runPod(t, rt, harness.PodSpec{
		Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web", "tier": "frontend"},
		Containers: []harness.ContainerSpec{{Name: "app"}, {Name: "sidecar", Labels: map[string]string{"role": "proxy"}}},
	})
	host := runPod(t, rt, harness.PodSpec{
		Name: "agent-0", Namespace: "kube-system", HostNetwork: true,
		Containers: []harness.ContainerSpec{{Name: "agent"}},
	})
	d := startDaemon(t, rt.Endpoint(), "--cache-deleted-grace", "3s", "--runtime-relist-interval", "2s")
	d.waitReady(60 * time.Second)
	after := runPod(t, rt, harness.PodSpec{
		Name: "api-0", Namespace: "shop", Labels: map[string]string{"app": "api"},
		Containers: []harness.ContainerSpec{{Name: "server"}},
	})

	for _, p := range []*harness.Pod{before, host, after} {
		assertSandboxRecord(t, rt, d, p)
		assertCgroupID(t, d, p.SandboxID, sandboxCgroupsPath(t, rt, p.SandboxID))
		for _, c := range p.Containers {
			assertContainerRecord(t, rt, d, p, c.ID)
			assertCgroupID(t, d, c.ID, containerView(t, rt, c.ID).cgroupPath)
		}
	}
	assertPIDResolves(t, d, after.Containers[0].ID)
	assertListHasEverything(t, d, before, host, after)
	assertRemovedContainerIsDeletedThenForgotten(t, rt, d, before.Containers[1].ID)

	m, _ := d.metrics()
	if m.Sum("cri_enricherd_lookups_total", `result="container"`) < 4 {
		t.Errorf("lookups_total{result=container} = %v, want >= 4", m.Sum("cri_enricherd_lookups_total", `result="container"`))
	}
	if m.Sum("cri_enricherd_cri_requests_total", `rpc="ContainerStatus"`, `code="OK"`) < 4 {
		t.Errorf("cri_requests_total{ContainerStatus,OK} = %v, want >= 4", m.Sum("cri_enricherd_cri_requests_total", `rpc="ContainerStatus"`, `code="OK"`))
	}
}

// runtimeView is what the runtime itself says of a container and its pod.
type runtimeView struct {
	status     *runtimeapi.ContainerStatus
	pid        int
	sandboxID  string
	cgroupPath string
}

func containerView(t *testing.T, rt *harness.Runtime, id string) runtimeView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rt.Client().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("runtime ContainerStatus %s: %v", id, err)
	}
	var info struct {
		SandboxID   string `json:"sandboxID"`
		PID         int    `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("runtime info of %s: %v", id, err)
	}
	return runtimeView{status: resp.GetStatus(), pid: info.PID, sandboxID: info.SandboxID, cgroupPath: info.RuntimeSpec.Linux.CgroupsPath}
}

func sandboxView(t *testing.T, rt *harness.Runtime, id string) *runtimeapi.PodSandboxStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("runtime PodSandboxStatus %s: %v", id, err)
	}
	return resp.GetStatus()
}

// waitRecord waits until the API serves id started: a PID, and state
// running (a container) or ready (a sandbox).
func waitRecord(t *testing.T, d *daemon, id string) enrich.Record {
	t.Helper()
	var rec enrich.Record
	eventually(t, 30*time.Second, "record of "+id[:12], func() error {
		var err error
		rec, err = d.Record(id)
		if err == nil && (rec.PID == 0 || (rec.State != "running" && rec.State != "ready")) {
			return fmt.Errorf("record not started yet (state %s, pid %d)", rec.State, rec.PID)
		}
		return err
	})
	return rec
}

func assertContainerRecord(t *testing.T, rt *harness.Runtime, d *daemon, p *harness.Pod, id string) {
	t.Helper()
	rec := waitRecord(t, d, id)
	want := containerView(t, rt, id)
	sb := sandboxView(t, rt, p.SandboxID)
	checks := []struct {
		field    string
		got, exp any
	}{
		{"id", rec.ID, id},
		{"short_id", rec.ShortID, id[:12]},
		{"name", rec.Name, want.status.GetMetadata().GetName()},
		{"state", rec.State, "running"},
		{"runtime", rec.Runtime, "containerd"},
		{"is_pod_sandbox", rec.IsPodSandbox, false},
		{"image.ref", rec.Image.Ref, want.status.GetImageRef()},
		{"pid", rec.PID, want.pid},
		{"cgroup_path", rec.CgroupPath, want.cgroupPath},
		{"log_path", rec.LogPath, want.status.GetLogPath()},
		{"pod_source", rec.PodSource, enrich.PodSourceSandboxStatus},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.exp) {
			t.Errorf("container %s %s: api %v, runtime %v", id[:12], c.field, c.got, c.exp)
		}
	}
	if !maps.Equal(rec.Labels, want.status.GetLabels()) {
		t.Errorf("container %s labels: api %v, runtime %v", id[:12], rec.Labels, want.status.GetLabels())
	}
	if !strings.Contains(rec.Image.Name, "busybox") {
		t.Errorf("container %s image name %q, want the busybox image", id[:12], rec.Image.Name)
	}
	if rec.Pod == nil {
		t.Fatalf("container %s has no pod", id[:12])
	}
	if rec.Pod.SandboxID != want.sandboxID || rec.Pod.SandboxID != p.SandboxID {
		t.Errorf("container %s sandbox: api %s, runtime %s, harness %s", id[:12], rec.Pod.SandboxID, want.sandboxID, p.SandboxID)
	}
	assertPod(t, id[:12], rec.Pod, sb, p)
}

func assertSandboxRecord(t *testing.T, rt *harness.Runtime, d *daemon, p *harness.Pod) {
	t.Helper()
	rec := waitRecord(t, d, p.SandboxID)
	sb := sandboxView(t, rt, p.SandboxID)
	if !rec.IsPodSandbox || rec.ID != p.SandboxID || rec.Pod == nil || rec.Pod.SandboxID != rec.ID {
		t.Fatalf("sandbox %s: is_pod_sandbox %v, id %s, pod %+v; want a flagged sandbox whose id is its sandbox id",
			p.SandboxID[:12], rec.IsPodSandbox, rec.ID, rec.Pod)
	}
	assertPod(t, "sandbox "+p.SandboxID[:12], rec.Pod, sb, p)
}

func assertPod(t *testing.T, who string, got *enrich.Pod, sb *runtimeapi.PodSandboxStatus, p *harness.Pod) {
	t.Helper()
	hostNet := sb.GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	checks := []struct {
		field    string
		got, exp any
	}{
		{"pod.name", got.Name, sb.GetMetadata().GetName()},
		{"pod.namespace", got.Namespace, sb.GetMetadata().GetNamespace()},
		{"pod.uid", got.UID, sb.GetMetadata().GetUid()},
		{"pod.ip", got.IP, sb.GetNetwork().GetIp()},
		{"pod.ip (harness)", got.IP, p.IP},
		{"pod.host_network", got.HostNetwork, hostNet},
		{"pod.host_network (harness)", got.HostNetwork, p.HostNetwork},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.exp) {
			t.Errorf("%s %s: api %v, runtime %v", who, c.field, c.got, c.exp)
		}
	}
	if !maps.Equal(got.Labels, sb.GetLabels()) {
		t.Errorf("%s pod.labels: api %v, runtime %v", who, got.Labels, sb.GetLabels())
	}
	switch {
	case p.HostNetwork && got.CNIResult != "":
		t.Errorf("%s: host-network pod has a CNI result %s", who, got.CNIResult)
	case !p.HostNetwork && !strings.Contains(got.CNIResult, p.IP):
		t.Errorf("%s: CNI result %q does not hold the pod IP %s", who, got.CNIResult, p.IP)
	case !p.HostNetwork && strings.Contains(got.CNIResult, `"lo"`):
		t.Errorf("%s: CNI result %q still lists the loopback interface", who, got.CNIResult)
	}
}

// sandboxCgroupsPath is the sandbox's cgroup as the runtime's spec names it.
func sandboxCgroupsPath(t *testing.T, rt *harness.Runtime, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("runtime PodSandboxStatus %s: %v", id, err)
	}
	var info struct {
		RuntimeSpec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("runtime info of %s: %v", id, err)
	}
	return info.RuntimeSpec.Linux.CgroupsPath
}

// v2Root is this host's cgroup v2 hierarchy: the whole tree, or a hybrid
// host's unified tree.
func v2Root(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
			return dir
		}
	}
	t.Fatal("no cgroup v2 hierarchy on this host")
	return ""
}

// assertCgroupID checks that the record carries the inode stat reports for
// its cgroup v2 directory, and that looking that number up answers it.
func assertCgroupID(t *testing.T, d *daemon, id, cgroupsPath string) {
	t.Helper()
	var st syscall.Stat_t
	dir := filepath.Join(v2Root(t), cgroupsPath)
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatalf("stat %s: %v", dir, err)
	}
	var rec enrich.Record
	eventually(t, 30*time.Second, "cgroup id of "+id[:12], func() error {
		var err error
		if rec, err = d.Record(id); err == nil && rec.CgroupID != st.Ino {
			err = fmt.Errorf("record cgroup_id %d, stat of %s says %d", rec.CgroupID, dir, st.Ino)
		}
		return err
	})
	var byID enrich.Record
	if _, err := d.Get(fmt.Sprintf("/v1/cgroup-ids/%d", st.Ino), &byID); err != nil || byID.ID != id {
		t.Errorf("/v1/cgroup-ids/%d = %s, %v; want %s", st.Ino, byID.ID, err, id)
	}
}

func assertPIDResolves(t *testing.T, d *daemon, id string) {
	t.Helper()
	rec := waitRecord(t, d, id)
	var byPID enrich.Record
	if _, err := d.Get(fmt.Sprintf("/v1/pids/%d", rec.PID), &byPID); err != nil {
		t.Fatalf("pid %d: %v", rec.PID, err)
	}
	if byPID.ID != id {
		t.Errorf("/v1/pids/%d = %s, want %s", rec.PID, byPID.ID, id)
	}
	if code, _ := d.Get("/v1/pids/1", &byPID); code != 404 {
		t.Errorf("/v1/pids/1 (a host process) = %d, want 404", code)
	}
}

func assertListHasEverything(t *testing.T, d *daemon, pods ...*harness.Pod) {
	t.Helper()
	var list struct {
		Items []enrich.Record `json:"items"`
	}
	if _, err := d.Get("/v1/containers", &list); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range list.Items {
		have[r.ID] = true
	}
	for _, p := range pods {
		if !have[p.SandboxID] {
			t.Errorf("list lacks sandbox %s", p.SandboxID[:12])
		}
		for _, c := range p.Containers {
			if !have[c.ID] {
				t.Errorf("list lacks container %s", c.ID[:12])
			}
		}
	}
	if _, err := d.Get("/v1/containers?sandboxes=false", &list); err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Items {
		if r.IsPodSandbox {
			t.Errorf("sandboxes=false still lists sandbox %s", r.ID[:12])
		}
	}
}

func assertRemovedContainerIsDeletedThenForgotten(t *testing.T, rt *harness.Runtime, d *daemon, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "container reported deleted", func() error {
		rec, err := d.Record(id)
		if err != nil {
			return err
		}
		if rec.DeletedAt == nil {
			return fmt.Errorf("not marked deleted (state %s)", rec.State)
		}
		return nil
	})
	eventually(t, 30*time.Second, "deleted container forgotten after the grace period", func() error {
		code, _ := d.Get("/v1/containers/"+id, &enrich.Record{})
		if code != 404 {
			return fmt.Errorf("GET = %d, want 404", code)
		}
		return nil
	})
}
