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
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIProxy sits between a CRI client and the runtime's socket, passes every
// call through unchanged and counts them by RPC and by the ID they name:
// what the runtime really received, counted on the runtime's side of the
// socket rather than by the daemon under test. Per ID counts let a test
// judge its own pods on a host where other cgroups come and go.
type CRIProxy struct {
	socket string
	srv    *grpc.Server
	conn   *grpc.ClientConn

	mu    sync.Mutex
	calls map[string]int
	byID  map[rpcID]int
}

type rpcID struct{ rpc, id string }

// NewCRIProxy listens on a new socket in dir and forwards to endpoint
// (unix:///path).
func NewCRIProxy(dir, endpoint string) (*CRIProxy, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	p := &CRIProxy{socket: filepath.Join(dir, "cri-proxy.sock"), conn: conn, calls: map[string]int{}, byID: map[rpcID]int{}}
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

// CallsFor returns how many calls of rpc named id: the container or sandbox
// of a status call, the ID filter of a List call ("" for a List of the
// whole node).
func (p *CRIProxy) CallsFor(rpc, id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[rpcID{rpc, id}]
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
	rpc := path.Base(method)
	p.mu.Lock()
	p.calls[rpc]++
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
	go func() { errc <- p.relayRequests(rpc, in, out) }()
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
// the sending side; a request naming an ID is counted under it.
func (p *CRIProxy) relayRequests(rpc string, in grpc.ServerStream, out grpc.ClientStream) error {
	for {
		var msg []byte
		if err := in.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return out.CloseSend()
			}
			return err
		}
		if id, ok := requestID(rpc, msg); ok {
			p.mu.Lock()
			p.byID[rpcID{rpc, id}]++
			p.mu.Unlock()
		}
		if err := out.SendMsg(&msg); err != nil {
			return err
		}
	}
}

// requestID reads the ID a status request names, or a List request's ID
// filter.
func requestID(rpc string, msg []byte) (string, bool) {
	var m proto.Message
	var id func() string
	switch rpc {
	case "ContainerStatus":
		r := &runtimeapi.ContainerStatusRequest{}
		m, id = r, r.GetContainerId
	case "PodSandboxStatus":
		r := &runtimeapi.PodSandboxStatusRequest{}
		m, id = r, r.GetPodSandboxId
	case "ListContainers":
		r := &runtimeapi.ListContainersRequest{}
		m, id = r, func() string { return r.GetFilter().GetId() }
	case "ListPodSandbox":
		r := &runtimeapi.ListPodSandboxRequest{}
		m, id = r, func() string { return r.GetFilter().GetId() }
	default:
		return "", false
	}
	if proto.Unmarshal(msg, m) != nil {
		return "", false
	}
	return id(), true
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
