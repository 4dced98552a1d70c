package daemonproc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// daemonBinary builds cmd/cri-enricherd once for the package's tests.
var daemonBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "daemonproc-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cri-enricherd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/cri-enricherd/cri-enricherd/cmd/cri-enricherd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := daemonBinary(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	bin, err := daemonBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// fakeHost serves a fake runtime with one pod of two containers and makes
// an empty cgroup v2 root, so the daemon runs without root.
func fakeHost(t *testing.T) (endpoint string, args []string) {
	t.Helper()
	rt := fakecri.New()
	rt.AddPod(fakecri.PodSpec{Name: "web-0", Containers: []fakecri.ContainerSpec{{Name: "app"}, {Name: "sidecar"}}})
	cgroupRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return rt.Start(t), []string{"--cgroup-root", cgroupRoot, "--proc-root", "/proc"}
}

func TestProcess_ServesItsAPIAndMetricsThenStopsWithStatusZero(t *testing.T) {
	endpoint, args := fakeHost(t)
	p, err := Start(Options{Binary: binary(t), Endpoint: endpoint, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, 10*time.Millisecond); err != nil {
		t.Fatalf("%v\n%s", err, p.LogTail(20))
	}
	recs, err := p.Records()
	if err != nil || len(recs) != 3 {
		t.Fatalf("Records = %d records, %v; want the sandbox and its two containers", len(recs), err)
	}
	if rec, err := p.Record(recs[0].ID[:12]); err != nil || rec.ID != recs[0].ID {
		t.Errorf("Record(%s) = %s, %v", recs[0].ID[:12], rec.ID, err)
	}
	if code, err := p.Get("/v1/containers/"+strings.Repeat("0", 64), nil); code != http.StatusNotFound || err == nil {
		t.Errorf("GET an unknown ID = %d, %v; want 404 and an error", code, err)
	}
	m, page, err := p.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sum("cri_enricherd_cache_entries"); got != 3 || !strings.Contains(string(page), "# TYPE cri_enricherd_cache_entries gauge") {
		t.Errorf("cache_entries = %v, want 3, in a page with its TYPE line", got)
	}
	if code := p.Probe("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	dir := filepath.Dir(p.LogPath)
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop = %v, want a clean exit", err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("a second Stop = %v, want nil", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the temporary directory %s outlived Stop: %v", dir, err)
	}
}

func TestProcess_ReportsADaemonThatExitedOnItsOwn(t *testing.T) {
	p, err := Start(Options{Binary: binary(t), Endpoint: "unix:///nonexistent", Dir: t.TempDir(), Args: []string{"--no-such-flag"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("WaitReady = %v, want the exit", err)
	}
	<-p.Exited()
	if err := p.Stop(time.Second); err == nil || !strings.Contains(err.Error(), "exited before it was stopped") {
		t.Errorf("Stop = %v, want the earlier exit", err)
	}
	if tail := p.LogTail(5); !strings.Contains(tail, "no-such-flag") {
		t.Errorf("log tail %q does not name the bad flag", tail)
	}
}

func TestProcess_WaitReadyGivesTheCauseWhenItGivesUp(t *testing.T) {
	p, err := Start(Options{Binary: binary(t), Endpoint: fakecri.Silent(t), Dir: t.TempDir(), Args: []string{"--runtime-bootstrap-timeout", "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(10 * time.Second) }()
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Second, errTestGaveUp)
	defer cancel()
	if err := p.WaitReady(ctx, 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), errTestGaveUp.Error()) {
		t.Errorf("WaitReady = %v, want the context's cause", err)
	}
}

var errTestGaveUp = errors.New("the test gave up")
