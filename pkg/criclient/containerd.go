package criclient

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/emptypb"
)

// containerdSubscribe is containerd's own event service, served on the same
// socket as its CRI plugin by containerd 1.x and 2.x. It tells when the
// runtime created a container and when its task started, which CRI itself
// streams only from containerd 2.0 on.
const containerdSubscribe = "/containerd.services.events.v1.Events/Subscribe"

// ErrMalformedEvent means containerd sent an event this client cannot read:
// the stream goes on, the event is skipped.
var ErrMalformedEvent = errors.New("malformed containerd event")

// ContainerdEvents is an open subscription to containerd's event service.
type ContainerdEvents struct {
	stream grpc.ClientStream
}

// ContainerdEvents subscribes to containerd's events that match any of
// filters (containerd's filter syntax, e.g. `topic=="/tasks/start"`). Like
// ContainerEvents it has no timeout: it lives until ctx ends or containerd
// closes it. A runtime other than containerd answers the first Recv with
// Unimplemented.
//
// The messages are encoded by hand with protowire instead of importing
// containerd's API module, which would bring ttrpc, gogo/protobuf and the
// OCI image spec for two string fields: the request is an empty message
// carrying SubscribeRequest.filters (field 1) as unknown fields, and each
// answer is read from the unknown fields of an empty message.
func (c *Client) ContainerdEvents(ctx context.Context, filters []string) (*ContainerdEvents, error) {
	s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, containerdSubscribe)
	if err != nil {
		return nil, fmt.Errorf("subscribe to containerd events: %w", err)
	}
	var raw []byte
	for _, f := range filters {
		raw = protowire.AppendTag(raw, 1, protowire.BytesType)
		raw = protowire.AppendString(raw, f)
	}
	req := &emptypb.Empty{}
	req.ProtoReflect().SetUnknown(raw)
	if err := s.SendMsg(req); err != nil {
		return nil, fmt.Errorf("subscribe to containerd events: %w", err)
	}
	if err := s.CloseSend(); err != nil {
		return nil, fmt.Errorf("subscribe to containerd events: %w", err)
	}
	return &ContainerdEvents{stream: s}, nil
}

// Recv returns the next event's namespace and topic, and the ID of the
// container it is about. An envelope without topic or container ID is an
// error wrapping ErrMalformedEvent, and the stream stays usable; any other
// error ends the stream, bytes that are not protobuf at all included
// (gRPC's decoding refuses them with Internal).
func (e *ContainerdEvents) Recv() (namespace, topic, id string, err error) {
	msg := &emptypb.Empty{}
	if err := e.stream.RecvMsg(msg); err != nil {
		return "", "", "", err
	}
	return ParseContainerdEnvelope(msg.ProtoReflect().GetUnknown())
}

// ObserveContainerdStreamEnd records how a containerd event stream ended.
func (c *Client) ObserveContainerdStreamEnd(err error, took time.Duration) {
	c.observe(containerdSubscribe, err, took)
}

// ParseContainerdEnvelope reads an Envelope (timestamp 1, namespace 2,
// topic 3, event 4 as a google.protobuf.Any) and returns its namespace
// (empty when it names none), its topic and the container ID of its event:
// field 1 of every container and task event (ContainerCreate.id,
// TaskStart.container_id, TaskExit.container_id ...).
func ParseContainerdEnvelope(raw []byte) (namespace, topic, id string, err error) {
	var event []byte
	err = eachField(raw, func(num protowire.Number, val []byte) {
		switch num {
		case 2:
			namespace = string(val)
		case 3:
			topic = string(val)
		case 4:
			event = val
		}
	})
	if err != nil {
		return "", "", "", fmt.Errorf("%w: envelope: %v", ErrMalformedEvent, err)
	}
	var payload []byte
	if err := eachField(event, func(num protowire.Number, val []byte) {
		if num == 2 { // Any.value
			payload = val
		}
	}); err != nil {
		return "", "", "", fmt.Errorf("%w: %s: event: %v", ErrMalformedEvent, topic, err)
	}
	if err := eachField(payload, func(num protowire.Number, val []byte) {
		if num == 1 && id == "" {
			id = string(val)
		}
	}); err != nil {
		return "", "", "", fmt.Errorf("%w: %s: payload: %v", ErrMalformedEvent, topic, err)
	}
	switch {
	case topic == "" || !utf8.ValidString(topic):
		return "", "", "", fmt.Errorf("%w: no topic", ErrMalformedEvent)
	case id == "" || !utf8.ValidString(id):
		return "", "", "", fmt.Errorf("%w: %s: no container id", ErrMalformedEvent, topic)
	case !utf8.ValidString(namespace):
		return "", "", "", fmt.Errorf("%w: %s: namespace is not UTF-8", ErrMalformedEvent, topic)
	}
	return namespace, topic, id, nil
}

// eachField calls fn with every length-delimited field of a message and
// skips the others (varints, fixed-width numbers).
func eachField(b []byte, fn func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			val, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			fn(num, val)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
	}
	return nil
}
