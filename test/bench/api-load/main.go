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

	"github.com/cri-enricherd/cri-enricherd/pkg/api"
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
	socket := flag.String("socket", "", "a running daemon's API socket (default: serve a synthetic cache in-process)")
	clients := flag.Int("clients", 8, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to load")
	records := flag.Int("records", 10000, "synthetic records when serving in-process")
	flag.Parse()

	ids, stop, sock, err := target(*socket, *records)
	if err != nil {
		return err
	}
	defer stop()
	res := load(sock, ids, *clients, *duration)
	fmt.Printf("http  clients=%d duration=%s requests=%d errors=%d  %.0f req/s  p50=%.3fms p99=%.3fms p999=%.3fms\n",
		*clients, *duration, res.n, res.errors, float64(res.n)/duration.Seconds(), res.p50, res.p99, res.p999)
	return nil
}

// target returns the IDs to ask for and the socket to ask on.
func target(socket string, records int) ([]string, func(), string, error) {
	if socket != "" {
		ids, err := listIDs(socket)
		return ids, func() {}, socket, err
	}
	dir, err := os.MkdirTemp("", "api-load-")
	if err != nil {
		return nil, nil, "", err
	}
	sock := filepath.Join(dir, "api.sock")
	c, ids := syntheticCache(records)
	l, err := api.ListenUnix(sock, api.SocketOptions{})
	if err != nil {
		return nil, nil, "", err
	}
	srv := api.NewServer(api.NewHandler(c, nil, nil, zap.NewNop(), api.Options{}))
	go func() { _ = srv.Serve(l) }()
	return ids, func() { _ = srv.Close(); os.RemoveAll(dir) }, sock, nil
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

func load(sock string, ids []string, clients int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
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
				resp, err := hc.Get("http://cri-enricherd/v1/containers/" + ids[i%len(ids)])
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
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
