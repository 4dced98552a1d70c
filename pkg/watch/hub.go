package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Defaults of Options.
const (
	DefaultMaxWatchers = 64
	DefaultBuffer      = 1024
	DefaultReplay      = 4096
)

// Source is the cache as the hub reads it.
type Source interface {
	SnapshotAndSubscribe(fn func(cache.Change)) (records []enrich.Record, rev uint64, unsubscribe func())
}

// Recorder counts what the hub does, for metrics. It is called on the
// cache's notification path and must not block.
type Recorder interface {
	// WatcherDropped is called once for every watcher dropped because its
	// buffer overflowed.
	WatcherDropped()
}

// Options tune a Hub. Zero values take the defaults.
type Options struct {
	// MaxWatchers bounds the watchers served at once.
	MaxWatchers int
	// Buffer is how many events may wait for one watcher before it is
	// dropped.
	Buffer int
	// Replay is how many recent events are kept for resuming watchers.
	Replay int
	// Recorder, if set, is told about dropped watchers.
	Recorder Recorder
	// Now gives the start time that offsets revisions (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	o.MaxWatchers = cmp.Or(max(o.MaxWatchers, 0), DefaultMaxWatchers)
	o.Buffer = cmp.Or(max(o.Buffer, 0), DefaultBuffer)
	o.Replay = cmp.Or(max(o.Replay, 0), DefaultReplay)
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Hub fans one cache subscription out to many watchers. Build it with New
// and Close it on shutdown; all methods are safe for concurrent use.
type Hub struct {
	opts        Options
	base        uint64 // added to every cache revision
	unsubscribe func()
	dropped     atomic.Uint64

	mu       sync.Mutex
	started  bool           // the snapshot of New is loaded
	early    []cache.Change // changes delivered before that
	rev      uint64         // revision of the last change applied
	live     map[string]*enrich.Record
	ring     ring
	watchers map[*Watcher]struct{}
	closed   bool
}

// New subscribes to src and returns a hub holding its current state.
func New(src Source, opts Options) *Hub {
	opts.setDefaults()
	h := &Hub{
		opts:     opts,
		base:     uint64(max(opts.Now().UnixMicro(), 1)),
		live:     make(map[string]*enrich.Record),
		watchers: make(map[*Watcher]struct{}),
	}
	records, rev, unsubscribe := src.SnapshotAndSubscribe(h.notify)
	h.unsubscribe = unsubscribe
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = h.base + rev
	h.ring = ring{buf: make([]Event, opts.Replay), floor: h.rev}
	for i := range records {
		if records[i].DeletedAt == nil {
			h.live[records[i].ID] = &records[i]
		}
	}
	h.started = true
	for _, ch := range h.early {
		if ch.Revision > rev {
			h.applyLocked(ch)
		}
	}
	h.early = nil
	return h
}

// notify is the cache subscriber. It runs on the cache's notification path:
// everything it does is bounded and non-blocking.
func (h *Hub) notify(ch cache.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if !h.started {
		// New has subscribed but not loaded its snapshot yet.
		h.early = append(h.early, ch)
		return
	}
	h.applyLocked(ch)
}

// applyLocked updates the live view and the ring, and offers the event to
// every watcher.
func (h *Hub) applyLocked(ch cache.Change) {
	h.rev = h.base + ch.Revision
	ev, ok := h.translateLocked(ch)
	if !ok {
		return
	}
	h.ring.push(ev)
	for w := range h.watchers {
		select {
		case w.events <- ev:
		default:
			h.dropLocked(w, &TooSlowError{Behind: len(w.events) + 1})
			h.dropped.Add(1)
			if h.opts.Recorder != nil {
				h.opts.Recorder.WatcherDropped()
			}
		}
	}
}

// translateLocked turns a cache change into the event a watcher of live
// records needs, if any, and updates the live view.
func (h *Hub) translateLocked(ch cache.Change) (Event, bool) {
	rec := ch.Record
	_, wasLive := h.live[rec.ID]
	isLive := ch.Kind != cache.Removed && rec.DeletedAt == nil
	var typ EventType
	switch {
	case isLive && wasLive:
		typ = Updated
	case isLive:
		typ = Added
	case wasLive, ch.Kind == cache.Added:
		typ = Deleted
	default:
		return Event{}, false
	}
	if isLive {
		h.live[rec.ID] = &rec
	} else {
		delete(h.live, rec.ID)
	}
	return Event{Type: typ, Revision: h.rev, Record: &rec}, true
}

// dropLocked ends a watcher's stream with err.
func (h *Hub) dropLocked(w *Watcher, err error) {
	delete(h.watchers, w)
	w.err = err
	close(w.done)
}

// Watch starts a watcher. With resume 0 its stream starts with the current
// live records as Added events (revision 0); otherwise with the events after
// revision resume. Either way a Synced event follows. Errors are
// ErrTooManyWatchers, ErrClosed, or wrap ErrRevisionTooOld or
// ErrRevisionUnknown.
func (h *Hub) Watch(resume uint64) (*Watcher, error) {
	h.mu.Lock()
	if err := h.admitLocked(resume); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	w := &Watcher{hub: h, events: make(chan Event, h.opts.Buffer), done: make(chan struct{})}
	h.watchers[w] = struct{}{}
	synced := Event{Type: Synced, Revision: h.rev}
	if resume != 0 {
		w.initial = append(h.ring.since(resume), synced)
		h.mu.Unlock()
		return w, nil
	}
	live := make([]*enrich.Record, 0, len(h.live))
	for _, rec := range h.live {
		live = append(live, rec)
	}
	h.mu.Unlock()
	// Sorting outside the lock keeps the notification path short; the
	// order is cache.List's.
	slices.SortFunc(live, enrich.Compare)
	w.initial = make([]Event, 0, len(live)+1)
	for _, rec := range live {
		w.initial = append(w.initial, Event{Type: Added, Record: rec})
	}
	w.initial = append(w.initial, synced)
	return w, nil
}

func (h *Hub) admitLocked(resume uint64) error {
	switch {
	case h.closed:
		return ErrClosed
	case resume == 0:
	case resume > h.rev:
		return fmt.Errorf("%w: revision %d is newer than the current revision %d", ErrRevisionUnknown, resume, h.rev)
	case resume < h.ring.floor:
		return fmt.Errorf("%w: revision %d is older than the replay window (oldest resumable %d); watch again from revision 0",
			ErrRevisionTooOld, resume, h.ring.floor)
	}
	if len(h.watchers) >= h.opts.MaxWatchers {
		return fmt.Errorf("%w: %d watchers already open", ErrTooManyWatchers, len(h.watchers))
	}
	return nil
}

// Close unsubscribes from the cache and ends every stream with ErrClosed.
// Later Watch calls fail with ErrClosed.
func (h *Hub) Close() {
	h.unsubscribe()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for w := range h.watchers {
		h.dropLocked(w, ErrClosed)
	}
}

// Run closes the hub when ctx is done, so that the API servers can drain:
// an open watch stream would otherwise hold them until their drain timeout.
func (h *Hub) Run(ctx context.Context) error {
	<-ctx.Done()
	h.Close()
	return nil
}

// Watchers returns how many watchers are open.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// Dropped returns how many watchers were dropped for being too slow.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Revision returns the revision of the latest change the hub has seen.
func (h *Hub) Revision() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// errStopped is what Next returns after the watcher's own Close.
var errStopped = errors.New("watcher closed")

// Watcher is one open watch stream. Next is meant for one goroutine; Close
// may be called from any.
type Watcher struct {
	hub     *Hub
	initial []Event    // the current state or the replay, then Synced
	events  chan Event // the bounded buffer the hub fills
	done    chan struct{}
	err     error // set before done is closed
}

// Next returns the next event. It fails with ctx's error, a *TooSlowError
// once the watcher was dropped, or ErrClosed once the hub was closed; a
// failed watcher stays failed.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	if len(w.initial) > 0 {
		ev := w.initial[0]
		w.initial[0] = Event{}
		w.initial = w.initial[1:]
		return ev, nil
	}
	select {
	case <-w.done:
		return Event{}, w.err // events still buffered are moot: the stream has a gap
	default:
	}
	select {
	case ev := <-w.events:
		return ev, nil
	case <-w.done:
		return Event{}, w.err
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close stops the watcher and frees its place. It is idempotent.
func (w *Watcher) Close() {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchers[w]; ok {
		h.dropLocked(w, errStopped)
	}
}
