package enrich

import "time"

// PodKey names a pod across its sandboxes, as Kubernetes does: its UID,
// else its namespaced name, else its sandbox. A pod whose sandbox the
// kubelet re-created is still one pod; every output groups by this key.
func PodKey(p *Pod) string {
	if p.UID != "" {
		return p.UID
	}
	if p.Name != "" {
		return p.Namespace + "/" + p.Name
	}
	return p.SandboxID
}

// MoreCurrent reports whether sandbox a of a pod is more current than b: a
// ready sandbox before a stopped one, then the later attempt, then the later
// creation.
func MoreCurrent(a, b *Pod) bool {
	if ar, br := a.State == "ready", b.State == "ready"; ar != br {
		return ar
	}
	if a.Attempt != b.Attempt {
		return a.Attempt > b.Attempt
	}
	if at, bt := podCreated(a), podCreated(b); !at.Equal(bt) {
		return at.After(bt)
	}
	return a.SandboxID > b.SandboxID
}

func podCreated(p *Pod) time.Time {
	if p.CreatedAt == nil {
		return time.Time{}
	}
	return *p.CreatedAt
}
