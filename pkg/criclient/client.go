package criclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize bounds one CRI answer. Verbose answers carry the whole OCI spec;
// 16 MiB is far above any real one and still bounded.
const maxMsgSize = 16 << 20

// maxListMsgSize bounds a List answer, which grows with the node: 50,000
// containers list to about 41 MB. A node that outgrows it fails loudly
// (ResourceExhausted, counted) instead of silently.
const maxListMsgSize = 256 << 20

// maxReconnectDelay caps gRPC's reconnect backoff, so the daemon notices a
// restarted runtime within seconds.
const maxReconnectDelay = 5 * time.Second

// Observer receives one observation per finished RPC. The metrics package
// implements it; tests may record calls.
type Observer interface {
	ObserveRPC(rpc string, code codes.Code, took time.Duration)
}

// Options configure a Client.
type Options struct {
	// Timeout bounds every unary RPC (default 2s).
	Timeout time.Duration
	// ConnectTimeout bounds one attempt to connect to the socket (default
	// the RPC timeout).
	ConnectTimeout time.Duration
	// Observer is told about every RPC; nil observes nothing.
	Observer Observer
}

// Client is a CRI runtime service client on a unix socket.
type Client struct {
	conn     *grpc.ClientConn
	rs       runtimeapi.RuntimeServiceClient
	timeout  time.Duration
	observer Observer
	version  atomic.Pointer[runtimeapi.VersionResponse] // the last Version answer
}

// Dial creates a client for endpoint ("unix:///path" or "/path"). It does
// not wait for the runtime: the socket may not exist yet, and the channel
// connects (and reconnects) on its own.
func Dial(endpoint string, opts Options) (*Client, error) {
	target, err := Target(endpoint)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = opts.Timeout
	}
	c := &Client{timeout: opts.Timeout, observer: opts.Observer}
	bo := backoff.DefaultConfig
	bo.MaxDelay = maxReconnectDelay
	// gRPC gives a connection attempt max(MinConnectTimeout, the current
	// backoff), and the first backoff is BaseDelay (1s): without this a
	// connect timeout under a second would be a second.
	bo.BaseDelay = min(bo.BaseDelay, opts.ConnectTimeout)
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: opts.ConnectTimeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
		grpc.WithUnaryInterceptor(c.intercept),
		grpc.WithStreamInterceptor(c.interceptStream),
	)
	if err != nil {
		return nil, fmt.Errorf("cri client for %s: %w", target, err)
	}
	c.conn = conn
	c.rs = runtimeapi.NewRuntimeServiceClient(conn)
	return c, nil
}

// Target turns a configured endpoint into a gRPC target ("unix:///path").
func Target(endpoint string) (string, error) {
	switch {
	case strings.HasPrefix(endpoint, "unix:///"):
		return endpoint, nil
	case strings.HasPrefix(endpoint, "/"):
		return "unix://" + endpoint, nil
	default:
		return "", fmt.Errorf("runtime endpoint %q: want unix:///path or an absolute path", endpoint)
	}
}

// Detect returns the first of endpoints whose socket exists. It is how the
// daemon finds containerd, CRI-O or k3s without configuration.
func Detect(endpoints []string) (string, error) {
	for _, ep := range endpoints {
		target, err := Target(ep)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(strings.TrimPrefix(target, "unix://")); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return target, nil
		}
	}
	return "", fmt.Errorf("no runtime socket found among %s", strings.Join(endpoints, ", "))
}

// Close closes the gRPC channel.
func (c *Client) Close() error { return c.conn.Close() }

// wholeNodeList marks a List of everything the runtime has: at 50,000
// containers its answer is some 40 MB, which the per-call timeout meant for
// one status is not made for. The caller's own deadline (a sync's,
// runtime.bootstrap_timeout) bounds it instead.
type wholeNodeList struct{}

func (c *Client) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, whole := ctx.Value(wholeNodeList{}).(bool); !whole {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	c.observe(method, err, time.Since(start))
	return err
}

// interceptStream observes the opening of a stream; its end is observed by
// the caller through Observe, since only the caller sees the last Recv.
func (c *Client) interceptStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		c.observe(method, err, time.Since(start))
	}
	return s, err
}

func (c *Client) observe(method string, err error, took time.Duration) {
	if c.observer == nil {
		return
	}
	c.observer.ObserveRPC(rpcName(method), Code(err), took)
}

// rpcName turns "/runtime.v1.RuntimeService/ContainerStatus" into
// "ContainerStatus", a bounded label value.
func rpcName(method string) string {
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[i+1:]
	}
	return method
}

// Code is the gRPC code of err; a context error maps to its gRPC meaning.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return status.Code(err)
}

// Version asks the runtime who it is and remembers the answer.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	v, err := c.rs.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	c.version.Store(v)
	return v, nil
}

// RuntimeName is the runtime's name from the last Version answer, or "".
func (c *Client) RuntimeName() string { return c.version.Load().GetRuntimeName() }

// ContainerStatus asks for one container's verbose status.
func (c *Client) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatusResponse, error) {
	r, err := c.rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("container status %s: %w", id, err)
	}
	return r, nil
}

// PodSandboxStatus asks for one pod sandbox's verbose status.
func (c *Client) PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatusResponse, error) {
	r, err := c.rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("pod sandbox status %s: %w", id, err)
	}
	return r, nil
}

// ListContainers lists the containers filter selects (nil: all).
func (c *Client) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	ctx = listContext(ctx, filter == nil)
	r, err := c.rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter}, grpc.MaxCallRecvMsgSize(maxListMsgSize))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return r.GetContainers(), nil
}

// ListPodSandbox lists the pod sandboxes filter selects (nil: all).
func (c *Client) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	ctx = listContext(ctx, filter == nil)
	r, err := c.rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter}, grpc.MaxCallRecvMsgSize(maxListMsgSize))
	if err != nil {
		return nil, fmt.Errorf("list pod sandbox: %w", err)
	}
	return r.GetItems(), nil
}

// listContext lets an unfiltered List run to the caller's deadline, when it
// has one; a filtered List is as small as a status and keeps runtime.timeout.
func listContext(ctx context.Context, whole bool) context.Context {
	if _, hasDeadline := ctx.Deadline(); whole && hasDeadline {
		return context.WithValue(ctx, wholeNodeList{}, true)
	}
	return ctx
}

// ContainerEvents opens the runtime's container event stream. It has no
// timeout: it lives until ctx ends or the runtime closes it.
func (c *Client) ContainerEvents(ctx context.Context) (runtimeapi.RuntimeService_GetContainerEventsClient, error) {
	s, err := c.rs.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return nil, fmt.Errorf("get container events: %w", err)
	}
	return s, nil
}

// ObserveStreamEnd records how an event stream ended, so a stream that the
// runtime refuses (Unimplemented) or keeps closing shows in the metrics.
func (c *Client) ObserveStreamEnd(err error, took time.Duration) {
	c.observe("GetContainerEvents", err, took)
}

// WatchHealth follows the channel's connectivity until ctx ends and tells
// up each time the runtime becomes reachable or unreachable. It keeps the
// channel connecting, so a restarted runtime is noticed within the
// reconnect backoff, without a single RPC.
func (c *Client) WatchHealth(ctx context.Context, up func(bool)) {
	state := c.conn.GetState()
	for ctx.Err() == nil {
		if state == connectivity.Idle {
			c.conn.Connect()
		}
		c.conn.WaitForStateChange(ctx, state)
		state = c.conn.GetState()
		switch state {
		case connectivity.Ready:
			up(true)
		case connectivity.TransientFailure, connectivity.Shutdown:
			up(false)
		}
	}
}
