package enrich

import (
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// isImageID reports whether s names an image by its ID rather than by a
// repository: "sha256:<64 hex>" (containerd) or bare 64 hex (CRI-O).
func isImageID(s string) bool {
	return id.IsFull(strings.TrimPrefix(s, "sha256:"))
}

// UnixNano converts a CRI timestamp. Zero and negative values mean unset:
// CRI-O sends Go's zero time.Time as nanoseconds (year 1754) for a
// container that never started or finished.
func UnixNano(ns int64) *time.Time {
	if ns <= 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

// ContainerState is the record's name of a CRI container state: created,
// running, exited or unknown.
func ContainerState(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "exited"
	default:
		return "unknown"
	}
}

// SandboxState is the record's name of a CRI sandbox state: ready or
// notready.
func SandboxState(s runtimeapi.PodSandboxState) string {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return "ready"
	}
	return "notready"
}

// propagation names a mount propagation the way mount(8) and the OCI spec
// do, which is what operators search for.
func propagation(p runtimeapi.MountPropagation) string {
	switch p {
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave"
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared"
	default:
		return "private"
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// firstFullID returns the first candidate that is a well-formed ID, so a
// garbled source never shadows a good one behind it.
func firstFullID(ss ...string) string {
	for _, s := range ss {
		if id.IsFull(s) {
			return s
		}
	}
	return ""
}
