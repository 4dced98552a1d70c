package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/client"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// latencies is what the benchmark saw, by ID: when its cgroup appeared,
// when the daemon first published its record with its pod, and when it
// published it complete.
type latencies struct {
	mu       sync.Mutex
	cgroupAt map[string]time.Time
	served   map[string]time.Time
	complete map[string]time.Time
	sandbox  map[string]bool
	podOf    map[string]string // container ID -> its sandbox's ID

	pods []createdPod
	ids  map[string]bool // every ID of this run's pods
}

func newLatencies() *latencies {
	return &latencies{cgroupAt: map[string]time.Time{}, served: map[string]time.Time{},
		complete: map[string]time.Time{}, sandbox: map[string]bool{}, podOf: map[string]string{},
		ids: map[string]bool{}}
}

// createAndTime creates the pods one after another while a cgroup watcher
// of its own timestamps each new container cgroup and one watch of the
// daemon's API timestamps each record the daemon publishes.
//
// The watch, not polling, is what times "served": the daemon publishes a
// record to its watchers right after it is cached, so from then on the API
// answers it, and one stream costs the machine next to nothing. Polling
// every ID every 0.2 ms until it was complete (what this program did until
// 2026-12-02) kept dozens of HTTP clients spinning on two shared cores
// while the runtime and the daemon worked, and slowed what it measured
// (BENCHMARKS.md compares both on one machine).
func createAndTime(ctx context.Context, rt runtimeUnderTest, d *daemon, o options) (*latencies, error) {
	lat := newLatencies()
	wctx, cancel := context.WithCancel(ctx)
	watching, streaming := make(chan struct{}), make(chan struct{})
	defer func() { cancel(); <-watching; <-streaming }()
	synced := make(chan struct{})
	var streamErr error
	go func() {
		defer close(streaming)
		once := sync.Once{}
		streamErr = client.New(d.Socket).Watch(wctx, 0, func(ev watch.Event) error {
			switch {
			case ev.Type == watch.Synced:
				once.Do(func() { close(synced) })
			case ev.Record != nil && ev.Record.Pod != nil:
				lat.saw(ev.Record, time.Now())
			}
			return nil
		})
	}()
	select {
	case <-synced:
	case <-streaming:
		return nil, fmt.Errorf("watch the daemon: %w", streamErr)
	}
	w := cgroup.NewWatcher(rt.cgroupDir(), zap.NewNop(), cgroup.WatcherOptions{})
	var runErr error
	go func() {
		defer close(watching)
		runErr = w.Run(wctx, func(ev cgroup.Event) {
			if ev.Kind == cgroup.Added {
				lat.observed(ev.Ref.ContainerID, time.Now())
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
	return lat, lat.waitComplete(ctx, time.Minute, streaming)
}

// observed notes a cgroup's first appearance.
func (l *latencies) observed(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cgroupAt[id]; !ok {
		l.cgroupAt[id] = at
	}
}

func (l *latencies) add(p createdPod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = append(l.pods, p)
	for _, id := range p.ids() {
		l.ids[id] = true
	}
}

// waitComplete waits until every ID of the run was served complete, the
// timeout, or the end of the watch; what is still missing is counted by
// fill.
func (l *latencies) waitComplete(ctx context.Context, timeout time.Duration, streaming <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l.pending() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-streaming:
			return errors.New("the daemon ended its watch stream before every record was complete")
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

// saw notes a record the daemon published with its pod at now: the first
// time it was served, and the first time it was complete (not partial).
func (l *latencies) saw(rec *enrich.Record, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.served[rec.ID]; !ok {
		l.served[rec.ID] = now
		l.sandbox[rec.ID] = rec.IsPodSandbox
		l.podOf[rec.ID] = rec.Pod.SandboxID
	}
	if _, ok := l.complete[rec.ID]; !ok && !rec.Partial {
		l.complete[rec.ID] = now
	}
}

// knownPod says whether a container's sandbox was served before its cgroup
// appeared: the case the 1.5x target is about.
func (l *latencies) knownPod(id string, cgroupAt time.Time) bool {
	at, ok := l.served[l.podOf[id]]
	return ok && at.Before(cgroupAt)
}

// fill writes the run's latencies into r.
func (l *latencies) fill(r *result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ctr, sb, known, done, afterStart []time.Duration
	for id := range l.ids {
		at, seen := l.cgroupAt[id]
		served, ok := l.served[id]
		switch {
		case !seen:
			r.CgroupNotObserved++
		case !ok || l.complete[id].IsZero():
			r.MissedRecords++
		case l.sandbox[id]:
			sb = append(sb, max(0, served.Sub(at)))
		default:
			// The daemon's watcher can see a cgroup, and publish its
			// record, a moment before this program's watcher does.
			ctr = append(ctr, max(0, served.Sub(at)))
			done = append(done, max(0, l.complete[id].Sub(at)))
			if l.knownPod(id, at) {
				known = append(known, max(0, served.Sub(at)))
			}
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
	r.ServedContainer, r.ServedSandbox, r.ServedKnownPod = summarize(ctr), summarize(sb), summarize(known)
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
