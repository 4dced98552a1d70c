package fakecri

import (
	"context"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// server is the gRPC face of a Runtime. It is a type of its own because
// the CRI's RPC names (CreateContainer, RemoveContainer ...) are taken by
// the Runtime's test-facing lifecycle methods.
type server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	r *Runtime
}

var _ runtimeapi.RuntimeServiceServer = (*server)(nil)

// enter counts a call, then applies the delay and the injected fault of
// rpc. Counting comes first so a call that times out still counts.
func (r *Runtime) enter(ctx context.Context, rpc, id string) error {
	r.mu.Lock()
	r.calls[rpc]++
	if id != "" {
		r.callsFor[callKey{rpc, id}]++
	}
	fn, d := r.inject[rpc], r.delay[rpc]
	r.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if fn != nil {
		return fn(id)
	}
	return nil
}

// Version implements runtimeapi.RuntimeServiceServer.
func (s *server) Version(ctx context.Context, _ *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	r := s.r
	if err := r.enter(ctx, RPCVersion, ""); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: r.name, RuntimeVersion: r.ver, RuntimeApiVersion: "v1"}, nil
}

// ContainerStatus implements runtimeapi.RuntimeServiceServer. Like
// containerd it accepts a unique ID prefix and answers NotFound for a
// sandbox ID.
func (s *server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	r := s.r
	if err := r.enter(ctx, RPCContainerStatus, req.GetContainerId()); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.findContainerLocked(req.GetContainerId())
	if c == nil {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", req.GetContainerId())
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: r.containerStatusLocked(c)}
	if req.GetVerbose() {
		raw, ok := r.info[c.id]
		if !ok {
			raw = r.containerInfoLocked(c, resp.Status)
		}
		resp.Info = map[string]string{"info": raw}
	}
	if fn := r.editC[c.id]; fn != nil {
		fn(resp)
	}
	return resp, nil
}

func (r *Runtime) findContainerLocked(id string) *container {
	if c := r.containers[id]; c != nil || len(id) >= 64 || id == "" {
		return c
	}
	var found *container
	for cid, c := range r.containers {
		if strings.HasPrefix(cid, id) {
			if found != nil {
				return nil // ambiguous: containerd refuses to guess too
			}
			found = c
		}
	}
	return found
}

// PodSandboxStatus implements runtimeapi.RuntimeServiceServer.
func (s *server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	r := s.r
	if err := r.enter(ctx, RPCPodSandboxStatus, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[req.GetPodSandboxId()]
	if sb == nil {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", req.GetPodSandboxId())
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: r.sandboxStatusLocked(sb)}
	if req.GetVerbose() {
		raw, ok := r.info[sb.id]
		if !ok {
			raw = r.sandboxInfoLocked(sb)
		}
		resp.Info = map[string]string{"info": raw}
	}
	if fn := r.editS[sb.id]; fn != nil {
		fn(resp)
	}
	return resp, nil
}

// ListContainers implements runtimeapi.RuntimeServiceServer, honouring the
// filter's ID, state, sandbox and label selector.
func (s *server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	r := s.r
	r.countList(RPCListContainers, req.GetFilter().GetId())
	if err := r.enter(ctx, RPCListContainers, ""); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := req.GetFilter()
	out := []*runtimeapi.Container{}
	for _, c := range r.containers {
		sb := r.sandboxes[c.sandboxID]
		labels := containerLabels(c, sb)
		switch {
		case f.GetId() != "" && f.GetId() != c.id,
			f.GetState() != nil && f.GetState().GetState() != c.state,
			f.GetPodSandboxId() != "" && f.GetPodSandboxId() != c.sandboxID,
			!selects(f.GetLabelSelector(), labels):
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: c.id, PodSandboxId: c.sandboxID, Metadata: &runtimeapi.ContainerMetadata{Name: c.spec.Name},
			Image: &runtimeapi.ImageSpec{Image: c.spec.Image}, ImageRef: imageRef(c.spec.Image), ImageId: imageRef(c.spec.Image),
			State: c.state, CreatedAt: c.createdAt, Labels: labels, Annotations: containerAnnotations(c),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// ListPodSandbox implements runtimeapi.RuntimeServiceServer, honouring the
// filter's ID, state and label selector.
func (s *server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	r := s.r
	r.countList(RPCListPodSandbox, req.GetFilter().GetId())
	if err := r.enter(ctx, RPCListPodSandbox, ""); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := req.GetFilter()
	out := []*runtimeapi.PodSandbox{}
	for _, sb := range r.sandboxes {
		labels := sandboxLabels(sb)
		switch {
		case f.GetId() != "" && f.GetId() != sb.id,
			f.GetState() != nil && f.GetState().GetState() != sb.state,
			!selects(f.GetLabelSelector(), labels):
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: sb.id, Metadata: &runtimeapi.PodSandboxMetadata{Name: sb.spec.Name, Uid: sb.spec.UID, Namespace: sb.spec.Namespace},
			State: sb.state, CreatedAt: sb.createdAt, Labels: labels, Annotations: sandboxAnnotations(sb),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// GetContainerEvents implements runtimeapi.RuntimeServiceServer in the mode
// SetEvents chose.
func (s *server) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	r := s.r
	ctx := stream.Context()
	if err := r.enter(ctx, RPCGetContainerEvents, ""); err != nil {
		return err
	}
	r.mu.Lock()
	mode := r.events
	r.mu.Unlock()
	switch mode {
	case EventsUnimplemented:
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	case EventsEOF:
		return nil
	}
	sub := r.subscribe()
	defer r.unsubscribe(sub)
	return relay(ctx, sub.ch, stream.Send)
}
