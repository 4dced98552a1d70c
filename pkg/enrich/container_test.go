package enrich

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainer_MapsRealRuntimeAnswers(t *testing.T) {
	tests := []struct {
		dir, file   string
		id          string
		runtime     string
		pid         int
		createdNs   int64
		startedNs   int64
		image       Image
		logPath     string
		cgroupPath  string
		sandboxID   string
		labelPod    *Pod
		resolvedUID int64
	}{
		{
			dir: "containerd-1.6", file: "container-status-verbose-0.json",
			id: cd16Container0, runtime: "containerd", pid: 7366,
			createdNs: 1795833882108353583, startedNs: 1795833882179321722,
			image:      Image{Name: busyboxName, Resolved: busyboxName, Ref: busyboxID, ID: busyboxID},
			logPath:    "/var/lib/e2e-containerd/logs/app.log",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/" + cd16Container0,
			sandboxID:  cd16Sandbox0,
			labelPod: &Pod{SandboxID: cd16Sandbox0, Name: "web-0", Namespace: "shop",
				UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000001", Labels: map[string]string{}, AdditionalIPs: []string{}},
		},
		{
			dir: "containerd-1.6", file: "container-status-verbose-1.json",
			id: cd16Container1, runtime: "containerd", pid: 8292,
			createdNs: 1795833904616512906, startedNs: 1795833904761160384,
			image:      Image{Name: busyboxName, Resolved: busyboxName, Ref: busyboxID, ID: busyboxID},
			logPath:    "/var/lib/e2e-containerd/logs/app.log",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000002/" + cd16Container1,
			sandboxID:  cd16Sandbox1,
			labelPod: &Pod{SandboxID: cd16Sandbox1, Name: "web-1", Namespace: "shop",
				UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000002", Labels: map[string]string{}, AdditionalIPs: []string{}},
		},
		{
			dir: "containerd-2.4", file: "container-status-verbose-0.json",
			id: cd24Container0, runtime: "containerd", pid: 13672,
			createdNs: 1795834074276659892, startedNs: 1795834074345673167,
			image:      Image{Name: busyboxName, Resolved: busyboxName, Ref: busyboxID, ID: busyboxID},
			logPath:    "/var/lib/e2e-containerd2/logs/app.log",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/" + cd24Container0,
			sandboxID:  cd24Sandbox0,
			labelPod: &Pod{SandboxID: cd24Sandbox0, Name: "web-9", Namespace: "shop",
				UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000009", Labels: map[string]string{}, AdditionalIPs: []string{}},
		},
		{
			dir: "crio-1.36", file: "container-status-verbose-0.json",
			id: crioContainer0, runtime: "cri-o", pid: 6418,
			createdNs: 1795835280579391818, startedNs: 1795835280637236288,
			image: Image{
				Name:     busyboxName,
				Resolved: busyboxName,
				Ref:      "docker.io/library/busybox@sha256:461e44c51f317a8750ca70c3ea18a179b78b6e392f5305b488f51534fb46e191",
				ID:       "65bc11e70a5d7934550e12c6cde0a2eace6f2ce54aea10f23999cdd0bbd8d566",
			},
			logPath:    "/var/lib/e2e-crio/logs/app.log",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/crio-" + crioContainer0,
			sandboxID:  crioSandbox0,
			// CRI-O names the pod only in its kubelet-style sandbox name.
			labelPod: &Pod{SandboxID: crioSandbox0, Name: "crio-web", Namespace: "shop",
				UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000001", Labels: map[string]string{}, AdditionalIPs: []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.dir+"/"+tt.file, func(t *testing.T) {
			resp := loadContainer(t, tt.dir+"/"+tt.file)
			res, err := Container(resp, fixtureRuntime(t, tt.dir), Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			rec := res.Record
			checkField(t, "ID", rec.ID, tt.id)
			checkField(t, "ShortID", rec.ShortID, tt.id[:12])
			checkField(t, "Name", rec.Name, "app")
			checkField(t, "Attempt", rec.Attempt, uint32(0))
			checkField(t, "State", rec.State, "running")
			checkField(t, "Runtime", rec.Runtime, tt.runtime)
			checkField(t, "CreatedAt", rec.CreatedAt, ptr(time.Unix(0, tt.createdNs).UTC()))
			checkField(t, "StartedAt", rec.StartedAt, ptr(time.Unix(0, tt.startedNs).UTC()))
			checkField(t, "FinishedAt", rec.FinishedAt, (*time.Time)(nil))
			checkField(t, "Image", rec.Image, tt.image)
			checkField(t, "PID", rec.PID, tt.pid)
			checkField(t, "Privileged", rec.Privileged, false)
			checkField(t, "UserUID", rec.UserUID, ptr(int64(0)))
			checkField(t, "Labels", rec.Labels, map[string]string{"io.kubernetes.container.name": "app"})
			checkField(t, "Annotations", rec.Annotations, map[string]string(nil))
			checkField(t, "Env", rec.Env, []string(nil))
			checkField(t, "LogPath", rec.LogPath, tt.logPath)
			checkField(t, "CgroupPath", rec.CgroupPath, tt.cgroupPath)
			checkField(t, "Mounts", rec.Mounts, []Mount{})
			checkField(t, "Resources", rec.Resources, Resources{})
			checkField(t, "IsPodSandbox", rec.IsPodSandbox, false)
			checkField(t, "Pod", rec.Pod, (*Pod)(nil))
			checkField(t, "PodSource", rec.PodSource, PodSource(""))
			checkField(t, "SandboxID", res.SandboxID, tt.sandboxID)
			checkField(t, "LabelPod", res.LabelPod, tt.labelPod)
			checkField(t, "Trimmed", res.Trimmed, 0)
		})
	}
}

// containerInfoJSON builds a small verbose info string for synthetic cases.
func containerResp(id string, info string) *runtimeapi.ContainerStatusResponse {
	resp := &runtimeapi.ContainerStatusResponse{
		Status: &runtimeapi.ContainerStatus{
			Id:       id,
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
			State:    runtimeapi.ContainerState_CONTAINER_EXITED,
		},
	}
	if info != "" {
		resp.Info = map[string]string{"info": info}
	}
	return resp
}

func TestContainer_RejectsMalformedAnswers(t *testing.T) {
	good := loadContainer(t, "crio-1.36/container-status-verbose-0.json")
	tests := []struct {
		name   string
		resp   *runtimeapi.ContainerStatusResponse
		reason string
	}{
		{"nil response", nil, ReasonMissingStatus},
		{"nil status", &runtimeapi.ContainerStatusResponse{Info: good.Info}, ReasonMissingStatus},
		{"empty id", containerResp("", ""), ReasonBadID},
		{"short id", containerResp(crioContainer0[:12], ""), ReasonBadID},
		{"uppercase id", containerResp(strings.ToUpper(crioContainer0), ""), ReasonBadID},
		{"info not json", containerResp(crioContainer0, "{not json"), ReasonBadInfoJSON},
		{"info truncated", containerResp(crioContainer0, good.Info["info"][:200]), ReasonBadInfoJSON},
		{"info an array", containerResp(crioContainer0, `[1,2]`), ReasonBadInfoJSON},
		{"pid a string", containerResp(crioContainer0, `{"pid":"7"}`), ReasonBadInfoJSON},
		{"uid negative", containerResp(crioContainer0, `{"runtimeSpec":{"process":{"user":{"uid":-1}}}}`), ReasonBadInfoJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Container(tt.resp, "containerd", Options{})
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Container error = %v, want a *ParseError", err)
			}
			checkField(t, "Reason", pe.Reason, tt.reason)
			checkField(t, "result", res.Record.ID, "")
		})
	}
}

func TestContainer_NilPiecesDoNotPanic(t *testing.T) {
	res, err := Container(&runtimeapi.ContainerStatusResponse{
		Status: &runtimeapi.ContainerStatus{
			Id:        crioContainer0,
			Mounts:    []*runtimeapi.Mount{nil},
			Resources: &runtimeapi.ContainerResources{},
			User:      &runtimeapi.ContainerUser{},
		},
		Info: map[string]string{"info": `{"config":null,"runtimeSpec":{"process":null,"linux":null,"annotations":null}}`},
	}, "containerd", Options{ExportEnv: true, ExportAnnotations: true})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "Name", res.Record.Name, "")
	checkField(t, "State", res.Record.State, "created")
	checkField(t, "Image", res.Record.Image, Image{})
	checkField(t, "Mounts", res.Record.Mounts, []Mount{})
	checkField(t, "UserUID", res.Record.UserUID, (*int64)(nil))
	checkField(t, "Labels", res.Record.Labels, map[string]string{})
	checkField(t, "LabelPod", res.LabelPod, (*Pod)(nil))
}

// A non-verbose status (a CREATED event's, or a listed container's) makes a
// partial record: what only the verbose info tells stays empty, and of the
// image only the user-specified name and the IDs are kept (the status's
// image is the runtime's first tag in an event, the kubelet's image ID in a
// list: neither is certain to be what the complete record resolves).
func TestContainer_NonVerboseAnswerMakesAPartialRecord(t *testing.T) {
	resp := loadContainer(t, "containerd-1.6/container-status-verbose-0.json")
	resp.Info = nil
	res, err := Container(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "ID", res.Record.ID, cd16Container0)
	checkField(t, "Partial", res.Record.Partial, true)
	checkField(t, "Image.Name", res.Record.Image.Name, "")
	checkField(t, "Image.Resolved", res.Record.Image.Resolved, "")
	checkField(t, "Image.ID", res.Record.Image.ID, resp.Status.ImageRef)
	checkField(t, "PID", res.Record.PID, 0)
	checkField(t, "CgroupPath", res.Record.CgroupPath, "")
	checkField(t, "UserUID", res.Record.UserUID, (*int64)(nil))
	checkField(t, "SandboxID", res.SandboxID, "")
	// The fixture has no kubelet labels, so without the spec nothing names the pod.
	checkField(t, "LabelPod", res.LabelPod, (*Pod)(nil))
}

func TestContainer_TrimsHugeLabelMapsDeterministically(t *testing.T) {
	labels := make(map[string]string, 1000)
	for i := range 1000 {
		labels[fmt.Sprintf("k%04d", i)] = "v"
	}
	resp := containerResp(crioContainer0, "")
	resp.Status.Labels = labels
	resp.Status.Annotations = labels
	opts := Options{MaxLabels: 10, ExportAnnotations: true}
	want := make(map[string]string, 10)
	for i := range 10 {
		want[fmt.Sprintf("k%04d", i)] = "v"
	}
	for run := range 3 {
		res, err := Container(resp, "containerd", opts)
		if err != nil {
			t.Fatalf("Container: %v", err)
		}
		checkField(t, fmt.Sprintf("run %d Labels", run), res.Record.Labels, want)
		checkField(t, fmt.Sprintf("run %d Annotations", run), res.Record.Annotations, want)
		checkField(t, fmt.Sprintf("run %d Trimmed", run), res.Trimmed, 2*990)
		checkField(t, fmt.Sprintf("run %d Record.Trimmed", run), res.Record.Trimmed, 2*990)
	}
}

func TestContainer_DefaultCapsKeep256LabelsAnd4KiBValues(t *testing.T) {
	labels := make(map[string]string, 300)
	for i := range 300 {
		labels[fmt.Sprintf("k%03d", i)] = "v"
	}
	labels["k000"] = strings.Repeat("x", 5000)
	resp := containerResp(crioContainer0, "")
	resp.Status.Labels = labels
	res, err := Container(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "len(Labels)", len(res.Record.Labels), DefaultMaxLabels)
	checkField(t, "len(k000)", len(res.Record.Labels["k000"]), DefaultMaxValueLen)
	checkField(t, "Trimmed", res.Trimmed, 300-DefaultMaxLabels+1)
}

func TestContainer_TrimsLongValuesOnRuneBoundary(t *testing.T) {
	resp := containerResp(crioContainer0, `{"runtimeSpec":{"process":{"env":["A=ünïcode","B=ok"]}}}`)
	resp.Status.Labels = map[string]string{"a": "héllo", "b": "ok"}
	res, err := Container(resp, "containerd", Options{MaxValueLen: 5, ExportEnv: true})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "Labels", res.Record.Labels, map[string]string{"a": "héll", "b": "ok"})
	checkField(t, "Env", res.Record.Env, []string{"A=ün", "B=ok"})
	checkField(t, "Trimmed", res.Trimmed, 2)
}

func TestContainer_HidesEnvAndAnnotationsByDefault(t *testing.T) {
	resp := loadContainer(t, "containerd-1.6/container-status-verbose-0.json")
	resp.Status.Annotations = map[string]string{"io.kubernetes.container.hash": "abc", "secret": "s3cr3t"}
	tests := []struct {
		name     string
		opts     Options
		wantEnv  []string
		wantAnno map[string]string
	}{
		{"default", Options{}, nil, nil},
		{"env only", Options{ExportEnv: true}, []string{"PATH=/bin", "HOSTNAME=vm"}, nil},
		{"annotations only", Options{ExportAnnotations: true}, nil, resp.Status.Annotations},
		{"both", Options{ExportEnv: true, ExportAnnotations: true},
			[]string{"PATH=/bin", "HOSTNAME=vm"}, resp.Status.Annotations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Container(resp, "containerd", tt.opts)
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "Env", res.Record.Env, tt.wantEnv)
			checkField(t, "Annotations", res.Record.Annotations, tt.wantAnno)
		})
	}
}

func TestContainer_ExpandsSystemdCgroupsPath(t *testing.T) {
	tests := []struct {
		name, cgroupsPath, want string
	}{
		{
			"containerd systemd",
			"kubepods-burstable-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice:cri-containerd:" + cd16Container0,
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice/cri-containerd-" + cd16Container0 + ".scope",
		},
		{
			"cri-o systemd",
			"kubepods-besteffort-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice:crio:" + crioContainer0,
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice/crio-" + crioContainer0 + ".scope",
		},
		{
			"cgroupfs passes through",
			"/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/crio-" + crioContainer0,
			"/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/crio-" + crioContainer0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := fmt.Sprintf(`{"runtimeSpec":{"linux":{"cgroupsPath":%q}}}`, tt.cgroupsPath)
			res, err := Container(containerResp(crioContainer0, info), "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "CgroupPath", res.Record.CgroupPath, tt.want)
		})
	}
}

func TestContainer_ImageNameIsWhatThePodAskedForBesideTheRuntimesResolvedName(t *testing.T) {
	const hex = "65bc11e70a5d7934550e12c6cde0a2eace6f2ce54aea10f23999cdd0bbd8d566"
	tests := []struct {
		name, statusImage, userImage, info string
		want                               Image
	}{
		// The kubelet sends the image ID and the pod's string; containerd
		// answers the image's first tag, here another tag of one image.
		{"kubelet on containerd 2.x, image under two tags", "docker.io/library/aaa:1", "",
			`{"config":{"image":{"image":"sha256:` + hex + `","user_specified_image":"busybox:1.36"}}}`,
			Image{Name: "busybox:1.36", Resolved: "docker.io/library/aaa:1"}},
		{"kubelet, image asked for by digest", "docker.io/library/aaa:1", "",
			`{"config":{"image":{"image":"sha256:` + hex + `","user_specified_image":"busybox@sha256:` + hex + `"}}}`,
			Image{Name: "busybox@sha256:" + hex, Resolved: "docker.io/library/aaa:1"}},
		{"runtime answering user_specified_image in the status", "docker.io/library/aaa:1", "busybox:1.37", "{}",
			Image{Name: "busybox:1.37", Resolved: "docker.io/library/aaa:1"}},
		{"crictl-style name in the config", busyboxName, "", `{"config":{"image":{"image":"other:1"}}}`,
			Image{Name: "other:1", Resolved: busyboxName}},
		{"containerd annotation when the status holds an ID", "sha256:" + hex, "",
			`{"runtimeSpec":{"annotations":{"io.kubernetes.cri.image-name":"nginx:1"}}}`,
			Image{Name: "nginx:1", Resolved: "nginx:1"}},
		{"cri-o annotation", "docker.io/library/nginx:2", "",
			`{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.ImageName":"nginx:2"}}}`,
			Image{Name: "nginx:2", Resolved: "docker.io/library/nginx:2"}},
		{"only an id", hex, "", "{}", Image{Name: hex, Resolved: hex}},
		{"repo digest is a name", "busybox@sha256:" + hex, "", "{}", Image{Name: "busybox@sha256:" + hex, Resolved: "busybox@sha256:" + hex}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := containerResp(crioContainer0, tt.info)
			resp.Status.Image = &runtimeapi.ImageSpec{Image: tt.statusImage, UserSpecifiedImage: tt.userImage}
			res, err := Container(resp, "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "Image", res.Record.Image, tt.want)
		})
	}
}

func TestContainer_ImageIDFromImageRefOnlyWhenItIsAnID(t *testing.T) {
	tests := []struct{ name, imageID, imageRef, want string }{
		{"status image id wins", "sha256:aaa", busyboxID, "sha256:aaa"},
		{"sha256 ref", "", busyboxID, busyboxID},
		{"repo digest ref", "", "busybox@" + busyboxID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := containerResp(crioContainer0, "")
			resp.Status.ImageId, resp.Status.ImageRef = tt.imageID, tt.imageRef
			res, err := Container(resp, "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "Image.ID", res.Record.Image.ID, tt.want)
			checkField(t, "Image.Ref", res.Record.Image.Ref, tt.imageRef)
		})
	}
}

func TestContainer_MapsStatusFields(t *testing.T) {
	resp := containerResp(crioContainer0, "")
	resp.Status.CreatedAt, resp.Status.StartedAt, resp.Status.FinishedAt = 1, 2, 3
	resp.Status.LogPath = "/var/log/pods/x/app/2.log"
	resp.Status.Mounts = []*runtimeapi.Mount{
		{HostPath: "/data", ContainerPath: "/data", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		nil,
		{HostPath: "/var/lib/kubelet/pods", ContainerPath: "/pods", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		{HostPath: "/tmp", ContainerPath: "/tmp"},
	}
	resp.Status.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, CpusetCpus: "0-1", CpusetMems: "0", MemoryLimitInBytes: 1 << 28,
	}}
	res, err := Container(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	rec := res.Record
	checkField(t, "Name", rec.Name, "app")
	checkField(t, "Attempt", rec.Attempt, uint32(2))
	checkField(t, "State", rec.State, "exited")
	checkField(t, "FinishedAt", rec.FinishedAt, ptr(time.Unix(0, 3).UTC()))
	checkField(t, "LogPath", rec.LogPath, "/var/log/pods/x/app/2.log")
	checkField(t, "Mounts", rec.Mounts, []Mount{
		{HostPath: "/data", ContainerPath: "/data", ReadOnly: true, Propagation: "rshared"},
		{HostPath: "/var/lib/kubelet/pods", ContainerPath: "/pods", Propagation: "rslave"},
		{HostPath: "/tmp", ContainerPath: "/tmp", Propagation: "private"},
	})
	checkField(t, "Resources", rec.Resources, Resources{
		CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, CpusetCPUs: "0-1", CpusetMems: "0", MemoryLimitInBytes: 1 << 28,
	})
}

// CRI-O sends Go's zero time.Time as nanoseconds for a container that
// never started or finished: the record leaves those times unset rather
// than dating them in 1754.
func TestContainer_ZeroAndNegativeTimestampsAreUnset(t *testing.T) {
	resp := containerResp(crioContainer0, "")
	resp.Status.CreatedAt, resp.Status.StartedAt, resp.Status.FinishedAt = 5, time.Time{}.UnixNano(), 0
	res, err := Container(resp, "cri-o", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "CreatedAt", res.Record.CreatedAt, ptr(time.Unix(0, 5).UTC()))
	if res.Record.StartedAt != nil || res.Record.FinishedAt != nil {
		t.Errorf("started_at %v, finished_at %v from %d and 0; want both unset", res.Record.StartedAt, res.Record.FinishedAt, time.Time{}.UnixNano())
	}
}

// A ContainerStatus answer for a pause container (its ID is its own
// sandbox's, as cri-dockerd can answer) is flagged as the sandbox; a
// workload container is not.
func TestContainer_FlagsAnAnswerWhoseIDIsItsSandboxs(t *testing.T) {
	resp := loadContainer(t, "crio-1.36/container-status-verbose-0.json")
	res, err := Container(resp, "cri-o", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	if res.Record.IsPodSandbox || res.SandboxID == "" || res.SandboxID == res.Record.ID {
		t.Fatalf("workload container flagged %v, sandbox %s; want a workload of another sandbox", res.Record.IsPodSandbox, res.SandboxID)
	}
	resp.Status.Id = res.SandboxID
	if res, err = Container(resp, "cri-o", Options{}); err != nil {
		t.Fatalf("Container: %v", err)
	}
	if !res.Record.IsPodSandbox {
		t.Errorf("record %s whose ID is its sandbox's is not flagged as the sandbox", res.Record.ShortID)
	}
}

func TestContainer_ResourcesFallBackToRuntimeSpec(t *testing.T) {
	info := `{"runtimeSpec":{"linux":{"resources":{"cpu":{"shares":1024,"quota":20000,"period":100000,"cpus":"2","mems":"0"},"memory":{"limit":134217728}}}}}`
	resp := containerResp(crioContainer0, info)
	resp.Status.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 2}}
	res, err := Container(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "Resources", res.Record.Resources, Resources{
		CPUShares: 2, CPUQuota: 20000, CPUPeriod: 100000, CpusetCPUs: "2", CpusetMems: "0", MemoryLimitInBytes: 134217728,
	})
}

func TestContainer_PrivilegedPerRuntime(t *testing.T) {
	tests := []struct{ name, info string }{
		{"containerd config", `{"config":{"linux":{"security_context":{"privileged":true}}}}`},
		{"cri-o top level", `{"privileged":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Container(containerResp(crioContainer0, tt.info), "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "Privileged", res.Record.Privileged, true)
		})
	}
}

func TestContainer_UserUIDPrefersSpecOverStatusUser(t *testing.T) {
	tests := []struct {
		name string
		info string
		user *runtimeapi.ContainerUser
		want *int64
	}{
		{"spec", `{"runtimeSpec":{"process":{"user":{"uid":1000}}}}`, nil, ptr(int64(1000))},
		{"spec root beats status", `{"runtimeSpec":{"process":{"user":{"uid":0}}}}`,
			&runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 7}}, ptr(int64(0))},
		{"status fallback", "", &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 65534}}, ptr(int64(65534))},
		{"unknown", `{"runtimeSpec":{"process":{}}}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := containerResp(crioContainer0, tt.info)
			resp.Status.User = tt.user
			res, err := Container(resp, "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "UserUID", res.Record.UserUID, tt.want)
		})
	}
}

func TestContainer_LabelPodPrefersKubeletLabels(t *testing.T) {
	info := `{"runtimeSpec":{"annotations":{"io.kubernetes.cri.sandbox-name":"spec-name","io.kubernetes.cri.sandbox-namespace":"spec-ns","io.kubernetes.cri.sandbox-uid":"spec-uid","io.kubernetes.cri.sandbox-id":"` + cd16Sandbox0 + `"}}}`
	resp := containerResp(crioContainer0, info)
	resp.Status.Labels = map[string]string{
		"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": "uid-1",
	}
	res, err := Container(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	checkField(t, "SandboxID", res.SandboxID, cd16Sandbox0)
	checkField(t, "LabelPod", res.LabelPod, &Pod{SandboxID: cd16Sandbox0, Name: "web-0", Namespace: "shop",
		UID: "uid-1", Labels: map[string]string{}, AdditionalIPs: []string{}})
}

func TestContainer_SandboxIDSkipsMalformedSources(t *testing.T) {
	tests := []struct {
		name   string
		info   string
		labels map[string]string
		want   string
	}{
		{"info wins", `{"sandboxID":"` + cd16Sandbox0 + `","runtimeSpec":{"annotations":{"io.kubernetes.cri.sandbox-id":"` + cd16Sandbox1 + `"}}}`, nil, cd16Sandbox0},
		{"garbled info falls back to spec", `{"sandboxID":"nope","runtimeSpec":{"annotations":{"io.kubernetes.cri.sandbox-id":"` + cd16Sandbox1 + `"}}}`, nil, cd16Sandbox1},
		{"cri-o spec annotation", `{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.SandboxID":"` + crioSandbox0 + `"}}}`, nil, crioSandbox0},
		{"dockershim label", "", map[string]string{"io.kubernetes.sandbox.id": cd24Sandbox0}, cd24Sandbox0},
		{"none", `{"sandboxID":"short"}`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := containerResp(crioContainer0, tt.info)
			resp.Status.Labels = tt.labels
			res, err := Container(resp, "containerd", Options{})
			if err != nil {
				t.Fatalf("Container: %v", err)
			}
			checkField(t, "SandboxID", res.SandboxID, tt.want)
		})
	}
}

func TestParseKubeSandboxName(t *testing.T) {
	tests := []struct {
		in   string
		want kubeSandboxName
	}{
		{"k8s_crio-web_shop_0f1e2d3c-aaaa-bbbb-cccc-000000000001_3",
			kubeSandboxName{name: "crio-web", namespace: "shop", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000001", attempt: 3}},
		{"k8s_app_crio-web_shop_uid_0", kubeSandboxName{}},
		{"k8s_a_b_c_x", kubeSandboxName{}},
		{"docker_a_b_c_0", kubeSandboxName{}},
		{"", kubeSandboxName{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			checkField(t, "parseKubeSandboxName", parseKubeSandboxName(tt.in), tt.want)
		})
	}
}

func TestParseError_UnwrapsAndNamesReason(t *testing.T) {
	_, err := Container(containerResp(crioContainer0, "{"), "containerd", Options{})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ParseError", err)
	}
	if pe.Unwrap() == nil {
		t.Errorf("Unwrap() = nil, want the decode error")
	}
	if !strings.HasPrefix(err.Error(), "enrich: bad_info_json: container "+crioContainer0[:12]) {
		t.Errorf("Error() = %q", err.Error())
	}
	checkField(t, "bare Error()", (&ParseError{Reason: ReasonBadID}).Error(), "enrich: bad_id")
}
