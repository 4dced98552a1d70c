package enrich

import (
	"sort"
	"unicode/utf8"
)

// Default export caps, used when the matching Options field is zero or
// negative.
const (
	DefaultMaxLabels   = 256
	DefaultMaxValueLen = 4096
)

// Options control what enrichment exports. The zero value is the safe
// default: no env, no annotations, default caps.
type Options struct {
	// ExportEnv exports container env vars. They often hold secrets, so it
	// is off by default.
	ExportEnv bool
	// ExportAnnotations exports container and pod annotations. They can hold
	// secrets or large blobs (last-applied-configuration), so it is off by
	// default.
	ExportAnnotations bool
	// MaxLabels caps the entries kept per label or annotation map
	// (DefaultMaxLabels when 0). The excess is dropped by sorted key, so
	// the same input always keeps the same entries, and counted in Trimmed.
	MaxLabels int
	// MaxValueLen caps the length in bytes of a label, annotation or env
	// value (DefaultMaxValueLen when 0). Longer values are cut on a UTF-8
	// boundary and counted in Trimmed.
	MaxValueLen int
	// NodeName is the Kubernetes node, stamped on every record so that
	// records shipped off the node still say where they came from.
	NodeName string
}

// limiter applies the Options caps and counts what they cut.
type limiter struct {
	maxLabels   int
	maxValueLen int
	trimmed     int
}

func newLimiter(o Options) *limiter {
	l := &limiter{maxLabels: o.MaxLabels, maxValueLen: o.MaxValueLen}
	if l.maxLabels <= 0 {
		l.maxLabels = DefaultMaxLabels
	}
	if l.maxValueLen <= 0 {
		l.maxValueLen = DefaultMaxValueLen
	}
	return l
}

// stringMap returns a capped copy of m. It never returns nil, so records
// always serialize labels as an object.
func (l *limiter) stringMap(m map[string]string) map[string]string {
	if len(m) <= l.maxLabels {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[canonical(k)] = l.value(v)
		}
		return out
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	l.trimmed += len(keys) - l.maxLabels
	out := make(map[string]string, l.maxLabels)
	for _, k := range keys[:l.maxLabels] {
		out[canonical(k)] = l.value(m[k])
	}
	return out
}

// value cuts s to the value cap without splitting a UTF-8 sequence.
func (l *limiter) value(s string) string {
	if len(s) <= l.maxValueLen {
		return s
	}
	l.trimmed++
	end := l.maxValueLen
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end]
}

// strings returns a copy of ss with each entry cut to the value cap.
func (l *limiter) strings(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = l.value(s)
	}
	return out
}

// wellKnown are strings that nearly every pod or container carries: the
// kubelet's and the common app label keys, and the paths of the mounts the
// kubelet gives every container.
var wellKnown = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"io.kubernetes.container.name", "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid",
		"app", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
		"app.kubernetes.io/version", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by",
		"pod-template-hash", "controller-revision-hash", "pod-template-generation",
		"statefulset.kubernetes.io/pod-name", "k8s-app", "component", "tier", "release", "version",
		"/etc/hosts", "/dev/termination-log", "/var/run/secrets/kubernetes.io/serviceaccount",
		"/etc/hostname", "/etc/resolv.conf", "/dev/shm",
	} {
		m[s] = s
	}
	return m
}()

// canonical returns the program's own copy of a well-known string, so the
// cache holds it once instead of once per record (a copy decoded from every
// answer costs 16 to 48 bytes); any other string is returned as it is.
func canonical(s string) string {
	if c, ok := wellKnown[s]; ok {
		return c
	}
	return s
}
