package cache

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestCache_SubscribersSeeEveryChangeInRevisionOrder(t *testing.T) {
	clock := newFakeClock()
	c := New(WithCapacity(2), WithGracePeriod(time.Minute), WithClock(clock.Now))
	var got []Change
	unsubscribe := c.Subscribe(func(ch Change) { got = append(got, ch) })
	defer unsubscribe()
	a, b, d, e := testID(1), testID(2), testID(3), testID(4)
	steps := []struct {
		name     string
		do       func()
		wantKind []ChangeKind
		wantID   []string
	}{
		{name: "put new", do: func() { c.Put(plainRecord(a)) }, wantKind: []ChangeKind{Added}, wantID: []string{a}},
		{name: "put the same record again is no change", do: func() { c.Put(plainRecord(a)) }},
		{name: "put a changed record", do: func() {
			rec := plainRecord(a)
			rec.Name = "renamed"
			c.Put(rec)
		}, wantKind: []ChangeKind{Updated}, wantID: []string{a}},
		{name: "mark deleted", do: func() { c.MarkDeleted(a, clock.Now()) }, wantKind: []ChangeKind{Deleted}, wantID: []string{a}},
		{name: "mark deleted twice is no change", do: func() { c.MarkDeleted(a, clock.Now()) }},
		{name: "a live record never brings a deleted one back", do: func() { c.Put(plainRecord(a)) }, wantKind: []ChangeKind{Updated}, wantID: []string{a}},
		{name: "second record", do: func() { c.Put(plainRecord(b)) }, wantKind: []ChangeKind{Added}, wantID: []string{b}},
		{name: "eviction comes before the add", do: func() { c.Put(plainRecord(d)) }, wantKind: []ChangeKind{Removed, Added}, wantID: []string{a, d}},
		{name: "put a deleted record over a live one", do: func() {
			rec := plainRecord(d)
			rec.DeletedAt = new(clock.Now())
			c.Put(rec)
		}, wantKind: []ChangeKind{Deleted}, wantID: []string{d}},
		{name: "update", do: func() {
			c.Update(b, func(r enrich.Record) enrich.Record { r.Name = "changed"; return r })
		}, wantKind: []ChangeKind{Updated}, wantID: []string{b}},
		{name: "update to the same record is no change", do: func() {
			c.Update(b, func(r enrich.Record) enrich.Record { return r })
		}},
		{name: "update of an unknown ID is no change", do: func() {
			c.Update(e, func(r enrich.Record) enrich.Record { r.Name = "x"; return r })
		}},
		{name: "delete", do: func() { c.Delete(b) }, wantKind: []ChangeKind{Removed}, wantID: []string{b}},
		{name: "delete unknown is no change", do: func() { c.Delete(b) }},
		{name: "expiry", do: func() {
			c.Sweep(clock.Now().Add(time.Hour))
		}, wantKind: []ChangeKind{Removed}, wantID: []string{d}},
	}
	var rev uint64
	for _, step := range steps {
		got = nil
		step.do()
		if len(got) != len(step.wantKind) {
			t.Fatalf("%s: got %d changes, want %d", step.name, len(got), len(step.wantKind))
		}
		for i, ch := range got {
			rev++
			if ch.Kind != step.wantKind[i] || ch.Record.ID != step.wantID[i] || ch.Revision != rev {
				t.Errorf("%s: change %d = %v %s rev %d, want %v %s rev %d", step.name, i,
					ch.Kind, ch.Record.ID[:12], ch.Revision, step.wantKind[i], step.wantID[i][:12], rev)
			}
		}
	}
	if c.Revision() != rev {
		t.Errorf("Revision() = %d, want %d", c.Revision(), rev)
	}
}

func TestCache_SubscribeSeesOnlyLaterChanges(t *testing.T) {
	c := New()
	c.Put(plainRecord(testID(1)))
	var got []Change
	unsubscribe := c.Subscribe(func(ch Change) { got = append(got, ch) })
	c.Put(plainRecord(testID(2)))
	unsubscribe()
	unsubscribe()
	c.Put(plainRecord(testID(3)))
	if len(got) != 1 || got[0].Record.ID != testID(2) || got[0].Revision != 2 {
		t.Errorf("got %d changes, want only the Added of record 2 at revision 2", len(got))
	}
}

// watchedState is what a watcher rebuilds from a snapshot and changes.
type watchedState map[string]enrich.Record

func (s watchedState) apply(ch Change) {
	if ch.Kind == Removed {
		delete(s, ch.Record.ID)
		return
	}
	s[ch.Record.ID] = ch.Record
}

func (s watchedState) equal(records []enrich.Record) bool {
	if len(s) != len(records) {
		return false
	}
	for _, r := range records {
		w, ok := s[r.ID]
		if !ok || w.Attempt != r.Attempt || (w.DeletedAt == nil) != (r.DeletedAt == nil) {
			return false
		}
	}
	return true
}

func TestCache_SnapshotAndSubscribeMissesNothingUnderConcurrentWriters(t *testing.T) {
	clock := newFakeClock()
	c := New(WithCapacity(50), WithClock(clock.Now))
	write := func(seed uint64, ops int) {
		rng := rand.New(rand.NewPCG(seed, 0))
		for i := range ops {
			id := testID(rng.IntN(80))
			switch rng.IntN(10) {
			case 0:
				c.MarkDeleted(id, clock.Now())
			case 1:
				c.Delete(id)
			case 2:
				c.Sweep(clock.Now().Add(time.Hour))
			default:
				rec := plainRecord(id)
				rec.Attempt = uint32(i)
				c.Put(rec)
			}
		}
	}
	halfway, subscribed := make(chan struct{}), make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			write(uint64(w), 1000)
			if w == 0 {
				// Hold one writer until the watcher is in, so changes
				// certainly follow the snapshot; the others keep racing it.
				close(halfway)
				<-subscribed
			}
			write(uint64(w+10), 2000)
		})
	}
	<-halfway

	// A watcher buffers changes: the callback may run on a writer's
	// goroutine before SnapshotAndSubscribe has even returned.
	var (
		mu         sync.Mutex
		buffered   []Change
		inFlight   atomic.Int32
		concurrent atomic.Bool
	)
	records, rev, unsubscribe := c.SnapshotAndSubscribe(func(ch Change) {
		if inFlight.Add(1) != 1 {
			concurrent.Store(true)
		}
		mu.Lock()
		buffered = append(buffered, ch)
		mu.Unlock()
		inFlight.Add(-1)
	})
	defer unsubscribe()
	close(subscribed)
	writers.Wait()

	final, finalRev, unsubscribeFinal := c.SnapshotAndSubscribe(func(Change) {})
	unsubscribeFinal()
	state := watchedState{}
	for _, r := range records {
		state[r.ID] = r
	}
	mu.Lock()
	defer mu.Unlock()
	if len(buffered) == 0 || uint64(len(buffered)) != finalRev-rev {
		t.Fatalf("got %d changes after revision %d, want %d (up to %d)", len(buffered), rev, finalRev-rev, finalRev)
	}
	for i, ch := range buffered {
		if ch.Revision != rev+uint64(i)+1 {
			t.Fatalf("change %d has revision %d, want %d: out of order or missed", i, ch.Revision, rev+uint64(i)+1)
		}
		state.apply(ch)
	}
	if !state.equal(final) {
		t.Errorf("snapshot at %d plus changes does not rebuild the snapshot at %d", rev, finalRev)
	}
	if concurrent.Load() {
		t.Error("subscriber was called concurrently with itself")
	}
}

func TestCache_SubscriberMayUseTheCacheWithoutDeadlock(t *testing.T) {
	c := New()
	first, second := testID(1), testID(2)
	var kinds []string
	unsubscribe := c.Subscribe(func(ch Change) {
		if _, err := c.Get(ch.Record.ID); err != nil {
			kinds = append(kinds, "get failed")
		}
		kinds = append(kinds, ch.Kind.String()+" "+ch.Record.ID[:4])
		if ch.Record.ID == first {
			c.Put(plainRecord(second)) // delivered after this call returns
		}
	})
	defer unsubscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Put(plainRecord(first))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Put deadlocked with a subscriber that uses the cache")
	}
	want := []string{"added " + first[:4], "added " + second[:4]}
	if !slices.Equal(kinds, want) {
		t.Errorf("subscriber saw %v, want %v", kinds, want)
	}
}

func TestCache_SlowSubscriberDoesNotBlockReadersOrOtherWriters(t *testing.T) {
	c := New()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unsubscribe := c.Subscribe(func(Change) {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	defer unsubscribe()
	var stuck sync.WaitGroup
	stuck.Go(func() { c.Put(plainRecord(testID(1))) })
	<-entered

	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Put(plainRecord(testID(2)))
		_, _ = c.Get(testID(1))
		_ = c.List(Filter{})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("cache blocked while a subscriber was slow")
	}
	close(release)
	stuck.Wait()
}

func TestCache_PanickingSubscriberDoesNotStopLaterDeliveries(t *testing.T) {
	c := New()
	var got []string
	unsubscribe := c.Subscribe(func(ch Change) {
		if ch.Record.ID == testID(1) {
			panic("subscriber bug")
		}
		got = append(got, ch.Record.ID)
	})
	defer unsubscribe()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("subscriber panic did not reach the writer")
			}
		}()
		c.Put(plainRecord(testID(1)))
	}()
	c.Put(plainRecord(testID(2)))
	if !slices.Equal(got, []string{testID(2)}) {
		t.Errorf("after a panic the subscriber saw %d changes, want the next one", len(got))
	}
}

func TestChangeKind_StringIsTheLowercaseName(t *testing.T) {
	tests := []struct {
		kind ChangeKind
		want string
	}{
		{Added, "added"}, {Updated, "updated"}, {Deleted, "deleted"}, {Removed, "removed"}, {ChangeKind(0), "unknown"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("ChangeKind(%d).String() = %q, want %q", tt.kind, got, tt.want)
		}
	}
}

func TestCache_ReadsNeverPublishChangesOnlyWritesDo(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now), WithGracePeriod(time.Minute))
	id := testID(1)
	c.Put(plainRecord(id))
	c.MarkDeleted(id, clock.Now())
	var got []Change
	unsubscribe := c.Subscribe(func(ch Change) { got = append(got, ch) })
	defer unsubscribe()
	clock.Set(clock.Now().Add(2 * time.Minute))
	if _, err := c.Get(id); err == nil {
		t.Fatal("a record past its grace period is still answered")
	}
	c.List(Filter{IncludeDeleted: true})
	c.Counts()
	_, _, unsubscribeSnapshot := c.SnapshotAndSubscribe(func(Change) {})
	unsubscribeSnapshot()
	if len(got) != 0 {
		t.Fatalf("reads published %d changes, want none: a reader may hold another component's lock", len(got))
	}
	if n, _, deleted := c.Counts(); n != 0 || deleted != 0 || c.Len() != 0 {
		t.Errorf("counts after expiry = %d containers, %d deleted, len %d; want nothing", n, deleted, c.Len())
	}
	c.Sweep(clock.Now())
	if len(got) != 1 || got[0].Kind != Removed {
		t.Errorf("Sweep published %v, want one Removed", got)
	}
}
