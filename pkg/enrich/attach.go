package enrich

// AttachPod returns rec with its pod fields set from pod and source. A nil
// pod yields no pod and PodSourceNone whatever source says.
//
// The pod is shared, not copied: records are immutable once built (see
// package cache), so every container of a pod points at the one Pod its
// sandbox answer produced. A copy per container cost about 600 bytes of
// heap per cached container with kubelet-sized pod labels (BENCHMARKS.md)
// and protected nothing, since no one may change a built record.
func AttachPod(rec Record, pod *Pod, source PodSource) Record {
	if pod == nil {
		rec.Pod, rec.PodSource = nil, PodSourceNone
		return rec
	}
	rec.Pod, rec.PodSource = pod, source
	return rec
}
