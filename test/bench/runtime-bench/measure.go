package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
)

// latencies is what the pollers saw, by ID: when its cgroup appeared, when
// the API first served it with its pod, and when it served it complete.
type latencies struct {
	mu       sync.Mutex
	cgroupAt map[string]time.Time
	served   map[string]time.Time
	complete map[string]time.Time
	// knownPod are the containers whose sandbox was already served when
	// their cgroup appeared: the case the 1.5x target is about.
	knownPod []time.Duration
	sandbox  map[string]bool

	pods []createdPod
	ids  map[string]bool // every ID of this run's pods
}

func newLatencies() *latencies {
	return &latencies{cgroupAt: map[string]time.Time{}, served: map[string]time.Time{},
		complete: map[string]time.Time{}, sandbox: map[string]bool{}, ids: map[string]bool{}}
}

// createAndTime creates the pods one after another while a cgroup watcher
// of its own timestamps each new container cgroup and starts a poller for
// it. On a shared host other work's cgroups are polled too (their IDs are
// not known until the runtime answers), so it waits for this run's IDs
// only and then stops the rest.
func createAndTime(ctx context.Context, rt runtimeUnderTest, d *daemon, o options) (*latencies, error) {
	lat := newLatencies()
	wctx, cancel := context.WithCancel(ctx)
	var polls sync.WaitGroup
	watching := make(chan struct{})
	// The watcher stops before the pollers are waited for: it adds them.
	defer func() { cancel(); <-watching; polls.Wait() }()
	w := cgroup.NewWatcher(rt.cgroupDir(), zap.NewNop(), cgroup.WatcherOptions{})
	var runErr error
	go func() {
		defer close(watching)
		runErr = w.Run(wctx, func(ev cgroup.Event) {
			if ev.Kind != cgroup.Added {
				return
			}
			id, at := ev.Ref.ContainerID, time.Now()
			if lat.observed(id, at) {
				polls.Add(1)
				go func() { defer polls.Done(); lat.poll(wctx, d, id, at) }()
			}
		})
	}()
	select {
	case <-w.Ready():
	case <-watching:
		return nil, fmt.Errorf("watch %s: %w", rt.cgroupDir(), runErr)
	}
	for p := range o.pods {
		pod, err := rt.runPod(ctx, p, o.perPod)
		if err != nil {
			return nil, err
		}
		lat.add(pod)
	}
	return lat, lat.waitComplete(ctx, time.Minute)
}

// observed notes a cgroup's first appearance and reports whether it is new.
func (l *latencies) observed(id string, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cgroupAt[id]; ok {
		return false
	}
	l.cgroupAt[id] = at
	return true
}

func (l *latencies) add(p createdPod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = append(l.pods, p)
	for _, id := range p.ids() {
		l.ids[id] = true
	}
}

// waitComplete waits until every ID of the run was served complete, or the
// timeout; what is still missing is counted by fill.
func (l *latencies) waitComplete(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l.pending() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (l *latencies) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id := range l.ids {
		if _, ok := l.complete[id]; !ok {
			n++
		}
	}
	return n
}

// poll asks the API for one ID every 0.2 ms until it serves the record
// with its pod, and then until it serves it complete (not partial).
func (l *latencies) poll(ctx context.Context, d *daemon, id string, since time.Time) {
	deadline := since.Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if rec, ok := d.served(id); ok && l.saw(id, since, rec.IsPodSandbox, rec.Pod.SandboxID, !rec.Partial) {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// saw records a served record and reports whether it was complete.
func (l *latencies) saw(id string, since time.Time, isSandbox bool, sandboxID string, complete bool) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.served[id]; !ok {
		l.served[id] = now
		l.sandbox[id] = isSandbox
		if at, ok := l.served[sandboxID]; !isSandbox && ok && at.Before(since) {
			l.knownPod = append(l.knownPod, now.Sub(since))
		}
	}
	if complete {
		l.complete[id] = now
	}
	return complete
}

// fill writes the run's latencies into r.
func (l *latencies) fill(r *result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ctr, sb, done, afterStart []time.Duration
	for id := range l.ids {
		at, seen := l.cgroupAt[id]
		served, ok := l.served[id]
		switch {
		case !seen:
			r.CgroupNotObserved++
		case !ok || l.complete[id].IsZero():
			r.MissedRecords++
		case l.sandbox[id]:
			sb = append(sb, served.Sub(at))
		default:
			ctr = append(ctr, served.Sub(at))
			done = append(done, l.complete[id].Sub(at))
		}
	}
	for _, p := range l.pods {
		for i, id := range p.containers {
			if c, ok := l.complete[id]; ok {
				// The record can be complete before StartContainer's
				// answer reaches the benchmark (an event, a List).
				afterStart = append(afterStart, max(0, c.Sub(p.started[i])))
			}
		}
	}
	r.ServedContainer, r.ServedSandbox, r.ServedKnownPod = summarize(ctr), summarize(sb), summarize(l.knownPod)
	r.CompleteContainer, r.CompleteAfter = summarize(done), summarize(afterStart)
	r.RunPodSandbox = summarize(l.runSandboxes())
}

func (l *latencies) runSandboxes() []time.Duration {
	var ds []time.Duration
	for _, p := range l.pods {
		ds = append(ds, p.runSandbox)
	}
	return ds
}
