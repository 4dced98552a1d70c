package enrich

import (
	"maps"
	"slices"
	"strings"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// The strings a record keeps from the runtime's answer are copied into one
// allocation per record. Decoding an answer allocates every string on its
// own, next to the many the record drops (annotations, the OCI spec); each
// kept string then pins a slot in a span that is otherwise garbage and pays
// its size class's rounding. One block per record is what the cache holds,
// for exactly as long as the record lives. This saved about 120 bytes of
// heap per cached container (BENCHMARKS.md). Strings shared with other
// records (well-known label keys and mount paths, constants, the runtime's
// name) are left alone.

// stringPacker collects pointers to strings, then moves them all into one
// block.
type stringPacker struct {
	ptrs []*string
}

func (p *stringPacker) add(ss ...*string) { p.ptrs = append(p.ptrs, ss...) }

// addMapValues adds m's values; pack writes them back in the same order.
func (p *stringPacker) addMapValues(m map[string]string) (flush func()) {
	if len(m) == 0 {
		return func() {}
	}
	keys := slices.Collect(maps.Keys(m))
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
		p.add(&vals[i])
	}
	return func() {
		for i, k := range keys {
			m[k] = vals[i]
		}
	}
}

func (p *stringPacker) pack() {
	n := 0
	for _, s := range p.ptrs {
		n += len(*s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range p.ptrs {
		b.WriteString(*s)
	}
	block, off := b.String(), 0
	for _, s := range p.ptrs {
		l := len(*s)
		*s = block[off : off+l]
		off += l
	}
}

// packContainer packs a container record's own strings.
func packContainer(r *Record) {
	p := stringPacker{ptrs: make([]*string, 0, 8+len(r.Mounts)+len(r.Env)+len(r.Labels)+len(r.Annotations))}
	p.add(&r.ID, &r.Name, &r.Image.Name, &r.Image.ID, &r.LogPath, &r.CgroupPath)
	sameRef := r.Image.Ref == r.Image.ID
	if !sameRef {
		p.add(&r.Image.Ref)
	}
	sameResolved := r.Image.Resolved == r.Image.Name
	if !sameResolved {
		p.add(&r.Image.Resolved)
	}
	for i := range r.Mounts {
		p.add(&r.Mounts[i].HostPath)
	}
	for i := range r.Env {
		p.add(&r.Env[i])
	}
	flushLabels, flushAnn := p.addMapValues(r.Labels), p.addMapValues(r.Annotations)
	p.pack()
	flushLabels()
	flushAnn()
	r.ShortID = r.ID[:min(id.ShortLen, len(r.ID))]
	if sameRef {
		r.Image.Ref = r.Image.ID
	}
	if sameResolved {
		r.Image.Resolved = r.Image.Name
	}
}

// packSandbox packs a sandbox record's and its pod's own strings; the
// record's ID and labels are the pod's.
func packSandbox(r *Record) {
	pod := r.Pod
	p := stringPacker{ptrs: make([]*string, 0, 10+len(pod.AdditionalIPs)+len(pod.Labels)+len(pod.Annotations))}
	p.add(&pod.SandboxID, &pod.Name, &pod.Namespace, &pod.UID, &pod.IP, &pod.CNIResult, &pod.RuntimeHandler,
		&r.Image.Name, &r.CgroupPath)
	for i := range pod.AdditionalIPs {
		p.add(&pod.AdditionalIPs[i])
	}
	flushLabels, flushAnn := p.addMapValues(pod.Labels), p.addMapValues(pod.Annotations)
	p.pack()
	flushLabels()
	flushAnn()
	r.ID, r.Name, r.Image.Resolved = pod.SandboxID, pod.Name, r.Image.Name
	r.ShortID = r.ID[:min(id.ShortLen, len(r.ID))]
}
