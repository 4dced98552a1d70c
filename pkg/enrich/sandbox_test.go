package enrich

import (
	"errors"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CNI results the fixtures map to: containerd's without lo and the veth,
// CRI-O's compacted as it came.
const (
	cd16Sandbox2CNI = `{"DNS":[{},{}],"Interfaces":{"cnie2e0":{"IPConfigs":null,"Mac":"96:25:94:da:4b:63","Sandbox":""},` +
		`"eth0":{"IPConfigs":[{"IP":"10.88.77.2","Gateway":"10.88.77.1"}],"Mac":"ce:33:47:b8:f0:d3",` +
		`"Sandbox":"/var/run/netns/cni-71644826-c00c-c084-8187-256a3232b3cc"}},"Routes":[{"dst":"0.0.0.0/0"}]}`
	crioSandbox0CNI = `{"cniVersion":"1.1.0","interfaces":[{"mac":"1e:5c:83:b8:03:21","name":"cnicrio0"},` +
		`{"mac":"ba:30:7f:45:e9:50","name":"vethccc38779"},{"mac":"e6:fd:6e:48:25:6d","name":"eth0",` +
		`"sandbox":"/var/lib/e2e-crio/ns/netns/fa63d91e-792b-4117-90ac-8f872d7f04b9"}],` +
		`"ips":[{"address":"10.77.0.4/24","gateway":"10.77.0.1","interface":2}]}`
)

func TestSandbox_MapsRealRuntimeAnswers(t *testing.T) {
	webLabels := map[string]string{"app": "web", "tier": "frontend"}
	tests := []struct {
		dir, file   string
		id          string
		runtime     string
		name, uid   string
		createdNs   int64
		labels      map[string]string
		ip          string
		cni         string
		hostNetwork bool
		pid         int
		pause       string
		cgroupPath  string
		cpuShares   int64
		oomScoreAdj int64
	}{
		{
			dir: "containerd-1.6", file: "sandbox-status-verbose-0.json", id: cd16Sandbox0, runtime: "containerd",
			name: "web-0", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000001", createdNs: 1795833882021325731,
			labels: webLabels, hostNetwork: true, pid: 7314, pause: "registry.k8s.io/pause:3.6",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/" + cd16Sandbox0, cpuShares: 2,
		},
		{
			dir: "containerd-1.6", file: "sandbox-status-verbose-1.json", id: cd16Sandbox1, runtime: "containerd",
			name: "web-1", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000002", createdNs: 1795833904438778596,
			labels: webLabels, hostNetwork: true, pid: 8210, pause: "registry.k8s.io/pause:3.6",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000002/" + cd16Sandbox1, cpuShares: 2,
		},
		{
			dir: "containerd-1.6", file: "sandbox-status-verbose-2.json", id: cd16Sandbox2, runtime: "containerd",
			name: "net-0", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000077", createdNs: 1795834363322803107,
			labels: webLabels, ip: "10.88.77.2", cni: cd16Sandbox2CNI, pid: 18325, pause: "registry.k8s.io/pause:3.6",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000077/" + cd16Sandbox2, cpuShares: 2,
		},
		{
			dir: "containerd-2.4", file: "sandbox-status-verbose-0.json", id: cd24Sandbox0, runtime: "containerd",
			name: "web-9", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000009", createdNs: 1795834074192324223,
			labels: webLabels, hostNetwork: true, pid: 13630, pause: "registry.k8s.io/pause:3.10",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/" + cd24Sandbox0, cpuShares: 2,
		},
		{
			dir: "crio-1.36", file: "sandbox-status-verbose-0.json", id: crioSandbox0, runtime: "cri-o",
			name: "crio-web", uid: "0f1e2d3c-aaaa-bbbb-cccc-000000000001", createdNs: 1795835280240758872,
			labels: map[string]string{
				"app": "web", "tier": "frontend", "io.kubernetes.container.name": "POD",
				"io.kubernetes.pod.name": "crio-web", "io.kubernetes.pod.namespace": "shop",
				"io.kubernetes.pod.uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
			},
			ip: "10.77.0.4", cni: crioSandbox0CNI, pid: 6341, pause: "registry.k8s.io/pause:3.10",
			cgroupPath: "/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001/crio-" + crioSandbox0, cpuShares: 2,
			oomScoreAdj: -998, // CRI-O's spec process.oomScoreAdj for the pause process
		},
	}
	for _, tt := range tests {
		t.Run(tt.dir+"/"+tt.file, func(t *testing.T) {
			rec, err := Sandbox(loadSandbox(t, tt.dir+"/"+tt.file), fixtureRuntime(t, tt.dir), Options{})
			if err != nil {
				t.Fatalf("Sandbox: %v", err)
			}
			created := ptr(time.Unix(0, tt.createdNs).UTC())
			checkField(t, "ID", rec.ID, tt.id)
			checkField(t, "ShortID", rec.ShortID, tt.id[:12])
			checkField(t, "Name", rec.Name, tt.name)
			checkField(t, "State", rec.State, "ready")
			checkField(t, "Runtime", rec.Runtime, tt.runtime)
			checkField(t, "CreatedAt", rec.CreatedAt, created)
			checkField(t, "StartedAt", rec.StartedAt, (*time.Time)(nil))
			checkField(t, "Image", rec.Image, Image{Name: tt.pause, Resolved: tt.pause})
			checkField(t, "PID", rec.PID, tt.pid)
			checkField(t, "Privileged", rec.Privileged, false)
			checkField(t, "UserUID", rec.UserUID, ptr(int64(0)))
			checkField(t, "Labels", rec.Labels, tt.labels)
			checkField(t, "Annotations", rec.Annotations, map[string]string(nil))
			checkField(t, "CgroupPath", rec.CgroupPath, tt.cgroupPath)
			checkField(t, "Resources", rec.Resources, Resources{CPUShares: tt.cpuShares, OOMScoreAdj: tt.oomScoreAdj})
			checkField(t, "IsPodSandbox", rec.IsPodSandbox, true)
			checkField(t, "PodSource", rec.PodSource, PodSourceSandboxStatus)
			checkField(t, "Pod", rec.Pod, &Pod{
				SandboxID: tt.id, Name: tt.name, Namespace: "shop", UID: tt.uid, State: "ready",
				Labels: tt.labels, IP: tt.ip, AdditionalIPs: []string{}, CNIResult: tt.cni,
				HostNetwork: tt.hostNetwork, CreatedAt: created,
			})
		})
	}
}

func TestSandbox_ContainerdCNIResultDropsLoopbackAndVeth(t *testing.T) {
	rec, err := Sandbox(loadSandbox(t, "containerd-1.6/sandbox-status-verbose-2.json"), "containerd", Options{})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	for _, gone := range []string{`"lo"`, "127.0.0.1", "veth70d97803"} {
		if strings.Contains(rec.Pod.CNIResult, gone) {
			t.Errorf("CNIResult %s still holds %s", rec.Pod.CNIResult, gone)
		}
	}
	for _, kept := range []string{`"eth0"`, `"DNS"`, `"Routes"`, `"Gateway":"10.88.77.1"`} {
		if !strings.Contains(rec.Pod.CNIResult, kept) {
			t.Errorf("CNIResult %s lost %s", rec.Pod.CNIResult, kept)
		}
	}
}

// sandboxResp builds a minimal sandbox answer for synthetic cases.
func sandboxResp(info string) *runtimeapi.PodSandboxStatusResponse {
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:       cd16Sandbox2,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "net-0", Namespace: "shop", Uid: "uid-77", Attempt: 1},
		State:    runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
	}}
	if info != "" {
		resp.Info = map[string]string{"info": info}
	}
	return resp
}

func TestSandbox_IPs(t *testing.T) {
	tests := []struct {
		name       string
		network    *runtimeapi.PodSandboxNetworkStatus
		info       string
		ip         string
		additional []string
		notReady   bool
	}{
		{
			name: "dual stack from status",
			network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.5",
				AdditionalIps: []*runtimeapi.PodIP{{Ip: "fd00::5"}, nil, {Ip: "10.0.0.5"}}},
			ip: "10.0.0.5", additional: []string{"fd00::5"},
		},
		{
			name:    "ipv6 only from status",
			network: &runtimeapi.PodSandboxNetworkStatus{Ip: "fd00::6"},
			ip:      "fd00::6", additional: []string{},
		},
		{
			name:    "status beats cni result",
			network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.5"},
			info:    `{"cniResult":{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.9.9.9"}],"Sandbox":"/ns"}}}}`,
			ip:      "10.0.0.5", additional: []string{},
		},
		{
			name: "dual stack from containerd cni result, ipv4 first",
			info: `{"cniResult":{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"fd00::7"},{"IP":"10.1.2.3"}],"Sandbox":"/ns"},` +
				`"lo":{"IPConfigs":[{"IP":"127.0.0.1"},{"IP":"::1"}],"Sandbox":"/ns"},"cni0":{"IPConfigs":[{"IP":"10.1.2.1"}],"Sandbox":""}}}}`,
			ip: "10.1.2.3", additional: []string{"fd00::7"},
		},
		{
			name: "containerd cni result without sandbox side",
			info: `{"cniResult":{"Interfaces":{"net1":{"IPConfigs":[{"IP":"10.4.0.2"}],"Sandbox":""}}}}`,
			ip:   "10.4.0.2", additional: []string{},
		},
		{
			name: "dual stack from cri-o cni result",
			info: `{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":` +
				`"{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"fd00::9/64\"},{\"address\":\"10.9.0.4/24\"},{\"address\":\"bogus\"}]}"}}}`,
			ip: "10.9.0.4", additional: []string{"fd00::9"},
		},
		{
			name: "ipv6 only from cni result",
			info: `{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":"{\"ips\":[{\"address\":\"fd00::9/64\"}]}"}}}`,
			ip:   "fd00::9", additional: []string{},
		},
		{name: "no network", ip: "", additional: []string{}},
		{
			name:     "a stopped sandbox's cni result is history",
			info:     `{"cniResult":{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.1.2.3"}],"Sandbox":"/ns"}}}}`,
			notReady: true, ip: "", additional: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := sandboxResp(tt.info)
			resp.Status.Network = tt.network
			if !tt.notReady {
				resp.Status.State = runtimeapi.PodSandboxState_SANDBOX_READY
			}
			rec, err := Sandbox(resp, "containerd", Options{})
			if err != nil {
				t.Fatalf("Sandbox: %v", err)
			}
			checkField(t, "IP", rec.Pod.IP, tt.ip)
			checkField(t, "AdditionalIPs", rec.Pod.AdditionalIPs, tt.additional)
		})
	}
}

func TestSandbox_CNIResultNullOrAbsentIsEmpty(t *testing.T) {
	for _, info := range []string{`{"cniResult":null}`, `{}`, `{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":"null"}}}`} {
		t.Run(info, func(t *testing.T) {
			rec, err := Sandbox(sandboxResp(info), "containerd", Options{})
			if err != nil {
				t.Fatalf("Sandbox: %v", err)
			}
			checkField(t, "CNIResult", rec.Pod.CNIResult, "")
		})
	}
}

func TestSandbox_BadCNIResultStillReturnsTheRecord(t *testing.T) {
	tests := []struct{ name, info string }{
		{"containerd result not an object", `{"pid":5,"cniResult":[1]}`},
		{"containerd interfaces not a map", `{"pid":5,"cniResult":{"Interfaces":"x"}}`},
		{"containerd interface malformed", `{"pid":5,"cniResult":{"Interfaces":{"eth0":{"IPConfigs":"x"}}}}`},
		{"cri-o annotation not json", `{"pid":5,"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":"{oops"}}}`},
		{"cri-o ips not a list", `{"pid":5,"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":"{\"ips\":7}"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Sandbox(sandboxResp(tt.info), "containerd", Options{})
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Sandbox error = %v, want a *ParseError", err)
			}
			checkField(t, "Reason", pe.Reason, ReasonBadCNIResult)
			checkField(t, "ID", rec.ID, cd16Sandbox2)
			checkField(t, "PID", rec.PID, 5)
			checkField(t, "Pod.Name", rec.Pod.Name, "net-0")
			checkField(t, "Pod.CNIResult", rec.Pod.CNIResult, "")
		})
	}
}

func TestSandbox_RejectsMalformedAnswers(t *testing.T) {
	badID := sandboxResp("")
	badID.Status.Id = "abc"
	tests := []struct {
		name   string
		resp   *runtimeapi.PodSandboxStatusResponse
		reason string
	}{
		{"nil response", nil, ReasonMissingStatus},
		{"nil status", &runtimeapi.PodSandboxStatusResponse{Info: map[string]string{"info": "{}"}}, ReasonMissingStatus},
		{"bad id", badID, ReasonBadID},
		{"info not json", sandboxResp("{"), ReasonBadInfoJSON},
		{"pid overflows", sandboxResp(`{"pid":1e30}`), ReasonBadInfoJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Sandbox(tt.resp, "containerd", Options{})
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Sandbox error = %v, want a *ParseError", err)
			}
			checkField(t, "Reason", pe.Reason, tt.reason)
			checkField(t, "ID", rec.ID, "")
		})
	}
}

func TestSandbox_SparseAnswerFallsBackToLabelsAndSpec(t *testing.T) {
	resp := &runtimeapi.PodSandboxStatusResponse{
		Status: &runtimeapi.PodSandboxStatus{Id: crioSandbox0, Labels: map[string]string{"io.kubernetes.pod.name": "from-label"}},
		Info: map[string]string{"info": `{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.Namespace":"ns-anno",` +
			`"io.kubernetes.pod.uid":"uid-anno","io.kubernetes.cri-o.RuntimeHandler":"runc","io.kubernetes.cri-o.ImageName":"pause:9",` +
			`"io.kubernetes.cri-o.HostNetwork":"true","io.kubernetes.cri-o.PrivilegedRuntime":"true"}}}`},
	}
	rec, err := Sandbox(resp, "cri-o", Options{})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	checkField(t, "Name", rec.Name, "from-label")
	checkField(t, "Pod.Namespace", rec.Pod.Namespace, "ns-anno")
	checkField(t, "Pod.UID", rec.Pod.UID, "uid-anno")
	checkField(t, "Pod.RuntimeHandler", rec.Pod.RuntimeHandler, "runc")
	checkField(t, "Pod.HostNetwork", rec.Pod.HostNetwork, true)
	checkField(t, "Privileged", rec.Privileged, true)
	checkField(t, "Image.Name", rec.Image.Name, "pause:9")
	checkField(t, "CreatedAt", rec.CreatedAt, (*time.Time)(nil))
	checkField(t, "Mounts", rec.Mounts, []Mount{})
}

func TestSandbox_HostNamespacesAndHandler(t *testing.T) {
	resp := sandboxResp(`{"runtimeHandler":"kata","config":{"linux":{"security_context":{"privileged":true}}}}`)
	resp.Status.Linux = &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
	}}}
	rec, err := Sandbox(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	checkField(t, "State", rec.State, "notready")
	checkField(t, "Attempt", rec.Attempt, uint32(1))
	checkField(t, "Privileged", rec.Privileged, true)
	checkField(t, "host namespaces", []bool{rec.Pod.HostNetwork, rec.Pod.HostPID, rec.Pod.HostIPC}, []bool{false, true, true})
	checkField(t, "Pod.RuntimeHandler", rec.Pod.RuntimeHandler, "kata")

	// Without status.linux, containerd's config says the same.
	resp = sandboxResp(`{"config":{"linux":{"security_context":{"namespace_options":{"network":2,"pid":2}}}}}`)
	resp.Status.RuntimeHandler = "runc"
	rec, err = Sandbox(resp, "containerd", Options{})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	checkField(t, "host namespaces from config", []bool{rec.Pod.HostNetwork, rec.Pod.HostPID, rec.Pod.HostIPC}, []bool{true, true, false})
	checkField(t, "Pod.RuntimeHandler from status", rec.Pod.RuntimeHandler, "runc")
}

func TestSandbox_CgroupPathFallsBackToContainerdCgroupParent(t *testing.T) {
	tests := []struct{ name, info, want string }{
		{"spec systemd", `{"runtimeSpec":{"linux":{"cgroupsPath":"kubepods-besteffort-pod1.slice:cri-containerd:` + cd16Sandbox2 + `"}}}`,
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-" + cd16Sandbox2 + ".scope"},
		{"cgroupfs parent", `{"config":{"linux":{"cgroup_parent":"/kubepods/besteffort/pod1"}}}`,
			"/kubepods/besteffort/pod1/" + cd16Sandbox2},
		{"systemd parent", `{"config":{"linux":{"cgroup_parent":"kubepods-besteffort-pod1.slice"}}}`,
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-" + cd16Sandbox2 + ".scope"},
		{"nothing", `{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Sandbox(sandboxResp(tt.info), "containerd", Options{})
			if err != nil {
				t.Fatalf("Sandbox: %v", err)
			}
			checkField(t, "CgroupPath", rec.CgroupPath, tt.want)
		})
	}
}

func TestSandbox_AnnotationsAndTrimming(t *testing.T) {
	resp := loadSandbox(t, "crio-1.36/sandbox-status-verbose-0.json")
	rec, err := Sandbox(resp, "cri-o", Options{ExportAnnotations: true, MaxLabels: 2})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	// Sorted keys: "app" and "io.kubernetes.container.name" stay.
	want := map[string]string{"app": "web", "io.kubernetes.container.name": "POD"}
	checkField(t, "Labels", rec.Labels, want)
	checkField(t, "Pod.Labels", rec.Pod.Labels, want)
	checkField(t, "Annotations", rec.Annotations, map[string]string{"note": "x"})
	checkField(t, "Pod.Annotations", rec.Pod.Annotations, map[string]string{"note": "x"})
	checkField(t, "Trimmed", rec.Trimmed, 4)
}

func TestAttachPod_SharesTheSandboxesPod(t *testing.T) {
	sb, err := Sandbox(loadSandbox(t, "crio-1.36/sandbox-status-verbose-0.json"), "cri-o", Options{})
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	res, err := Container(loadContainer(t, "crio-1.36/container-status-verbose-0.json"), "cri-o", Options{})
	if err != nil {
		t.Fatalf("Container: %v", err)
	}

	got := AttachPod(res.Record, sb.Pod, PodSourceSandboxCache)
	checkField(t, "PodSource", got.PodSource, PodSourceSandboxCache)
	checkField(t, "same Pod, not a copy", got.Pod == sb.Pod, true)
	checkField(t, "ID kept", got.ID, crioContainer0)
	checkField(t, "input untouched", res.Record.Pod, (*Pod)(nil))

	none := AttachPod(res.Record, nil, PodSourceSandboxStatus)
	checkField(t, "nil pod", none.Pod, (*Pod)(nil))
	checkField(t, "nil pod source", none.PodSource, PodSourceNone)

	fromLabels := AttachPod(res.Record, res.LabelPod, PodSourceContainerLabels)
	checkField(t, "label pod name", fromLabels.Pod.Name, "crio-web")
	checkField(t, "label pod source", fromLabels.PodSource, PodSourceContainerLabels)
}
