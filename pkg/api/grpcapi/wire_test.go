package grpcapi

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/internal/benchdata"
)

// fill sets every field of m, recursively: strings named after their
// field, negative signed numbers (ten-byte varints), maps with an empty key
// and value among their entries, lists of two. A field added to the schema
// is filled too, so an encoder that does not know it loses it and fails.
func fill(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for _, k := range []string{"", "app", "io.kubernetes.pod.name"} {
				mp.Set(protoreflect.ValueOfString(k).MapKey(), protoreflect.ValueOfString(k+"-value"))
			}
			mp.Set(protoreflect.ValueOfString("empty").MapKey(), protoreflect.ValueOfString(""))
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					el := l.NewElement()
					fill(el.Message())
					l.Append(el)
					continue
				}
				l.Append(scalar(fd, j))
			}
		case fd.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(fd, 0))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, j int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), j))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(-5 - int32(fd.Number()))
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(-1 << 40)
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(300)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(1 << 50)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	}
	panic("fill: add a case for " + fd.Kind().String())
}

func TestRecordCodec_RoundTripsEveryField(t *testing.T) {
	full := &enricherv1.Record{}
	fill(full.ProtoReflect())
	fullEvent := &enricherv1.WatchEvent{}
	fill(fullEvent.ProtoReflect())
	zeroUID := int64(0)
	container := benchdata.Container(7, 2)
	for _, tc := range []struct {
		name string
		msg  proto.Message
	}{
		{"every field", full},
		{"empty", &enricherv1.Record{}},
		{"optional user_uid 0 stays present", &enricherv1.Record{UserUid: &zeroUID}},
		{"kubelet-sized container", recordView(&container)},
		{"event with every field", fullEvent},
		{"synced event", &enricherv1.WatchEvent{Type: enricherv1.EventType_SYNCED, Revision: 42}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := newRecordCodec().Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			wire := data.Materialize()
			data.Free()
			got := tc.msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(wire, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Errorf("round trip lost fields:\n got %v\nwant %v", got, tc.msg)
			}
			if want := proto.Size(tc.msg); len(wire) != want {
				t.Errorf("encoded %d bytes, protobuf-go %d: a zero field written or a field left out", len(wire), want)
			}
		})
	}
}

func TestRecordCodec_FailsOnInvalidUTF8LikeProto(t *testing.T) {
	rec := &enricherv1.Record{Id: "x", Labels: map[string]string{"app": "bad\xff"}}
	_, err := newRecordCodec().Marshal(rec)
	if _, protoErr := proto.Marshal(rec); err == nil || protoErr == nil {
		t.Fatalf("codec error %v, proto error %v: want both to refuse invalid UTF-8", err, protoErr)
	}
	if status.Code(err) == codes.OK && err == nil {
		t.Fatal("no error")
	}
}

func TestRecordCodec_LeavesOtherMessagesToProto(t *testing.T) {
	req := &enricherv1.GetContainerRequest{Id: "abc"}
	data, err := newRecordCodec().Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	got := &enricherv1.GetContainerRequest{}
	if err := newRecordCodec().Unmarshal(data, got); err != nil || !proto.Equal(got, req) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
}
