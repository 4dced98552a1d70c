package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// CRIProxy sits between a CRI client and the runtime's socket, passes every
// call through unchanged and counts them by RPC: what the runtime really
// received, counted on the runtime's side of the socket rather than by the
// daemon under test.
type CRIProxy struct {
	socket string
	srv    *grpc.Server
	conn   *grpc.ClientConn

	mu    sync.Mutex
	calls map[string]int
}

// NewCRIProxy listens on a new socket in dir and forwards to endpoint
// (unix:///path).
func NewCRIProxy(dir, endpoint string) (*CRIProxy, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	p := &CRIProxy{socket: filepath.Join(dir, "cri-proxy.sock"), conn: conn, calls: map[string]int{}}
	l, err := net.Listen("unix", p.socket)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("listen %s: %w", p.socket, err)
	}
	p.srv = grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.UnknownServiceHandler(p.forward))
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// Endpoint is the proxy's socket in unix:// form.
func (p *CRIProxy) Endpoint() string { return "unix://" + p.socket }

// Calls returns how many calls of rpc (a method name such as
// "ContainerStatus") reached the runtime through the proxy.
func (p *CRIProxy) Calls(rpc string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[rpc]
}

// Close stops the proxy and its connection to the runtime.
func (p *CRIProxy) Close() error {
	p.srv.Stop()
	err := p.conn.Close()
	if rmErr := os.Remove(p.socket); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// forward relays one call, unary or streaming, message by message.
func (p *CRIProxy) forward(_ any, in grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(in)
	if !ok {
		return errors.New("cri proxy: no method")
	}
	p.mu.Lock()
	p.calls[path.Base(method)]++
	p.mu.Unlock()
	ctx := in.Context()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, md.Copy())
	}
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	out, err := p.conn.NewStream(ctx, desc, method)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- relayRequests(in, out) }()
	for {
		var msg []byte
		if err := out.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := in.SendMsg(&msg); err != nil {
			return err
		}
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
		default:
		}
	}
}

// relayRequests copies the client's messages to the runtime, then closes
// the sending side.
func relayRequests(in grpc.ServerStream, out grpc.ClientStream) error {
	for {
		var msg []byte
		if err := in.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return out.CloseSend()
			}
			return err
		}
		if err := out.SendMsg(&msg); err != nil {
			return err
		}
	}
}

// rawCodec passes messages through as the bytes on the wire.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}
