package fakecri

import (
	"context"
	"regexp"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/emptypb"
)

// RPCSubscribe counts subscriptions to containerd's event service.
const RPCSubscribe = "Subscribe"

// containerdEventsDesc is containerd's event service as the fake serves
// it: only Subscribe, with the messages encoded by hand (see
// encodeEnvelope), since the fake must not depend on containerd's API
// module any more than the daemon does.
var containerdEventsDesc = grpc.ServiceDesc{
	ServiceName: "containerd.services.events.v1.Events",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Subscribe",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(*Runtime).subscribeContainerd(stream)
		},
	}},
}

// ctrdSub is one subscription: the topics its filters name and its queue
// of encoded envelopes.
type ctrdSub struct {
	topics map[string]bool
	ch     chan []byte
}

var topicFilter = regexp.MustCompile(`^namespace=="k8s\.io",topic=="([^"]+)"$`)

// SetContainerdEvents chooses whether the fake serves containerd's own
// event service (containerd 1.6 and 1.7 do, beside a CRI without events)
// or answers Unimplemented (CRI-O, the default). Off ends open streams.
func (r *Runtime) SetContainerdEvents(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctrdOn = on
	if !on {
		for s := range r.ctrdSubs {
			close(s.ch)
			delete(r.ctrdSubs, s)
		}
	}
}

// ContainerdFilters returns the filters of the last subscription.
func (r *Runtime) ContainerdFilters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ctrdFilters...)
}

// PublishContainerdRaw sends raw as one envelope to every subscription,
// whatever its filters: a test's malformed event.
func (r *Runtime) PublishContainerdRaw(raw []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.ctrdSubs {
		select {
		case s.ch <- raw:
		default:
			r.dropped++
		}
	}
}

func (r *Runtime) subscribeContainerd(stream grpc.ServerStream) error {
	ctx := stream.Context()
	if err := r.enter(ctx, RPCSubscribe, ""); err != nil {
		return err
	}
	req := &emptypb.Empty{}
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	sub, err := r.addCtrdSub(stringFields(req.ProtoReflect().GetUnknown()))
	if err != nil {
		return err
	}
	defer r.removeCtrdSub(sub)
	return relay(ctx, sub.ch, func(raw []byte) error {
		msg := &emptypb.Empty{}
		msg.ProtoReflect().SetUnknown(raw)
		return stream.SendMsg(msg)
	})
}

// relay sends what ch delivers until ctx ends (the client went away) or ch
// is closed (the fake ended the stream).
func relay[T any](ctx context.Context, ch <-chan T, send func(T) error) error {
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case v, ok := <-ch:
			if !ok {
				return nil
			}
			if err := send(v); err != nil {
				return err
			}
		}
	}
}

func (r *Runtime) addCtrdSub(filters []string) (*ctrdSub, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ctrdOn {
		return nil, status.Error(codes.Unimplemented, "unknown service containerd.services.events.v1.Events")
	}
	r.ctrdFilters = filters
	s := &ctrdSub{topics: map[string]bool{}, ch: make(chan []byte, eventBuffer)}
	for _, f := range filters {
		if m := topicFilter.FindStringSubmatch(f); m != nil {
			s.topics[m[1]] = true
		}
	}
	r.ctrdSubs[s] = struct{}{}
	return s, nil
}

func (r *Runtime) removeCtrdSub(s *ctrdSub) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ctrdSubs, s)
}

// publishContainerdLocked sends containerd's event of topic about id to
// every subscription whose filters name the topic.
func (r *Runtime) publishContainerdLocked(topic, typeURL, id string, pid int) {
	if len(r.ctrdSubs) == 0 {
		return
	}
	raw := encodeEnvelope(topic, typeURL, id, pid)
	for s := range r.ctrdSubs {
		if !s.topics[topic] {
			continue
		}
		select {
		case s.ch <- raw:
		default:
			r.dropped++
		}
	}
}

// encodeEnvelope encodes containerd's Envelope{timestamp, namespace, topic,
// event: Any{type_url, value: {1: id, 2: pid}}}.
func encodeEnvelope(topic, typeURL, id string, pid int) []byte {
	now := time.Now()
	var ts, payload, anyMsg, env []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Unix()))
	ts = protowire.AppendTag(ts, 2, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Nanosecond()))
	payload = protowire.AppendTag(payload, 1, protowire.BytesType)
	payload = protowire.AppendString(payload, id)
	if pid > 0 {
		payload = protowire.AppendTag(payload, 2, protowire.VarintType)
		payload = protowire.AppendVarint(payload, uint64(pid))
	}
	anyMsg = protowire.AppendTag(anyMsg, 1, protowire.BytesType)
	anyMsg = protowire.AppendString(anyMsg, typeURL)
	anyMsg = protowire.AppendTag(anyMsg, 2, protowire.BytesType)
	anyMsg = protowire.AppendBytes(anyMsg, payload)
	env = protowire.AppendTag(env, 1, protowire.BytesType)
	env = protowire.AppendBytes(env, ts)
	env = protowire.AppendTag(env, 2, protowire.BytesType)
	env = protowire.AppendString(env, "k8s.io")
	env = protowire.AppendTag(env, 3, protowire.BytesType)
	env = protowire.AppendString(env, topic)
	env = protowire.AppendTag(env, 4, protowire.BytesType)
	return protowire.AppendBytes(env, anyMsg)
}

// stringFields returns the field-1 strings of a message (SubscribeRequest's
// filters).
func stringFields(b []byte) []string {
	var out []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return out
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeString(b)
			out = append(out, v)
		}
		b = b[m:]
	}
	return out
}
