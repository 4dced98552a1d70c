package enrich

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// The kubelet's labels on every container, and the dockershim-era label
// some runtimes still set for the sandbox.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelSandboxID     = "io.kubernetes.sandbox.id"
)

// ContainerResult is a container record plus what the lookup engine needs
// to finish it.
type ContainerResult struct {
	// Record is the container's record. Its Pod is nil and its PodSource
	// empty: the engine attaches the pod with AttachPod.
	Record Record
	// SandboxID is the container's pod sandbox, from the verbose info's
	// sandboxID, else the runtime spec annotations, else the container's
	// annotations and labels. Empty when no well-formed ID was found.
	SandboxID string
	// LabelPod is the pod identity the container carries itself (kubelet
	// labels, runtime spec annotations), for when neither a sandbox answer
	// nor a cached sandbox is available. It has no IP and no pod labels.
	// Nil when the container names no pod.
	LabelPod *Pod
	// Trimmed counts labels, annotations and env entries that the Options
	// caps dropped or cut. It equals Record.Trimmed.
	Trimmed int
}

// Container maps a ContainerStatus answer to a container record.
// runtimeName is passed through as Record.Runtime (the Version answer's
// runtime_name, e.g. "containerd", "cri-o"). A non-verbose answer (no
// info) is not an error: the fields only the info holds stay empty.
// Errors are *ParseError.
func Container(resp *runtimeapi.ContainerStatusResponse, runtimeName string, opts Options) (ContainerResult, error) {
	st := resp.GetStatus()
	if st == nil {
		return ContainerResult{}, parseError(ReasonMissingStatus, fmt.Errorf("container status: %w", errNoStatus))
	}
	if !id.IsFull(st.GetId()) {
		return ContainerResult{}, parseError(ReasonBadID, fmt.Errorf("container status id %q is not a full id", st.GetId()))
	}
	var info containerInfo
	if err := decodeInfo(resp.GetInfo(), &info); err != nil {
		return ContainerResult{}, parseError(ReasonBadInfoJSON, fmt.Errorf("container %s: %w", st.GetId()[:id.ShortLen], err))
	}
	lim := newLimiter(opts)
	rec := containerRecord(st, &info, runtimeName, lim)
	rec.Node = opts.NodeName
	if _, verbose := resp.GetInfo()[infoKey]; !verbose {
		rec.Partial = true
		// Without the verbose config the status's image is the runtime's
		// first tag (an event's) or what the kubelet sent, often the image
		// ID (a listed one's): only the user-specified name is certain.
		rec.Image.Name, rec.Image.Resolved = st.GetImage().GetUserSpecifiedImage(), ""
	}
	if opts.ExportEnv {
		rec.Env = lim.strings(info.RuntimeSpec.env())
	}
	if opts.ExportAnnotations {
		rec.Annotations = lim.stringMap(st.GetAnnotations())
	}
	rec.Trimmed = lim.trimmed
	sandboxID := containerSandboxID(st, &info)
	// A runtime that answers ContainerStatus for a pause container (one
	// whose ID is its own sandbox's) gets it flagged as the sandbox.
	rec.IsPodSandbox = rec.ID == sandboxID
	packContainer(&rec)
	return ContainerResult{
		Record:    rec,
		SandboxID: sandboxID,
		LabelPod:  labelPod(st.GetLabels(), info.RuntimeSpec.annotations(), sandboxID),
		Trimmed:   rec.Trimmed,
	}, nil
}

// Listed is the status a ListContainers item stands for: what a partial
// record is made from before the container started.
func Listed(c *runtimeapi.Container) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{
		Id: c.GetId(), Metadata: c.GetMetadata(), State: c.GetState(), CreatedAt: c.GetCreatedAt(),
		Image: c.GetImage(), ImageRef: c.GetImageRef(), ImageId: c.GetImageId(),
		Labels: c.GetLabels(), Annotations: c.GetAnnotations(),
	}
}

// containerRecord maps everything but the opt-in fields.
func containerRecord(st *runtimeapi.ContainerStatus, info *containerInfo, runtimeName string, lim *limiter) Record {
	ann := info.RuntimeSpec.annotations()
	return Record{
		ID:      st.GetId(),
		ShortID: st.GetId()[:id.ShortLen],
		Name: firstNonEmpty(st.GetMetadata().GetName(), st.GetLabels()[labelContainerName],
			ann.CRIContainerName),
		Attempt:    st.GetMetadata().GetAttempt(),
		State:      ContainerState(st.GetState()),
		Runtime:    runtimeName,
		CreatedAt:  UnixNano(st.GetCreatedAt()),
		StartedAt:  UnixNano(st.GetStartedAt()),
		FinishedAt: UnixNano(st.GetFinishedAt()),
		Image:      containerImage(st, info),
		PID:        info.PID,
		Privileged: info.Privileged || (info.Config != nil && info.Config.Linux.SecurityContext.Privileged),
		UserUID:    containerUserUID(st, info),
		Labels:     lim.stringMap(st.GetLabels()),
		LogPath:    st.GetLogPath(),
		CgroupPath: cgroup.ExpandSystemdPath(info.RuntimeSpec.cgroupsPath()),
		Mounts:     containerMounts(st.GetMounts()),
		Resources:  containerResources(st.GetResources().GetLinux(), info.RuntimeSpec),
	}
}

// containerImage separates the image the pod asked for from the one the
// runtime resolved. The kubelet sends the resolved image ID as image.image
// and the pod spec's string as user_specified_image; containerd then answers
// status.image.image with the image's first tag, which is another name when
// one image carries several tags. So the name comes from what the kubelet
// sent (containerd keeps it in the verbose config and in its image-name
// spec annotation, CRI-O in its ImageName annotation), and the status's name
// is kept beside it as Resolved.
func containerImage(st *runtimeapi.ContainerStatus, info *containerInfo) Image {
	var cfgImage, cfgUserImage string
	if info.Config != nil {
		cfgImage, cfgUserImage = info.Config.Image.Image, info.Config.Image.UserSpecifiedImage
	}
	ann := info.RuntimeSpec.annotations()
	resolved := st.GetImage().GetImage()
	name := imageName(st.GetImage().GetUserSpecifiedImage(), cfgUserImage, ann.CRIOImageName,
		ann.CRIImageName, cfgImage, resolved, ann.CRIOImage)
	if isImageID(resolved) {
		resolved = imageName(ann.CRIImageName, ann.CRIOImageName, resolved)
	}
	ref, id := st.GetImageRef(), st.GetImageId()
	if id == "" && isImageID(ref) {
		id = ref
	}
	if ref == id {
		ref = id // containerd answers the same ID twice: keep one copy
	}
	return Image{Name: name, Resolved: resolved, Ref: ref, ID: id}
}

// imageName returns the first candidate that names a repository, else the
// first non-empty one (an ID is better than nothing).
func imageName(candidates ...string) string {
	for _, c := range candidates {
		if c != "" && !isImageID(c) {
			return c
		}
	}
	return firstNonEmpty(candidates...)
}

// containerUserUID prefers the spec's process user, which is what the
// process really runs as; CRI 1.30+ status.user is the fallback.
func containerUserUID(st *runtimeapi.ContainerStatus, info *containerInfo) *int64 {
	if uid := info.RuntimeSpec.userUID(); uid != nil {
		return uid
	}
	if lu := st.GetUser().GetLinux(); lu != nil {
		uid := lu.GetUid()
		return &uid
	}
	return nil
}

func containerMounts(ms []*runtimeapi.Mount) []Mount {
	out := make([]Mount, 0, len(ms))
	for _, m := range ms {
		if m == nil {
			continue
		}
		out = append(out, Mount{
			HostPath:      m.GetHostPath(),
			ContainerPath: canonical(m.GetContainerPath()),
			ReadOnly:      m.GetReadonly(),
			Propagation:   propagation(m.GetPropagation()),
		})
	}
	return out
}

// containerResources takes each field from the CRI status and falls back to
// the runtime spec field by field: runtimes fill status.resources unevenly
// (containerd 1.6 and CRI-O often leave it empty).
func containerResources(lr *runtimeapi.LinuxContainerResources, oci *ociSpec) Resources {
	r := Resources{
		OOMScoreAdj:        lr.GetOomScoreAdj(),
		CPUShares:          lr.GetCpuShares(),
		CPUQuota:           lr.GetCpuQuota(),
		CPUPeriod:          lr.GetCpuPeriod(),
		CpusetCPUs:         lr.GetCpusetCpus(),
		CpusetMems:         lr.GetCpusetMems(),
		MemoryLimitInBytes: lr.GetMemoryLimitInBytes(),
	}
	if r.OOMScoreAdj == 0 {
		r.OOMScoreAdj = oci.oomScoreAdj()
	}
	spec := oci.resources()
	if spec == nil {
		return r
	}
	if c := spec.CPU; c != nil {
		if r.CPUShares == 0 && c.Shares != nil {
			r.CPUShares = clampInt64(*c.Shares)
		}
		if r.CPUQuota == 0 && c.Quota != nil {
			r.CPUQuota = *c.Quota
		}
		if r.CPUPeriod == 0 && c.Period != nil {
			r.CPUPeriod = clampInt64(*c.Period)
		}
		r.CpusetCPUs = firstNonEmpty(r.CpusetCPUs, c.Cpus)
		r.CpusetMems = firstNonEmpty(r.CpusetMems, c.Mems)
	}
	if m := spec.Memory; m != nil && r.MemoryLimitInBytes == 0 && m.Limit != nil {
		r.MemoryLimitInBytes = *m.Limit
	}
	return r
}

// containerSandboxID finds the sandbox from the most to the least
// authoritative place that names it.
func containerSandboxID(st *runtimeapi.ContainerStatus, info *containerInfo) string {
	ann := info.RuntimeSpec.annotations()
	return firstFullID(info.SandboxID, ann.CRISandboxID, ann.CRIOSandboxID,
		st.GetAnnotations()["io.kubernetes.cri.sandbox-id"],
		st.GetAnnotations()["io.kubernetes.cri-o.SandboxID"],
		st.GetLabels()[labelSandboxID])
}

// labelPod assembles the pod identity a container carries itself: the
// kubelet's labels first, then containerd's and CRI-O's spec annotations,
// then CRI-O's kubelet-style sandbox name (k8s_<pod>_<namespace>_<uid>_<attempt>).
func labelPod(labels map[string]string, ann *specAnnotations, sandboxID string) *Pod {
	kn := parseKubeSandboxName(ann.CRIOSandboxName)
	pod := &Pod{
		SandboxID: sandboxID,
		Name:      firstNonEmpty(labels[labelPodName], ann.CRISandboxName, ann.PodName, kn.name),
		Namespace: firstNonEmpty(labels[labelPodNamespace], ann.CRISandboxNamespace, ann.PodNamespace, kn.namespace),
		UID:       firstNonEmpty(labels[labelPodUID], ann.CRISandboxUID, ann.PodUID, kn.uid),
		Attempt:   kn.attempt,
		// Empty rather than nil so every attached pod serializes alike.
		Labels:        map[string]string{},
		AdditionalIPs: []string{},
	}
	if pod.Name == "" && pod.Namespace == "" && pod.UID == "" {
		return nil
	}
	return pod
}
