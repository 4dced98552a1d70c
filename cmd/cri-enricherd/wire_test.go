package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cri-enricherd/cri-enricherd/pkg/api/httpapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/metrics"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServeMetrics_PprofIsOffUnlessEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		cfg := config.Defaults()
		cfg.Metrics.Address = freeAddr(t)
		cfg.Debug.Pprof = enabled
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		if err := serveMetrics(gctx, g, cfg, metrics.New(metrics.BuildInfo{}), func() bool { return true }, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		get := func(path string) int {
			resp, err := http.Get("http://" + cfg.Metrics.Address + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		want := http.StatusNotFound
		if enabled {
			want = http.StatusOK
		}
		if got := get("/debug/pprof/"); got != want {
			t.Errorf("pprof enabled=%v: /debug/pprof/ = %d, want %d", enabled, got, want)
		}
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			if got := get(path); got != http.StatusOK {
				t.Errorf("%s = %d, want 200", path, got)
			}
		}
		cancel()
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDefaults_AreSecure(t *testing.T) {
	cfg := config.Defaults()
	if cfg.Debug.Pprof || cfg.Enrich.ExportEnv || cfg.Enrich.ExportAnnotations || cfg.API.Address != "" || cfg.API.AllowNonLoopback {
		t.Errorf("defaults expose something: pprof %v env %v annotations %v tcp %q non-loopback %v",
			cfg.Debug.Pprof, cfg.Enrich.ExportEnv, cfg.Enrich.ExportAnnotations, cfg.API.Address, cfg.API.AllowNonLoopback)
	}
	if cfg.API.SocketMode != 0o660 {
		t.Errorf("api.socket_mode default = %o, want 0660", cfg.API.SocketMode)
	}
	if len(cfg.Metrics.PodLabelAllowlist) != 0 {
		t.Errorf("pod label allowlist default = %v, want empty", cfg.Metrics.PodLabelAllowlist)
	}
}

func TestAPIServer_RefusesOversizedHeaders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(http.NotFoundHandler())
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+l.Addr().String()+"/v1/containers", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header = %d, want 431", resp.StatusCode)
	}
}
