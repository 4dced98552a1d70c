package enrich

import (
	"cmp"
	"time"
)

// PodSource says where a record's pod fields came from. Consumers use it to
// judge how fresh and complete the pod data is.
type PodSource string

// The pod sources, from the most to the least authoritative.
const (
	// PodSourceSandboxStatus means the fields come from a PodSandboxStatus
	// answer for this container's own sandbox.
	PodSourceSandboxStatus PodSource = "pod_sandbox_status"
	// PodSourceSandboxCache means PodSandboxStatus failed and the fields were
	// copied from the cached sandbox record.
	PodSourceSandboxCache PodSource = "sandbox_cache"
	// PodSourceContainerLabels means neither a sandbox answer nor a cached
	// sandbox was available; the identity was read from the container's own
	// kubelet labels and runtime annotations (no IP, no pod labels). A
	// created container's first record carries it while its new pod's
	// sandbox is still being looked up, until the sandbox's pod replaces it.
	PodSourceContainerLabels PodSource = "container_labels"
	// PodSourceNone means no pod data could be found at all.
	PodSourceNone PodSource = "none"
)

// Record is one enriched container or pod sandbox, the unit every output
// serves. Field names are part of the public API: keep them stable.
type Record struct {
	ID      string `json:"id"`
	ShortID string `json:"short_id"`
	Name    string `json:"name"`
	Attempt uint32 `json:"attempt"`
	State   string `json:"state"`
	Runtime string `json:"runtime"`
	// Node is the Kubernetes node the record was made on (config
	// node_name); empty when the operator did not set it.
	Node       string     `json:"node,omitempty"`
	CreatedAt  *time.Time `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DeletedAt  *time.Time `json:"deleted_at"`
	Image      Image      `json:"image"`
	// PID is the container's init process (a sandbox's pause process) on
	// the host, as the runtime reports it; 0 until it has started and
	// again once it has exited.
	PID         int               `json:"pid"`
	Privileged  bool              `json:"privileged"`
	UserUID     *int64            `json:"user_uid"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Env         []string          `json:"env,omitempty"`
	LogPath     string            `json:"log_path"`
	CgroupPath  string            `json:"cgroup_path"`
	// CgroupID is the inode of the cgroup's directory in the cgroup v2
	// hierarchy: what bpf_get_current_cgroup_id() returns for the
	// container's processes. 0 until the cgroup was seen, and on hosts
	// without a v2 hierarchy; kept after the directory is removed.
	CgroupID     uint64    `json:"cgroup_id"`
	Mounts       []Mount   `json:"mounts"`
	Resources    Resources `json:"resources"`
	IsPodSandbox bool      `json:"is_pod_sandbox"`
	Pod          *Pod      `json:"pod"`
	PodSource    PodSource `json:"pod_source"`
	// Trimmed counts the labels, annotations and env entries of this record
	// that the export caps dropped or cut; 0 means they are complete.
	Trimmed int `json:"trimmed,omitempty"`
	// Partial marks a record made before the container started, from what
	// the runtime lists or sends in its CREATED event, without a status
	// call: identity, labels, image reference, state and pod are the
	// runtime's; pid, privileged, user_uid, env, cgroup_path, mounts and the
	// asked image name are not known yet. The complete record replaces it
	// once the container started.
	Partial bool `json:"partial,omitempty"`
}

// Image identifies what a container runs. A pod sandbox's image is the pause
// image and never a workload image.
type Image struct {
	// Name is the image the pod spec asked for, as the kubelet passed it
	// (busybox:1.36, or a name@sha256:digest).
	Name string `json:"name"`
	// Resolved is the name the runtime resolved it to: containerd answers
	// the image's first tag, which may be another tag of the same image.
	Resolved string `json:"resolved"`
	// Ref is the runtime's image reference: a digest or the image ID.
	Ref string `json:"ref"`
	// ID is the image ID.
	ID string `json:"id"`
}

// Mount is one bind mount of a container, as the runtime reports it.
type Mount struct {
	HostPath      string `json:"host_path"`
	ContainerPath string `json:"container_path"`
	ReadOnly      bool   `json:"read_only"`
	Propagation   string `json:"propagation"`
}

// Resources are a container's Linux resource settings. Zero means unset.
type Resources struct {
	CPUShares          int64  `json:"cpu_shares,omitempty"`
	CPUQuota           int64  `json:"cpu_quota,omitempty"`
	CPUPeriod          int64  `json:"cpu_period,omitempty"`
	CpusetCPUs         string `json:"cpuset_cpus,omitempty"`
	CpusetMems         string `json:"cpuset_mems,omitempty"`
	MemoryLimitInBytes int64  `json:"memory_limit_in_bytes,omitempty"`
	OOMScoreAdj        int64  `json:"oom_score_adj,omitempty"`
}

// Pod is the pod a container belongs to, as read from its sandbox.
type Pod struct {
	SandboxID      string            `json:"sandbox_id"`
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	UID            string            `json:"uid"`
	Attempt        uint32            `json:"attempt"`
	State          string            `json:"state,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	IP             string            `json:"ip"`
	AdditionalIPs  []string          `json:"additional_ips"`
	CNIResult      string            `json:"cni_result"`
	HostNetwork    bool              `json:"host_network"`
	HostPID        bool              `json:"host_pid"`
	HostIPC        bool              `json:"host_ipc"`
	RuntimeHandler string            `json:"runtime_handler"`
	CreatedAt      *time.Time        `json:"created_at"`
}

// Compare orders records as every listing shows them: by pod namespace, pod
// name, record name, then ID (records without a pod first).
func Compare(a, b *Record) int {
	an, ap := podNames(a)
	bn, bp := podNames(b)
	return cmp.Or(cmp.Compare(an, bn), cmp.Compare(ap, bp), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
}

func podNames(r *Record) (namespace, name string) {
	if r.Pod == nil {
		return "", ""
	}
	return r.Pod.Namespace, r.Pod.Name
}
