package enrich

import (
	"reflect"
	"time"
)

// CRI states only move forward within one ID: a container goes created ->
// running -> exited, a sandbox ready -> notready, and a deleted ID never
// comes back. Answers, events and lists reach the daemon out of order (a
// relist lists a state, an event moves it on, then the relist applies what
// it listed), so every write of a record goes through Advance, which keeps
// the later of the two states with the fields that belong to it.

// stateRank orders a record's states; unknown (the runtime could not tell)
// ranks lowest, so it never replaces a known state.
func stateRank(rec *Record) int {
	if rec.IsPodSandbox {
		return sandboxRank(rec.State)
	}
	switch rec.State {
	case "created":
		return 1
	case "running":
		return 2
	case "exited":
		return 3
	}
	return 0
}

func sandboxRank(state string) int {
	switch state {
	case "ready":
		return 1
	case "notready":
		return 2
	}
	return 0
}

// Advance returns next as it may replace prev, the stored record with the
// same ID. When next's state is behind prev's, prev's state and the fields
// that go with it (PID, start and finish times; a sandbox's pod) are kept;
// a container's pod state never goes back either while it names the same
// sandbox. A deleted record stays deleted. Records whose process is gone
// (exited, notready) carry PID 0, as the runtime reports: the kernel may
// have given the old PID to another process.
func Advance(prev, next Record) Record {
	if prev.ID != next.ID {
		return settle(next)
	}
	if next.Partial && !prev.Partial {
		// A record made from a list is never better than one made from a
		// verbose status: keep it, moved on to the later state only.
		prev.State, prev.StartedAt = furthest(prev, next)
		return settle(prev)
	}
	if prev.DeletedAt != nil && next.DeletedAt == nil {
		next.DeletedAt = prev.DeletedAt
	}
	if stateRank(&next) < stateRank(&prev) {
		next.State, next.PID, next.StartedAt, next.FinishedAt = prev.State, prev.PID, prev.StartedAt, prev.FinishedAt
		if next.IsPodSandbox {
			next.Pod, next.PodSource = prev.Pod, prev.PodSource
		}
	}
	if next.StartedAt == nil {
		next.StartedAt = prev.StartedAt // an event's update may not carry it
	}
	if next.CgroupID == 0 {
		next.CgroupID = prev.CgroupID // seen by the cgroup watcher, not the runtime
	}
	if !next.IsPodSandbox && podBehind(prev.Pod, next.Pod) {
		next.Pod, next.PodSource = prev.Pod, prev.PodSource
	}
	return settle(next)
}

// furthest is the later of two records' states and its start time.
func furthest(prev, next Record) (string, *time.Time) {
	if stateRank(&next) > stateRank(&prev) {
		return next.State, cmpOr(next.StartedAt, prev.StartedAt)
	}
	return prev.State, prev.StartedAt
}

func cmpOr(a, b *time.Time) *time.Time {
	if a != nil {
		return a
	}
	return b
}

// podBehind says whether next describes the same sandbox as prev in an
// earlier state (or with no state at all, as a pod read from labels has).
func podBehind(prev, next *Pod) bool {
	if prev == nil || next == nil || prev.SandboxID != next.SandboxID {
		return false
	}
	return sandboxRank(next.State) < sandboxRank(prev.State)
}

// settle clears the PID of a record whose process is gone.
func settle(rec Record) Record {
	if rec.State == "exited" || (rec.IsPodSandbox && rec.State == "notready") {
		rec.PID = 0
	}
	return rec
}

// FollowSandbox returns rec, a container of sandbox sb, with sb's pod: the
// pod state and network a container carries are its sandbox's, whatever
// wrote the sandbox last. It reports false when rec is not sb's container,
// already carries that pod, or carries a later state of it.
func FollowSandbox(rec, sb Record) (Record, bool) {
	if rec.IsPodSandbox || rec.Pod == nil || sb.Pod == nil || rec.Pod.SandboxID != sb.ID || podBehind(rec.Pod, sb.Pod) {
		return rec, false
	}
	// The data is the sandbox's own answer now, unless the container's
	// lookup had to fall back to it: that provenance stays.
	source := rec.PodSource
	if source != PodSourceSandboxCache {
		source = PodSourceSandboxStatus
	}
	if source == rec.PodSource && reflect.DeepEqual(rec.Pod, sb.Pod) {
		return rec, false
	}
	rec.Pod, rec.PodSource = sb.Pod, source
	return rec, true
}
