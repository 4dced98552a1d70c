package httpapi

import (
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// The record encoder writes exactly the bytes encoding/json writes for an
// enrich.Record (field order and omitempty from the struct tags, sorted map
// keys, HTML-safe string escaping), without reflection. Answering a single
// record is the API's hot path, and encoding/json's reflection, key sorting
// and per-call allocations took a third of the server's CPU there
// (BENCHMARKS.md). TestAppendRecord_MatchesEncodingJSON fills every field by
// reflection and compares, so a field added to the record without being
// added here fails the tests instead of silently disappearing.

// bufPool holds encode buffers. Buffers that grew past maxPooledBuf (a large
// list) are dropped rather than pinned in the pool.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// appendRecord appends rec as encoding/json marshals it. It reports false
// for a value encoding/json refuses (a time outside the years 0 to 9999 or
// with an offset of 24 hours or more), so the caller can let encoding/json
// fail the same way.
func appendRecord(b []byte, r *enrich.Record) ([]byte, bool) {
	ok := true
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = appendKeyString(b, `,"short_id":`, r.ShortID)
	b = appendKeyString(b, `,"name":`, r.Name)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendUint(b, uint64(r.Attempt), 10)
	b = appendKeyString(b, `,"state":`, r.State)
	b = appendKeyString(b, `,"runtime":`, r.Runtime)
	if r.Node != "" {
		b = appendKeyString(b, `,"node":`, r.Node)
	}
	b, ok = appendTime(b, `,"created_at":`, r.CreatedAt, ok)
	b, ok = appendTime(b, `,"started_at":`, r.StartedAt, ok)
	if r.FinishedAt != nil {
		b, ok = appendTime(b, `,"finished_at":`, r.FinishedAt, ok)
	}
	b, ok = appendTime(b, `,"deleted_at":`, r.DeletedAt, ok)
	b = appendKeyString(b, `,"image":{"name":`, r.Image.Name)
	b = appendKeyString(b, `,"resolved":`, r.Image.Resolved)
	b = appendKeyString(b, `,"ref":`, r.Image.Ref)
	b = appendKeyString(b, `,"id":`, r.Image.ID)
	b = append(b, `},"pid":`...)
	b = strconv.AppendInt(b, int64(r.PID), 10)
	b = appendBool(b, `,"privileged":`, r.Privileged)
	b = append(b, `,"user_uid":`...)
	if r.UserUID == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *r.UserUID, 10)
	}
	b = appendMap(append(b, `,"labels":`...), r.Labels)
	if len(r.Annotations) > 0 {
		b = appendMap(append(b, `,"annotations":`...), r.Annotations)
	}
	if len(r.Env) > 0 {
		b = appendStrings(append(b, `,"env":`...), r.Env)
	}
	b = appendKeyString(b, `,"log_path":`, r.LogPath)
	b = appendKeyString(b, `,"cgroup_path":`, r.CgroupPath)
	b = strconv.AppendUint(append(b, `,"cgroup_id":`...), r.CgroupID, 10)
	b = appendMounts(append(b, `,"mounts":`...), r.Mounts)
	b = appendResources(append(b, `,"resources":`...), &r.Resources)
	b = appendBool(b, `,"is_pod_sandbox":`, r.IsPodSandbox)
	b = append(b, `,"pod":`...)
	b, ok = appendPod(b, r.Pod, ok)
	b = appendKeyString(b, `,"pod_source":`, string(r.PodSource))
	if r.Trimmed != 0 {
		b = append(b, `,"trimmed":`...)
		b = strconv.AppendInt(b, int64(r.Trimmed), 10)
	}
	if r.Partial {
		b = append(b, `,"partial":true`...)
	}
	return append(b, '}'), ok
}

func appendPod(b []byte, p *enrich.Pod, ok bool) ([]byte, bool) {
	if p == nil {
		return append(b, "null"...), ok
	}
	b = appendKeyString(b, `{"sandbox_id":`, p.SandboxID)
	b = appendKeyString(b, `,"name":`, p.Name)
	b = appendKeyString(b, `,"namespace":`, p.Namespace)
	b = appendKeyString(b, `,"uid":`, p.UID)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendUint(b, uint64(p.Attempt), 10)
	if p.State != "" {
		b = appendKeyString(b, `,"state":`, p.State)
	}
	b = appendMap(append(b, `,"labels":`...), p.Labels)
	if len(p.Annotations) > 0 {
		b = appendMap(append(b, `,"annotations":`...), p.Annotations)
	}
	b = appendKeyString(b, `,"ip":`, p.IP)
	b = appendStrings(append(b, `,"additional_ips":`...), p.AdditionalIPs)
	b = appendKeyString(b, `,"cni_result":`, p.CNIResult)
	b = appendBool(b, `,"host_network":`, p.HostNetwork)
	b = appendBool(b, `,"host_pid":`, p.HostPID)
	b = appendBool(b, `,"host_ipc":`, p.HostIPC)
	b = appendKeyString(b, `,"runtime_handler":`, p.RuntimeHandler)
	b, ok = appendTime(b, `,"created_at":`, p.CreatedAt, ok)
	return append(b, '}'), ok
}

func appendMounts(b []byte, ms []enrich.Mount) []byte {
	if ms == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		m := &ms[i]
		b = appendKeyString(b, `{"host_path":`, m.HostPath)
		b = appendKeyString(b, `,"container_path":`, m.ContainerPath)
		b = appendBool(b, `,"read_only":`, m.ReadOnly)
		b = appendKeyString(b, `,"propagation":`, m.Propagation)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendResources writes Resources, whose fields are all omitempty.
func appendResources(b []byte, r *enrich.Resources) []byte {
	b = append(b, '{')
	n := len(b)
	b = appendNonZeroInt(b, n, `"cpu_shares":`, r.CPUShares)
	b = appendNonZeroInt(b, n, `"cpu_quota":`, r.CPUQuota)
	b = appendNonZeroInt(b, n, `"cpu_period":`, r.CPUPeriod)
	if r.CpusetCPUs != "" {
		b = appendString(appendSep(b, n, `"cpuset_cpus":`), r.CpusetCPUs)
	}
	if r.CpusetMems != "" {
		b = appendString(appendSep(b, n, `"cpuset_mems":`), r.CpusetMems)
	}
	b = appendNonZeroInt(b, n, `"memory_limit_in_bytes":`, r.MemoryLimitInBytes)
	b = appendNonZeroInt(b, n, `"oom_score_adj":`, r.OOMScoreAdj)
	return append(b, '}')
}

// appendSep appends key, preceded by a comma unless it is the first member
// of an object that started at offset start.
func appendSep(b []byte, start int, key string) []byte {
	if len(b) > start {
		b = append(b, ',')
	}
	return append(b, key...)
}

func appendNonZeroInt(b []byte, start int, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(appendSep(b, start, key), v, 10)
}

func appendKeyString(b []byte, key, s string) []byte {
	return appendString(append(b, key...), s)
}

func appendBool(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(append(b, key...), v)
}

// appendTime writes a *time.Time as encoding/json does (RFC 3339 with
// nanoseconds, or null), and keeps ok false once a time could not be.
func appendTime(b []byte, key string, t *time.Time, ok bool) ([]byte, bool) {
	b = append(b, key...)
	if t == nil {
		return append(b, "null"...), ok
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendMap writes m with its keys sorted, as encoding/json does. Up to 32
// keys are sorted on the stack.
func appendMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var stack [32]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// plainASCII marks the bytes a JSON string carries unescaped in
// encoding/json's HTML-safe mode: ASCII from space to DEL except ", \, <, >
// and &. It spans every byte value so the scan needs one look-up a byte;
// bytes from 0x80 up are false and take the UTF-8 path.
var plainASCII = func() (t [256]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does in its
// default HTML-safe mode: ", \ and the short control escapes (\b \f \n \r
// \t) with a backslash, other control characters and <, >, & as \u00XX,
// invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			b = appendEscapedByte(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}
