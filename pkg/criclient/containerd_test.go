package criclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

func field(b []byte, num protowire.Number, val []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, val)
}

func envelope(topic string, payload []byte) []byte {
	return envelopeIn("k8s.io", topic, payload)
}

func envelopeIn(namespace, topic string, payload []byte) []byte {
	anyMsg := field(field(nil, 1, []byte("containerd.events.TaskStart")), 2, payload)
	env := protowire.AppendTag(nil, 1, protowire.BytesType)
	env = protowire.AppendBytes(env, protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1700000000))
	env = field(env, 2, []byte(namespace))
	env = field(env, 3, []byte(topic))
	return field(env, 4, anyMsg)
}

func TestParseContainerdEnvelope_ReadsTopicAndContainerIDAndRejectsMalformedOnes(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	withPID := protowire.AppendVarint(protowire.AppendTag(field(nil, 1, []byte(id)), 2, protowire.VarintType), 4242)
	tests := []struct {
		name      string
		raw       []byte
		wantNS    string
		wantTopic string
	}{
		{"task start with its pid", envelope("/tasks/start", withPID), "k8s.io", "/tasks/start"},
		{"container create", envelope("/containers/create", field(nil, 1, []byte(id))), "k8s.io", "/containers/create"},
		{"another namespace", envelopeIn("moby", "/tasks/start", withPID), "moby", "/tasks/start"},
		{"no namespace", field(field(nil, 3, []byte("/tasks/start")), 4, field(nil, 2, withPID)), "", "/tasks/start"},
		{"truncated", envelope("/tasks/start", withPID)[:20], "", ""},
		{"no event", field(nil, 3, []byte("/tasks/start")), "", ""},
		{"no topic", field(nil, 4, field(nil, 2, field(nil, 1, []byte(id)))), "", ""},
		{"garbage", []byte{0xff, 0xff, 0xff}, "", ""},
		{"invalid utf-8 id", envelope("/tasks/start", field(nil, 1, []byte{0xc3, 0x28})), "", ""},
		{"invalid utf-8 namespace", envelopeIn("\xc3\x28", "/tasks/start", withPID), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, topic, got, err := criclient.ParseContainerdEnvelope(tt.raw)
			if tt.wantTopic == "" {
				if !errors.Is(err, criclient.ErrMalformedEvent) {
					t.Errorf("err = %v (namespace %q, topic %q, id %q), want ErrMalformedEvent", err, ns, topic, got)
				}
				return
			}
			if err != nil || ns != tt.wantNS || topic != tt.wantTopic || got != id {
				t.Errorf("= %q, %q, %q, %v; want %q, %q, %q", ns, topic, got, err, tt.wantNS, tt.wantTopic, id)
			}
		})
	}
}

func TestClient_ContainerdEventsSendsTheFiltersAndReadsWhatTheyLetThrough(t *testing.T) {
	rt := fakecri.New()
	rt.SetContainerdEvents(true)
	c, err := criclient.Dial(rt.Start(t), criclient.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	filters := []string{`namespace=="k8s.io",topic=="/tasks/start"`}
	s, err := c.ContainerdEvents(ctx, filters)
	if err != nil {
		t.Fatal(err)
	}
	for rt.Calls(fakecri.RPCSubscribe) == 0 || len(rt.ContainerdFilters()) == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := rt.ContainerdFilters(); len(got) != 1 || got[0] != filters[0] {
		t.Fatalf("the runtime got filters %q, want %q", got, filters)
	}
	sb, ctrs := rt.AddPod(fakecri.PodSpec{Containers: []fakecri.ContainerSpec{{}}})
	rt.PublishContainerdRaw(field(nil, 3, []byte("/tasks/start"))) // no event in it
	rt.PublishContainerdRaw([]byte{0xff})                          // not protobuf at all
	for _, want := range []string{sb, ctrs[0]} {                   // their creates are filtered out
		ns, topic, id, err := s.Recv()
		if err != nil || ns != "k8s.io" || topic != "/tasks/start" || id != want {
			t.Fatalf("Recv = %q, %q, %q, %v; want k8s.io's /tasks/start of %s", ns, topic, id, err, want)
		}
	}
	if _, _, _, err := s.Recv(); !errors.Is(err, criclient.ErrMalformedEvent) {
		t.Fatalf("Recv of an envelope without event = %v, want ErrMalformedEvent", err)
	}
	// gRPC's own decoding refuses bytes that are not protobuf, and ends the
	// stream: the follower opens a new one.
	if _, _, _, err := s.Recv(); errors.Is(err, criclient.ErrMalformedEvent) || criclient.Code(err) != codes.Internal {
		t.Fatalf("Recv of bytes that are not protobuf = %v, want the stream to end with Internal", err)
	}
	rt.SetContainerdEvents(false)
	s, err = c.ContainerdEvents(ctx, filters)
	if err == nil {
		_, _, _, err = s.Recv()
	}
	if criclient.Code(err) != codes.Unimplemented {
		t.Errorf("subscribing to a runtime without containerd's events: %v, want Unimplemented", err)
	}
}
