package enrich

import (
	"encoding/json"
	"fmt"
	"math"
)

// infoKey is the key of the verbose info map that holds the runtime's JSON.
// containerd and CRI-O both use it.
const infoKey = "info"

// containerInfo is the part of a ContainerStatus verbose info that
// enrichment reads. containerd fills Config; CRI-O fills Privileged.
type containerInfo struct {
	SandboxID   string           `json:"sandboxID"`
	PID         int              `json:"pid"`
	Privileged  bool             `json:"privileged"`
	Config      *containerConfig `json:"config"`
	RuntimeSpec *ociSpec         `json:"runtimeSpec"`
}

// containerConfig is containerd's copy of the CRI ContainerConfig the
// kubelet sent (snake_case keys, as containerd marshals it).
type containerConfig struct {
	Image struct {
		Image              string `json:"image"`
		UserSpecifiedImage string `json:"user_specified_image"`
	} `json:"image"`
	Linux struct {
		SecurityContext struct {
			Privileged bool `json:"privileged"`
		} `json:"security_context"`
	} `json:"linux"`
}

// sandboxInfo is the part of a PodSandboxStatus verbose info that
// enrichment reads. containerd fills Config, RuntimeHandler and CNIResult;
// CRI-O keeps its network result in the spec annotations.
type sandboxInfo struct {
	PID            int             `json:"pid"`
	Image          string          `json:"image"`
	RuntimeHandler string          `json:"runtimeHandler"`
	Config         *sandboxConfig  `json:"config"`
	RuntimeSpec    *ociSpec        `json:"runtimeSpec"`
	CNIResult      json.RawMessage `json:"cniResult"`
}

// sandboxConfig is containerd's copy of the CRI PodSandboxConfig.
type sandboxConfig struct {
	Linux struct {
		CgroupParent    string `json:"cgroup_parent"`
		SecurityContext struct {
			Privileged       bool `json:"privileged"`
			NamespaceOptions struct {
				Network int32 `json:"network"`
				PID     int32 `json:"pid"`
				IPC     int32 `json:"ipc"`
			} `json:"namespace_options"`
		} `json:"security_context"`
	} `json:"linux"`
}

// ociSpec is the part of an OCI runtime spec that enrichment reads.
type ociSpec struct {
	Process *struct {
		User *struct {
			UID *uint32 `json:"uid"`
		} `json:"user"`
		// Env stays raw so it is decoded only when Options.ExportEnv asks
		// for it.
		Env         json.RawMessage `json:"env"`
		OOMScoreAdj *int64          `json:"oomScoreAdj"`
	} `json:"process"`
	Annotations specAnnotations `json:"annotations"`
	Linux       *struct {
		CgroupsPath string        `json:"cgroupsPath"`
		Resources   *ociResources `json:"resources"`
	} `json:"linux"`
}

// ociResources holds the OCI resource fields that map to Resources.
type ociResources struct {
	CPU *struct {
		Shares *uint64 `json:"shares"`
		Quota  *int64  `json:"quota"`
		Period *uint64 `json:"period"`
		Cpus   string  `json:"cpus"`
		Mems   string  `json:"mems"`
	} `json:"cpu"`
	Memory *struct {
		Limit *int64 `json:"limit"`
	} `json:"memory"`
}

// specAnnotations are the runtime spec annotations enrichment reads. Named
// fields instead of a map keep the decode free of per-annotation
// allocations; all other annotations are skipped.
type specAnnotations struct {
	// containerd
	CRIContainerName      string `json:"io.kubernetes.cri.container-name"`
	CRIImageName          string `json:"io.kubernetes.cri.image-name"`
	CRISandboxImageName   string `json:"io.kubernetes.cri.podsandbox.image-name"`
	CRISandboxID          string `json:"io.kubernetes.cri.sandbox-id"`
	CRISandboxName        string `json:"io.kubernetes.cri.sandbox-name"`
	CRISandboxNamespace   string `json:"io.kubernetes.cri.sandbox-namespace"`
	CRISandboxUID         string `json:"io.kubernetes.cri.sandbox-uid"`
	CRIOSandboxID         string `json:"io.kubernetes.cri-o.SandboxID"`
	CRIOSandboxName       string `json:"io.kubernetes.cri-o.SandboxName"`
	CRIOKubeName          string `json:"io.kubernetes.cri-o.KubeName"`
	CRIONamespace         string `json:"io.kubernetes.cri-o.Namespace"`
	CRIOImageName         string `json:"io.kubernetes.cri-o.ImageName"`
	CRIOImage             string `json:"io.kubernetes.cri-o.Image"`
	CRIOCNIResult         string `json:"io.kubernetes.cri-o.CNIResult"`
	CRIORuntimeHandler    string `json:"io.kubernetes.cri-o.RuntimeHandler"`
	CRIOPrivilegedRuntime string `json:"io.kubernetes.cri-o.PrivilegedRuntime"`
	CRIOHostNetwork       string `json:"io.kubernetes.cri-o.HostNetwork"`
	// The kubelet's labels, which CRI-O also copies into the annotations.
	PodName      string `json:"io.kubernetes.pod.name"`
	PodNamespace string `json:"io.kubernetes.pod.namespace"`
	PodUID       string `json:"io.kubernetes.pod.uid"`
}

// decodeInfo parses the JSON string of a verbose info map into v. An absent
// key (a non-verbose answer) leaves v untouched and is not an error.
func decodeInfo(info map[string]string, v any) error {
	raw, ok := info[infoKey]
	if !ok || raw == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("decode verbose info: %w", err)
	}
	return nil
}

// annotations returns the spec annotations, or an empty set when the spec
// is missing, so callers need no nil checks.
func (s *ociSpec) annotations() *specAnnotations {
	if s == nil {
		return &specAnnotations{}
	}
	return &s.Annotations
}

func (s *ociSpec) cgroupsPath() string {
	if s == nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

func (s *ociSpec) resources() *ociResources {
	if s == nil || s.Linux == nil {
		return nil
	}
	return s.Linux.Resources
}

// oomScoreAdj returns process.oomScoreAdj, or 0 when the spec does not say.
func (s *ociSpec) oomScoreAdj() int64 {
	if s == nil || s.Process == nil || s.Process.OOMScoreAdj == nil {
		return 0
	}
	return *s.Process.OOMScoreAdj
}

// userUID returns process.user.uid, or nil when the spec does not say.
func (s *ociSpec) userUID() *int64 {
	if s == nil || s.Process == nil || s.Process.User == nil || s.Process.User.UID == nil {
		return nil
	}
	uid := int64(*s.Process.User.UID)
	return &uid
}

// env decodes process.env. A malformed env is dropped rather than failing
// the whole record: it is an opt-in extra, not identity.
func (s *ociSpec) env() []string {
	if s == nil || s.Process == nil || len(s.Process.Env) == 0 {
		return nil
	}
	var env []string
	if err := json.Unmarshal(s.Process.Env, &env); err != nil {
		return nil
	}
	return env
}

// clampInt64 converts an OCI unsigned value without wrapping negative.
func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
