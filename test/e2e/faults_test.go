package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// TestFaults_RuntimeKilledAndRestarted kills containerd (SIGKILL) under a
// running daemon: the API keeps answering from the cache, readiness turns
// false, and after the restart the daemon reconnects by itself, relists,
// and ends with the runtime's records, including a container removed and
// a pod created right after the restart.
func TestFaults_RuntimeKilledAndRestarted(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			rt := startRuntime(t, v)
			p := runPod(t, rt, harness.PodSpec{Name: "survivor", Namespace: "faults",
				Containers: []harness.ContainerSpec{{Name: "keep"}, {Name: "drop"}}})
			d := startDaemon(t, rt.Endpoint(), "--runtime-relist-interval", "1h", "--cache-deleted-grace", "1h")
			d.waitReady(60 * time.Second)
			waitAllRecords(t, d, []*harness.Pod{p})

			rt.Kill()
			eventually(t, 30*time.Second, "readiness lost", func() error {
				if code := d.Probe("/readyz"); code != http.StatusServiceUnavailable {
					return fmt.Errorf("readyz = %d", code)
				}
				return nil
			})
			if _, err := d.Record(p.ContainerID("keep")); err != nil {
				t.Errorf("during the outage the cached record is not served: %v", err)
			}

			ctx, cancel := contextWithTimeout(time.Minute)
			defer cancel()
			if err := rt.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if err := rt.RemoveContainer(ctx, p.ContainerID("drop")); err != nil {
				t.Fatal(err)
			}
			late := runPod(t, rt, harness.PodSpec{Name: "late", Namespace: "faults",
				Containers: []harness.ContainerSpec{{Name: "app"}}})
			d.waitReady(30 * time.Second)
			waitAllRecords(t, d, []*harness.Pod{late})
			eventually(t, 30*time.Second, "container removed after the restart reported deleted", func() error {
				rec, err := d.Record(p.ContainerID("drop"))
				if err != nil {
					return err
				}
				if rec.DeletedAt == nil {
					return fmt.Errorf("not marked deleted")
				}
				return nil
			})
			if rec, err := d.Record(p.ContainerID("keep")); err != nil || rec.DeletedAt != nil {
				t.Errorf("surviving container: %+v, %v", rec.DeletedAt, err)
			}
		})
	}
}

// TestFaults_DaemonStartedBeforeTheRuntime points the daemon at a socket
// that does not exist yet: it starts, is live but not ready, and turns
// ready within seconds of the runtime appearing.
func TestFaults_DaemonStartedBeforeTheRuntime(t *testing.T) {
	v := harness.Variants()[0]
	rt := startRuntime(t, v)
	rt.Kill()
	if err := os.Remove(rt.SocketPath()); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	d := startDaemon(t, rt.Endpoint())
	eventually(t, 10*time.Second, "daemon live", func() error {
		if code := d.Probe("/healthz"); code != http.StatusOK {
			return fmt.Errorf("healthz = %d", code)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	if code := d.Probe("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz = %d without a runtime, want 503", code)
	}
	ctx, cancel := contextWithTimeout(time.Minute)
	defer cancel()
	if err := rt.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.waitReady(20 * time.Second)
	t.Logf("ready %s after the runtime appeared", time.Since(start).Round(time.Millisecond))
	p := runPod(t, rt, harness.PodSpec{Name: "after", Namespace: "faults", Containers: []harness.ContainerSpec{{Name: "app"}}})
	waitAllRecords(t, d, []*harness.Pod{p})
}

// TestFaults_SocketThatNeverAnswers runs the daemon against a socket that
// accepts connections and never answers: start is bounded, the daemon stays
// live and not ready, its API answers promptly, lookups time out and are
// counted.
func TestFaults_SocketThatNeverAnswers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptAndIgnore(l)
	d := startDaemon(t, "unix://"+sock, "--runtime-timeout", "300ms", "--runtime-bootstrap-timeout", "2s",
		"--runtime-max-retries", "1", "--api-ondemand-timeout", "1s")
	eventually(t, 10*time.Second, "daemon live", func() error {
		if code := d.Probe("/healthz"); code != http.StatusOK {
			return fmt.Errorf("healthz = %d", code)
		}
		return nil
	})
	if code := d.Probe("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d against a silent runtime, want 503", code)
	}
	start := time.Now()
	var list struct {
		Items []enrich.Record `json:"items"`
	}
	if _, err := d.Get("/v1/containers", &list); err != nil {
		t.Errorf("list: %v", err)
	}
	code, err := d.Get("/v1/containers/"+strings.Repeat("ab", 32), &enrich.Record{})
	if code != http.StatusGatewayTimeout && code != http.StatusBadGateway {
		t.Errorf("on-demand lookup against a silent runtime = %d (%v), want 504 or 502", code, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the API took %s to answer while the runtime is silent", took)
	}
	eventually(t, 15*time.Second, "timeouts counted", func() error {
		m, _ := d.metrics()
		if n := m.Sum("cri_enricherd_cri_requests_total", `code="DeadlineExceeded"`) + m.Sum("cri_enricherd_cri_requests_total", `code="Unavailable"`); n == 0 {
			return fmt.Errorf("no failed CRI request counted")
		}
		if n := m.Sum("cri_enricherd_relists_total", `result="error"`); n == 0 {
			return fmt.Errorf("no failed sync counted")
		}
		return nil
	})
}

func acceptAndIgnore(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return
				}
			}
		}()
	}
}
