package fakecri

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const pauseImage = "registry.k8s.io/pause:3.9"

// The labels the kubelet puts on every container and sandbox.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

func cgroupParent(sb *sandbox) string { return "/kubepods/burstable/pod" + sb.spec.UID }

func netnsPath(sb *sandbox) string { return "/var/run/netns/cni-" + sb.spec.UID }

// containerLabels are the kubelet's four labels plus the spec's extras.
func containerLabels(c *container, sb *sandbox) map[string]string {
	l := make(map[string]string, 4+len(c.spec.Labels))
	maps.Copy(l, c.spec.Labels)
	l[labelContainerName] = c.spec.Name
	l[labelPodName] = sb.spec.Name
	l[labelPodNamespace] = sb.spec.Namespace
	l[labelPodUID] = sb.spec.UID
	return l
}

// containerAnnotations are the kubelet's usual annotations plus the spec's.
func containerAnnotations(c *container) map[string]string {
	a := map[string]string{
		"io.kubernetes.container.hash":                     c.id[:8],
		"io.kubernetes.container.restartCount":             "0",
		"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
		"io.kubernetes.container.terminationMessagePolicy": "File",
		"io.kubernetes.pod.terminationGracePeriod":         "30",
	}
	maps.Copy(a, c.spec.Annotations)
	return a
}

func sandboxLabels(sb *sandbox) map[string]string {
	l := make(map[string]string, 3+len(sb.spec.Labels))
	maps.Copy(l, sb.spec.Labels)
	l[labelPodName] = sb.spec.Name
	l[labelPodNamespace] = sb.spec.Namespace
	l[labelPodUID] = sb.spec.UID
	return l
}

func sandboxAnnotations(sb *sandbox) map[string]string {
	a := map[string]string{"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "2026-01-01T00:00:00.000000000Z"}
	maps.Copy(a, sb.spec.Annotations)
	return a
}

func imageRef(image string) string { return "sha256:" + ID("image/"+image) }

func (r *Runtime) containerStatusLocked(c *container) *runtimeapi.ContainerStatus {
	sb := r.sandboxes[c.sandboxID]
	uid := sb.spec.UID
	return &runtimeapi.ContainerStatus{
		Id:          c.id,
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.spec.Name},
		State:       c.state,
		CreatedAt:   c.createdAt,
		StartedAt:   c.startedAt,
		FinishedAt:  c.finishedAt,
		Image:       &runtimeapi.ImageSpec{Image: c.spec.Image},
		ImageRef:    imageRef(c.spec.Image),
		ImageId:     imageRef(c.spec.Image),
		Labels:      containerLabels(c, sb),
		Annotations: containerAnnotations(c),
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/" + uid + "/etc-hosts"},
			{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/" + uid + "/containers/" + c.spec.Name + "/" + c.id[:8]},
			{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: "/var/lib/kubelet/pods/" + uid + "/volumes/kubernetes.io~projected/kube-api-access", Readonly: true},
		},
		LogPath: fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", sb.spec.Namespace, sb.spec.Name, uid, c.spec.Name),
		Resources: &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
			CpuShares: 102, CpuPeriod: 100000, MemoryLimitInBytes: 128 << 20,
		}},
	}
}

func (r *Runtime) sandboxStatusLocked(sb *sandbox) *runtimeapi.PodSandboxStatus {
	netMode := runtimeapi.NamespaceMode_POD
	if sb.spec.HostNetwork {
		netMode = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxStatus{
		Id:        sb.id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: sb.spec.Name, Uid: sb.spec.UID, Namespace: sb.spec.Namespace},
		State:     sb.state,
		CreatedAt: sb.createdAt,
		Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: sb.ip},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: netMode, Pid: runtimeapi.NamespaceMode_CONTAINER,
		}}},
		Labels:      sandboxLabels(sb),
		Annotations: sandboxAnnotations(sb),
	}
}

// The verbose info, in containerd's layout. Only the shape matters; the
// values are plausible, not measured.

type ociSpec struct {
	OCIVersion  string            `json:"ociVersion"`
	Process     ociProcess        `json:"process"`
	Root        map[string]string `json:"root"`
	Annotations map[string]string `json:"annotations"`
	Linux       ociLinux          `json:"linux"`
}

type ociProcess struct {
	User struct {
		UID uint32 `json:"uid"`
		GID uint32 `json:"gid"`
	} `json:"user"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
}

type ociLinux struct {
	Resources   map[string]any `json:"resources"`
	CgroupsPath string         `json:"cgroupsPath"`
	Namespaces  []ociNamespace `json:"namespaces"`
}

type ociNamespace struct {
	Type string `json:"type"`
	Path string `json:"path,omitempty"`
}

func newSpec(args []string, uid uint32, cgroupsPath string, ann map[string]string, netns string) ociSpec {
	s := ociSpec{OCIVersion: "1.1.0", Root: map[string]string{"path": "rootfs"}, Annotations: ann}
	s.Process.User.UID, s.Process.User.GID = uid, uid
	s.Process.Args, s.Process.Cwd = args, "/"
	s.Process.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=fakecri"}
	s.Linux = ociLinux{
		CgroupsPath: cgroupsPath,
		Resources:   map[string]any{"cpu": map[string]any{"shares": 102, "period": 100000}, "memory": map[string]any{"limit": 128 << 20}},
		Namespaces:  []ociNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "network", Path: netns}},
	}
	return s
}

func (r *Runtime) containerInfoLocked(c *container, st *runtimeapi.ContainerStatus) string {
	sb := r.sandboxes[c.sandboxID]
	ann := map[string]string{
		"io.kubernetes.cri.container-name":    c.spec.Name,
		"io.kubernetes.cri.container-type":    "container",
		"io.kubernetes.cri.image-name":        c.spec.Image,
		"io.kubernetes.cri.sandbox-id":        sb.id,
		"io.kubernetes.cri.sandbox-name":      sb.spec.Name,
		"io.kubernetes.cri.sandbox-namespace": sb.spec.Namespace,
		"io.kubernetes.cri.sandbox-uid":       sb.spec.UID,
	}
	info := map[string]any{
		"sandboxID":      sb.id,
		"pid":            c.pid,
		"removing":       false,
		"snapshotKey":    c.id,
		"snapshotter":    "overlayfs",
		"runtimeType":    "io.containerd.runc.v2",
		"runtimeOptions": map[string]any{"binary_name": "/usr/sbin/runc"},
		"config": map[string]any{
			"metadata":    map[string]any{"name": c.spec.Name},
			"image":       map[string]any{"image": c.spec.Image},
			"command":     []string{"/bin/sleep", "infinity"},
			"labels":      st.GetLabels(),
			"annotations": st.GetAnnotations(),
			"log_path":    c.spec.Name + "/0.log",
			"linux":       map[string]any{"resources": map[string]any{"cpu_shares": 102, "cpu_period": 100000, "memory_limit_in_bytes": 128 << 20}},
		},
		"runtimeSpec": newSpec([]string{"/bin/sleep", "infinity"}, 1000, path.Join(cgroupParent(sb), c.id), ann, netnsPath(sb)),
	}
	return mustJSON(info)
}

func (r *Runtime) sandboxInfoLocked(sb *sandbox) string {
	netMode := int(runtimeapi.NamespaceMode_POD)
	if sb.spec.HostNetwork {
		netMode = int(runtimeapi.NamespaceMode_NODE)
	}
	ann := map[string]string{
		"io.kubernetes.cri.container-type":        "sandbox",
		"io.kubernetes.cri.sandbox-id":            sb.id,
		"io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/" + sb.spec.Namespace + "_" + sb.spec.Name + "_" + sb.spec.UID,
		"io.kubernetes.cri.sandbox-name":          sb.spec.Name,
		"io.kubernetes.cri.sandbox-namespace":     sb.spec.Namespace,
		"io.kubernetes.cri.sandbox-uid":           sb.spec.UID,
		"io.kubernetes.cri.podsandbox.image-name": pauseImage,
	}
	info := map[string]any{
		"pid":                sb.pid,
		"processStatus":      processStatus(sb.state),
		"netNamespaceClosed": sb.state != runtimeapi.PodSandboxState_SANDBOX_READY,
		"image":              pauseImage,
		"snapshotKey":        sb.id,
		"snapshotter":        "overlayfs",
		"runtimeHandler":     "",
		"runtimeType":        "io.containerd.runc.v2",
		"runtimeOptions":     map[string]any{"binary_name": "/usr/sbin/runc"},
		"config": map[string]any{
			"metadata":      map[string]any{"name": sb.spec.Name, "uid": sb.spec.UID, "namespace": sb.spec.Namespace},
			"hostname":      sb.spec.Name,
			"log_directory": ann["io.kubernetes.cri.sandbox-log-directory"],
			"labels":        sandboxLabels(sb),
			"annotations":   sandboxAnnotations(sb),
			"linux": map[string]any{
				"cgroup_parent":    cgroupParent(sb),
				"security_context": map[string]any{"namespace_options": namespaceOptions{Network: netMode, PID: int(runtimeapi.NamespaceMode_CONTAINER)}},
			},
		},
		"runtimeSpec": newSpec([]string{"/pause"}, 65535, path.Join(cgroupParent(sb), sb.id), ann, netnsPath(sb)),
		"cniResult":   cniResult(sb),
	}
	return mustJSON(info)
}

// namespaceOptions is the CRI's NamespaceOption as containerd's config
// JSON spells it: enum numbers, POD (0) left out.
type namespaceOptions struct {
	Network int `json:"network,omitempty"`
	PID     int `json:"pid,omitempty"`
}

func processStatus(s runtimeapi.PodSandboxState) string {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return "running"
	}
	return "stopped"
}

// cniResult is containerd's cniResult: the pod's eth0 plus the loopback
// and the host-side veth a bridge plugin reports; null on the host network.
func cniResult(sb *sandbox) any {
	if sb.spec.HostNetwork {
		return nil
	}
	type ipConfig struct{ IP, Gateway string }
	type iface struct {
		IPConfigs []ipConfig
		Mac       string
		Sandbox   string
	}
	netns := netnsPath(sb)
	return map[string]any{
		"Interfaces": map[string]iface{
			"lo":                {IPConfigs: []ipConfig{{IP: "127.0.0.1"}, {IP: "::1"}}, Mac: "00:00:00:00:00:00", Sandbox: netns},
			"eth0":              {IPConfigs: []ipConfig{{IP: sb.ip, Gateway: "10.88.0.1"}}, Mac: mac(sb.id, 0), Sandbox: netns},
			"veth" + sb.id[56:]: {Mac: mac(sb.id, 1)},
			"cni0":              {Mac: "96:25:94:da:4b:63"},
		},
		"DNS":    []map[string]any{{}, {}},
		"Routes": []map[string]any{{"dst": "0.0.0.0/0"}},
	}
}

func mac(id string, n int) string {
	h := ID(fmt.Sprint(id, n))
	return fmt.Sprintf("%s:%s:%s:%s:%s:%s", "ce", h[0:2], h[2:4], h[4:6], h[6:8], h[8:10])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakecri: marshal verbose info: %v", err)) // the fake's own values always marshal
	}
	return string(b)
}
