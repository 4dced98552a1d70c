package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/api/httpapi"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	idApp     = "0e4508d2bcd41111111111111111111111111111111111111111111111111111"
	idSide    = "0e4508d2bcd42222222222222222222222222222222222222222222222222222"
	idSandbox = "474380a6344c3333333333333333333333333333333333333333333333333333"
	idHost    = "d3ae86afa9f24444444444444444444444444444444444444444444444444444"
)

type fakePIDs map[int]string

func (f fakePIDs) Resolve(pid int) (string, cgroup.Ref, error) {
	id, ok := f[pid]
	if !ok {
		return "", cgroup.Ref{}, fmt.Errorf("pid %d: %w", pid, fs.ErrNotExist)
	}
	return "", cgroup.Ref{ContainerID: id}, nil
}

func testRecords() []enrich.Record {
	at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	now := time.Now() // within the cache's grace period, unlike at
	uid := int64(0)
	pod := &enrich.Pod{SandboxID: idSandbox, Name: "api-0", Namespace: "shop", UID: "6f1c0e6e-1b7c-4d7e-9a51-2f0b8f8a0c11",
		State: "ready", Labels: map[string]string{"app": "api"}, IP: "10.223.1.3", AdditionalIPs: []string{}, RuntimeHandler: "runc", CreatedAt: &at}
	hostPod := &enrich.Pod{SandboxID: "ffffffffffff" + idHost[12:], Name: "node-agent-x1", Namespace: "kube-system",
		UID: "0b7e7d2a-59a4-4c4f-8d0e-7a6a4b1d3e22", Labels: map[string]string{"app": "agent"}, HostNetwork: true}
	return []enrich.Record{
		{ID: idSandbox, ShortID: idSandbox[:12], Name: "api-0", State: "ready", Runtime: "containerd", CreatedAt: &at,
			Image: enrich.Image{Name: "registry.k8s.io/pause:3.10"}, PID: 25799, IsPodSandbox: true, Pod: pod,
			PodSource: enrich.PodSourceSandboxStatus, CgroupPath: "/kubepods/besteffort/pod6f1c/" + idSandbox},
		{ID: idApp, ShortID: idApp[:12], Name: "server", State: "running", Runtime: "containerd", CreatedAt: &at, StartedAt: &at,
			Image:  enrich.Image{Name: "docker.io/library/nginx:1.27", Ref: "docker.io/library/nginx@sha256:aa", ID: "sha256:bb"},
			PID:    25823,
			Labels: map[string]string{"io.kubernetes.container.name": "server"}, UserUID: &uid,
			Mounts:    []enrich.Mount{{HostPath: "/var/lib/kubelet/pods/x/etc-hosts", ContainerPath: "/etc/hosts", Propagation: "rprivate"}},
			Resources: enrich.Resources{CPUShares: 2, MemoryLimitInBytes: 134217728}, Pod: pod,
			PodSource: enrich.PodSourceSandboxStatus, CgroupPath: "/kubepods/besteffort/pod6f1c/" + idApp, CgroupID: 4242},
		{ID: idSide, ShortID: idSide[:12], Name: "envoy", State: "exited", Runtime: "containerd", Pod: pod,
			PodSource: enrich.PodSourceSandboxCache, DeletedAt: &now},
		{ID: idHost, ShortID: idHost[:12], Name: "agent", State: "running", Runtime: "containerd", PID: 25891,
			Image: enrich.Image{Name: "ghcr.io/example/agent:v2"}, Pod: hostPod, PodSource: enrich.PodSourceContainerLabels},
	}
}

type daemon struct {
	socket string
	cache  *cache.Cache
}

// startDaemon serves the real HTTP API on a unix socket through httptest.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	c := cache.New()
	for _, rec := range testRecords() {
		c.Put(rec)
	}
	hub := watch.New(c, watch.Options{})
	h := httpapi.NewHandler(query.New(c, nil, fakePIDs{42: idApp}, zap.NewNop(), 0), zap.NewNop(), httpapi.Options{Watches: hub})
	socket := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		hub.Close() // ends watch streams, or Close would wait for them
		srv.Close()
	})
	return &daemon{socket: socket, cache: c}
}

func (d *daemon) run(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr syncBuffer
	code := Run(ctx, append(args, "--socket", d.socket), IO{Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/cli -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test ./pkg/cli -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestRun_PrintsTheGoldenOutputOfEachFormat(t *testing.T) {
	d := startDaemon(t)
	tests := []struct {
		golden string
		args   []string
	}{
		{"list", []string{"list"}},
		{"list-wide", []string{"list", "-o", "wide"}},
		{"list-deleted-containers", []string{"list", "--include-deleted", "--no-sandboxes"}},
		{"list-namespace-selector", []string{"list", "-n", "shop", "-l", "io.kubernetes.container.name=server"}},
		{"list-empty", []string{"list", "-n", "nothing-here"}},
		{"list-json", []string{"list", "-n", "shop", "-o", "json"}},
		{"list-yaml", []string{"list", "-n", "shop", "-o", "yaml"}},
		{"get-id", []string{"get", idApp[:16]}},
		{"get-pid", []string{"get", "pid:42", "-o", "wide"}},
		{"get-cgroup-json", []string{"get", "cgroup:/kubepods/besteffort/pod6f1c/" + idApp + "/init", "-o", "json"}},
		{"get-yaml", []string{"get", idSandbox, "-o", "yaml"}},
		{"get-ip", []string{"get", "ip:10.223.1.3"}},
		{"get-ip-json", []string{"get", "ip:10.223.1.3", "-o", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := d.run(context.Background(), tt.args...)
			if code != ExitOK {
				t.Fatalf("%v: exit %d, stderr %q", tt.args, code, errOut)
			}
			golden(t, tt.golden, out)
		})
	}
}

func TestRun_JSONOutputIsTheAPIRecord(t *testing.T) {
	d := startDaemon(t)
	_, out, _ := d.run(context.Background(), "get", idApp, "-o", "json")
	var got enrich.Record
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(testRecords()[1])
	again, _ := json.Marshal(got)
	if !bytes.Equal(want, again) {
		t.Errorf("get -o json =\n%s\nwant the record\n%s", again, want)
	}
}

func TestRun_ExitStatusSaysWhatWentWrong(t *testing.T) {
	d := startDaemon(t)
	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"found", []string{"get", idApp}, ExitOK, ""},
		{"unknown id", []string{"get", "bbbbbbbbbbbbbb"}, ExitNotFound, "no container"},
		{"unknown pid", []string{"get", "pid:77"}, ExitNotFound, "no process"},
		{"cgroup of no container", []string{"get", "cgroup:/system.slice/sshd.service"}, ExitNotFound, "names no container"},
		{"ambiguous prefix", []string{"get", "0e4508d2bcd4"}, ExitError, "ambiguous"},
		{"malformed id", []string{"get", "xyz"}, ExitUsage, "not an ID"},
		{"bad pid", []string{"get", "pid:abc"}, ExitUsage, "positive process ID"},
		{"relative cgroup", []string{"get", "cgroup:kubepods"}, ExitUsage, "absolute"},
		{"ip no live pod holds", []string{"get", "ip:10.9.9.9"}, ExitNotFound, "no live pod"},
		{"cgroup id of a live cgroup", []string{"get", "cgroupid:4242"}, ExitOK, ""},
		{"cgroup id nobody has", []string{"get", "cgroupid:9"}, ExitNotFound, "no live container"},
		{"malformed cgroup id", []string{"get", "cgroupid:abc"}, ExitUsage, "positive decimal"},
		{"malformed ip", []string{"get", "ip:api-0"}, ExitUsage, "IPv4 or IPv6"},
		{"cgroup rejected by the daemon", []string{"get", "cgroup:/a/../b"}, ExitUsage, ".."},
		{"no argument", []string{"get"}, ExitUsage, "exactly one"},
		{"two arguments", []string{"get", idApp, idSide}, ExitUsage, "exactly one"},
		{"unknown flag", []string{"list", "--colour"}, ExitUsage, "unknown flag"},
		{"unknown format", []string{"list", "-o", "xml"}, ExitUsage, "output format"},
		{"yaml watch", []string{"watch", "-o", "yaml"}, ExitUsage, "output format"},
		{"set-based selector", []string{"list", "-l", "app in (api)"}, ExitUsage, "equality"},
		{"argument to list", []string{"list", "pods"}, ExitUsage, "unexpected argument"},
		{"revision outside the window", []string{"watch", "--revision", "5"}, ExitError, "older than the replay window"},
		{"help", []string{"list", "--help"}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := d.run(context.Background(), tt.args...)
			if code != tt.want || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("%v: exit %d, stderr %q; want %d containing %q", tt.args, code, errOut, tt.want, tt.stderr)
			}
		})
	}
}

func TestRun_DaemonUnreachableIsStatus3(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nobody.sock")
	for _, args := range [][]string{{"get", idApp}, {"list"}, {"watch"}} {
		var stderr bytes.Buffer
		code := Run(context.Background(), append(args, "--socket", missing), IO{Stdout: &bytes.Buffer{}, Stderr: &stderr})
		if code != ExitUnreachable || !strings.Contains(stderr.String(), "daemon unreachable") {
			t.Errorf("%v: exit %d, stderr %q; want %d, daemon unreachable", args, code, stderr.String(), ExitUnreachable)
		}
	}
}

func TestRun_HelpDocumentsFlagsAndExitStatuses(t *testing.T) {
	for _, name := range Commands {
		var stdout bytes.Buffer
		code := Run(context.Background(), []string{name, "--help"}, IO{Stdout: &stdout, Stderr: &bytes.Buffer{}})
		help := stdout.String()
		if code != ExitOK || !strings.Contains(help, "Usage: cri-enricherd "+name) ||
			!strings.Contains(help, "--socket") || !strings.Contains(help, "3 daemon unreachable") {
			t.Errorf("%s --help: exit %d, output:\n%s", name, code, help)
		}
	}
}

func TestSocketSetting_ReadsTheDaemonsVariableOrDefault(t *testing.T) {
	tests := []struct {
		environ []string
		want    string
	}{
		{nil, "/run/cri-enricherd/api.sock"},
		{[]string{"CRI_ENRICHERD_API_SOCKET=/tmp/x.sock"}, "/tmp/x.sock"},
		{[]string{"CRI_ENRICHERD_API_SOCKET="}, "/run/cri-enricherd/api.sock"},
	}
	for _, tt := range tests {
		env, got := socketSetting(tt.environ)
		if env != "CRI_ENRICHERD_API_SOCKET" || got != tt.want {
			t.Errorf("socketSetting(%v) = %s, %s; want CRI_ENRICHERD_API_SOCKET, %s", tt.environ, env, got, tt.want)
		}
	}
}

// waitOutput waits until out contains want.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", want, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRun_WatchPrintsTheStateThenChangesUntilInterrupted(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			d := startDaemon(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- Run(ctx, []string{"watch", "-o", format, "--socket", d.socket}, IO{Stdout: &stdout, Stderr: &stderr})
			}()
			synced := map[string]string{"table": "node-agent-x1", "json": `"type":"SYNCED"`}[format]
			waitOutput(t, &stdout, synced)
			rec := testRecords()[3]
			rec.State = "exited"
			d.cache.Put(rec)
			waitOutput(t, &stdout, "exited")
			cancel()
			if code := <-done; code != ExitOK {
				t.Errorf("interrupted watch: exit %d, stderr %q; want 0", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			last := lines[len(lines)-1]
			if format == "table" && (!strings.HasPrefix(lines[0], "EVENT ") || !strings.HasPrefix(last, "UPDATED ")) {
				t.Errorf("table output:\n%s\nwant a header, then the rows, then an UPDATED row", stdout.String())
			}
			if format == "json" {
				var ev watch.Event
				if err := json.Unmarshal([]byte(last), &ev); err != nil || ev.Type != watch.Updated || ev.Record.State != "exited" {
					t.Errorf("last line %q (%v), want the UPDATED event", last, err)
				}
			}
		})
	}
}
