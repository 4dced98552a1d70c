package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestCache_LRUBoundHoldsAndCountsEvictions(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		inserts  int
	}{
		{name: "below capacity", capacity: 10, inserts: 7},
		{name: "exactly full", capacity: 10, inserts: 10},
		{name: "many times over", capacity: 10, inserts: 1000},
		{name: "capacity one", capacity: 1, inserts: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(WithCapacity(tt.capacity))
			for i := range tt.inserts {
				c.Put(plainRecord(testID(i)))
				if c.Len() > tt.capacity {
					t.Fatalf("Len() = %d after %d inserts, want <= %d", c.Len(), i+1, tt.capacity)
				}
			}
			wantEvictions := max(tt.inserts-tt.capacity, 0)
			if got := c.Evictions(); got != uint64(wantEvictions) {
				t.Errorf("Evictions() = %d, want %d", got, wantEvictions)
			}
			var wantEvicted []string
			for i := range wantEvictions {
				wantEvicted = append(wantEvicted, testID(i))
			}
			for _, id := range wantEvicted {
				if _, err := c.Get(id[:MinPrefixLen]); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(prefix of evicted %s) error = %v, want ErrNotFound", id, err)
				}
			}
			if len(c.byPrefix) != c.Len() {
				t.Errorf("prefix index holds %d keys, want %d", len(c.byPrefix), c.Len())
			}
		})
	}
}

func TestCache_AReadMakesARecordRecentlyUsed(t *testing.T) {
	reads := []struct {
		name string
		read func(c *Cache, n int) bool
	}{
		{name: "Get", read: func(c *Cache, n int) bool { _, err := c.Get(testID(n)); return err == nil }},
		{name: "GetSandbox", read: func(c *Cache, n int) bool { _, ok := c.GetSandbox(testID(n)); return ok }},
		{name: "ByCgroupID", read: func(c *Cache, n int) bool { _, ok := c.ByCgroupID(uint64(1000 + n)); return ok }},
	}
	for _, tt := range reads {
		t.Run(tt.name, func(t *testing.T) {
			c := New(WithCapacity(3))
			for i := range 3 {
				c.Put(sandboxRecord(testID(i), "ns", "pod-"+strconv.Itoa(i)))
				c.CgroupSeen(testID(i), uint64(1000+i))
			}
			// 0 is the least recently written; reading it twice must
			// protect it from the next two evictions, which take 1 then 2.
			for range 2 {
				if !tt.read(c, 0) {
					t.Fatalf("%s(%s) found nothing", tt.name, testID(0))
				}
			}
			c.Put(plainRecord(testID(3)))
			c.Put(plainRecord(testID(4)))
			for i, wantCached := range []bool{true, false, false, true, true} {
				if _, err := c.Get(testID(i)); (err == nil) != wantCached {
					t.Errorf("record %d: cached = %v, want %v", i, err == nil, wantCached)
				}
			}
			// Passed over by the first eviction, 0 counts as used then,
			// before 3 was written: unread since, it goes next.
			c.Put(plainRecord(testID(5)))
			if _, err := c.Get(testID(3)); err != nil {
				t.Errorf("record 3 evicted before record 0, used earlier: %v", err)
			}
			if _, err := c.Get(testID(0)); !errors.Is(err, ErrNotFound) {
				t.Errorf("record 0, least recently used: error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestCache_EvictsDeletedRecordsBeforeLiveOnes(t *testing.T) {
	clock := newFakeClock()
	c := New(WithCapacity(3), WithClock(clock.Now))
	for i := range 3 {
		c.Put(plainRecord(testID(i)))
	}
	c.MarkDeleted(testID(2), clock.Now())
	c.Put(plainRecord(testID(3)))
	for i, want := range []error{nil, nil, ErrNotFound, nil} {
		if _, err := c.Get(testID(i)); !errors.Is(err, want) {
			t.Errorf("Get(record %d) error = %v, want %v", i, err, want)
		}
	}
}

func TestCache_GetResolvesFullIDsAndUniquePrefixes(t *testing.T) {
	c := New()
	for i := range 100 {
		c.Put(plainRecord(testID(i)))
	}
	want := testID(42)
	tests := []struct {
		name  string
		query string
	}{
		{name: "full 64-hex id", query: want},
		{name: "12-char prefix", query: want[:12]},
		{name: "20-char prefix", query: want[:20]},
		{name: "63-char prefix", query: want[:63]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Get(tt.query)
			if err != nil || got.ID != want {
				t.Errorf("Get(%s) = %s, %v; want %s", tt.query, got.ID, err, want)
			}
		})
	}
}

func TestCache_AmbiguousPrefixIsAnErrorNotAGuess(t *testing.T) {
	shared := "abcdef0123456789"
	a := shared + strings.Repeat("a", 48)
	b := shared + strings.Repeat("b", 48)
	c := New()
	c.Put(plainRecord(a))
	c.Put(plainRecord(b))
	tests := []struct {
		name    string
		query   string
		wantID  string
		wantErr error
	}{
		{name: "12-char shared prefix", query: shared[:12], wantErr: ErrAmbiguous},
		{name: "16-char shared prefix", query: shared, wantErr: ErrAmbiguous},
		{name: "one more char disambiguates", query: shared + "a", wantID: a},
		{name: "full id of one", query: b, wantID: b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Get(tt.query)
			if !errors.Is(err, tt.wantErr) || got.ID != tt.wantID {
				t.Fatalf("Get(%s) = %q, %v; want %q, %v", tt.query, got.ID, err, tt.wantID, tt.wantErr)
			}
			if tt.wantErr != nil && !strings.Contains(err.Error(), "2 records") {
				t.Errorf("error %q does not say how many records match", err)
			}
		})
	}
}

func TestCache_PrefixBecomesUniqueWhenTheOtherMatchLeaves(t *testing.T) {
	shared := "0123456789ab"
	a, b := shared+strings.Repeat("a", 52), shared+strings.Repeat("b", 52)
	c := New()
	c.Put(plainRecord(a))
	c.Put(plainRecord(b))
	c.Delete(a)
	if got, err := c.Get(shared); err != nil || got.ID != b {
		t.Errorf("Get(%s) = %s, %v; want %s", shared, got.ID, err, b)
	}
}

func TestCache_PrefixStaysAmbiguousUntilOneMatchIsLeft(t *testing.T) {
	shared := "0123456789ab"
	a, b, d := shared+strings.Repeat("a", 52), shared+strings.Repeat("b", 52), shared+strings.Repeat("d", 52)
	c := New()
	steps := []struct {
		name    string
		change  func()
		wantID  string
		wantErr error
	}{
		{"one record", func() { c.Put(plainRecord(a)) }, a, nil},
		{"three share the prefix", func() { c.Put(plainRecord(b)); c.Put(plainRecord(d)) }, "", ErrAmbiguous},
		{"two left", func() { c.Delete(b) }, "", ErrAmbiguous},
		{"one left", func() { c.Delete(a) }, d, nil},
		{"a second one back", func() { c.Put(plainRecord(b)) }, "", ErrAmbiguous},
		{"none left", func() { c.Delete(b); c.Delete(d) }, "", ErrNotFound},
	}
	for _, st := range steps {
		st.change()
		got, err := c.Get(shared)
		if !errors.Is(err, st.wantErr) || got.ID != st.wantID {
			t.Fatalf("%s: Get(%s) = %q, %v; want %q, %v", st.name, shared, got.ID, err, st.wantID, st.wantErr)
		}
	}
}

func TestCache_NonStandardIDsAreAnswerableByExactID(t *testing.T) {
	c := New()
	c.Put(plainRecord("pod-sandbox-1"))
	c.Put(plainRecord("short"))
	for _, id := range []string{"pod-sandbox-1", "short"} {
		if got, err := c.Get(id); err != nil || got.ID != id {
			t.Errorf("Get(%q) = %q, %v; want the exact record", id, got.ID, err)
		}
		if !c.Delete(id) {
			t.Errorf("Delete(%q) = false", id)
		}
	}
	if c.Len() != 0 || len(c.byPrefix) != 0 {
		t.Errorf("Len = %d, prefix keys = %d; want an empty cache", c.Len(), len(c.byPrefix))
	}
}

func TestCache_MalformedOrUnknownIDIsAnError(t *testing.T) {
	known := testID(1)
	c := New()
	c.Put(plainRecord(known))
	tests := []struct {
		name    string
		query   string
		wantErr error
	}{
		{name: "empty", query: "", wantErr: ErrInvalidID},
		{name: "11 chars", query: known[:11], wantErr: ErrInvalidID},
		{name: "65 chars", query: known + "0", wantErr: ErrInvalidID},
		{name: "upper case", query: strings.ToUpper(known[:12]) + "A", wantErr: ErrInvalidID},
		{name: "not hex", query: "zzzzzzzzzzzz", wantErr: ErrInvalidID},
		{name: "pod name", query: "kube-proxy-abcde", wantErr: ErrInvalidID},
		{name: "unknown 12-char prefix", query: "000000000000", wantErr: ErrNotFound},
		{name: "unknown full id", query: testID(2), wantErr: ErrNotFound},
		{name: "known prefix with wrong tail", query: known[:12] + "zz", wantErr: ErrInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Get(tt.query); !errors.Is(err, tt.wantErr) {
				t.Errorf("Get(%q) error = %v, want %v", tt.query, err, tt.wantErr)
			}
		})
	}
}

func TestCache_DeletedRecordIsAnswerableUntilTheGracePeriodEnds(t *testing.T) {
	const grace = 5 * time.Minute
	tests := []struct {
		name      string
		after     time.Duration
		wantFound bool
	}{
		{name: "right after deletion", after: 0, wantFound: true},
		{name: "just before grace ends", after: grace - time.Nanosecond, wantFound: true},
		{name: "exactly at grace", after: grace, wantFound: true},
		{name: "just after grace", after: grace + time.Nanosecond, wantFound: false},
		{name: "long after", after: time.Hour, wantFound: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := New(WithGracePeriod(grace), WithClock(clock.Now))
			id := testID(7)
			c.Put(plainRecord(id))
			deletedAt := clock.Now()
			if !c.MarkDeleted(id, deletedAt) {
				t.Fatal("MarkDeleted of a cached record returned false")
			}
			clock.Set(deletedAt.Add(tt.after))
			got, err := c.Get(id[:12])
			if !tt.wantFound {
				if !errors.Is(err, ErrNotFound) || c.Len() != 0 {
					t.Errorf("Get error = %v, Len = %d; want ErrNotFound and an empty cache", err, c.Len())
				}
				return
			}
			if err != nil || got.DeletedAt == nil || !got.DeletedAt.Equal(deletedAt) {
				t.Fatalf("Get = %+v, %v; want record with DeletedAt %v", got.DeletedAt, err, deletedAt)
			}
			if got.State != "running" {
				t.Errorf("State = %q, want the last known state kept", got.State)
			}
		})
	}
}

func TestCache_SweepRemovesOnlyExpiredRecords(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	c := New(WithGracePeriod(time.Minute), WithClock(clock.Now))
	for i := range 4 {
		c.Put(plainRecord(testID(i)))
	}
	c.MarkDeleted(testID(0), start)
	c.MarkDeleted(testID(1), start.Add(30*time.Second))
	c.MarkDeleted(testID(2), start.Add(2*time.Minute))
	if n := c.Sweep(start.Add(91 * time.Second)); n != 2 {
		t.Errorf("Sweep removed %d, want 2", n)
	}
	if got := c.Len(); got != 2 {
		t.Errorf("Len() = %d after Sweep, want 2", got)
	}
	for i, wantErr := range []error{ErrNotFound, ErrNotFound, nil, nil} {
		if _, err := c.Get(testID(i)); !errors.Is(err, wantErr) {
			t.Errorf("Get(record %d) error = %v, want %v", i, err, wantErr)
		}
	}
}

func TestCache_MarkDeletedKeepsTheFirstDeletionTime(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now))
	id := testID(1)
	c.Put(plainRecord(id))
	first := clock.Now()
	c.MarkDeleted(id, first)
	rev := c.Revision()
	if !c.MarkDeleted(id, first.Add(time.Minute)) {
		t.Error("second MarkDeleted returned false for a cached record")
	}
	got, _ := c.Get(id)
	if !got.DeletedAt.Equal(first) || c.Revision() != rev {
		t.Errorf("DeletedAt = %v, revision %d -> %d; want %v and no change", got.DeletedAt, rev, c.Revision(), first)
	}
	if c.MarkDeleted(testID(2), first) {
		t.Error("MarkDeleted of an unknown ID returned true")
	}
}

func TestCache_MarkDeletedWithZeroTimeUsesTheClock(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now))
	c.Put(plainRecord(testID(1)))
	c.MarkDeleted(testID(1), time.Time{})
	got, _ := c.Get(testID(1))
	if got.DeletedAt == nil || !got.DeletedAt.Equal(clock.Now()) {
		t.Errorf("DeletedAt = %v, want %v", got.DeletedAt, clock.Now())
	}
}

func TestCache_PutNeverBringsADeletedRecordBack(t *testing.T) {
	at := newFakeClock().Now()
	tests := []struct {
		name        string
		next        enrich.Record
		wantDeleted bool
	}{
		{name: "live record stays deleted", next: plainRecord(testID(1)), wantDeleted: true},
		{name: "deleted record stays deleted", next: func() enrich.Record {
			r := plainRecord(testID(1))
			r.DeletedAt = &at
			return r
		}(), wantDeleted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(WithClock(func() time.Time { return at }))
			c.Put(plainRecord(testID(1)))
			c.MarkDeleted(testID(1), at)
			c.Put(tt.next)
			got, err := c.Get(testID(1))
			if err != nil || (got.DeletedAt != nil) != tt.wantDeleted {
				t.Fatalf("Get = DeletedAt %v, %v; want deleted=%v", got.DeletedAt, err, tt.wantDeleted)
			}
			_, _, deleted := c.Counts()
			if (deleted == 1) != tt.wantDeleted {
				t.Errorf("Counts deleted = %d, want deleted=%v", deleted, tt.wantDeleted)
			}
		})
	}
}

func TestCache_PutIgnoresRecordsWithoutID(t *testing.T) {
	c := New()
	c.Put(enrich.Record{Name: "nameless"})
	if c.Len() != 0 || c.Revision() != 0 {
		t.Errorf("Len = %d, Revision = %d; want nothing stored", c.Len(), c.Revision())
	}
}

func TestCache_DeleteRemovesAtOnce(t *testing.T) {
	c := New()
	c.Put(plainRecord(testID(1)))
	if !c.Delete(testID(1)) || c.Delete(testID(1)) {
		t.Error("Delete should report true once, then false")
	}
	if _, err := c.Get(testID(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
}

func TestCache_CountsSeparateContainersSandboxesAndDeleted(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now))
	sb := sandboxRecord(testID(100), "default", "web")
	c.Put(sb)
	c.Put(sandboxRecord(testID(101), "default", "db"))
	for i := range 3 {
		c.Put(containerRecord(testID(i), sb, "c"))
	}
	c.MarkDeleted(testID(0), clock.Now())
	c.MarkDeleted(testID(101), clock.Now())
	containers, sandboxes, deleted := c.Counts()
	if containers != 2 || sandboxes != 1 || deleted != 2 || c.Len() != 5 {
		t.Errorf("Counts = %d, %d, %d; Len = %d; want 2, 1, 2; 5", containers, sandboxes, deleted, c.Len())
	}
}

func TestCache_GetSandboxAnswersOnlyForSandboxes(t *testing.T) {
	c := New()
	sb := sandboxRecord(testID(100), "default", "web")
	c.Put(sb)
	c.Put(containerRecord(testID(1), sb, "app"))
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{name: "sandbox id", id: sb.ID, want: true},
		{name: "container id", id: testID(1), want: false},
		{name: "sandbox prefix is not exact", id: sb.ID[:12], want: false},
		{name: "unknown", id: testID(2), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.GetSandbox(tt.id)
			if ok != tt.want || (ok && got.ID != sb.ID) {
				t.Errorf("GetSandbox(%s) = %s, %v; want %v", tt.id, got.ID, ok, tt.want)
			}
		})
	}
}

func TestCache_ReturnedRecordsAreNeverChangedByTheCache(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now))
	c.Put(plainRecord(testID(1)))
	before, _ := c.Get(testID(1))
	c.MarkDeleted(testID(1), clock.Now())
	if before.DeletedAt != nil {
		t.Error("MarkDeleted changed a record returned earlier")
	}
	after, _ := c.Get(testID(1))
	if after.DeletedAt == nil {
		t.Error("record read after MarkDeleted has no DeletedAt")
	}
}

func TestCache_IsSafeForConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	c := New(WithCapacity(64), WithGracePeriod(time.Millisecond), WithClock(clock.Now))
	unsubscribe := c.Subscribe(func(Change) {})
	defer unsubscribe()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := testID(w*1000 + i%100)
				c.Put(plainRecord(id))
				_, _ = c.Get(id[:12])
				c.MarkDeleted(id, clock.Now())
				_ = c.List(Filter{IncludeDeleted: true})
				c.Sweep(clock.Now().Add(time.Second))
				_, _, _ = c.Counts()
			}
		})
	}
	wg.Wait()
	if c.Len() > 64 {
		t.Errorf("Len() = %d, want <= 64", c.Len())
	}
}

func TestCache_RunSweepsUntilTheContextIsDone(t *testing.T) {
	clock := newFakeClock()
	c := New(WithGracePeriod(time.Minute), WithClock(clock.Now))
	c.Put(plainRecord(testID(1)))
	c.MarkDeleted(testID(1), clock.Now())
	removed := make(chan struct{}, 1)
	unsubscribe := c.Subscribe(func(ch Change) {
		if ch.Kind == Removed {
			removed <- struct{}{}
		}
	})
	defer unsubscribe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, time.Millisecond)
	}()
	clock.Set(clock.Now().Add(2 * time.Minute))
	select {
	case <-removed:
	case <-time.After(10 * time.Second):
		t.Error("Run did not sweep the expired record")
	}
	cancel()
	<-done
}
