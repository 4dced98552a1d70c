package grpcapi

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// benchServer answers from a full cache and returns its containers' IDs.
func benchServer(b *testing.B) (*Server, []string) {
	b.Helper()
	c, ids := querytest.FullCache(b)
	return New(query.New(c, nil, nil, zap.NewNop(), 0), nil, zap.NewNop(), Options{}), ids
}

func requests(ids []string, n int) []*enricherv1.GetContainerRequest {
	reqs := make([]*enricherv1.GetContainerRequest, len(ids))
	for i, id := range ids {
		reqs[i] = &enricherv1.GetContainerRequest{Id: id[:n]}
	}
	return reqs
}

// BenchmarkServerGetContainer is the handler as gRPC calls it, plus the
// server codec's marshalling of its answer: cache look-up, record to
// message, message to wire bytes.
func BenchmarkServerGetContainer(b *testing.B) {
	s, ids := benchServer(b)
	reqs := requests(ids, 64)
	ctx := context.Background()
	codec := newRecordCodec()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec, err := s.GetContainer(ctx, reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		out, err := codec.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		out.Free()
		i++
	}
}

// BenchmarkGetContainerBufconn is a whole in-process gRPC call over an
// in-memory connection: client and server stacks, framing, both
// marshallings; no socket.
func BenchmarkGetContainerBufconn(b *testing.B) {
	s, ids := benchServer(b)
	l := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l, time.Second); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	client := enricherv1.NewEnricherClient(conn)
	reqs := requests(ids, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := client.GetContainer(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
