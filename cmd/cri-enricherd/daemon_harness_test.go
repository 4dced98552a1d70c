package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// host is the part of a node a daemon under test sees: a short directory
// for its sockets (unix socket paths are limited to 108 bytes), a cgroup v2
// root and a proc root the test populates.
type host struct {
	t          *testing.T
	dir        string
	cgroupRoot string
	procRoot   string
}

func newHost(t *testing.T) *host {
	t.Helper()
	dir, err := os.MkdirTemp("", "ced")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := &host{t: t, dir: dir, cgroupRoot: subdir(t, dir, "cgroup"), procRoot: subdir(t, dir, "proc")}
	h.cgroupHierarchy(h.cgroupRoot)
	return h
}

func subdir(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// cgroupHierarchy makes root look like a cgroup v2 mount with the kubelet's
// burstable QoS slice.
func (h *host) cgroupHierarchy(root string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "kubepods", "burstable"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// podCgroupDir is the cgroupfs directory of a pod under root.
func podCgroupDir(root, podUID string) string {
	return filepath.Join(root, "kubepods", "burstable", "pod"+podUID)
}

// addCgroup creates the cgroupfs directory of a container under root, as
// runc does when it creates the container.
func (h *host) addCgroup(root, podUID, id string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Join(podCgroupDir(root, podUID), id), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// addProcess writes /proc/<pid>/cgroup under root for a process of the
// container id.
func (h *host) addProcess(root string, pid int, podUID, id string) {
	h.t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	line := fmt.Sprintf("0::/kubepods/burstable/pod%s/%s\n", podUID, id)
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(line), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// settings are configuration keys, as the README names them, and their
// values as a user would write them.
type settings map[string]string

// args turns settings into the daemon's command line through the key
// table, so a test sets a key exactly as a user does.
func (s settings) args(t *testing.T) []string {
	t.Helper()
	flags := map[string]string{}
	for _, d := range config.Reference() {
		flags[d.Key] = d.Flag
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		flag, ok := flags[k]
		if !ok {
			t.Fatalf("no configuration key %q", k)
		}
		args = append(args, flag+"="+s[k])
	}
	return args
}

// load builds the configuration main would build from these settings on
// top of what every daemon under test needs: the runtime at endpoint, the
// host's roots, sockets in the host's directory, a free metrics port.
func (h *host) load(endpoint string, s settings) (config.Config, error) {
	h.t.Helper()
	all := settings{
		"runtime.endpoint": endpoint,
		"cgroup.root":      h.cgroupRoot,
		"proc.root":        h.procRoot,
		"api.socket":       filepath.Join(h.dir, "api.sock"),
		"api.grpc_socket":  filepath.Join(h.dir, "grpc.sock"),
		"metrics.address":  freeAddr(h.t),
		"log.level":        "debug",
	}
	for k, v := range s {
		all[k] = v
	}
	return config.Load(all.args(h.t), nil)
}

// runningDaemon is a cri-enricherd running in-process through serve, the function
// main runs, until the test ends it.
type runningDaemon struct {
	t      *testing.T
	cfg    config.Config
	logs   *logBuffer
	http   *http.Client
	cancel context.CancelFunc
	done   chan struct{} // closed when serve returned err
	err    error
}

// start loads the settings and runs the daemon; the test's cleanup stops it
// and fails the test if serve returned an error the test did not collect
// with stop or exited.
func (h *host) start(endpoint string, s settings) *runningDaemon {
	h.t.Helper()
	cfg, err := h.load(endpoint, s)
	if err != nil {
		h.t.Fatalf("load %v: %v", s, err)
	}
	return runDaemon(h.t, cfg)
}

func runDaemon(t *testing.T, cfg config.Config) *runningDaemon {
	ctx, cancel := context.WithCancel(context.Background())
	d := &runningDaemon{t: t, cfg: cfg, logs: &logBuffer{}, cancel: cancel, done: make(chan struct{})}
	d.http = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", cfg.API.Socket)
		},
	}}
	go func() {
		defer close(d.done)
		d.err = serve(ctx, cfg, d.logs)
	}()
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	})
	// The metrics listener is the first thing serve opens, before it even
	// looks for the runtime; a test may scrape from here on.
	eventually(t, 10*time.Second, "the metrics listener accepts connections", func() bool {
		select {
		case <-d.done:
			return true // it failed at once; the test collects why
		default:
		}
		c, err := net.Dial("tcp", cfg.Metrics.Address)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return d
}

// stop ends the daemon and returns what serve returned.
func (d *runningDaemon) stop() error {
	d.cancel()
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		return errors.New("serve did not return within 20s of its context ending")
	}
	d.http.CloseIdleConnections()
	return d.err
}

// exited waits for serve to return on its own and returns its error; the
// cleanup then no longer reports it.
func (d *runningDaemon) exited(within time.Duration) error {
	d.t.Helper()
	select {
	case <-d.done:
		err := d.err
		d.err = nil
		return err
	case <-time.After(within):
		d.t.Fatalf("daemon still running after %v", within)
		return nil
	}
}

// get sends GET path to the HTTP API socket.
func (d *runningDaemon) get(path string) (int, []byte) {
	d.t.Helper()
	resp, err := d.http.Get("http://api" + path)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// waitReady polls /readyz on the API socket until the first sync is done.
func (d *runningDaemon) waitReady() {
	d.t.Helper()
	eventually(d.t, 15*time.Second, "the daemon is ready", func() bool {
		resp, err := d.http.Get("http://api/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// record returns the cached record of id, answered without an on-demand
// lookup (the list reads only the cache).
func (d *runningDaemon) record(id string) (enrich.Record, bool) {
	d.t.Helper()
	for _, r := range d.records("include_deleted=true") {
		if r.ID == id {
			return r, true
		}
	}
	return enrich.Record{}, false
}

func (d *runningDaemon) records(query string) []enrich.Record {
	d.t.Helper()
	code, body := d.get("/v1/containers?" + query)
	if code != http.StatusOK {
		d.t.Fatalf("GET /v1/containers = %d %s", code, body)
	}
	var list struct{ Items []enrich.Record }
	if err := json.Unmarshal(body, &list); err != nil {
		d.t.Fatalf("decode list: %v", err)
	}
	return list.Items
}

// scrape reads the metrics endpoint at the configured address and path.
func (d *runningDaemon) scrape() promtext.Samples {
	d.t.Helper()
	resp, err := http.Get("http://" + d.cfg.Metrics.Address + d.cfg.Metrics.Path)
	if err != nil {
		d.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("scrape %s = %d", d.cfg.Metrics.Path, resp.StatusCode)
	}
	s, err := promtext.Parse(resp.Body)
	if err != nil {
		d.t.Fatalf("scrape: %v", err)
	}
	return s
}

// metric sums the series of name whose text holds every label pair given
// as `name="value"`.
func (d *runningDaemon) metric(name string, labels ...string) float64 {
	d.t.Helper()
	return d.scrape().Sum(name, labels...)
}

// eventually polls cond until it holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quietFor is the window in which a test shows that something does not
// happen: long against the milliseconds the daemon needs to do it when a
// setting lets it, short enough for a fast test.
const quietFor = 500 * time.Millisecond

// logBuffer collects the daemon's log; zap writes it from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Sync() error { return nil }

func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := strings.TrimSpace(b.buf.String())
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
