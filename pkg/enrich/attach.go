package enrich

// AttachPod returns rec with its pod fields set from pod and source. The
// pod is deep-copied, so records built from one cached sandbox never share
// maps or slices with it or with each other. A nil pod yields no pod and
// PodSourceNone whatever source says. rec's own maps are not copied: records
// are immutable once built.
func AttachPod(rec Record, pod *Pod, source PodSource) Record {
	if pod == nil {
		rec.Pod, rec.PodSource = nil, PodSourceNone
		return rec
	}
	rec.Pod, rec.PodSource = clonePod(pod), source
	return rec
}

func clonePod(p *Pod) *Pod {
	c := *p
	c.Labels = cloneStringMap(p.Labels)
	c.Annotations = cloneStringMap(p.Annotations)
	if p.AdditionalIPs != nil {
		c.AdditionalIPs = append([]string{}, p.AdditionalIPs...)
	}
	if p.CreatedAt != nil {
		t := *p.CreatedAt
		c.CreatedAt = &t
	}
	return &c
}
