package cache

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// MinPrefixLen is the shortest ID prefix Get accepts. It matches the short ID
// that crictl and docker print.
const MinPrefixLen = id.ShortLen

// sandboxOf returns the sandbox a container belongs to, or "" for sandboxes
// themselves and for containers without pod data.
func sandboxOf(rec *enrich.Record) string {
	if rec.IsPodSandbox || rec.Pod == nil {
		return ""
	}
	return rec.Pod.SandboxID
}

// claimedIPs are the addresses a live, ready sandbox holds now. A stopped
// sandbox holds none: its IP may already belong to another pod.
func claimedIPs(rec *enrich.Record) []string {
	if !rec.IsPodSandbox || rec.DeletedAt != nil || rec.State != "ready" || rec.Pod == nil || rec.Pod.IP == "" {
		return nil
	}
	return append([]string{rec.Pod.IP}, rec.Pod.AdditionalIPs...)
}

// indexIdentity adds e to the indexes that depend only on its ID. Nearly
// every prefix belongs to one record, so byPrefix maps it to that entry and
// only prefixes several records share get a list in prefixClashes: a list
// per record cost about 30 bytes of heap per cached record (BENCHMARKS.md).
func (c *Cache) indexIdentity(e *entry) {
	c.byID[e.rec.ID] = e
	if len(e.rec.ID) < MinPrefixLen {
		return
	}
	key := e.rec.ID[:MinPrefixLen]
	if list, ok := c.prefixClashes[key]; ok {
		c.prefixClashes[key] = append(list, e)
		return
	}
	if other, ok := c.byPrefix[key]; ok {
		delete(c.byPrefix, key)
		c.prefixClashes[key] = []*entry{other, e}
		return
	}
	c.byPrefix[key] = e
}

func (c *Cache) unindexIdentity(e *entry) {
	delete(c.byID, e.rec.ID)
	if len(e.rec.ID) < MinPrefixLen {
		return
	}
	key := e.rec.ID[:MinPrefixLen]
	list, ok := c.prefixClashes[key]
	if !ok {
		if c.byPrefix[key] == e {
			delete(c.byPrefix, key)
		}
		return
	}
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 1 {
		delete(c.prefixClashes, key)
		c.byPrefix[key] = list[0]
		return
	}
	c.prefixClashes[key] = list
}

// findLocked resolves a full ID or a unique prefix. An exact match always
// wins, which also keeps runtimes with non-hex IDs answerable by full ID.
func (c *Cache) findLocked(idOrPrefix string) (*entry, error) {
	if e, ok := c.byID[idOrPrefix]; ok {
		if c.expired(e) {
			return nil, fmt.Errorf("id %s: %w", idOrPrefix, ErrNotFound)
		}
		return e, nil
	}
	if !id.IsPrefix(idOrPrefix) {
		return nil, fmt.Errorf("id %q: %w", idOrPrefix, ErrInvalidID)
	}
	key := idOrPrefix[:MinPrefixLen]
	candidates := c.prefixClashes[key]
	if e, ok := c.byPrefix[key]; ok {
		candidates = []*entry{e}
	}
	var found *entry
	matches := 0
	for _, e := range candidates {
		if strings.HasPrefix(e.rec.ID, idOrPrefix) && !c.expired(e) {
			found = e
			matches++
		}
	}
	switch matches {
	case 0:
		return nil, fmt.Errorf("id %s: %w", idOrPrefix, ErrNotFound)
	case 1:
		return found, nil
	default:
		return nil, fmt.Errorf("prefix %s matches %d records: %w", idOrPrefix, matches, ErrAmbiguous)
	}
}
