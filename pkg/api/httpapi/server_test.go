package httpapi

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/config"
)

func TestNewServer_HasEveryTimeoutAndAHeaderLimit(t *testing.T) {
	s := NewServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("server limits = %+v; every timeout and the header limit must be set", s)
	}
}

// The longest on-demand lookup the config accepts must leave the server
// time to write its answer, or the client gets an empty reply.
func TestNewServer_WriteTimeoutOutlivesTheLongestOnDemandLookup(t *testing.T) {
	if w := NewServer(http.NotFoundHandler()).WriteTimeout; w < config.MaxOnDemandTimeout+5*time.Second {
		t.Errorf("write timeout %s leaves under 5s after the longest on-demand lookup (%s)", w, config.MaxOnDemandTimeout)
	}
}

func TestServe_DrainsOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewServer(http.NotFoundHandler()), l, time.Second) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want a clean stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}
