package grpcapi

import (
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
)

// recordCodec is gRPC's proto codec with a hand-written encoder for the two
// messages the server sends most: Record and WatchEvent. protobuf-go walks
// map fields by reflection, allocating for every key and value twice (once
// to size, once to write); with kubelet-sized labels that was 15% of the
// daemon's CPU under load (BENCHMARKS.md). Everything else, requests
// included, goes to the proto codec, and so does a record holding a string
// that is not valid UTF-8, so that it fails exactly as before.
//
// The encoder writes the same fields protobuf-go writes (proto3 implicit
// presence: zero scalars and empty strings left out; map entries with both
// key and value); TestRecordCodec_RoundTripsEveryField fills every field the
// schema has and decodes the result, so a field added to the proto and not
// here fails the tests.
type recordCodec struct {
	proto encoding.CodecV2
	pool  mem.BufferPool
}

var _ encoding.CodecV2 = recordCodec{}

func newRecordCodec() recordCodec {
	return recordCodec{proto: encoding.GetCodecV2(protoCodecName), pool: mem.DefaultBufferPool()}
}

// protoCodecName is the content-subtype of gRPC's proto codec, which this
// codec stands in for.
const protoCodecName = "proto"

// Name implements encoding.CodecV2.
func (c recordCodec) Name() string { return protoCodecName }

// Unmarshal implements encoding.CodecV2.
func (c recordCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Marshal implements encoding.CodecV2.
func (c recordCodec) Marshal(v any) (mem.BufferSlice, error) {
	var enc func([]byte) ([]byte, bool)
	switch m := v.(type) {
	case *enricherv1.Record:
		enc = func(b []byte) ([]byte, bool) { return appendRecordMsg(b, m) }
	case *enricherv1.WatchEvent:
		enc = func(b []byte) ([]byte, bool) { return appendWatchEvent(b, m) }
	default:
		return c.proto.Marshal(v)
	}
	buf := c.pool.Get(4096)
	b, ok := enc((*buf)[:0])
	if !ok {
		c.pool.Put(buf)
		return c.proto.Marshal(v)
	}
	if cap(b) != cap(*buf) { // outgrew the pooled buffer
		c.pool.Put(buf)
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

// encoder appends one message's fields and remembers whether every string
// was valid UTF-8, as proto3 requires.
type encoder struct {
	b     []byte
	valid bool
}

func appendRecordMsg(b []byte, m *enricherv1.Record) ([]byte, bool) {
	e := encoder{b: b, valid: true}
	e.record(m)
	return e.b, e.valid
}

func appendWatchEvent(b []byte, m *enricherv1.WatchEvent) ([]byte, bool) {
	e := encoder{b: b, valid: true}
	e.uint(1, uint64(m.GetType()))
	e.uint(2, m.GetRevision())
	if r := m.GetRecord(); r != nil {
		e.message(3, func() { e.record(r) })
	}
	return e.b, e.valid
}

func (e *encoder) record(m *enricherv1.Record) {
	e.string(1, m.GetId())
	e.string(2, m.GetShortId())
	e.string(3, m.GetName())
	e.uint(4, uint64(m.GetAttempt()))
	e.string(5, m.GetState())
	e.string(6, m.GetRuntime())
	e.timestamp(7, m.GetCreatedAt())
	e.timestamp(8, m.GetStartedAt())
	e.timestamp(9, m.GetFinishedAt())
	e.timestamp(10, m.GetDeletedAt())
	if img := m.GetImage(); img != nil {
		e.message(11, func() {
			e.string(1, img.GetName())
			e.string(2, img.GetRef())
			e.string(3, img.GetId())
			e.string(4, img.GetResolved())
		})
	}
	e.int(12, int64(m.GetPid()))
	e.bool(13, m.GetPrivileged())
	if m.UserUid != nil { // optional: present even when 0
		e.b = protowire.AppendTag(e.b, 14, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, uint64(*m.UserUid))
	}
	e.stringMap(15, m.GetLabels())
	e.stringMap(16, m.GetAnnotations())
	e.strings(17, m.GetEnv())
	e.string(18, m.GetLogPath())
	e.string(19, m.GetCgroupPath())
	for _, mt := range m.GetMounts() {
		e.message(20, func() { e.mount(mt) })
	}
	if r := m.GetResources(); r != nil {
		e.message(21, func() { e.resources(r) })
	}
	e.bool(22, m.GetIsPodSandbox())
	if p := m.GetPod(); p != nil {
		e.message(23, func() { e.pod(p) })
	}
	e.string(24, m.GetPodSource())
	e.int(25, int64(m.GetTrimmed()))
	e.string(26, m.GetNode())
	e.uint(27, m.GetCgroupId())
	e.bool(28, m.GetPartial())
}

func (e *encoder) mount(m *enricherv1.Mount) {
	e.string(1, m.GetHostPath())
	e.string(2, m.GetContainerPath())
	e.bool(3, m.GetReadOnly())
	e.string(4, m.GetPropagation())
}

func (e *encoder) resources(r *enricherv1.Resources) {
	e.int(1, r.GetCpuShares())
	e.int(2, r.GetCpuQuota())
	e.int(3, r.GetCpuPeriod())
	e.string(4, r.GetCpusetCpus())
	e.string(5, r.GetCpusetMems())
	e.int(6, r.GetMemoryLimitInBytes())
	e.int(7, r.GetOomScoreAdj())
}

func (e *encoder) pod(p *enricherv1.Pod) {
	e.string(1, p.GetSandboxId())
	e.string(2, p.GetName())
	e.string(3, p.GetNamespace())
	e.string(4, p.GetUid())
	e.uint(5, uint64(p.GetAttempt()))
	e.string(6, p.GetState())
	e.stringMap(7, p.GetLabels())
	e.stringMap(8, p.GetAnnotations())
	e.string(9, p.GetIp())
	e.strings(10, p.GetAdditionalIps())
	e.string(11, p.GetCniResult())
	e.bool(12, p.GetHostNetwork())
	e.bool(13, p.GetHostPid())
	e.bool(14, p.GetHostIpc())
	e.string(15, p.GetRuntimeHandler())
	e.timestamp(16, p.GetCreatedAt())
}

func (e *encoder) timestamp(num protowire.Number, t *timestamppb.Timestamp) {
	if t == nil {
		return
	}
	e.message(num, func() { e.int(1, t.GetSeconds()); e.int(2, int64(t.GetNanos())) })
}

// message writes a length-delimited field whose body body appends. One
// byte is reserved for the length, enough for most bodies; a longer body is
// moved up to make room.
func (e *encoder) message(num protowire.Number, body func()) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	lenAt := len(e.b)
	e.b = append(e.b, 0)
	body()
	n := len(e.b) - lenAt - 1
	if n < 0x80 {
		e.b[lenAt] = byte(n)
		return
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	e.b = append(e.b, make([]byte, extra)...)
	copy(e.b[lenAt+1+extra:], e.b[lenAt+1:lenAt+1+n])
	protowire.AppendVarint(e.b[:lenAt], uint64(n))
}

// stringMap writes each entry as a message holding key (1) and value (2),
// both always present, as protobuf-go writes map entries.
func (e *encoder) stringMap(num protowire.Number, m map[string]string) {
	for k, v := range m {
		e.message(num, func() {
			e.stringAlways(1, k)
			e.stringAlways(2, v)
		})
	}
}

func (e *encoder) strings(num protowire.Number, ss []string) {
	for _, s := range ss {
		e.stringAlways(num, s)
	}
}

func (e *encoder) string(num protowire.Number, s string) {
	if s != "" {
		e.stringAlways(num, s)
	}
}

func (e *encoder) stringAlways(num protowire.Number, s string) {
	if !utf8.ValidString(s) {
		e.valid = false
	}
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, s)
}

func (e *encoder) uint(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

// int writes an int32 or int64 field: negative values sign-extended to ten
// bytes, as proto3 encodes both.
func (e *encoder) int(num protowire.Number, v int64) { e.uint(num, uint64(v)) }

func (e *encoder) bool(num protowire.Number, v bool) {
	if v {
		e.uint(num, 1)
	}
}
