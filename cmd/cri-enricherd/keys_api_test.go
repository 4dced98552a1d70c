package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// socketFile stats a socket and returns its permission bits and group.
func socketFile(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("api socket: %v", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	return fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid
}

// grpcClient dials the gRPC API at socket for the rest of the test and
// returns a context bounding one call.
func grpcClient(t *testing.T, socket string) (enricherv1.EnricherClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = conn.Close()
	})
	return enricherv1.NewEnricherClient(conn), ctx
}

func TestDaemon_APISocketsFollowTheirKeys(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	_, ids := podWith(rt, "web-0", 1)
	endpoint := rt.Start(t)
	tests := []struct {
		name     string
		settings func(dir string) settings
		mode     os.FileMode
		gid      int  // -1: the test process's group
		grpc     bool // a gRPC socket is served
		needRoot bool
	}{
		{"defaults", func(string) settings { return nil }, 0o660, -1, true, false},
		{"sockets elsewhere, mode 0600, group 4242", func(dir string) settings {
			return settings{
				"api.socket": filepath.Join(dir, "run", "q.sock"), "api.grpc_socket": filepath.Join(dir, "run", "g.sock"),
				"api.socket_mode": "0600", "api.socket_group": "4242",
			}
		}, 0o600, 4242, true, true},
		{"no gRPC socket", func(string) settings { return settings{"api.grpc_socket": "", "api.socket_mode": "0666"} }, 0o666, -1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot && os.Geteuid() != 0 {
				t.Skip("chown to another group needs root")
			}
			h := newHost(t)
			d := h.start(endpoint, tt.settings(h.dir))
			d.waitReady() // answered on the configured api.socket
			wantGID := uint32(tt.gid)
			if tt.gid < 0 {
				wantGID = uint32(os.Getegid())
			}
			sockets := []string{d.cfg.API.Socket}
			if tt.grpc {
				sockets = append(sockets, d.cfg.API.GRPCSocket)
				c, ctx := grpcClient(t, d.cfg.API.GRPCSocket)
				if rec, err := c.GetContainer(ctx, &enricherv1.GetContainerRequest{Id: ids[0]}); err != nil || rec.GetId() != ids[0] {
					t.Errorf("gRPC GetContainer on %s = %v, %v", d.cfg.API.GRPCSocket, rec.GetId(), err)
				}
			} else if _, err := os.Stat(filepath.Join(h.dir, "grpc.sock")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("api.grpc_socket empty, yet the gRPC socket exists: %v", err)
			}
			for _, s := range sockets {
				if mode, gid := socketFile(t, s); mode != tt.mode || gid != wantGID {
					t.Errorf("%s: mode %04o group %d, want %04o group %d", s, mode, gid, tt.mode, wantGID)
				}
			}
		})
	}
}

// tcpGet sends GET path to the API's TCP listener at addr.
func tcpGet(addr, path string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestDaemon_APIAddressServesTheAPIOverTCPLoopbackUnlessAllowed(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	podWith(rt, "web-0", 1)
	endpoint := rt.Start(t)
	t.Run("loopback address", func(t *testing.T) {
		addr := freeAddr(t)
		d := newHost(t).start(endpoint, settings{"api.address": addr})
		d.waitReady()
		if code, err := tcpGet(addr, "/v1/containers"); err != nil || code != http.StatusOK {
			t.Errorf("api.address %s: GET /v1/containers = %d, %v", addr, code, err)
		}
		// 127.0.0.2 reaches only a listener bound beyond 127.0.0.1.
		_, port, _ := net.SplitHostPort(addr)
		if _, err := tcpGet("127.0.0.2:"+port, "/healthz"); err == nil {
			t.Errorf("api.address %s is also served on 127.0.0.2", addr)
		}
	})
	t.Run("every interface refused without api.allow_non_loopback", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		_, err := newHost(t).load(endpoint, settings{"api.address": "0.0.0.0:" + port})
		var invalid *config.ValidationError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "api.address") {
			t.Errorf("api.address 0.0.0.0:%s without api.allow_non_loopback: %v, want a problem with api.address", port, err)
		}
	})
	t.Run("every interface with api.allow_non_loopback", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		d := newHost(t).start(endpoint, settings{"api.address": "0.0.0.0:" + port, "api.allow_non_loopback": "true"})
		d.waitReady()
		if code, err := tcpGet("127.0.0.2:"+port, "/healthz"); err != nil || code != http.StatusOK {
			t.Errorf("api.address 0.0.0.0:%s allowed: GET on 127.0.0.2 = %d, %v", port, code, err)
		}
	})
}

func TestDaemon_APIOnDemandTimeoutBoundsTheWaitForAnUnknownID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		timeout string
		want    int
	}{
		{"50ms", http.StatusGatewayTimeout}, // the runtime answers in 500ms
		{"10s", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			_, startContainer := startedLater(rt)
			d := newHost(t).start(rt.Start(t), settings{"api.ondemand_timeout": tt.timeout, "runtime.events": "off", "runtime.timeout": "10s"})
			d.waitReady()
			id := startContainer()
			rt.Delay(fakecri.RPCContainerStatus, 500*time.Millisecond)
			if code, body := d.get("/v1/containers/" + id); code != tt.want {
				t.Errorf("api.ondemand_timeout %s: GET a container the daemon has not seen = %d %s, want %d", tt.timeout, code, body, tt.want)
			}
		})
	}
}

func TestDaemon_APIOnDemandRateAndBurstBoundLookupsOfUnknownIDs(t *testing.T) {
	t.Parallel()
	const asked = 10
	tests := []struct {
		rate, burst string
		refused     int
	}{
		{"0", "1", 0}, // no limit
		{"0.01", "1", asked - 1},
		{"0.01", "4", asked - 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("rate %s burst %s", tt.rate, tt.burst), func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			d := newHost(t).start(rt.Start(t), settings{"api.ondemand_rate": tt.rate, "api.ondemand_burst": tt.burst})
			d.waitReady()
			refused := 0
			for i := range asked {
				switch code, body := d.get("/v1/containers/" + fakecri.ID(fmt.Sprint("unknown/", i))); code {
				case http.StatusTooManyRequests:
					refused++
				case http.StatusNotFound:
				default:
					t.Fatalf("GET an unknown id = %d %s", code, body)
				}
			}
			counted := d.metric("cri_enricherd_ondemand_lookups_refused_total")
			if refused != tt.refused || counted != float64(tt.refused) {
				t.Errorf("api.ondemand_rate %s, api.ondemand_burst %s: %d of %d unknown ids refused, %v counted; want %d",
					tt.rate, tt.burst, refused, asked, counted, tt.refused)
			}
		})
	}
}

func TestDaemon_APIMaxWatchersRefusesOneMore(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			d := newHost(t).start(rt.Start(t), settings{"api.max_watchers": fmt.Sprint(n)})
			d.waitReady()
			watch := func() *http.Response {
				resp, err := d.http.Get("http://api/v1/watch")
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			for i := range n {
				resp := watch()
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("watch %d of %d = %d", i+1, n, resp.StatusCode)
				}
			}
			resp := watch()
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("api.max_watchers %d: watch %d = %d, want 429", n, n+1, resp.StatusCode)
			}
			c, ctx := grpcClient(t, d.cfg.API.GRPCSocket)
			s, err := c.Watch(ctx, &enricherv1.WatchRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("api.max_watchers %d: gRPC watch %d = %v, want ResourceExhausted", n, n+1, err)
			}
		})
	}
}
