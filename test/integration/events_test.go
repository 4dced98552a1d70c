package integration

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// follow starts the event follower on the stack and returns it, the
// channel its Run result arrives on, and how often it asked for a resync.
func (s *stack) follow() (*lookup.Events, <-chan error, *atomic.Int32) {
	var resyncs atomic.Int32
	ev := lookup.NewEvents(s.engine, s.client, s.m, zap.NewNop(), func() { resyncs.Add(1) }, false)
	return ev, s.run(ev.Run), &resyncs
}

// The record exists from CREATED, before the container's first process
// runs, made from the status the event carries (partial, no status call);
// STARTED asks ContainerStatus once, for the complete record and the init
// process's PID; STOPPED and DELETED change the record from the event alone.
func TestEvents_RecordOnCreatedStatusOnStartedTheRestFromEvents(t *testing.T) {
	rt := fakecri.New()
	rt.SetEvents(fakecri.EventsStream)
	s := newStack(t, rt, stackOptions{})
	_, _, _ = s.follow()
	eventually(t, 5*time.Second, "the follower subscribes", func() bool { return rt.Subscribers() == 1 })

	sb, _ := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop"})
	eventually(t, 5*time.Second, "the sandbox is looked up from its events", func() bool {
		_, ok := s.cache.GetSandbox(sb)
		return ok
	})
	id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "app"})
	eventually(t, 5*time.Second, "the container is looked up on CREATED", func() bool {
		rec, err := s.cache.Get(id)
		return err == nil && rec.State == "created"
	})
	if rec, _ := s.cache.Get(id); !rec.Partial || rec.PID != 0 || rec.StartedAt != nil || rec.Pod == nil || rec.Pod.Name != "web-0" {
		t.Errorf("created record = partial %v, pid %d, started %v, pod %+v; want a partial record with its pod", rec.Partial, rec.PID, rec.StartedAt, rec.Pod)
	}

	rt.StartContainer(id)
	eventually(t, 5*time.Second, "STARTED makes the record running with the runtime's PID", func() bool {
		rec, err := s.cache.Get(id)
		return err == nil && rec.State == "running" && rec.StartedAt != nil && rec.PID == rt.PID(id) && !rec.Partial
	})
	rt.RemoveContainer(id)
	eventually(t, 5*time.Second, "DELETED marks the record deleted", func() bool {
		rec, err := s.cache.Get(id)
		return err == nil && rec.DeletedAt != nil
	})
	if rec, _ := s.cache.Get(id); rec.State != "exited" || rec.PID != 0 {
		t.Errorf("deleted record = state %q pid %d, want exited (from STOPPED) with pid 0", rec.State, rec.PID)
	}

	if got := rt.CallsFor(fakecri.RPCContainerStatus, id); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1: on STARTED, for the complete record", got)
	}
	if got := rt.Calls(fakecri.RPCPodSandboxStatus); got != 1 {
		t.Errorf("PodSandboxStatus calls = %d, want 1", got)
	}
	for kind, want := range map[string]float64{"created": 2, "started": 2, "stopped": 1, "deleted": 1} {
		checkMetric(t, s, want, "cri_enricherd_runtime_events_total", "type", kind)
	}
	checkMetric(t, s, 1, "cri_enricherd_event_source_info", "mode", "events")
	checkMetric(t, s, 1, "cri_enricherd_event_stream_connected")
	if got := rt.Calls(fakecri.RPCGetContainerEvents); got != 1 {
		t.Errorf("GetContainerEvents calls = %d, want 1", got)
	}
}

func TestEvents_FallBackToCgroupsWhenTheRuntimeHasNoStream(t *testing.T) {
	tests := []struct {
		name        string
		mode        fakecri.EventsMode
		within      time.Duration // the follower's own backoff: 1s, then 2s
		wantOpens   int
		wantResyncs int32
	}{
		{"Unimplemented like containerd 1.6", fakecri.EventsUnimplemented, 2 * time.Second, 1, 0},
		{"EOF at once like CRI-O without pod events", fakecri.EventsEOF, 10 * time.Second, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := fakecri.New()
			rt.SetEvents(tt.mode)
			s := newStack(t, rt, stackOptions{})
			ev, done, resyncs := s.follow()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil (the cgroup watcher carries on)", err)
				}
			case <-time.After(tt.within):
				t.Fatalf("Run still following after %v", tt.within)
			}
			if ev.Active() {
				t.Error("follower active without a stream")
			}
			if got := rt.Calls(fakecri.RPCGetContainerEvents); got != tt.wantOpens {
				t.Errorf("GetContainerEvents calls = %d, want %d (no tight reconnect loop)", got, tt.wantOpens)
			}
			if got := resyncs.Load(); got != tt.wantResyncs {
				t.Errorf("resyncs = %d, want %d", got, tt.wantResyncs)
			}
			checkMetric(t, s, 1, "cri_enricherd_event_source_info", "mode", "cgroup")
			checkMetric(t, s, 0, "cri_enricherd_event_source_info", "mode", "events")
			checkMetric(t, s, float64(tt.wantOpens-1), "cri_enricherd_event_stream_reconnects_total")
			checkMetric(t, s, 0, "cri_enricherd_event_stream_connected")
		})
	}
}
