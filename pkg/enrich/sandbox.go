package enrich

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// Sandbox maps a PodSandboxStatus answer to the sandbox's own record:
// IsPodSandbox is true, ID equals Pod.SandboxID, Pod is filled and
// PodSource is PodSourceSandboxStatus. The record's Name and Labels are the
// pod's name and labels (a sandbox has no name of its own; the kubelet's
// "POD" container name is a docker-era convention), and Image is the pause
// image. runtimeName is passed through as Record.Runtime.
//
// Errors are *ParseError. With ReasonBadCNIResult the returned record is
// complete except for the pod's CNI result (and any IP only it held), so
// the caller may count the error and still use the record.
func Sandbox(resp *runtimeapi.PodSandboxStatusResponse, runtimeName string, opts Options) (Record, error) {
	st := resp.GetStatus()
	if st == nil {
		return Record{}, parseError(ReasonMissingStatus, fmt.Errorf("pod sandbox status: %w", errNoStatus))
	}
	if !id.IsFull(st.GetId()) {
		return Record{}, parseError(ReasonBadID, fmt.Errorf("pod sandbox status id %q is not a full id", st.GetId()))
	}
	var info sandboxInfo
	if err := decodeInfo(resp.GetInfo(), &info); err != nil {
		return Record{}, parseError(ReasonBadInfoJSON, fmt.Errorf("pod sandbox %s: %w", st.GetId()[:id.ShortLen], err))
	}
	lim := newLimiter(opts)
	pod := sandboxPod(st, &info, lim, opts.ExportAnnotations)
	net, cniErr := sandboxNetwork(st.GetNetwork(), &info, st.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY)
	pod.IP, pod.AdditionalIPs, pod.CNIResult = net.ip, net.additionalIPs, net.cniResult
	rec := sandboxRecord(st, &info, pod, runtimeName)
	rec.Node = opts.NodeName
	rec.Trimmed = lim.trimmed
	packSandbox(&rec)
	if cniErr != nil {
		return rec, parseError(ReasonBadCNIResult, fmt.Errorf("pod sandbox %s: %w", rec.ShortID, cniErr))
	}
	return rec, nil
}

// sandboxPod maps the pod fields. Metadata is authoritative; the labels and
// spec annotations only fill what a sparse answer leaves empty.
func sandboxPod(st *runtimeapi.PodSandboxStatus, info *sandboxInfo, lim *limiter, exportAnnotations bool) *Pod {
	ann := info.RuntimeSpec.annotations()
	md, labels := st.GetMetadata(), st.GetLabels()
	pod := &Pod{
		SandboxID: st.GetId(),
		Name:      firstNonEmpty(md.GetName(), labels[labelPodName], ann.CRISandboxName, ann.CRIOKubeName),
		Namespace: firstNonEmpty(md.GetNamespace(), labels[labelPodNamespace], ann.CRISandboxNamespace, ann.CRIONamespace),
		UID:       firstNonEmpty(md.GetUid(), labels[labelPodUID], ann.CRISandboxUID, ann.PodUID),
		Attempt:   md.GetAttempt(),
		State:     SandboxState(st.GetState()),
		Labels:    lim.stringMap(labels),
		RuntimeHandler: firstNonEmpty(st.GetRuntimeHandler(), info.RuntimeHandler,
			ann.CRIORuntimeHandler),
		CreatedAt: UnixNano(st.GetCreatedAt()),
	}
	pod.HostNetwork, pod.HostPID, pod.HostIPC = hostNamespaces(st, info)
	if exportAnnotations {
		pod.Annotations = lim.stringMap(st.GetAnnotations())
	}
	return pod
}

// sandboxRecord builds the sandbox's own record around its pod. Its labels
// and annotations are the pod's own maps: built records are never changed,
// so sharing them saves a copy per pod.
func sandboxRecord(st *runtimeapi.PodSandboxStatus, info *sandboxInfo, pod *Pod, runtimeName string) Record {
	ann := info.RuntimeSpec.annotations()
	return Record{
		ID:           pod.SandboxID,
		ShortID:      pod.SandboxID[:id.ShortLen],
		Name:         pod.Name,
		Attempt:      pod.Attempt,
		State:        pod.State,
		Runtime:      runtimeName,
		CreatedAt:    pod.CreatedAt,
		Image:        sandboxImage(info, ann),
		PID:          info.PID,
		Privileged:   sandboxPrivileged(info),
		UserUID:      info.RuntimeSpec.userUID(),
		Labels:       pod.Labels,
		Annotations:  pod.Annotations,
		CgroupPath:   sandboxCgroupPath(pod.SandboxID, info),
		Mounts:       []Mount{},
		Resources:    containerResources(nil, info.RuntimeSpec),
		IsPodSandbox: true,
		Pod:          pod,
		PodSource:    PodSourceSandboxStatus,
	}
}

// sandboxImage is the pause image: the runtime names it once, so it is both
// what was asked for and what was resolved.
func sandboxImage(info *sandboxInfo, ann *specAnnotations) Image {
	name := firstNonEmpty(info.Image, ann.CRISandboxImageName, ann.CRIOImageName)
	return Image{Name: name, Resolved: name}
}

// hostNamespaces reads the NODE namespace modes from the status, else from
// containerd's sandbox config or CRI-O's HostNetwork annotation.
func hostNamespaces(st *runtimeapi.PodSandboxStatus, info *sandboxInfo) (network, pid, ipc bool) {
	node := runtimeapi.NamespaceMode_NODE
	if o := st.GetLinux().GetNamespaces().GetOptions(); o != nil {
		return o.GetNetwork() == node, o.GetPid() == node, o.GetIpc() == node
	}
	if info.Config != nil {
		o := info.Config.Linux.SecurityContext.NamespaceOptions
		return o.Network == int32(node), o.PID == int32(node), o.IPC == int32(node)
	}
	return info.RuntimeSpec.annotations().CRIOHostNetwork == "true", false, false
}

func sandboxPrivileged(info *sandboxInfo) bool {
	if info.Config != nil && info.Config.Linux.SecurityContext.Privileged {
		return true
	}
	return info.RuntimeSpec.annotations().CRIOPrivilegedRuntime == "true"
}

// sandboxCgroupPath takes the spec's cgroupsPath; without it, containerd's
// sandbox config still names the parent, and containerd puts the sandbox
// directly below it (as "<parent>:cri-containerd:<id>" with systemd).
func sandboxCgroupPath(id string, info *sandboxInfo) string {
	if p := info.RuntimeSpec.cgroupsPath(); p != "" {
		return cgroup.ExpandSystemdPath(p)
	}
	if info.Config == nil || info.Config.Linux.CgroupParent == "" {
		return ""
	}
	parent := info.Config.Linux.CgroupParent
	if strings.HasSuffix(parent, ".slice") {
		return cgroup.ExpandSystemdPath(parent + ":cri-containerd:" + id)
	}
	return path.Join(parent, id)
}

// kubeSandboxName is a parsed kubelet-style sandbox name.
type kubeSandboxName struct {
	name, namespace, uid string
	attempt              uint32
}

// parseKubeSandboxName parses "k8s_<pod>_<namespace>_<uid>_<attempt>", the
// name CRI-O gives sandboxes. Pod names, namespaces and UIDs cannot contain
// "_", so the split is unambiguous; anything else yields the zero value.
func parseKubeSandboxName(s string) kubeSandboxName {
	parts := strings.Split(s, "_")
	if len(parts) != 5 || parts[0] != "k8s" {
		return kubeSandboxName{}
	}
	attempt, err := strconv.ParseUint(parts[4], 10, 32)
	if err != nil {
		return kubeSandboxName{}
	}
	return kubeSandboxName{name: parts[1], namespace: parts[2], uid: parts[3], attempt: uint32(attempt)}
}
