package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// The runtime's truth, read from its own verbose answers (what crictl
// inspect and inspectp print), never from the daemon's code. The records the
// daemon serves are compared with it field by field.

// criInfo is the part of a verbose info the comparisons need.
type criInfo struct {
	SandboxID string `json:"sandboxID"`
	PID       int    `json:"pid"`
	Config    struct {
		Image struct {
			UserSpecifiedImage string `json:"user_specified_image"`
		} `json:"image"`
	} `json:"config"`
	RuntimeSpec struct {
		Process struct {
			OOMScoreAdj *int64 `json:"oomScoreAdj"`
		} `json:"process"`
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
			Resources   struct {
				CPU struct {
					Shares *int64 `json:"shares"`
					Quota  *int64 `json:"quota"`
					Period *int64 `json:"period"`
				} `json:"cpu"`
				Memory struct {
					Limit *int64 `json:"limit"`
				} `json:"memory"`
			} `json:"resources"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func parseInfo(t *testing.T, id string, info map[string]string) criInfo {
	t.Helper()
	var ci criInfo
	if raw := info["info"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &ci); err != nil {
			t.Fatalf("runtime info of %s: %v", id, err)
		}
	}
	return ci
}

// field is one comparison: what the API says against what the runtime says.
type field struct {
	name     string
	got, exp any
}

func diffFields(who string, fields []field) []string {
	var out []string
	for _, f := range fields {
		if fmt.Sprint(f.got) != fmt.Sprint(f.exp) {
			out = append(out, fmt.Sprintf("%s %s: api %v, runtime %v", who, f.name, f.got, f.exp))
		}
	}
	return out
}

// truthOptions say which optional fields the daemon under test exports.
type truthOptions struct {
	annotations bool // enrich.export_annotations is on
}

// recordAPI is what the comparisons read from the daemon: its HTTP API.
type recordAPI interface {
	Record(id string) (enrich.Record, error)
}

// mismatches compares every sandbox and container the runtime lists with
// the daemon's record of it and returns each difference.
func mismatches(ctx context.Context, t *testing.T, rt *harness.Runtime, api recordAPI, o truthOptions) []string {
	t.Helper()
	c := rt.Client()
	sbs, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return []string{fmt.Sprintf("list pod sandboxes: %v", err)}
	}
	ctrs, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return []string{fmt.Sprintf("list containers: %v", err)}
	}
	var out []string
	sandboxes := map[string]*runtimeapi.PodSandboxStatus{}
	for _, sb := range sbs.GetItems() {
		st, diff := compareSandbox(ctx, t, rt, api, sb.GetId(), o)
		sandboxes[sb.GetId()] = st
		out = append(out, diff...)
	}
	for _, ct := range ctrs.GetContainers() {
		out = append(out, compareContainer(ctx, t, rt, api, ct.GetId(), sandboxes[ct.GetPodSandboxId()], o)...)
	}
	return out
}

func compareSandbox(ctx context.Context, t *testing.T, rt *harness.Runtime, api recordAPI, id string, o truthOptions) (*runtimeapi.PodSandboxStatus, []string) {
	resp, err := rt.Client().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return nil, []string{fmt.Sprintf("runtime PodSandboxStatus %s: %v", id[:12], err)}
	}
	st, info := resp.GetStatus(), parseInfo(t, id, resp.GetInfo())
	rec, err := api.Record(id)
	if err != nil {
		return st, []string{fmt.Sprintf("sandbox %s: %v", id[:12], err)}
	}
	who := "sandbox " + id[:12] + " (" + st.GetMetadata().GetName() + ")"
	fields := []field{
		{"is_pod_sandbox", rec.IsPodSandbox, true},
		{"state", rec.State, enrich.SandboxState(st.GetState())},
		{"pid", rec.PID, info.PID},
		{"cgroup_path", rec.CgroupPath, info.RuntimeSpec.Linux.CgroupsPath},
		{"labels", sortedMap(rec.Labels), sortedMap(st.GetLabels())},
	}
	fields = append(fields, podFields(rec.Pod, st, o)...)
	out := diffFields(who, fields)
	return st, append(out, cgroupIDDiff(who, rec, info.RuntimeSpec.Linux.CgroupsPath)...)
}

func compareContainer(ctx context.Context, t *testing.T, rt *harness.Runtime, api recordAPI, id string, sb *runtimeapi.PodSandboxStatus, o truthOptions) []string {
	resp, err := rt.Client().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return []string{fmt.Sprintf("runtime ContainerStatus %s: %v", id[:12], err)}
	}
	st, info := resp.GetStatus(), parseInfo(t, id, resp.GetInfo())
	rec, err := api.Record(id)
	if err != nil {
		return []string{fmt.Sprintf("container %s: %v", id[:12], err)}
	}
	who := fmt.Sprintf("container %s (%s/%d)", id[:12], st.GetMetadata().GetName(), st.GetMetadata().GetAttempt())
	res := info.RuntimeSpec.Linux.Resources
	fields := []field{
		{"is_pod_sandbox", rec.IsPodSandbox, false},
		{"name", rec.Name, st.GetMetadata().GetName()},
		{"attempt", rec.Attempt, st.GetMetadata().GetAttempt()},
		{"state", rec.State, enrich.ContainerState(st.GetState())},
		{"pid", rec.PID, info.PID},
		{"image.name", rec.Image.Name, askedImageOf(st, info)},
		{"image.resolved", rec.Image.Resolved, st.GetImage().GetImage()},
		{"image.ref", rec.Image.Ref, st.GetImageRef()},
		{"labels", sortedMap(rec.Labels), sortedMap(st.GetLabels())},
		{"log_path", rec.LogPath, st.GetLogPath()},
		{"cgroup_path", rec.CgroupPath, info.RuntimeSpec.Linux.CgroupsPath},
		{"mounts", recordMounts(rec.Mounts), criMounts(st.GetMounts())},
		{"resources.cpu_shares", rec.Resources.CPUShares, deref(res.CPU.Shares)},
		{"resources.cpu_quota", rec.Resources.CPUQuota, deref(res.CPU.Quota)},
		{"resources.cpu_period", rec.Resources.CPUPeriod, deref(res.CPU.Period)},
		{"resources.memory_limit_in_bytes", rec.Resources.MemoryLimitInBytes, deref(res.Memory.Limit)},
		{"resources.oom_score_adj", rec.Resources.OOMScoreAdj, deref(info.RuntimeSpec.Process.OOMScoreAdj)},
	}
	if o.annotations {
		fields = append(fields, field{"annotations", sortedMap(rec.Annotations), sortedMap(st.GetAnnotations())})
	}
	if rec.Pod == nil {
		return append(diffFields(who, fields), who+": no pod")
	}
	fields = append(fields, field{"pod.sandbox_id", rec.Pod.SandboxID, info.SandboxID})
	if sb != nil {
		fields = append(fields, podFields(rec.Pod, sb, truthOptions{})...)
	}
	return append(diffFields(who, fields), cgroupIDDiff(who, rec, info.RuntimeSpec.Linux.CgroupsPath)...)
}

// podFields compares a record's pod with its sandbox's status.
func podFields(got *enrich.Pod, sb *runtimeapi.PodSandboxStatus, o truthOptions) []field {
	if got == nil {
		return []field{{"pod", "nil", sb.GetId()}}
	}
	hostNet := sb.GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
	fields := []field{
		{"pod.sandbox_id", got.SandboxID, sb.GetId()},
		{"pod.name", got.Name, sb.GetMetadata().GetName()},
		{"pod.namespace", got.Namespace, sb.GetMetadata().GetNamespace()},
		{"pod.uid", got.UID, sb.GetMetadata().GetUid()},
		{"pod.attempt", got.Attempt, sb.GetMetadata().GetAttempt()},
		{"pod.state", got.State, enrich.SandboxState(sb.GetState())},
		{"pod.ip", got.IP, sb.GetNetwork().GetIp()},
		{"pod.host_network", got.HostNetwork, hostNet},
		{"pod.labels", sortedMap(got.Labels), sortedMap(sb.GetLabels())},
	}
	if o.annotations {
		fields = append(fields, field{"pod.annotations", sortedMap(got.Annotations), sortedMap(sb.GetAnnotations())})
	}
	return fields
}

// askedImageOf is the image the pod asked for, as the runtime keeps it:
// the user_specified_image the kubelet sent (containerd 2.x keeps it in the
// verbose config), else the status's name (containerd 1.6 drops the field).
func askedImageOf(st *runtimeapi.ContainerStatus, info criInfo) string {
	if s := info.Config.Image.UserSpecifiedImage; s != "" {
		return s
	}
	return st.GetImage().GetImage()
}

// cgroupIDDiff checks the record's cgroup_id against stat of its v2
// directory, while the directory exists (an exited container's is gone).
func cgroupIDDiff(who string, rec enrich.Record, cgroupsPath string) []string {
	var st syscall.Stat_t
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if syscall.Stat(filepath.Join(root, "cgroup.controllers"), &st) != nil {
			continue
		}
		if syscall.Stat(filepath.Join(root, cgroupsPath), &st) != nil {
			return nil
		}
		if rec.CgroupID != st.Ino {
			return []string{fmt.Sprintf("%s cgroup_id: api %d, stat %d", who, rec.CgroupID, st.Ino)}
		}
		return nil
	}
	return nil
}

func recordMounts(ms []enrich.Mount) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s<-%s ro=%v", m.ContainerPath, m.HostPath, m.ReadOnly))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func criMounts(ms []*runtimeapi.Mount) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s<-%s ro=%v", m.GetContainerPath(), m.GetHostPath(), m.GetReadonly()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func sortedMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s,", k, m[k])
	}
	return b.String()
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// assertRecordsEqualTheRuntime waits until every object the runtime lists
// has a record equal to the runtime's answers, and fails listing the
// differences that remain.
func assertRecordsEqualTheRuntime(ctx context.Context, t *testing.T, rt *harness.Runtime, api recordAPI, o truthOptions, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var diff []string
	for {
		if diff = mismatches(ctx, t, rt, api, o); len(diff) == 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d, ok := api.(*daemon); ok && d.proc != nil {
		if data, err := os.ReadFile(d.proc.LogPath); err == nil {
			_ = os.WriteFile(filepath.Join(os.TempDir(), "cri-enricherd-e2e-last-mismatch.log"), data, 0o644)
		}
		seen := map[string]bool{}
		for _, line := range diff {
			if id := strings.Fields(line)[1]; !seen[id] && len(seen) < 3 {
				seen[id] = true
				t.Logf("daemon log lines about %s:\n%s", id, grepLog(d.proc.LogPath, id))
			}
		}
	}
	t.Fatalf("records still differ from the runtime after %v:\n  %s", within, strings.Join(diff, "\n  "))
}

// grepLog returns the lines of a log file that mention s (the last 40).
func grepLog(path, s string) string {
	data, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-40):], "\n")
}
