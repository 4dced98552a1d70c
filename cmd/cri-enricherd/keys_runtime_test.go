package main

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// podWith adds a pod named name with n containers to rt.
func podWith(rt *fakecri.Runtime, name string, n int) (sandboxID string, containerIDs []string) {
	spec := fakecri.PodSpec{Name: name, Namespace: "shop"}
	for i := range n {
		spec.Containers = append(spec.Containers, fakecri.ContainerSpec{Name: fmt.Sprintf("c%d", i)})
	}
	return rt.AddPod(spec)
}

// statusCalls counts the status RPCs rt was asked, the calls a lookup makes.
func statusCalls(rt *fakecri.Runtime) int {
	return rt.Calls(fakecri.RPCContainerStatus) + rt.Calls(fakecri.RPCPodSandboxStatus)
}

func podNames(d *runningDaemon) map[string]bool {
	names := map[string]bool{}
	for _, r := range d.records("") {
		if r.Pod != nil {
			names[r.Pod.Name] = true
		}
	}
	return names
}

func TestDaemon_RuntimeEndpointNamesTheRuntimeAsked(t *testing.T) {
	t.Parallel()
	a, b := fakecri.New(), fakecri.New()
	podWith(a, "pod-a", 1)
	podWith(b, "pod-b", 1)
	endpoints := map[string]string{"pod-a": a.Start(t), "pod-b": b.Start(t)}
	for _, want := range []string{"pod-a", "pod-b"} {
		t.Run(want, func(t *testing.T) {
			d := newHost(t).start(endpoints[want], settings{"runtime.endpoint": endpoints[want]})
			d.waitReady()
			if got := podNames(d); len(got) != 1 || !got[want] {
				t.Errorf("runtime.endpoint %s: pods %v, want only %s", endpoints[want], got, want)
			}
		})
	}
}

func TestDaemon_RuntimeTimeoutBoundsEachCRICall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		timeout      string
		wantDeadline bool
	}{
		{"100ms", true}, // shorter than the runtime's 1s answer
		{"10s", false},
	}
	for _, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			_, ids := podWith(rt, "web-0", 1)
			rt.Delay(fakecri.RPCContainerStatus, time.Second)
			d := newHost(t).start(rt.Start(t), settings{"runtime.timeout": tt.timeout, "runtime.max_retries": "0"})
			d.waitReady()
			deadline := d.metric("cri_enricherd_cri_requests_total", `rpc="ContainerStatus"`, `code="DeadlineExceeded"`)
			_, cached := d.record(ids[0])
			if (deadline > 0) != tt.wantDeadline || cached == tt.wantDeadline {
				t.Errorf("runtime.timeout %s against a 1s ContainerStatus: %v DeadlineExceeded, record cached %v; want deadline %v",
					tt.timeout, deadline, cached, tt.wantDeadline)
			}
		})
	}
}

func TestDaemon_RuntimeConnectTimeoutBoundsTheConnectionAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		connect string
		want    string // the code of the first Version against a socket that never answers
	}{
		// The attempt gives up before the call's own 900ms deadline.
		{"100ms", "Unavailable"},
		{"30s", "DeadlineExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.connect, func(t *testing.T) {
			t.Parallel()
			d := newHost(t).start(fakecri.Silent(t), settings{
				"runtime.connect_timeout": tt.connect, "runtime.timeout": "900ms", "runtime.bootstrap_timeout": "30s",
			})
			var first string
			eventually(t, 10*time.Second, "a Version call is answered", func() bool {
				s := d.scrape()
				for _, code := range []string{"Unavailable", "DeadlineExceeded"} {
					if s.Sum("cri_enricherd_cri_requests_total", `rpc="Version"`, `code="`+code+`"`) > 0 {
						first = code
						return true
					}
				}
				return false
			})
			if first != tt.want {
				t.Errorf("runtime.connect_timeout %s: first Version ended %s, want %s", tt.connect, first, tt.want)
			}
		})
	}
}

func TestDaemon_RuntimeMaxConcurrencyBoundsCallsInFlight(t *testing.T) {
	t.Parallel()
	for _, n := range []int32{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			podWith(rt, "web-0", 6)
			var inFlight, peak atomic.Int32
			release := make(chan struct{})
			rt.Inject(fakecri.RPCContainerStatus, func(string) error {
				raise(&peak, inFlight.Add(1))
				<-release
				inFlight.Add(-1)
				return nil
			})
			endpoint := rt.Start(t)
			t.Cleanup(func() { close(release) }) // before the fake stops: it waits for its handlers
			newHost(t).start(endpoint, settings{"runtime.max_concurrency": fmt.Sprint(n), "runtime.timeout": "30s"})
			eventually(t, 10*time.Second, fmt.Sprintf("%d ContainerStatus calls in flight", n), func() bool { return inFlight.Load() >= n })
			time.Sleep(quietFor) // room for a call beyond the bound, if the daemon made one
			if got := peak.Load(); got != n {
				t.Errorf("runtime.max_concurrency %d: the runtime saw %d ContainerStatus calls at once", n, got)
			}
		})
	}
}

// raise sets peak to n if n is higher.
func raise(peak *atomic.Int32, n int32) {
	for p := peak.Load(); n > p; p = peak.Load() {
		if peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func TestDaemon_RuntimeRateLimitPacesLookups(t *testing.T) {
	t.Parallel()
	const lookups = 6 // one PodSandboxStatus and five ContainerStatus
	t.Run("0 is no limit", func(t *testing.T) {
		t.Parallel()
		rt := fakecri.New()
		podWith(rt, "web-0", lookups-1)
		newHost(t).start(rt.Start(t), settings{"runtime.rate_limit": "0"})
		eventually(t, 10*time.Second, "every lookup asked", func() bool { return statusCalls(rt) >= lookups })
	})
	t.Run("0.5 per second", func(t *testing.T) {
		t.Parallel()
		rt := fakecri.New()
		podWith(rt, "web-0", lookups-1)
		start := time.Now()
		newHost(t).start(rt.Start(t), settings{"runtime.rate_limit": "0.5"})
		eventually(t, 10*time.Second, "the first lookup asked", func() bool { return statusCalls(rt) >= 1 })
		time.Sleep(quietFor)
		// A bucket of one token refilled at 0.5/s allows at most this many
		// calls since the daemon started, however slow the machine.
		allowed := 1 + int(0.5*time.Since(start).Seconds())
		if got := statusCalls(rt); got > allowed || got >= lookups {
			t.Errorf("runtime.rate_limit 0.5: %d status calls %v after start, want at most %d", got, time.Since(start), allowed)
		}
	})
}

func TestDaemon_RuntimeMaxRetriesRetriesAFailingCallThatOften(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			_, ids := podWith(rt, "web-0", 1)
			rt.Inject(fakecri.RPCContainerStatus, fakecri.Fail(codes.Unavailable, ids[0]))
			d := newHost(t).start(rt.Start(t), settings{
				"runtime.max_retries": fmt.Sprint(n), "runtime.retry_base": "1ms", "runtime.retry_max": "1ms",
			})
			d.waitReady() // the bootstrap waits for its lookups to finish
			calls := rt.CallsFor(fakecri.RPCContainerStatus, ids[0])
			retries := d.metric("cri_enricherd_lookup_retries_total", `rpc="ContainerStatus"`)
			if calls != n+1 || retries != float64(n) {
				t.Errorf("runtime.max_retries %d: %d ContainerStatus calls, %v retries counted; want %d and %d", n, calls, retries, n+1, n)
			}
		})
	}
}

func TestDaemon_RuntimeRetryBaseAndRetryMaxSpaceTheRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings settings
		// calls is what a failing container is asked: all of them soon,
		// or, when wantAll is false, fewer within the quiet window.
		calls   int
		wantAll bool
	}{
		{"short retry_base retries at once", settings{"runtime.max_retries": "1", "runtime.retry_base": "1ms", "runtime.retry_max": "1ms"}, 2, true},
		{"long retry_base waits", settings{"runtime.max_retries": "1", "runtime.retry_base": "1h", "runtime.retry_max": "1h"}, 2, false},
		// Doubling from 1ms, 20 retries need over 500s unless retry_max caps them.
		{"short retry_max caps the doubling", settings{"runtime.max_retries": "20", "runtime.retry_base": "1ms", "runtime.retry_max": "2ms"}, 21, true},
		{"long retry_max lets it double", settings{"runtime.max_retries": "20", "runtime.retry_base": "1ms", "runtime.retry_max": "1h"}, 21, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			_, ids := podWith(rt, "web-0", 1)
			rt.Inject(fakecri.RPCContainerStatus, fakecri.Fail(codes.Unavailable, ids[0]))
			newHost(t).start(rt.Start(t), tt.settings)
			calls := func() int { return rt.CallsFor(fakecri.RPCContainerStatus, ids[0]) }
			if tt.wantAll {
				eventually(t, 10*time.Second, fmt.Sprintf("%d ContainerStatus calls", tt.calls), func() bool { return calls() >= tt.calls })
				return
			}
			eventually(t, 10*time.Second, "the first ContainerStatus call", func() bool { return calls() >= 1 })
			time.Sleep(quietFor)
			if got := calls(); got >= tt.calls {
				t.Errorf("%v: %d ContainerStatus calls within %v, want fewer than %d", tt.settings, got, quietFor, tt.calls)
			}
		})
	}
}

func TestDaemon_RuntimeBootstrapTimeoutEndsASyncThatHangs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bootstrap string
		wantFail  bool
	}{
		{"200ms", true},
		{"30s", false},
	}
	for _, tt := range tests {
		t.Run(tt.bootstrap, func(t *testing.T) {
			t.Parallel()
			d := newHost(t).start(fakecri.Silent(t), settings{
				"runtime.bootstrap_timeout": tt.bootstrap, "runtime.timeout": "30s", "runtime.connect_timeout": "30s",
			})
			failed := func() bool { return d.metric("cri_enricherd_relists_total", `result="error"`) > 0 }
			if tt.wantFail {
				eventually(t, 10*time.Second, "the bootstrap fails at its deadline", failed)
				return
			}
			time.Sleep(quietFor)
			if failed() {
				t.Errorf("runtime.bootstrap_timeout %s: the bootstrap failed within %v", tt.bootstrap, quietFor)
			}
		})
	}
}

func TestDaemon_RuntimeRelistIntervalPacesRelists(t *testing.T) {
	t.Parallel()
	relists := func(d *runningDaemon) float64 { return d.metric("cri_enricherd_relists_total", `result="ok"`) }
	t.Run("100ms", func(t *testing.T) {
		t.Parallel()
		rt := fakecri.New()
		podWith(rt, "web-0", 1)
		d := newHost(t).start(rt.Start(t), settings{"runtime.relist_interval": "100ms"})
		eventually(t, 10*time.Second, "three relists after the bootstrap", func() bool { return relists(d) >= 4 })
	})
	t.Run("1h", func(t *testing.T) {
		t.Parallel()
		rt := fakecri.New()
		podWith(rt, "web-0", 1)
		d := newHost(t).start(rt.Start(t), settings{"runtime.relist_interval": "1h"})
		d.waitReady()
		time.Sleep(quietFor)
		if got := relists(d); got != 1 {
			t.Errorf("runtime.relist_interval 1h: %v syncs within %v of the bootstrap, want the bootstrap alone", got, quietFor)
		}
	})
}

func TestDaemon_RuntimeEventsChoosesTheEventStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    string
		runtime fakecri.EventsMode
		check   func(t *testing.T, d *runningDaemon, rt *fakecri.Runtime)
	}{
		{"off never opens the stream", "off", fakecri.EventsStream, func(t *testing.T, d *runningDaemon, rt *fakecri.Runtime) {
			d.waitReady()
			time.Sleep(quietFor)
			if n := rt.Calls(fakecri.RPCGetContainerEvents); n != 0 || d.metric("cri_enricherd_event_source_info", `mode="cgroup"`) != 1 {
				t.Errorf("runtime.events off: %d GetContainerEvents calls, event source %v", n, d.scrape().Sum("cri_enricherd_event_source_info"))
			}
		}},
		{"auto follows a runtime's stream", "auto", fakecri.EventsStream, func(t *testing.T, d *runningDaemon, rt *fakecri.Runtime) {
			eventually(t, 10*time.Second, "the event stream is open and counted connected", func() bool {
				return rt.Subscribers() == 1 && d.metric("cri_enricherd_event_stream_connected") == 1
			})
		}},
		{"auto runs without a stream", "auto", fakecri.EventsUnimplemented, func(t *testing.T, d *runningDaemon, rt *fakecri.Runtime) {
			d.waitReady()
			eventually(t, 10*time.Second, "the cgroup watcher alone feeds lookups", func() bool {
				return rt.Calls(fakecri.RPCGetContainerEvents) > 0 && d.metric("cri_enricherd_event_source_info", `mode="cgroup"`) == 1
			})
		}},
		{"on refuses to run without a stream", "on", fakecri.EventsUnimplemented, func(t *testing.T, d *runningDaemon, rt *fakecri.Runtime) {
			if err := d.exited(10 * time.Second); !errors.Is(err, lookup.ErrNoEvents) {
				t.Errorf("runtime.events on against a runtime without events: serve returned %v, want %v", err, lookup.ErrNoEvents)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			rt.SetEvents(tt.runtime)
			podWith(rt, "web-0", 1)
			d := newHost(t).start(rt.Start(t), settings{"runtime.events": tt.mode})
			tt.check(t, d, rt)
		})
	}
}

func TestDaemon_RuntimeContainerdEventsKnowsAContainerBeforeItsCgroup(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New() // CRI events Unimplemented, like containerd 1.6
			rt.SetContainerdEvents(true)
			d := newHost(t).start(rt.Start(t), settings{"runtime.containerd_events": fmt.Sprint(on)})
			d.waitReady()
			if on {
				eventually(t, 10*time.Second, "containerd's events feed lookups", func() bool {
					return rt.Calls(fakecri.RPCSubscribe) == 1 && d.metric("cri_enricherd_event_source_info", `mode="containerd"`) == 1
				})
			}
			// No cgroup is ever made: only containerd's events tell.
			sb, _ := rt.AddPod(fakecri.PodSpec{Name: "web-0"})
			id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "app"})
			if !on {
				time.Sleep(quietFor)
				if _, ok := d.record(id); ok || rt.Calls(fakecri.RPCSubscribe) != 0 {
					t.Errorf("runtime.containerd_events false: record served %v, %d subscriptions; want none", ok, rt.Calls(fakecri.RPCSubscribe))
				}
				return
			}
			eventually(t, 10*time.Second, "the created container's record, before it started", func() bool {
				r, ok := d.record(id)
				return ok && r.State == "created" && r.Pod != nil && r.Pod.Name == "web-0"
			})
			if n := rt.CallsFor(fakecri.RPCContainerStatus, id); n != 0 {
				t.Errorf("created container: %d ContainerStatus calls before it started, want 0", n)
			}
			rt.StartContainer(id)
			eventually(t, 10*time.Second, "the started container's record with its PID", func() bool {
				r, ok := d.record(id)
				return ok && r.State == "running" && r.PID == rt.PID(id) && !r.Partial
			})
			if n := rt.CallsFor(fakecri.RPCContainerStatus, id); n != 1 {
				t.Errorf("started container: %d ContainerStatus calls, want 1", n)
			}
			if got := d.metric("cri_enricherd_containerd_events_total", `topic="task_start"`); got < 2 {
				t.Errorf("containerd_events_total{topic=task_start} = %v, want >= 2 (sandbox and container)", got)
			}
		})
	}
}
