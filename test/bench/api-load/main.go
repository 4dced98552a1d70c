// Command api-load drives lookups at cri-enricherd's local API over its unix
// socket with N concurrent clients for a fixed duration and reports
// throughput and latency percentiles. Without -socket it serves a synthetic
// cache of -records kubelet-sized containers itself (the daemon's real
// handlers and servers on real unix sockets), so the result does not depend
// on a runtime; client and server then share the machine's cores.
//
// Answers are read in full but not decoded unless -decode is given: the
// load measures the daemon's side of the socket, not the client's parsing.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/internal/querytest"

	"github.com/cri-enricherd/cri-enricherd/pkg/api/grpcapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/api/httpapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/api/socket"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
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
	decode := flag.Bool("decode", false, "decode every answer (JSON or protobuf) as a consumer would; by default answers are read but not decoded, so the CPU goes to the daemon's side")
	warmup := flag.Duration("warmup", time.Second, "load run first and not counted (connections, heap growth)")
	jsonOut := flag.String("json", "", "also write the result as JSON to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (client and in-process server) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		stop, err := startProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}

	t, err := target(*socket, *grpcSocket, *records)
	if err != nil {
		return err
	}
	defer t.stop()
	var lookup lookupFunc
	switch *proto {
	case "http":
		lookup = httpLookup(t.socket, *clients, *decode)
	case "grpc":
		var closeConn func()
		if lookup, closeConn, err = grpcLookup(t.grpcSocket, *decode); err != nil {
			return err
		}
		defer closeConn()
	default:
		return fmt.Errorf("-proto %q: want http or grpc", *proto)
	}
	load(*clients, *warmup, t.ids, lookup)
	res := load(*clients, *duration, t.ids, lookup)
	res.Proto, res.Clients, res.Seconds, res.Decode = *proto, *clients, duration.Seconds(), *decode
	res.PerSecond = float64(res.N) / duration.Seconds()
	fmt.Printf("%-4s  clients=%d duration=%s requests=%d errors=%d  %.0f req/s  p50=%.3fms p99=%.3fms p999=%.3fms\n",
		res.Proto, res.Clients, *duration, res.N, res.Errors, res.PerSecond, res.P50, res.P99, res.P999)
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(*jsonOut, data, 0o644)
	}
	return nil
}

// startProfile profiles the CPU into path until the returned function runs.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// loadTarget is what the load is driven at.
type loadTarget struct {
	ids                []string
	socket, grpcSocket string
	stop               func()
}

// target returns a running daemon's sockets, or serves a synthetic cache
// through the daemon's real HTTP and gRPC servers on unix sockets.
func target(sock, grpcSocket string, records int) (loadTarget, error) {
	if sock != "" {
		ids, err := listIDs(sock)
		return loadTarget{ids: ids, socket: sock, grpcSocket: grpcSocket, stop: func() {}}, err
	}
	dir, err := os.MkdirTemp("", "api-load-")
	if err != nil {
		return loadTarget{}, err
	}
	t := loadTarget{socket: filepath.Join(dir, "api.sock"), grpcSocket: filepath.Join(dir, "grpc.sock")}
	// Room for every container and sandbox: the load asks for containers
	// that are all there.
	c, ids := querytest.Filled(records, cache.WithCapacity(2*records))
	t.ids = ids
	l, err := socket.Listen(t.socket, socket.Options{})
	if err != nil {
		return t, err
	}
	gl, err := socket.Listen(t.grpcSocket, socket.Options{})
	if err != nil {
		return t, err
	}
	q := query.New(c, nil, nil, zap.NewNop(), 0)
	srv := httpapi.NewServer(httpapi.NewHandler(q, zap.NewNop(), httpapi.Options{}))
	go func() { _ = srv.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	gs := grpcapi.New(q, nil, zap.NewNop(), grpcapi.Options{})
	done := make(chan struct{})
	go func() { _ = gs.Serve(ctx, gl, time.Second); close(done) }()
	t.stop = func() { _ = srv.Close(); cancel(); <-done; os.RemoveAll(dir) }
	return t, nil
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

// result is one load run; latencies in milliseconds.
type result struct {
	Proto     string  `json:"proto"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Decode    bool    `json:"decode"`
	N         int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
}

// lookupFunc asks for one ID and reports whether the answer was a record.
type lookupFunc func(id string) error

func httpLookup(sock string, clients int, decode bool) lookupFunc {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return func(id string) error {
		resp, err := hc.Get("http://cri-enricherd/v1/containers/" + id)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, resp.Body)
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if decode {
			var rec enrich.Record
			return json.NewDecoder(resp.Body).Decode(&rec)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
}

func grpcLookup(sock string, decode bool) (lookupFunc, func(), error) {
	if sock == "" {
		return nil, nil, fmt.Errorf("-proto grpc needs -grpc-socket with -socket")
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")})}
	return func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := &enricherv1.GetContainerRequest{Id: id}
		if decode {
			return conn.Invoke(ctx, enricherv1.Enricher_GetContainer_FullMethodName, req, &enricherv1.Record{})
		}
		var n rawAnswer
		return conn.Invoke(ctx, enricherv1.Enricher_GetContainer_FullMethodName, req, &n, opts...)
	}, func() { _ = conn.Close() }, nil
}

// rawAnswer receives an answer undecoded: its length only.
type rawAnswer int

// rawCodec marshals requests with the proto codec and leaves answers
// undecoded, as the HTTP client leaves JSON undecoded, so the load measures
// the daemon's side of the socket rather than the client's parsing.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if n, ok := v.(*rawAnswer); ok {
		*n = rawAnswer(data.Len())
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c rawCodec) Name() string { return c.proto.Name() }

// load runs clients goroutines asking for ids round robin until d passes,
// each asking again as soon as it is answered (a closed loop: at capacity,
// latency grows with the number of clients).
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
	return result{N: len(all), Errors: errs, P50: q(.5), P99: q(.99), P999: q(.999)}
}
