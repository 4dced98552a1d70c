package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	idA     = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB     = "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222"
	idC     = "cccccccccccc3333333333333333333333333333333333333333333333333333"
	idNew   = "dddddddddddd4444444444444444444444444444444444444444444444444444" // known to the runtime only
	idSlow  = "eeeeeeeeeeee5555555555555555555555555555555555555555555555555555" // the runtime does not answer
	idError = "ffffffffffff6666666666666666666666666666666666666666666666666666" // the runtime fails
)

// fakeResolver answers on-demand lookups for the IDs above.
type fakeResolver struct{}

func (fakeResolver) Lookup(ctx context.Context, id string) (enrich.Record, error) {
	switch id {
	case idNew:
		return enrich.Record{ID: idNew, Name: "new"}, nil
	case idSlow:
		<-ctx.Done()
		return enrich.Record{}, ctx.Err()
	case idError:
		return enrich.Record{}, errors.New("rpc error: code = Unavailable desc = runtime down")
	}
	return enrich.Record{}, fmt.Errorf("%s: %w", id, lookup.ErrNotFound)
}

func testCache() *cache.Cache {
	c := cache.New()
	pod := &enrich.Pod{SandboxID: idC, Name: "web-0", Namespace: "shop", UID: "u1", Labels: map[string]string{"app": "web"}}
	c.Put(enrich.Record{ID: idA, Name: "app", Labels: map[string]string{"tier": "front"}, Pod: pod})
	c.Put(enrich.Record{ID: idB, Name: "side", Pod: pod})
	c.Put(enrich.Record{ID: idC, Name: "web-0", IsPodSandbox: true, Pod: pod})
	return c
}

type env struct {
	client enricherv1.EnricherClient
	health healthpb.HealthClient
	cache  *cache.Cache
	hub    *watch.Hub
	cancel context.CancelFunc // stops Serve
	served chan error
}

// start serves a Server on a temporary unix socket, as the daemon does.
func start(t *testing.T, c *cache.Cache, hubOpts watch.Options, opts Options, dial ...grpc.DialOption) *env {
	t.Helper()
	hub := watch.New(c, hubOpts)
	q := query.New(c, fakeResolver{}, querytest.PIDs{42: idA, 1: ""}, zap.NewNop(), 100*time.Millisecond)
	srv := New(q, hub, zap.NewNop(), opts)
	sock := filepath.Join(t.TempDir(), "grpc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{cache: c, hub: hub, cancel: cancel, served: make(chan error, 1)}
	go func() { e.served <- srv.Serve(ctx, l, time.Second) }()
	conn, err := grpc.NewClient("unix://"+sock, append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		hub.Close()
		e.stop(t)
	})
	e.client, e.health = enricherv1.NewEnricherClient(conn), healthpb.NewHealthClient(conn)
	return e
}

// stop ends Serve and waits for it; calling it twice is fine.
func (e *env) stop(t *testing.T) {
	t.Helper()
	e.cancel()
	if e.served == nil {
		return
	}
	select {
	case err := <-e.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	e.served = nil
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServer_AnswersEachCallWithTheCodeOfTheHTTPStatus(t *testing.T) {
	e := start(t, testCache(), watch.Options{}, Options{})
	getID := func(id string) func(context.Context, enricherv1.EnricherClient) (string, error) {
		return func(ctx context.Context, c enricherv1.EnricherClient) (string, error) {
			r, err := c.GetContainer(ctx, &enricherv1.GetContainerRequest{Id: id})
			return r.GetName(), err
		}
	}
	getPID := func(pid int32) func(context.Context, enricherv1.EnricherClient) (string, error) {
		return func(ctx context.Context, c enricherv1.EnricherClient) (string, error) {
			r, err := c.GetContainerByPID(ctx, &enricherv1.GetContainerByPIDRequest{Pid: pid})
			return r.GetName(), err
		}
	}
	getCgroup := func(path string) func(context.Context, enricherv1.EnricherClient) (string, error) {
		return func(ctx context.Context, c enricherv1.EnricherClient) (string, error) {
			r, err := c.GetContainerByCgroup(ctx, &enricherv1.GetContainerByCgroupRequest{Path: path})
			return r.GetName(), err
		}
	}
	list := func(req *enricherv1.ListContainersRequest) func(context.Context, enricherv1.EnricherClient) (string, error) {
		return func(ctx context.Context, c enricherv1.EnricherClient) (string, error) {
			r, err := c.ListContainers(ctx, req)
			var names []string
			for _, rec := range r.GetItems() {
				names = append(names, rec.GetName())
			}
			return strings.Join(names, ","), err
		}
	}
	systemd := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0d3c0a3e_6d4e_4f3b_9a1a_0a1b2c3d4e5f.slice/cri-containerd-"
	tests := []struct {
		name string
		call func(context.Context, enricherv1.EnricherClient) (string, error)
		code codes.Code
		want string // the record's name or the listed names
	}{
		{"full id", getID(idA), codes.OK, "app"},
		{"unique prefix", getID(idC[:12]), codes.OK, "web-0"},
		{"ambiguous prefix", getID(idA[:12]), codes.FailedPrecondition, ""},
		{"too short", getID("abc"), codes.InvalidArgument, ""},
		{"uppercase", getID(strings.ToUpper(idA)), codes.InvalidArgument, ""},
		{"unknown prefix", getID("bbbbbbbbbbbbbb"), codes.NotFound, ""},
		{"unknown full id found on demand", getID(idNew), codes.OK, "new"},
		{"unknown full id the runtime lacks", getID(strings.Repeat("b", 64)), codes.NotFound, ""},
		{"on-demand lookup times out", getID(idSlow), codes.DeadlineExceeded, ""},
		{"on-demand lookup fails", getID(idError), codes.Unavailable, ""},
		{"pid in a container", getPID(42), codes.OK, "app"},
		{"host process", getPID(1), codes.NotFound, ""},
		{"no such process", getPID(77), codes.NotFound, ""},
		{"pid 0", getPID(0), codes.InvalidArgument, ""},
		{"negative pid", getPID(-5), codes.InvalidArgument, ""},
		{"cgroup of a container", getCgroup(systemd + idA + ".scope"), codes.OK, "app"},
		{"cgroup below a container", getCgroup("/sys/fs/cgroup" + systemd + idA + ".scope/init.scope"), codes.OK, "app"},
		{"cgroup of a container found on demand", getCgroup("/kubepods/besteffort/pod1/" + idNew), codes.OK, "new"},
		{"cgroup of no container", getCgroup("/system.slice/sshd.service"), codes.NotFound, ""},
		{"relative cgroup path", getCgroup("kubepods/" + idA), codes.InvalidArgument, ""},
		{"cgroup path with ..", getCgroup("/kubepods/../" + idA), codes.InvalidArgument, ""},
		{"cgroup path with NUL", getCgroup("/kubepods/\x00/" + idA), codes.InvalidArgument, ""},
		{"cgroup path too long", getCgroup("/" + strings.Repeat("a", 4096) + "/" + idA), codes.InvalidArgument, ""},
		{"list everything", list(&enricherv1.ListContainersRequest{}), codes.OK, "app,side,web-0"},
		{"list containers only", list(&enricherv1.ListContainersRequest{ExcludeSandboxes: true}), codes.OK, "app,side"},
		{"list by container label", list(&enricherv1.ListContainersRequest{LabelSelector: "tier=front"}), codes.OK, "app"},
		{"list by pod label", list(&enricherv1.ListContainersRequest{LabelSelector: "app==web", Namespace: "shop"}), codes.OK, "app,side,web-0"},
		{"list by sandbox", list(&enricherv1.ListContainersRequest{SandboxId: idC}), codes.OK, "app,side,web-0"},
		{"list another namespace", list(&enricherv1.ListContainersRequest{Namespace: "other"}), codes.OK, ""},
		{"selector with !=", list(&enricherv1.ListContainersRequest{LabelSelector: "app!=web"}), codes.InvalidArgument, ""},
		{"selector with in", list(&enricherv1.ListContainersRequest{LabelSelector: "app in (web)"}), codes.InvalidArgument, ""},
		{"selector with a bare key", list(&enricherv1.ListContainersRequest{LabelSelector: "app"}), codes.InvalidArgument, ""},
		{"malformed sandbox id", list(&enricherv1.ListContainersRequest{SandboxId: "xyz"}), codes.InvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call(callCtx(t), e.client)
			if status.Code(err) != tt.code || got != tt.want {
				t.Errorf("got %q, %v; want %q with code %s", got, err, tt.want, tt.code)
			}
		})
	}
}

func TestServer_ListPodsGroupsSandboxAndContainers(t *testing.T) {
	c := testCache()
	c.Put(enrich.Record{ID: idNew, Name: "orphan", Pod: &enrich.Pod{Name: "lone", Namespace: "shop", UID: "u2"}})
	e := start(t, c, watch.Options{}, Options{})
	tests := []struct {
		name string
		req  *enricherv1.ListPodsRequest
		want []string // pod: sandbox name: containers
	}{
		{"every pod", &enricherv1.ListPodsRequest{}, []string{"lone::orphan", "web-0:web-0:app,side"}},
		{"by pod label", &enricherv1.ListPodsRequest{LabelSelector: "app=web"}, []string{"web-0:web-0:app,side"}},
		{"container labels do not select pods", &enricherv1.ListPodsRequest{LabelSelector: "tier=front"}, nil},
		{"by name", &enricherv1.ListPodsRequest{PodName: "lone"}, []string{"lone::orphan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.client.ListPods(callCtx(t), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range resp.GetItems() {
				var names []string
				for _, c := range p.GetContainers() {
					names = append(names, c.GetName())
				}
				got = append(got, p.GetPod().GetName()+":"+p.GetSandbox().GetName()+":"+strings.Join(names, ","))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("pods = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestServer_GetPodByIPAnswersOnlyALivePod(t *testing.T) {
	c := cache.New()
	live := &enrich.Pod{SandboxID: idC, Name: "web-0", Namespace: "shop", State: "ready", IP: "10.0.0.7"}
	c.Put(enrich.Record{ID: idC, Name: "web-0", State: "ready", IsPodSandbox: true, Pod: live})
	c.Put(enrich.Record{ID: idA, Name: "app", State: "running", Pod: live})
	stopped := &enrich.Pod{SandboxID: idB, Name: "old-0", Namespace: "shop", State: "notready", IP: "10.0.0.8"}
	c.Put(enrich.Record{ID: idB, Name: "old-0", State: "notready", IsPodSandbox: true, Pod: stopped})
	e := start(t, c, watch.Options{}, Options{})
	resp, err := e.client.GetPodByIP(callCtx(t), &enricherv1.GetPodByIPRequest{Ip: "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSandbox().GetId() != idC || len(resp.GetContainers()) != 1 || resp.GetContainers()[0].GetId() != idA {
		t.Errorf("GetPodByIP(10.0.0.7) = sandbox %s, %d containers; want web-0 with app", resp.GetSandbox().GetId(), len(resp.GetContainers()))
	}
	for ip, want := range map[string]codes.Code{"10.0.0.8": codes.NotFound, "nonsense": codes.InvalidArgument} {
		if _, err := e.client.GetPodByIP(callCtx(t), &enricherv1.GetPodByIPRequest{Ip: ip}); status.Code(err) != want {
			t.Errorf("GetPodByIP(%s) = %v, want %s", ip, err, want)
		}
	}
}

func TestServer_GetContainerByCgroupIDAnswersOnlyALiveCgroup(t *testing.T) {
	c := testCache()
	c.CgroupSeen(idA, 4242)
	e := start(t, c, watch.Options{}, Options{})
	rec, err := e.client.GetContainerByCgroupID(callCtx(t), &enricherv1.GetContainerByCgroupIDRequest{CgroupId: 4242})
	if err != nil || rec.GetId() != idA || rec.GetCgroupId() != 4242 {
		t.Fatalf("GetContainerByCgroupID(4242) = %s %d, %v; want %s", rec.GetId(), rec.GetCgroupId(), err, idA[:12])
	}
	for id, want := range map[uint64]codes.Code{9: codes.NotFound, 0: codes.InvalidArgument} {
		if _, err := e.client.GetContainerByCgroupID(callCtx(t), &enricherv1.GetContainerByCgroupIDRequest{CgroupId: id}); status.Code(err) != want {
			t.Errorf("GetContainerByCgroupID(%d) = %v, want %s", id, err, want)
		}
	}
}

func recv(t *testing.T, s grpc.ServerStreamingClient[enricherv1.WatchEvent]) *enricherv1.WatchEvent {
	t.Helper()
	ev, err := s.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return ev
}

func TestServer_WatchSendsTheStateThenEveryChangeInOrder(t *testing.T) {
	e := start(t, testCache(), watch.Options{}, Options{})
	s, err := e.client.Watch(callCtx(t), &enricherv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"app", "side", "web-0"} {
		if ev := recv(t, s); ev.GetType() != enricherv1.EventType_ADDED || ev.GetRecord().GetName() != want {
			t.Fatalf("initial event %s %s, want ADDED %s", ev.GetType(), ev.GetRecord().GetName(), want)
		}
	}
	synced := recv(t, s)
	if synced.GetType() != enricherv1.EventType_SYNCED || synced.GetRecord() != nil {
		t.Fatalf("after the state: %v, want SYNCED without a record", synced)
	}
	e.cache.Put(enrich.Record{ID: idNew, Name: "new"})
	e.cache.Put(enrich.Record{ID: idNew, Name: "new", State: "running"})
	e.cache.MarkDeleted(idNew, time.Time{})
	want := []enricherv1.EventType{enricherv1.EventType_ADDED, enricherv1.EventType_UPDATED, enricherv1.EventType_DELETED}
	last := synced.GetRevision()
	var changes []*enricherv1.WatchEvent
	for _, typ := range want {
		ev := recv(t, s)
		if ev.GetType() != typ || ev.GetRecord().GetId() != idNew || ev.GetRevision() <= last {
			t.Fatalf("event %s %s rev %d, want %s %s after rev %d", ev.GetType(), ev.GetRecord().GetName(), ev.GetRevision(), typ, "new", last)
		}
		last = ev.GetRevision()
		changes = append(changes, ev)
	}
	if changes[2].GetRecord().GetDeletedAt() == nil {
		t.Error("DELETED event's record has no deleted_at")
	}

	resumed, err := e.client.Watch(callCtx(t), &enricherv1.WatchRequest{ResumeRevision: changes[0].GetRevision()})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []enricherv1.EventType{enricherv1.EventType_UPDATED, enricherv1.EventType_DELETED, enricherv1.EventType_SYNCED} {
		if ev := recv(t, resumed); ev.GetType() != typ {
			t.Fatalf("resumed stream: %s, want %s", ev.GetType(), typ)
		}
	}
}

func watchErr(t *testing.T, c enricherv1.EnricherClient, resume uint64) error {
	t.Helper()
	s, err := c.Watch(callCtx(t), &enricherv1.WatchRequest{ResumeRevision: resume})
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

func TestServer_WatchRefusesTooManyWatchersAndLostRevisions(t *testing.T) {
	e := start(t, testCache(), watch.Options{MaxWatchers: 1, Replay: 1}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	first, err := e.client.Watch(ctx, &enricherv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, first)
	if err := watchErr(t, e.client, 0); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second watcher: %v, want RESOURCE_EXHAUSTED", err)
	}
	cancel()
	waitFor(t, func() bool { return e.hub.Watchers() == 0 })

	old := e.hub.Revision()
	e.cache.Put(enrich.Record{ID: idNew})
	e.cache.Put(enrich.Record{ID: idError})
	if err := watchErr(t, e.client, old); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("revision outside the window: %v, want FAILED_PRECONDITION", err)
	}
	if err := watchErr(t, e.client, e.hub.Revision()+10); status.Code(err) != codes.InvalidArgument {
		t.Errorf("revision from the future: %v, want INVALID_ARGUMENT", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServer_WatchEndsAClientThatStopsReadingWithResourceExhausted(t *testing.T) {
	// A small, fixed flow-control window makes the server's Send block as
	// soon as the client stops reading, so the hub's buffer fills.
	e := start(t, cache.New(), watch.Options{Buffer: 2}, Options{},
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	s, err := e.client.Watch(callCtx(t), &enricherv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, s) // SYNCED
	big := map[string]string{"blob": strings.Repeat("x", 256<<10)}
	for i := range 20 {
		e.cache.Put(enrich.Record{ID: fmt.Sprintf("%064x", i), Labels: big})
	}
	waitFor(t, func() bool { return e.hub.Dropped() == 1 })
	for {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "watcher too slow: 3 events behind") {
			t.Errorf("stream ended with %v, want RESOURCE_EXHAUSTED watcher too slow", err)
		}
		return
	}
}

func TestServer_HealthFollowsReadiness(t *testing.T) {
	var ready atomic.Bool
	e := start(t, cache.New(), watch.Options{}, Options{Ready: ready.Load, ReadyInterval: 5 * time.Millisecond})
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := e.health.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	for _, svc := range []string{"", "cri_enricherd.v1.Enricher"} {
		if got := check(svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%q before ready = %s, want NOT_SERVING", svc, got)
		}
	}
	ready.Store(true)
	waitFor(t, func() bool { return check("") == healthpb.HealthCheckResponse_SERVING })
	waitFor(t, func() bool { return check("cri_enricherd.v1.Enricher") == healthpb.HealthCheckResponse_SERVING })
	ready.Store(false)
	waitFor(t, func() bool { return check("") == healthpb.HealthCheckResponse_NOT_SERVING })
}

func TestServe_StopsStreamsThatOutliveTheDrainTimeout(t *testing.T) {
	e := start(t, testCache(), watch.Options{}, Options{})
	s, err := e.client.Watch(context.Background(), &enricherv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, s)
	began := time.Now()
	e.stop(t) // the hub stays open: only the drain timeout (1s) ends the stream
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("Serve took %s to stop, want about the 1s drain timeout", d)
	}
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.OK {
				t.Errorf("stream ended cleanly, want it cut by Stop")
			}
			return
		}
	}
}

func TestServe_ContextEndedBeforeServingIsACleanStop(t *testing.T) {
	c := cache.New()
	hub := watch.New(c, watch.Options{})
	defer hub.Close()
	srv := New(query.New(c, fakeResolver{}, querytest.PIDs{}, zap.NewNop(), 0), hub, zap.NewNop(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()            // a daemon told to stop while it starts
	for i := range 20 { // the stop may come before or after the server began serving
		l, err := net.Listen("unix", filepath.Join(t.TempDir(), "grpc.sock"))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(ctx, l, time.Second); err != nil {
			t.Fatalf("Serve %d with an ended context = %v, want nil", i, err)
		}
	}
}
