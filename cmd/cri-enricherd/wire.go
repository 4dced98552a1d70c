package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/cri-enricherd/cri-enricherd/pkg/api/grpcapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/api/httpapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/api/socket"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/pkg/metrics"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// drainTimeout bounds how long the HTTP servers finish requests in flight
// after a stop signal.
const drainTimeout = 5 * time.Second

// serve builds the components from cfg, logging to logOut, each from the
// ones it needs (the probes get the syncer's readiness), and runs them
// until ctx ends (main ends it on SIGTERM/SIGINT) or one of them fails.
func serve(ctx context.Context, cfg config.Config, logOut zapcore.WriteSyncer) error {
	log, err := config.NewLogger(cfg.Log, logOut)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting", zap.String("version", version), zap.Object("config", cfg))

	m := metrics.New(metrics.BuildInfo{Version: version, Node: cfg.NodeName})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	// The probes answer from the start, alive and not ready, also while
	// the daemon waits for a runtime socket to appear.
	var d *daemon
	built := make(chan struct{})
	ready := func() bool {
		select {
		case <-built:
			return d.syncer.Ready()
		default:
			return false
		}
	}
	if err := serveMetrics(ctx, g, cfg, m, ready, log); err != nil {
		return err
	}
	client, d, err := connect(ctx, cfg, m, log)
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	defer func() { _ = client.Close() }()
	close(built)
	d.start(ctx, g, cfg, client, m, log)
	err = g.Wait()
	log.Info("stopped")
	return err
}

// connect finds and dials the runtime and assembles the daemon over it.
func connect(ctx context.Context, cfg config.Config, m *metrics.Metrics, log *zap.Logger) (*criclient.Client, *daemon, error) {
	endpoint, err := findRuntime(ctx, cfg.Runtime.Endpoint, log)
	if err != nil {
		return nil, nil, err
	}
	client, err := criclient.Dial(endpoint, criclient.Options{Timeout: cfg.Runtime.Timeout, ConnectTimeout: cfg.Runtime.ConnectTimeout, Observer: m})
	if err != nil {
		return nil, nil, err
	}
	d, err := assemble(cfg, client, m, log)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return client, d, nil
}

// daemon holds the components between assembly and start.
type daemon struct {
	cache   *cache.Cache
	engine  *lookup.Engine
	syncer  *lookup.Syncer
	events  *lookup.Events
	ctrd    *lookup.ContainerdEvents
	watcher *cgroup.Watcher
	source  *lookup.CgroupSource
	handler *httpapi.Handler
	hub     *watch.Hub
	grpc    *grpcapi.Server
}

func assemble(cfg config.Config, client *criclient.Client, m *metrics.Metrics, log *zap.Logger) (*daemon, error) {
	h, err := cgroup.DetectHierarchy(cfg.Cgroup.Root)
	if err != nil {
		return nil, err
	}
	log.Info("watching cgroups", zap.String("dir", h.Dir), zap.Stringer("mode", h.Mode))
	d := &daemon{}
	d.cache = cache.New(cache.WithCapacity(cfg.Cache.Size), cache.WithGracePeriod(cfg.Cache.DeletedGrace))
	d.engine = lookup.New(client, d.cache, m, log.Named("lookup"), lookup.Options{
		Concurrency: cfg.Runtime.MaxConcurrency, RateLimit: cfg.Runtime.RateLimit,
		OnDemandRate: cfg.API.OnDemandRate, OnDemandBurst: cfg.API.OnDemandBurst,
		MaxRetries: cfg.Runtime.MaxRetries, RetryBase: cfg.Runtime.RetryBase, RetryMax: cfg.Runtime.RetryMax,
		NegativeTTL: cfg.Cache.NegativeTTL, SyncDeadline: cfg.Runtime.BootstrapTimeout,
		Wait: lookup.WaitOptions{Announced: func() bool { return d.ctrd.Active() }},
		Enrich: enrich.Options{ExportEnv: cfg.Enrich.ExportEnv, ExportAnnotations: cfg.Enrich.ExportAnnotations,
			MaxLabels: cfg.Enrich.MaxLabels, MaxValueLen: cfg.Enrich.MaxValueLength, NodeName: cfg.NodeName},
	})
	d.syncer = lookup.NewSyncer(d.engine, log.Named("sync"), cfg.Runtime.RelistInterval, m.Ready)
	d.events = lookup.NewEvents(d.engine, client, m, log.Named("events"), d.syncer.Kick, cfg.Runtime.Events == config.EventsOn)
	d.ctrd = lookup.NewContainerdEvents(d.engine, containerdEvents{client}, m, log.Named("containerd-events"), isMalformedEvent)
	d.watcher = cgroup.NewWatcher(h.Dir, log.Named("cgroup"), cgroup.WatcherOptions{RescanInterval: cfg.Cgroup.RescanInterval, CgroupIDs: h.IsV2()})
	d.source = lookup.NewCgroupSource(d.engine, m, d.events.Active)
	d.hub = watch.New(d.cache, watch.Options{MaxWatchers: cfg.API.MaxWatchers, Recorder: m})
	q := query.New(d.cache, d.engine, cgroup.NewProcResolver(cfg.Proc.Root), log.Named("query"), cfg.API.OnDemandTimeout)
	d.handler = httpapi.NewHandler(q, log.Named("api"), httpapi.Options{Ready: d.syncer.Ready, Watches: d.hub})
	d.grpc = grpcapi.New(q, d.hub, log.Named("grpc"), grpcapi.Options{Ready: d.syncer.Ready})
	m.WatchComponents(d.cacheStats, d.lookupStats)
	m.WatchRecords(d.cache, cfg.Metrics.PodLabelAllowlist)
	return d, nil
}

func (d *daemon) cacheStats() metrics.CacheStats {
	c, s, del := d.cache.Counts()
	return metrics.CacheStats{Containers: c, Sandboxes: s, Deleted: del, Evictions: d.cache.Evictions()}
}

func (d *daemon) lookupStats() metrics.LookupStats {
	s := d.engine.Stats()
	return metrics.LookupStats{Queued: s.Queued, InFlight: s.InFlight, Negative: s.Negative, Waiting: s.Waiting, Watchers: d.hub.Watchers()}
}

// start runs every component in g; the first to fail stops the others.
func (d *daemon) start(ctx context.Context, g *errgroup.Group, cfg config.Config, client *criclient.Client, m *metrics.Metrics, log *zap.Logger) {
	g.Go(func() error { return d.engine.Run(ctx) })
	g.Go(func() error { return d.syncer.Run(ctx) })
	g.Go(func() error { client.WatchHealth(ctx, d.syncer.RuntimeUp); return nil })
	g.Go(func() error { d.cache.Run(ctx, 10*time.Second); return nil })
	g.Go(func() error { sweep(ctx, d.engine.Sweep); return nil })
	g.Go(func() error { return d.followEvents(ctx, cfg.Runtime, m) })
	g.Go(func() error {
		select { // see Syncer.FirstSync
		case <-d.syncer.FirstSync():
		case <-ctx.Done():
			return nil
		}
		return d.watcher.Run(ctx, d.source.Handle)
	})
	g.Go(func() error { return serveAPI(ctx, cfg.API, d.handler, log) })
	g.Go(func() error { return d.hub.Run(ctx) }) // closing ends watch streams, so the API servers drain
	g.Go(func() error { return serveGRPC(ctx, cfg.API, d.grpc, log) })
}

// followEvents follows the CRI event stream and, where the runtime has none
// (or it is off), containerd's own events: never both, so a runtime that
// streams CRI events is not asked twice about the same container.
func (d *daemon) followEvents(ctx context.Context, cfg config.RuntimeConfig, m *metrics.Metrics) error {
	if cfg.Events != config.EventsOff {
		if err := d.events.Run(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	} else {
		m.EventSource("cgroup")
	}
	if !cfg.ContainerdEvents {
		return nil
	}
	return d.ctrd.Run(ctx)
}

// containerdEvents hands the lookup engine the client's containerd event
// stream behind the engine's own interface.
type containerdEvents struct{ *criclient.Client }

func (c containerdEvents) ContainerdEvents(ctx context.Context, filters []string) (lookup.ContainerdStream, error) {
	return c.Client.ContainerdEvents(ctx, filters)
}

func isMalformedEvent(err error) bool { return errors.Is(err, criclient.ErrMalformedEvent) }

func sweep(ctx context.Context, fn func()) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// findRuntime returns the configured endpoint, or waits for one of the
// well-known sockets to appear: a daemon started before its runtime waits
// instead of failing, and serves once the runtime is there. (The chart
// always names the endpoint, and dialing it does not wait.)
func findRuntime(ctx context.Context, endpoint string, log *zap.Logger) (string, error) {
	if endpoint != "" {
		return criclient.Target(endpoint)
	}
	for delay := time.Second; ; delay = min(2*delay, 10*time.Second) {
		ep, err := criclient.Detect(config.WellKnownEndpoints())
		if err == nil {
			log.Info("runtime endpoint detected", zap.String("endpoint", ep))
			return ep, nil
		}
		log.Warn("waiting for a runtime socket", zap.Error(err))
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("stopped while waiting for a runtime: %w", err)
		case <-time.After(delay):
		}
	}
}

func serveAPI(ctx context.Context, cfg config.APIConfig, h http.Handler, log *zap.Logger) error {
	l, err := socket.Listen(cfg.Socket, socket.Options{Mode: cfg.SocketMode, Group: cfg.SocketGroup})
	if err != nil {
		return err
	}
	log.Info("api listening", zap.String("socket", cfg.Socket))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpapi.Serve(ctx, httpapi.NewServer(h), l, drainTimeout) })
	if cfg.Address != "" {
		tl, err := net.Listen("tcp", cfg.Address)
		if err != nil {
			return fmt.Errorf("api address %s: %w", cfg.Address, err)
		}
		log.Info("api listening", zap.String("address", tl.Addr().String()))
		g.Go(func() error { return httpapi.Serve(ctx, httpapi.NewServer(h), tl, drainTimeout) })
	}
	return g.Wait()
}

// serveGRPC serves the gRPC API on its own unix socket, created like the
// HTTP API's, until ctx ends; an empty api.grpc_socket turns it off.
func serveGRPC(ctx context.Context, cfg config.APIConfig, srv *grpcapi.Server, log *zap.Logger) error {
	if cfg.GRPCSocket == "" {
		return nil
	}
	l, err := socket.Listen(cfg.GRPCSocket, socket.Options{Mode: cfg.SocketMode, Group: cfg.SocketGroup})
	if err != nil {
		return err
	}
	log.Info("grpc api listening", zap.String("socket", cfg.GRPCSocket))
	return srv.Serve(ctx, l, drainTimeout)
}

// serveMetrics serves /metrics, /healthz and /readyz (what the kubelet
// probes) and, when enabled, pprof, on the metrics address.
func serveMetrics(ctx context.Context, g *errgroup.Group, cfg config.Config, m *metrics.Metrics, ready func() bool, log *zap.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+cfg.Metrics.Path, m.Handler())
	httpapi.RegisterProbes(mux, ready)
	if cfg.Debug.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	l, err := net.Listen("tcp", cfg.Metrics.Address)
	if err != nil {
		return fmt.Errorf("metrics address %s: %w", cfg.Metrics.Address, err)
	}
	log.Info("metrics listening", zap.String("address", l.Addr().String()))
	g.Go(func() error { return httpapi.Serve(ctx, httpapi.NewServer(mux), l, drainTimeout) })
	return nil
}
