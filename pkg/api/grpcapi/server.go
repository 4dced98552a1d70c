package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// maxRecvMsgSize bounds a request: the largest, a cgroup path, is 4 KiB.
const maxRecvMsgSize = 64 << 10

// Options tune the server.
type Options struct {
	// Ready reports readiness for the health service (default: always).
	Ready func() bool
	// ReadyInterval is how often Serve copies Ready into the health
	// service (default 1s).
	ReadyInterval time.Duration
	// ServerOptions are added to the grpc.Server Serve builds, for example
	// interceptors that record metrics.
	ServerOptions []grpc.ServerOption
}

// Server implements the Enricher service.
type Server struct {
	enricherv1.UnimplementedEnricherServer
	query   *query.Query
	watches query.Watches
	health  *health.Server
	log     *zap.Logger
	opts    Options
}

var _ enricherv1.EnricherServer = (*Server)(nil)

// New returns a server answering q's questions and streaming watches'
// changes; watches may be nil: Watch then answers UNAVAILABLE.
func New(q *query.Query, watches query.Watches, log *zap.Logger, opts Options) *Server {
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.ReadyInterval <= 0 {
		opts.ReadyInterval = time.Second
	}
	return &Server{
		query:   q,
		watches: watches,
		health:  health.NewServer(),
		log:     log,
		opts:    opts,
	}
}

// Register adds the Enricher and health services to g.
func (s *Server) Register(g *grpc.Server) {
	enricherv1.RegisterEnricherServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
}

// Serve serves the API on l until ctx ends, then drains: GracefulStop lets
// calls in flight finish for up to drain, then Stop cuts the rest. Watch
// streams end when the watch hub closes, which the daemon does on the same
// signal.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	opts := append([]grpc.ServerOption{grpc.MaxRecvMsgSize(maxRecvMsgSize), grpc.ForceServerCodecV2(newRecordCodec())},
		s.opts.ServerOptions...)
	g := grpc.NewServer(opts...)
	s.Register(g)
	s.updateHealth()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	t := time.NewTicker(s.opts.ReadyInterval)
	defer t.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve grpc %s: %w", l.Addr(), err)
		case <-t.C:
			s.updateHealth()
		case <-ctx.Done():
			s.health.Shutdown() // NOT_SERVING while draining
			stopWithin(g, drain)
			// A stop that comes before g.Serve ran (ctx ended during
			// start-up) makes Serve answer ErrServerStopped: still a
			// clean stop.
			if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve grpc %s: %w", l.Addr(), err)
			}
			return nil
		}
	}
}

// stopWithin stops g gracefully, or forcibly once drain has passed.
func stopWithin(g *grpc.Server, drain time.Duration) {
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.Stop()
		<-done
	}
}

// updateHealth copies readiness into the health service, for the whole
// server ("") and for the Enricher service by name.
func (s *Server) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.opts.Ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(enricherv1.Enricher_ServiceDesc.ServiceName, st)
}

// GetContainer implements enricherv1.EnricherServer.
func (s *Server) GetContainer(ctx context.Context, req *enricherv1.GetContainerRequest) (*enricherv1.Record, error) {
	rec, err := s.query.Container(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return recordView(&rec), nil
}

// GetContainerByPID implements enricherv1.EnricherServer.
func (s *Server) GetContainerByPID(ctx context.Context, req *enricherv1.GetContainerByPIDRequest) (*enricherv1.Record, error) {
	rec, err := s.query.ContainerByPID(ctx, int(req.GetPid()))
	if err != nil {
		return nil, toStatus(err)
	}
	return recordView(&rec), nil
}

// GetContainerByCgroup implements enricherv1.EnricherServer.
func (s *Server) GetContainerByCgroup(ctx context.Context, req *enricherv1.GetContainerByCgroupRequest) (*enricherv1.Record, error) {
	rec, err := s.query.ContainerByCgroup(ctx, req.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	return recordView(&rec), nil
}

// ListContainers implements enricherv1.EnricherServer.
func (s *Server) ListContainers(_ context.Context, req *enricherv1.ListContainersRequest) (*enricherv1.ListContainersResponse, error) {
	f, err := query.ListOptions{
		Namespace: req.GetNamespace(), PodName: req.GetPodName(), PodUID: req.GetPodUid(), SandboxID: req.GetSandboxId(),
		Selector: req.GetLabelSelector(), IncludeDeleted: req.GetIncludeDeleted(), ExcludeSandboxes: req.GetExcludeSandboxes(),
	}.Filter()
	if err != nil {
		return nil, toStatus(err)
	}
	recs, err := s.query.Containers(f)
	if err != nil {
		return nil, toStatus(err)
	}
	return &enricherv1.ListContainersResponse{Items: recordsToProto(recs)}, nil
}

// GetContainerByCgroupID implements enricherv1.EnricherServer.
func (s *Server) GetContainerByCgroupID(_ context.Context, req *enricherv1.GetContainerByCgroupIDRequest) (*enricherv1.Record, error) {
	rec, err := s.query.ContainerByCgroupID(req.GetCgroupId())
	if err != nil {
		return nil, toStatus(err)
	}
	return recordView(&rec), nil
}

// GetPodByIP implements enricherv1.EnricherServer.
func (s *Server) GetPodByIP(_ context.Context, req *enricherv1.GetPodByIPRequest) (*enricherv1.PodRecords, error) {
	pod, err := s.query.PodByIP(req.GetIp())
	if err != nil {
		return nil, toStatus(err)
	}
	return podsToProto([]query.PodRecords{pod})[0], nil
}

// ListPods implements enricherv1.EnricherServer.
func (s *Server) ListPods(_ context.Context, req *enricherv1.ListPodsRequest) (*enricherv1.ListPodsResponse, error) {
	f, err := query.ListOptions{
		Namespace: req.GetNamespace(), PodName: req.GetPodName(), PodUID: req.GetPodUid(),
		Selector: req.GetLabelSelector(), IncludeDeleted: req.GetIncludeDeleted(),
	}.PodFilter()
	if err != nil {
		return nil, toStatus(err)
	}
	return &enricherv1.ListPodsResponse{Items: podsToProto(s.query.Pods(f))}, nil
}

// Watch implements enricherv1.EnricherServer.
func (s *Server) Watch(req *enricherv1.WatchRequest, stream grpc.ServerStreamingServer[enricherv1.WatchEvent]) error {
	if s.watches == nil {
		return status.Error(codes.Unavailable, "watch is not available")
	}
	w, err := s.watches.Watch(req.GetResumeRevision())
	if err != nil {
		return toStatus(query.WatchError(err))
	}
	defer w.Close()
	for {
		ev, err := w.Next(stream.Context())
		if err != nil {
			return toStatus(query.WatchError(err))
		}
		if err := stream.Send(eventView(ev)); err != nil {
			return err
		}
	}
}

// grpcCodes maps the API's failure codes to gRPC's, the same mapping the HTTP
// API makes to statuses.
var grpcCodes = map[query.Code]codes.Code{
	query.CodeInvalid:      codes.InvalidArgument,
	query.CodeNotFound:     codes.NotFound,
	query.CodeAmbiguous:    codes.FailedPrecondition,
	query.CodeRevisionGone: codes.FailedPrecondition,
	query.CodeTooMany:      codes.ResourceExhausted,
	query.CodeInternal:     codes.Internal,
	query.CodeLookupFailed: codes.Unavailable,
	query.CodeUnavailable:  codes.Unavailable,
	query.CodeTimeout:      codes.DeadlineExceeded,
}

// toStatus turns a query or watch error into a gRPC status.
func toStatus(err error) error {
	var e *query.Error
	switch {
	case errors.As(err, &e):
		return status.Error(grpcCodes[e.Code], e.Msg)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}
