package cache

import (
	"slices"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Filter selects records for List. Zero fields select everything; set fields
// must all match.
type Filter struct {
	// Namespace, PodName and PodUID match the record's pod. Records without
	// pod data never match a non-empty value.
	Namespace string
	PodName   string
	PodUID    string
	// SandboxID matches the sandbox itself and every container in it.
	SandboxID string
	// Labels selects records where, for every key, the container's labels or
	// the pod's labels hold exactly that value.
	Labels map[string]string
	// IncludeDeleted also returns records still within their grace period.
	IncludeDeleted bool
	// ExcludeSandboxes returns containers only.
	ExcludeSandboxes bool
	// Match, if set, must also return true. It is called without the cache
	// lock held, so it may use the cache.
	Match func(enrich.Record) bool
}

func (f *Filter) matches(rec *enrich.Record) bool {
	if (rec.DeletedAt != nil && !f.IncludeDeleted) || (rec.IsPodSandbox && f.ExcludeSandboxes) {
		return false
	}
	if f.Namespace != "" || f.PodName != "" || f.PodUID != "" || f.SandboxID != "" {
		p := rec.Pod
		if p == nil || !matchField(f.Namespace, p.Namespace) || !matchField(f.PodName, p.Name) ||
			!matchField(f.PodUID, p.UID) || !matchField(f.SandboxID, p.SandboxID) {
			return false
		}
	}
	return f.matchLabels(rec)
}

func matchField(want, got string) bool { return want == "" || want == got }

func (f *Filter) matchLabels(rec *enrich.Record) bool {
	for k, want := range f.Labels {
		if got, ok := rec.Labels[k]; ok && got == want {
			continue
		}
		if rec.Pod == nil {
			return false
		}
		if got, ok := rec.Pod.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// List returns the records f selects, sorted by namespace, pod name, name and
// ID. It does not change recency: listing is not use.
func (c *Cache) List(f Filter) []enrich.Record {
	var out []enrich.Record
	c.mu.RLock()
	for e := c.recency.root.next; e != &c.recency.root; e = e.next {
		if f.matches(&e.rec) && !c.expired(e) {
			out = append(out, e.rec)
		}
	}
	c.mu.RUnlock()
	if f.Match != nil {
		out = slices.DeleteFunc(out, func(r enrich.Record) bool { return !f.Match(r) })
	}
	sortRecords(out)
	return out
}

// BySandbox returns the live containers of a sandbox, not the sandbox itself,
// sorted like List. Use List with SandboxID and IncludeDeleted to also get
// deleted ones.
func (c *Cache) BySandbox(sandboxID string) []enrich.Record {
	c.mu.RLock()
	members := c.bySandbox[sandboxID]
	out := make([]enrich.Record, 0, len(members))
	for _, e := range members {
		if !e.deleted() {
			out = append(out, e.rec)
		}
	}
	c.mu.RUnlock()
	sortRecords(out)
	return out
}

// allLocked copies every record, deleted ones within their grace period
// included.
func (c *Cache) allLocked() []enrich.Record {
	out := make([]enrich.Record, 0, len(c.byID))
	for _, e := range c.byID {
		if !c.expired(e) {
			out = append(out, e.rec)
		}
	}
	return out
}

func sortRecords(recs []enrich.Record) {
	slices.SortFunc(recs, func(a, b enrich.Record) int { return enrich.Compare(&a, &b) })
}

// SandboxByIP returns the live, ready sandbox that holds ip now. Two
// sandboxes claim one address only while the stop of the older one has not
// been seen yet: then the newer one holds it, since the runtime's IPAM gave
// the address out again only after the older pod released it.
func (c *Cache) SandboxByIP(ip string) (enrich.Record, bool) {
	c.mu.RLock()
	var found *entry
	for _, e := range c.byIP[ip] {
		if found == nil || newer(&e.rec, &found.rec) {
			found = e
		}
	}
	var rec enrich.Record
	if found != nil {
		rec = found.rec
	}
	c.mu.RUnlock()
	return rec, found != nil
}

func newer(a, b *enrich.Record) bool {
	switch {
	case a.CreatedAt == nil:
		return false
	case b.CreatedAt == nil:
		return true
	}
	return a.CreatedAt.After(*b.CreatedAt)
}
