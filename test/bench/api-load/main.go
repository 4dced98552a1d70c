// Command api-load drives lookups at cri-enricherd's local API over its unix
// socket with N concurrent clients for a fixed duration and reports
// throughput and latency percentiles. Without -socket it serves a synthetic
// cache of -records containers itself (the daemon's real handler on a real
// unix socket), so the result does not depend on a runtime.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/api"
	"github.com/cri-enricherd/cri-enricherd/pkg/api/grpcapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api-load:", err)
		os.Exit(1)
	}
}

func run() error {
	socket := flag.String("socket", "", "a running daemon's HTTP API socket (default: serve a synthetic cache in-process)")
	grpcSocket := flag.String("grpc-socket", "", "a running daemon's gRPC socket (with -socket)")
	proto := flag.String("proto", "http", "http or grpc")
	clients := flag.Int("clients", 8, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to load")
	records := flag.Int("records", 10000, "synthetic records when serving in-process")
	flag.Parse()

	t, err := target(*socket, *grpcSocket, *records)
	if err != nil {
		return err
	}
	defer t.stop()
	var res result
	switch *proto {
	case "http":
		res = load(*clients, *duration, t.ids, httpLookup(t.socket, *clients))
	case "grpc":
		lookup, closeConn, err := grpcLookup(t.grpcSocket)
		if err != nil {
			return err
		}
		defer closeConn()
		res = load(*clients, *duration, t.ids, lookup)
	default:
		return fmt.Errorf("-proto %q: want http or grpc", *proto)
	}
	fmt.Printf("%-4s  clients=%d duration=%s requests=%d errors=%d  %.0f req/s  p50=%.3fms p99=%.3fms p999=%.3fms\n",
		*proto, *clients, *duration, res.n, res.errors, float64(res.n)/duration.Seconds(), res.p50, res.p99, res.p999)
	return nil
}

// loadTarget is what the load is driven at.
type loadTarget struct {
	ids                []string
	socket, grpcSocket string
	stop               func()
}

// target returns a running daemon's sockets, or serves a synthetic cache
// through the daemon's real HTTP and gRPC servers on unix sockets.
func target(socket, grpcSocket string, records int) (loadTarget, error) {
	if socket != "" {
		ids, err := listIDs(socket)
		return loadTarget{ids: ids, socket: socket, grpcSocket: grpcSocket, stop: func() {}}, err
	}
	dir, err := os.MkdirTemp("", "api-load-")
	if err != nil {
		return loadTarget{}, err
	}
	t := loadTarget{socket: filepath.Join(dir, "api.sock"), grpcSocket: filepath.Join(dir, "grpc.sock")}
	c, ids := syntheticCache(records)
	t.ids = ids
	l, err := api.ListenUnix(t.socket, api.SocketOptions{})
	if err != nil {
		return t, err
	}
	gl, err := api.ListenUnix(t.grpcSocket, api.SocketOptions{})
	if err != nil {
		return t, err
	}
	srv := api.NewServer(api.NewHandler(c, nil, nil, zap.NewNop(), api.Options{}))
	go func() { _ = srv.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	gs := grpcapi.New(c, nil, nil, nil, zap.NewNop(), grpcapi.Options{})
	done := make(chan struct{})
	go func() { _ = gs.Serve(ctx, gl, time.Second); close(done) }()
	t.stop = func() { _ = srv.Close(); cancel(); <-done; os.RemoveAll(dir) }
	return t, nil
}

// syntheticCache holds n containers with kubelet-sized labels, four per pod.
func syntheticCache(n int) (*cache.Cache, []string) {
	c := cache.New(cache.WithCapacity(n + n/4 + 1))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i))))
		pod := &enrich.Pod{SandboxID: fmt.Sprintf("%x", sha256.Sum256([]byte("pod"+strconv.Itoa(i/4)))),
			Name: fmt.Sprintf("web-%d", i/4), Namespace: "shop", UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000009",
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"}, IP: "10.0.0.5"}
		c.Put(enrich.Record{ID: ids[i], ShortID: ids[i][:12], Name: "app", State: "running", PID: 1000 + i, Runtime: "containerd",
			Image:      enrich.Image{Name: "registry.example/app:1", Ref: "sha256:" + ids[i]},
			CgroupPath: "/kubepods/burstable/pod" + pod.UID + "/" + ids[i],
			Labels: map[string]string{
				"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": pod.Name,
				"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": pod.UID,
			},
			Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	}
	return c, ids
}

// listIDs asks a running daemon which containers it serves.
func listIDs(sock string) ([]string, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://cri-enricherd/v1/containers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Items []enrich.Record `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	ids := make([]string, 0, len(out.Items))
	for _, r := range out.Items {
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("the daemon on %s serves no records", sock)
	}
	return ids, nil
}

type result struct {
	n, errors      int
	p50, p99, p999 float64
}

// lookupFunc asks for one ID and reports whether the answer was a record.
type lookupFunc func(id string) error

func httpLookup(sock string, clients int) lookupFunc {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return func(id string) error {
		resp, err := hc.Get("http://cri-enricherd/v1/containers/" + id)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

func grpcLookup(sock string) (lookupFunc, func(), error) {
	if sock == "" {
		return nil, nil, fmt.Errorf("-proto grpc needs -grpc-socket with -socket")
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	c := enricherv1.NewEnricherClient(conn)
	return func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.GetContainer(ctx, &enricherv1.GetContainerRequest{Id: id})
		return err
	}, func() { conn.Close() }, nil
}

// load runs clients goroutines asking for ids round robin until d passes.
func load(clients int, d time.Duration, ids []string, lookup lookupFunc) result {
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			bad := 0
			for i := c; time.Now().Before(deadline); i += clients {
				start := time.Now()
				if err := lookup(ids[i%len(ids)]); err != nil {
					bad++
					continue
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(math.Ceil(p*float64(len(all))))-1]) / 1e6
	}
	return result{n: len(all), errors: errs, p50: q(.5), p99: q(.99), p999: q(.999)}
}
