package cgroup

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// defaultRescanInterval bounds how long a cgroup missed by inotify (a failed
// watch, a queue overflow) stays unreported.
const defaultRescanInterval = time.Minute

// Kind says whether a container cgroup appeared or went away.
type Kind uint8

// The event kinds.
const (
	// Added means a container cgroup exists that was not reported before.
	Added Kind = iota + 1
	// Removed means a reported container cgroup no longer exists.
	Removed
)

// String returns "added" or "removed", fit for a metric label.
func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// Event is one container cgroup appearing or going away.
type Event struct {
	Kind Kind
	// Path is the container-level cgroup path relative to the watched
	// directory, starting with "/": the path /proc/<pid>/cgroup shows when
	// the watched directory is the hierarchy root.
	Path string
	// Ref is what Path says about the container.
	Ref Ref
	// CgroupID is the inode number of the cgroup's directory when the
	// watched tree is a cgroup v2 hierarchy (what bpf_get_current_cgroup_id
	// returns for the container's processes), read once when the cgroup
	// is seen and repeated on Removed; 0 on a v1 tree.
	CgroupID uint64
}

// Clock makes the rescan ticker. Tests inject a fake one to trigger
// rescans on demand.
type Clock interface {
	NewTicker(d time.Duration) Ticker
}

// Ticker delivers rescan ticks.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// WatcherOptions tune a Watcher. The zero value is ready to use.
type WatcherOptions struct {
	// RescanInterval is the period of the full rescan that catches what
	// inotify missed. Zero or less means one minute.
	RescanInterval time.Duration
	// Clock makes the rescan ticker; nil means the system clock.
	Clock Clock
	// CgroupIDs says the watched directory is a cgroup v2 hierarchy, so
	// each container cgroup's directory inode is its cgroup ID.
	CgroupIDs bool
}

// addWatchFunc is inotify_add_watch(2); tests replace it to make the kernel
// refuse a watch, which is what the rescan exists for.
type addWatchFunc func(fd int, path string, mask uint32) (int, error)

// Watcher reports container cgroups appearing and going away below one
// directory. It walks the tree once, then follows it with inotify, scanning
// each new directory right after watching it (a directory created inside a
// brand new parent fires no event on a watch that does not exist yet), and
// rescans the whole tree periodically and on inotify queue overflow. Only a
// container's own cgroup is reported, once; cgroups nested inside it are
// watched (they may hold nested pods) but not reported.
type Watcher struct {
	dir      string
	log      *zap.Logger
	interval time.Duration
	clock    Clock
	ids      bool
	addWatch addWatchFunc
	ready    chan struct{}
	started  atomic.Bool
}

// NewWatcher returns a watcher of dir, normally a Hierarchy's Dir. It does
// no I/O; Run does.
func NewWatcher(dir string, log *zap.Logger, opts WatcherOptions) *Watcher {
	if opts.RescanInterval <= 0 {
		opts.RescanInterval = defaultRescanInterval
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	return &Watcher{
		dir:      dir,
		log:      log,
		interval: opts.RescanInterval,
		clock:    opts.Clock,
		ids:      opts.CgroupIDs,
		addWatch: unix.InotifyAddWatch,
		ready:    make(chan struct{}),
	}
}

// Ready is closed once Run has watched the whole tree and emitted Added for
// every container that existed when it started.
func (w *Watcher) Ready() <-chan struct{} {
	return w.ready
}

// Run emits Added for every existing container cgroup, then follows the tree
// until ctx is done, and returns nil then. emit is called from Run's
// goroutine, one event at a time; a slow emit delays inotify reading (an
// overflow is recovered by a rescan). Run fails if the directory cannot be
// watched, if inotify fails, or if the directory itself is removed. Run may
// be called once.
func (w *Watcher) Run(ctx context.Context, emit func(Event)) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("cgroup watcher already run")
	}
	s, err := w.open(emit)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.walk(); err != nil {
		return err
	}
	close(w.ready)
	return s.follow(ctx)
}

// systemClock is the Clock of production.
type systemClock struct{}

func (systemClock) NewTicker(d time.Duration) Ticker {
	return systemTicker{t: time.NewTicker(d)}
}

type systemTicker struct{ t *time.Ticker }

func (s systemTicker) C() <-chan time.Time { return s.t.C }
func (s systemTicker) Stop()               { s.t.Stop() }

var _ Clock = systemClock{}
