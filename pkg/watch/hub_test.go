package watch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testID(n int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(n)))
	return hex.EncodeToString(sum[:])
}

func record(n int, name string) enrich.Record {
	return enrich.Record{ID: testID(n), Name: name, State: "running",
		Pod: &enrich.Pod{Namespace: "ns", Name: "pod-" + strconv.Itoa(n)}}
}

func deleted(rec enrich.Record) enrich.Record {
	at := start
	rec.DeletedAt = &at
	return rec
}

func newHub(t *testing.T, c *cache.Cache, opts Options) *Hub {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return start }
	}
	h := New(c, opts)
	t.Cleanup(h.Close)
	return h
}

func watch(t *testing.T, h *Hub, resume uint64) *Watcher {
	t.Helper()
	w, err := h.Watch(resume)
	if err != nil {
		t.Fatalf("Watch(%d): %v", resume, err)
	}
	t.Cleanup(w.Close)
	return w
}

// next reads one event, failing the test if none comes quickly.
func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// untilSynced reads the initial events and returns them and the SYNCED one.
func untilSynced(t *testing.T, w *Watcher) ([]Event, Event) {
	t.Helper()
	var evs []Event
	for {
		ev := next(t, w)
		if ev.Type == Synced {
			return evs, ev
		}
		evs = append(evs, ev)
	}
}

// expectNothing proves no event is waiting.
func expectNothing(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ev, err := w.Next(ctx); err == nil {
		t.Fatalf("unexpected event %s %s", ev.Type, ev.Record.Name)
	}
}

func TestHub_NewWatcherGetsTheLiveRecordsSortedThenSynced(t *testing.T) {
	c := cache.New()
	c.Put(record(2, "b"))
	c.Put(record(1, "a"))
	c.Put(deleted(record(3, "gone")))
	h := newHub(t, c, Options{})
	evs, synced := untilSynced(t, watch(t, h, 0))
	if len(evs) != 2 || evs[0].Record.Name != "a" || evs[1].Record.Name != "b" {
		t.Fatalf("initial events = %v, want ADDED a, b (the deleted record left out)", evs)
	}
	for _, ev := range evs {
		if ev.Type != Added || ev.Revision != 0 {
			t.Errorf("initial event %s rev %d, want ADDED with revision 0", ev.Type, ev.Revision)
		}
	}
	if want := uint64(start.UnixMicro()) + c.Revision(); synced.Revision != want || h.Revision() != want {
		t.Errorf("SYNCED revision %d, hub revision %d, want %d (start offset + cache revision)", synced.Revision, h.Revision(), want)
	}
}

func TestHub_StreamsEachChangeAsTheEventOfTheLiveView(t *testing.T) {
	now := start
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := cache.New(cache.WithClock(clock), cache.WithGracePeriod(time.Minute))
	h := newHub(t, c, Options{})
	w := watch(t, h, 0)
	untilSynced(t, w)
	a, b, d := record(1, "a"), record(2, "b"), record(4, "d")
	tests := []struct {
		name   string
		change func()
		want   EventType // "" means no event
		record string
	}{
		{"new record", func() { c.Put(a) }, Added, "a"},
		{"new version", func() { a.State = "exited"; c.Put(a) }, Updated, "a"},
		{"marked deleted", func() { c.MarkDeleted(a.ID, start) }, Deleted, "a"},
		{"deleted record changed again", func() { c.Put(deleted(a)) }, "", ""},
		{"deleted record expires", func() {
			mu.Lock()
			now = start.Add(time.Hour)
			mu.Unlock()
			c.Sweep(clock())
		}, "", ""},
		{"first seen after it ended", func() { c.Put(deleted(b)) }, Deleted, "b"},
		{"brought back to life", func() { b.State = "running"; c.Put(b) }, Added, "b"},
		{"live record removed at once", func() { c.Delete(b.ID) }, Deleted, "b"},
		{"another new record", func() { c.Put(d) }, Added, "d"},
	}
	var last uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change()
			if tt.want == "" {
				expectNothing(t, w)
				return
			}
			ev := next(t, w)
			if ev.Type != tt.want || ev.Record.Name != tt.record {
				t.Fatalf("event = %s %s, want %s %s", ev.Type, ev.Record.Name, tt.want, tt.record)
			}
			if ev.Revision <= last {
				t.Errorf("revision %d after %d, want increasing", ev.Revision, last)
			}
			last = ev.Revision
		})
	}
}

// view applies a watcher's events the way a client would.
type view map[string]enrich.Record

func (v view) apply(ev Event) {
	switch ev.Type {
	case Added, Updated:
		v[ev.Record.ID] = *ev.Record
	case Deleted:
		delete(v, ev.Record.ID)
	}
}

func TestHub_HubAndWatchersStartedDuringWritesMissNothing(t *testing.T) {
	c := cache.New()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			rec := record(i%300, "v"+strconv.Itoa(i))
			if i%7 == 0 {
				c.MarkDeleted(rec.ID, time.Time{})
				continue
			}
			c.Put(rec)
		}
	}()
	time.Sleep(time.Millisecond)
	h := newHub(t, c, Options{Buffer: 100000}) // subscribes while the cache changes
	var watchers []*Watcher
	for range 20 {
		watchers = append(watchers, watch(t, h, 0))
		time.Sleep(100 * time.Microsecond)
	}
	wg.Wait()
	sentinel := record(9999, "sentinel")
	c.Put(sentinel)
	want := c.List(cache.Filter{})
	for i, w := range watchers {
		v := view{}
		for {
			ev := next(t, w)
			if ev.Type == Added && ev.Record.ID == sentinel.ID {
				break
			}
			v.apply(ev)
		}
		v[sentinel.ID] = sentinel
		if len(v) != len(want) {
			t.Fatalf("watcher %d holds %d records, the cache %d", i, len(v), len(want))
		}
		for _, rec := range want {
			if v[rec.ID].Name != rec.Name {
				t.Fatalf("watcher %d has %s as %q, the cache as %q", i, rec.ID[:12], v[rec.ID].Name, rec.Name)
			}
		}
	}
}

func TestHub_ResumesFromARevisionInTheReplayWindow(t *testing.T) {
	c := cache.New()
	h := newHub(t, c, Options{})
	_, synced := untilSynced(t, watch(t, h, 0))
	c.Put(record(1, "a"))
	c.Put(record(2, "b"))
	c.MarkDeleted(testID(1), time.Time{})

	resumed := watch(t, h, synced.Revision)
	evs, again := untilSynced(t, resumed)
	if len(evs) != 3 || evs[0].Type != Added || evs[1].Type != Added || evs[2].Type != Deleted {
		t.Fatalf("replay = %v, want ADDED a, ADDED b, DELETED a", evs)
	}
	if again.Revision != evs[2].Revision {
		t.Errorf("SYNCED revision %d, want the last change's %d", again.Revision, evs[2].Revision)
	}
	fromMiddle, _ := untilSynced(t, watch(t, h, evs[0].Revision))
	if len(fromMiddle) != 2 || fromMiddle[0].Record.Name != "b" {
		t.Errorf("replay after the first event = %v, want b's ADDED and a's DELETED", fromMiddle)
	}
	c.Put(record(3, "c"))
	if ev := next(t, resumed); ev.Type != Added || ev.Record.Name != "c" {
		t.Errorf("after the replay: %s, want live events (ADDED c)", ev.Type)
	}
}

func TestHub_RefusesRevisionsOutsideTheReplayWindow(t *testing.T) {
	earlier := New(cache.New(), Options{Now: func() time.Time { return start.Add(-time.Hour) }})
	earlier.Close()
	c := cache.New()
	h := newHub(t, c, Options{Replay: 2})
	_, synced := untilSynced(t, watch(t, h, 0))
	for i := range 5 {
		c.Put(record(i, "r"))
	}
	tests := []struct {
		name   string
		resume uint64
		want   error
	}{
		{"older than the window", synced.Revision, ErrRevisionTooOld},
		{"from an earlier run of the daemon", earlier.Revision() + 5, ErrRevisionTooOld},
		{"newer than any revision", h.Revision() + 1, ErrRevisionUnknown},
		{"oldest revision still in the window", h.Revision() - 2, nil},
		{"current revision", h.Revision(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := h.Watch(tt.resume)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Watch(%d) error = %v, want %v", tt.resume, err, tt.want)
			}
			if w != nil {
				w.Close()
			}
		})
	}
}

type countingRecorder struct{ n atomic.Int64 }

func (r *countingRecorder) WatcherDropped() { r.n.Add(1) }

func TestHub_DropsAWatcherThatNeverReadsAndNeverBlocksTheCache(t *testing.T) {
	const buffer = 8
	rec := &countingRecorder{}
	c := cache.New()
	h := newHub(t, c, Options{Buffer: buffer, Recorder: rec})
	stuck := watch(t, h, 0) // never read while the cache changes

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			c.Put(record(i, "r"))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("cache Puts blocked behind a watcher that does not read")
	}
	if n := len(stuck.events); n > buffer {
		t.Errorf("stuck watcher buffers %d events, want at most %d", n, buffer)
	}
	untilSynced(t, stuck) // the initial state is not buffered and is still readable
	_, err := stuck.Next(context.Background())
	var slow *TooSlowError
	if !errors.As(err, &slow) || slow.Behind != buffer+1 || err.Error() != "watcher too slow: 9 events behind" {
		t.Errorf("stuck watcher error = %v, want too slow, %d events behind", err, buffer+1)
	}
	if h.Watchers() != 0 || h.Dropped() != 1 || rec.n.Load() != 1 {
		t.Errorf("watchers %d, dropped %d, recorded %d; want none left open and 1 dropped", h.Watchers(), h.Dropped(), rec.n.Load())
	}
	if _, err := h.Watch(0); err != nil {
		t.Errorf("a new watcher after the drop: %v", err)
	}
}

func TestHub_EnforcesMaxWatchers(t *testing.T) {
	h := newHub(t, cache.New(), Options{MaxWatchers: 2})
	first := watch(t, h, 0)
	watch(t, h, 0)
	if _, err := h.Watch(0); !errors.Is(err, ErrTooManyWatchers) {
		t.Fatalf("third watcher: err = %v, want ErrTooManyWatchers", err)
	}
	first.Close()
	first.Close()
	watch(t, h, 0)
	if h.Watchers() != 2 {
		t.Errorf("Watchers() = %d, want 2", h.Watchers())
	}
}

func TestHub_CloseEndsEveryStream(t *testing.T) {
	c := cache.New()
	h := New(c, Options{})
	w := watch(t, h, 0)
	untilSynced(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := w.Next(ctx); errc <- err }()
	h.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
	cancel()
	if _, err := h.Watch(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
	c.Put(record(1, "a")) // no subscriber left: must not panic or block
	if h.Watchers() != 0 {
		t.Errorf("Watchers() = %d after Close, want 0", h.Watchers())
	}
}

func TestWatcher_NextStopsWithItsContext(t *testing.T) {
	h := newHub(t, cache.New(), Options{})
	w := watch(t, h, 0)
	untilSynced(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context = %v, want context.Canceled", err)
	}
}

// racingSource delivers changes from inside SnapshotAndSubscribe, as the
// cache does when another writer publishes before New has loaded the
// snapshot.
type racingSource struct{ changes []cache.Change }

func (s racingSource) SnapshotAndSubscribe(fn func(cache.Change)) ([]enrich.Record, uint64, func()) {
	for _, ch := range s.changes {
		fn(ch)
	}
	return []enrich.Record{record(1, "a")}, 5, func() {}
}

func TestHub_KeepsChangesDeliveredBeforeItsSnapshotIsLoaded(t *testing.T) {
	src := racingSource{changes: []cache.Change{
		{Kind: cache.Updated, Record: record(1, "a-stale"), Revision: 5}, // already in the snapshot
		{Kind: cache.Added, Record: record(2, "b"), Revision: 6},
	}}
	h := New(src, Options{Now: func() time.Time { return start }})
	defer h.Close()
	evs, synced := untilSynced(t, watch(t, h, 0))
	if len(evs) != 2 || evs[0].Record.Name != "a" || evs[1].Record.Name != "b" {
		t.Errorf("initial state %v, want a from the snapshot and b from the early change", evs)
	}
	if want := uint64(start.UnixMicro()) + 6; synced.Revision != want {
		t.Errorf("SYNCED revision %d, want %d", synced.Revision, want)
	}
}
