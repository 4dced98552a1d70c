package harness

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Kubelet label and annotation keys the harness stamps like a kubelet does.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// ContainerSpec is one container of a PodSpec.
type ContainerSpec struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Command overrides the image entrypoint (a busybox applet and its
	// arguments); empty runs `sleep 2147483647`.
	Command []string
}

// PodSpec describes a pod the way the kubelet would send it to the CRI.
type PodSpec struct {
	Name      string
	Namespace string // default "default"
	UID       string // generated when empty
	Labels    map[string]string
	// Annotations go on the sandbox.
	Annotations map[string]string
	// HostNetwork runs the pod in the node's network namespace (no CNI).
	HostNetwork bool
	// CgroupParent defaults to /kubepods/burstable/pod<UID> (cgroupfs driver).
	CgroupParent string
	Containers   []ContainerSpec
}

// Container is a started container of a Pod.
type Container struct {
	Name string
	ID   string
}

// Pod is a running pod sandbox and its containers.
type Pod struct {
	SandboxID    string
	Name         string
	Namespace    string
	UID          string
	HostNetwork  bool
	IP           string // empty for a host-network pod
	CgroupParent string
	NetNSPath    string // empty for a host-network pod
	LogDirectory string
	Containers   []Container
}

// ContainerID returns the ID of the named container, or "".
func (p *Pod) ContainerID(name string) string {
	for _, c := range p.Containers {
		if c.Name == name {
			return c.ID
		}
	}
	return ""
}

// podRecord is the runtime's own copy of a pod plus the sandbox config the
// CRI needs again for every CreateContainer.
type podRecord struct {
	pod    Pod
	config *runtimeapi.PodSandboxConfig
}

func (rec *podRecord) snapshot() *Pod {
	p := rec.pod
	p.Containers = slices.Clone(rec.pod.Containers)
	return &p
}

// createTimeout bounds one RunPod's CRI calls, which run detached from
// the caller's context: a call cancelled on the client side goes on in
// containerd, and the harness must learn the IDs it creates to remove them.
const createTimeout = 2 * time.Minute

// RunPod creates the sandbox and starts every container, as the kubelet
// does. Cancelling ctx stops it between CRI calls, never in the middle of
// one. What it created before an error stays tracked and Close removes it.
func (r *Runtime) RunPod(ctx context.Context, spec PodSpec) (*Pod, error) {
	done, err := r.beginOp()
	if err != nil {
		return nil, err
	}
	defer done()
	spec, err = withPodDefaults(spec)
	if err != nil {
		return nil, err
	}
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
	defer cancel()
	rec, err := r.runSandbox(opCtx, spec)
	if err != nil {
		return nil, err
	}
	for _, c := range spec.Containers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("run pod %s: %w", spec.Name, err)
		}
		if err := r.startContainer(opCtx, rec, spec, c); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return rec.snapshot(), nil
}

// beginOp registers a RunPod so Close waits for it instead of racing it.
func (r *Runtime) beginOp() (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("runtime %s is closed", r.layout.dir)
	}
	r.ops.Add(1)
	return r.ops.Done, nil
}

// runSandbox runs the pod sandbox and tracks it at once.
func (r *Runtime) runSandbox(ctx context.Context, spec PodSpec) (*podRecord, error) {
	logDir := filepath.Join(r.layout.podLogs, spec.Namespace+"_"+spec.Name+"_"+spec.UID)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("create pod log dir: %w", err)
	}
	config := sandboxConfig(spec, logDir)
	r.trackCgroupParent(spec.CgroupParent)
	resp, err := r.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config})
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	rec := &podRecord{config: config, pod: Pod{
		SandboxID: resp.GetPodSandboxId(), Name: spec.Name, Namespace: spec.Namespace, UID: spec.UID,
		HostNetwork: spec.HostNetwork, CgroupParent: spec.CgroupParent, LogDirectory: logDir,
	}}
	r.trackPod(rec)
	return rec, r.readSandboxNetwork(ctx, rec)
}

func withPodDefaults(spec PodSpec) (PodSpec, error) {
	if spec.Name == "" {
		return spec, fmt.Errorf("pod spec without a name")
	}
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.UID == "" {
		uid, err := newUID()
		if err != nil {
			return spec, err
		}
		spec.UID = uid
	}
	if spec.CgroupParent == "" {
		spec.CgroupParent = "/kubepods/burstable/pod" + spec.UID
	}
	return spec, nil
}

// newUID returns a random RFC 4122 version 4 UUID, like a pod UID.
func newUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate pod uid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func namespaceOptions(hostNetwork bool) *runtimeapi.NamespaceOption {
	network := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		network = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.NamespaceOption{Network: network, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
}

func podLabels(spec PodSpec) map[string]string {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelPodName] = spec.Name
	labels[LabelPodNamespace] = spec.Namespace
	labels[LabelPodUID] = spec.UID
	return labels
}

func sandboxConfig(spec PodSpec, logDir string) *runtimeapi.PodSandboxConfig {
	annotations := map[string]string{
		"kubernetes.io/config.source": "api",
		"kubernetes.io/config.seen":   time.Now().UTC().Format(time.RFC3339Nano),
	}
	maps.Copy(annotations, spec.Annotations)
	config := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: spec.Name, Uid: spec.UID, Namespace: spec.Namespace},
		LogDirectory: logDir,
		Labels:       podLabels(spec),
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    spec.CgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaceOptions(spec.HostNetwork)},
		},
	}
	if !spec.HostNetwork {
		config.Hostname = spec.Name
	}
	return config
}

func containerConfig(spec PodSpec, c ContainerSpec) *runtimeapi.ContainerConfig {
	labels := podLabels(PodSpec{Name: spec.Name, Namespace: spec.Namespace, UID: spec.UID, Labels: c.Labels})
	labels[LabelContainerName] = c.Name
	annotations := map[string]string{
		"io.kubernetes.container.hash":                     "0",
		"io.kubernetes.container.restartCount":             "0",
		"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
		"io.kubernetes.container.terminationMessagePolicy": "File",
		"io.kubernetes.pod.terminationGracePeriod":         "30",
	}
	maps.Copy(annotations, c.Annotations)
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name},
		Image:       &runtimeapi.ImageSpec{Image: WorkloadImage, UserSpecifiedImage: WorkloadImage},
		Command:     c.Command,
		Labels:      labels,
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, "0.log"),
		Linux: &runtimeapi.LinuxContainerConfig{
			// Burstable-like values: small CPU request, no limits.
			Resources:       &runtimeapi.LinuxContainerResources{CpuShares: 102, CpuPeriod: 100000, OomScoreAdj: 999},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(spec.HostNetwork)},
		},
	}
}

// startContainer creates and starts one container and records it.
func (r *Runtime) startContainer(ctx context.Context, rec *podRecord, spec PodSpec, c ContainerSpec) error {
	id, err := r.createContainer(ctx, rec, spec, c)
	if err != nil {
		return err
	}
	if _, err := r.client.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("start container %s in %s: %w", c.Name, spec.Name, err)
	}
	return nil
}

// createContainer creates one container, not started, and records it.
func (r *Runtime) createContainer(ctx context.Context, rec *podRecord, spec PodSpec, c ContainerSpec) (string, error) {
	// The kubelet makes the per-container log dir; containerd only opens the file.
	if err := os.MkdirAll(filepath.Join(rec.pod.LogDirectory, c.Name), 0o755); err != nil {
		return "", fmt.Errorf("create container log dir: %w", err)
	}
	resp, err := r.client.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: rec.pod.SandboxID, Config: containerConfig(spec, c), SandboxConfig: rec.config,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s in %s: %w", c.Name, spec.Name, err)
	}
	r.mu.Lock()
	rec.pod.Containers = append(rec.pod.Containers, Container{Name: c.Name, ID: resp.GetContainerId()})
	r.mu.Unlock()
	return resp.GetContainerId(), nil
}

// CreateContainer creates a container in the running pod p without starting
// it, as the kubelet's CreateContainer does before its StartContainer: a
// test can look at the moment between the two. Close removes it.
func (r *Runtime) CreateContainer(ctx context.Context, p *Pod, c ContainerSpec) (string, error) {
	r.mu.Lock()
	rec := r.host.pods[p.SandboxID]
	r.mu.Unlock()
	if rec == nil {
		return "", fmt.Errorf("create container %s: pod %s was not run by this runtime", c.Name, p.SandboxID)
	}
	spec := PodSpec{Name: rec.pod.Name, Namespace: rec.pod.Namespace, UID: rec.pod.UID, HostNetwork: rec.pod.HostNetwork}
	return r.createContainer(ctx, rec, spec, c)
}

// StartContainer starts a container CreateContainer made.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if _, err := r.client.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// sandboxInfo is the part of containerd's verbose sandbox info the harness
// reads: the sandbox's cgroup and network namespace, so Close can remove
// them even when containerd is gone.
type sandboxInfo struct {
	RuntimeSpec ociSpec `json:"runtimeSpec"`
}

// ociSpec is the part of an OCI runtime spec (also a bundle's config.json)
// that places a container on the host.
type ociSpec struct {
	Linux struct {
		CgroupsPath string `json:"cgroupsPath"`
		Namespaces  []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

func parseSandboxInfo(info string) (sandboxInfo, error) {
	var si sandboxInfo
	if info == "" {
		return si, nil
	}
	if err := json.Unmarshal([]byte(info), &si); err != nil {
		return si, fmt.Errorf("parse verbose info: %w", err)
	}
	return si, nil
}

// networkNamespace is the netns file path; empty for host network.
func (si sandboxInfo) networkNamespace() string { return si.RuntimeSpec.networkNamespace() }

// networkNamespace is the network namespace path the spec names: a netns
// file for a sandbox, /proc/<pid>/ns/net for a container joining it,
// empty for host network.
func (s ociSpec) networkNamespace() string {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

// readSandboxNetwork records the pod IP and network namespace path.
func (r *Runtime) readSandboxNetwork(ctx context.Context, rec *podRecord) error {
	resp, err := r.client.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: rec.pod.SandboxID, Verbose: true})
	if err != nil {
		return fmt.Errorf("pod sandbox status %s: %w", rec.pod.SandboxID, err)
	}
	si, err := parseSandboxInfo(resp.GetInfo()["info"])
	if err != nil {
		return fmt.Errorf("pod sandbox status %s: %w", rec.pod.SandboxID, err)
	}
	netns := si.networkNamespace()
	r.trackNetNS(netns)
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.pod.IP = resp.GetStatus().GetNetwork().GetIp()
	rec.pod.NetNSPath = netns
	return nil
}

// RemoveContainer stops (no grace period) and removes a container.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if _, err := r.client.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if _, err := r.client.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.host.pods {
		rec.pod.Containers = slices.DeleteFunc(rec.pod.Containers, func(c Container) bool { return c.ID == id })
	}
	return nil
}

// RemovePod stops and removes a sandbox with its containers, then removes
// the pod cgroup as the kubelet does once a pod is gone.
func (r *Runtime) RemovePod(ctx context.Context, sandboxID string) error {
	if _, err := r.client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", sandboxID, err)
	}
	if _, err := r.client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", sandboxID, err)
	}
	r.mu.Lock()
	rec := r.host.pods[sandboxID]
	delete(r.host.pods, sandboxID)
	r.mu.Unlock()
	if rec == nil {
		return nil
	}
	return removeCgroup(rec.pod.CgroupParent)
}

// Pods returns the pods RunPod created that were not removed yet.
func (r *Runtime) Pods() []*Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pods := make([]*Pod, 0, len(r.host.pods))
	for _, rec := range r.host.pods {
		pods = append(pods, rec.snapshot())
	}
	slices.SortFunc(pods, func(a, b *Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return pods
}
