package enrich

import (
	"testing"
	"time"
)

func container(state string, pid int) Record {
	return Record{ID: "c1", State: state, PID: pid, Pod: &Pod{SandboxID: "s1", State: "ready", IP: "10.0.0.1"}, PodSource: PodSourceSandboxStatus}
}

func sandboxRec(state string, pid int, ip string) Record {
	pod := &Pod{SandboxID: "s1", State: state, IP: ip}
	return Record{ID: "s1", State: state, PID: pid, IsPodSandbox: true, Pod: pod, PodSource: PodSourceSandboxStatus}
}

func TestAdvance_StatesOnlyMoveForward(t *testing.T) {
	t0 := time.Unix(100, 0)
	t1 := time.Unix(200, 0)
	exited := container("exited", 0)
	exited.FinishedAt = &t1
	tests := []struct {
		name      string
		prev      Record
		next      Record
		wantState string
		wantPID   int
	}{
		{"created to running", container("created", 0), container("running", 42), "running", 42},
		{"running to exited clears the pid", container("running", 42), container("exited", 42), "exited", 0},
		{"a stale running never undoes exited", exited, container("running", 42), "exited", 0},
		{"a stale created never undoes running", container("running", 42), container("created", 0), "running", 42},
		{"unknown never replaces a known state", container("running", 42), container("unknown", 0), "running", 42},
		{"a known state replaces unknown", container("unknown", 0), container("running", 42), "running", 42},
		{"ready to notready", sandboxRec("ready", 7, "10.0.0.1"), sandboxRec("notready", 7, ""), "notready", 0},
		{"a stale ready never undoes notready", sandboxRec("notready", 0, ""), sandboxRec("ready", 7, "10.0.0.1"), "notready", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prev.StartedAt = &t0
			got := Advance(tt.prev, tt.next)
			if got.State != tt.wantState || got.PID != tt.wantPID {
				t.Errorf("Advance = state %s pid %d, want %s pid %d", got.State, got.PID, tt.wantState, tt.wantPID)
			}
			if got.StartedAt == nil || !got.StartedAt.Equal(t0) {
				t.Errorf("StartedAt = %v, want the earlier record's %v kept", got.StartedAt, t0)
			}
		})
	}
}

func TestAdvance_StaleSandboxAnswerKeepsTheStoppedNetwork(t *testing.T) {
	got := Advance(sandboxRec("notready", 0, ""), sandboxRec("ready", 7, "10.0.0.1"))
	if got.Pod.IP != "" || got.Pod.State != "notready" {
		t.Errorf("pod = ip %q state %q, want the stopped sandbox's empty IP and notready", got.Pod.IP, got.Pod.State)
	}
}

func TestAdvance_ContainersPodStateNeverGoesBack(t *testing.T) {
	prev := container("exited", 0)
	prev.Pod = &Pod{SandboxID: "s1", State: "notready"}
	next := container("exited", 0)
	next.Pod = &Pod{SandboxID: "s1", State: "ready", IP: "10.0.0.1"}
	if got := Advance(prev, next); got.Pod.State != "notready" || got.Pod.IP != "" {
		t.Errorf("pod = %+v, want the later notready pod without IP", got.Pod)
	}
	other := container("running", 5)
	other.Pod = &Pod{SandboxID: "s2", State: "ready", IP: "10.0.0.9"}
	if got := Advance(prev, other); got.Pod.SandboxID != "s2" {
		t.Errorf("pod of another sandbox = %+v, want it taken as it is", got.Pod)
	}
}

func TestAdvance_DeletionIsFinal(t *testing.T) {
	at := time.Unix(300, 0)
	prev := container("exited", 0)
	prev.DeletedAt = &at
	if got := Advance(prev, container("exited", 0)); got.DeletedAt == nil || !got.DeletedAt.Equal(at) {
		t.Errorf("DeletedAt = %v, want %v kept", got.DeletedAt, at)
	}
}

func TestAdvance_FirstWriteSettlesThePID(t *testing.T) {
	if got := Advance(Record{}, container("exited", 42)); got.PID != 0 {
		t.Errorf("PID of a new exited record = %d, want 0", got.PID)
	}
	if got := Advance(Record{}, sandboxRec("notready", 7, "")); got.PID != 0 {
		t.Errorf("PID of a new notready sandbox = %d, want 0", got.PID)
	}
}

func TestFollowSandbox_ContainersCarryTheirSandboxsPod(t *testing.T) {
	stopped := sandboxRec("notready", 0, "")
	tests := []struct {
		name       string
		rec        Record
		sb         Record
		wantFollow bool
		wantSource PodSource
	}{
		{"a stopped sandbox takes its containers' IP away", container("exited", 0), stopped, true, PodSourceSandboxStatus},
		{"a label-only pod gets the sandbox's", func() Record {
			r := container("running", 5)
			r.Pod, r.PodSource = &Pod{SandboxID: "s1"}, PodSourceContainerLabels
			return r
		}(), sandboxRec("ready", 7, "10.0.0.1"), true, PodSourceSandboxStatus},
		{"a fallback keeps its provenance", func() Record {
			r := container("running", 5)
			r.PodSource = PodSourceSandboxCache
			return r
		}(), stopped, true, PodSourceSandboxCache},
		{"the same pod is no change", container("running", 5), sandboxRec("ready", 9, "10.0.0.1"), false, PodSourceSandboxStatus},
		{"another sandbox's container is left alone", func() Record {
			r := container("running", 5)
			r.Pod = &Pod{SandboxID: "s2", State: "ready"}
			return r
		}(), stopped, false, PodSourceSandboxStatus},
		{"a sandbox behind the container's pod is ignored", func() Record {
			r := container("exited", 0)
			r.Pod = &Pod{SandboxID: "s1", State: "notready"}
			return r
		}(), sandboxRec("ready", 7, "10.0.0.1"), false, PodSourceSandboxStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, followed := FollowSandbox(tt.rec, tt.sb)
			if followed != tt.wantFollow || got.PodSource != tt.wantSource {
				t.Fatalf("FollowSandbox = followed %v source %s, want %v %s", followed, got.PodSource, tt.wantFollow, tt.wantSource)
			}
			if followed && got.Pod != tt.sb.Pod {
				t.Errorf("pod = %+v, want the sandbox's own %+v", got.Pod, tt.sb.Pod)
			}
		})
	}
}

func TestAdvance_APartialRecordNeverReplacesACompleteOne(t *testing.T) {
	complete := container("running", 42)
	complete.Privileged = true
	partial := container("created", 0)
	partial.Partial = true
	got := Advance(complete, partial)
	if got.Partial || !got.Privileged || got.PID != 42 || got.State != "running" {
		t.Errorf("Advance(complete, partial) = partial %v privileged %v pid %d state %s, want the complete record kept",
			got.Partial, got.Privileged, got.PID, got.State)
	}
	exited := partial
	exited.State = "exited"
	if got := Advance(complete, exited); got.State != "exited" || got.PID != 0 || got.Partial {
		t.Errorf("a partial record's later state = %s pid %d partial %v, want exited, pid 0, still complete", got.State, got.PID, got.Partial)
	}
	if got := Advance(partial, complete); got.Partial || got.PID != 42 {
		t.Errorf("Advance(partial, complete) = partial %v pid %d, want the complete record", got.Partial, got.PID)
	}
}
