package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// TestConsumers_GRPCAndCLISeeAPodComeAndGo starts a gRPC watch and a CLI
// watch, then creates a pod and removes it: both see it ADDED and DELETED.
// The gRPC API and the CLI resolve a running container's PID and cgroup
// path to its record.
func TestConsumers_GRPCAndCLISeeAPodComeAndGo(t *testing.T) {
	v := harness.Variants()[len(harness.Variants())-1]
	rt := startRuntime(t, v)
	d := startDaemon(t, rt.Endpoint())
	d.waitReady(60 * time.Second)

	conn, err := grpc.NewClient("unix://"+filepath.Join(filepath.Dir(d.Socket), "grpc.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := enricherv1.NewEnricherClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grpcEvents := watchGRPC(ctx, t, client)
	cliEvents := watchCLI(ctx, t, d)

	p := runPod(t, rt, harness.PodSpec{Name: "watched", Namespace: "consumers",
		Containers: []harness.ContainerSpec{{Name: "app"}}})
	id := p.Containers[0].ID
	rec := waitRecord(t, d, id)

	byPID, err := client.GetContainerByPID(ctx, &enricherv1.GetContainerByPIDRequest{Pid: int32(rec.PID)})
	if err != nil || byPID.GetId() != id {
		t.Errorf("gRPC GetContainerByPID(%d) = %s, %v; want %s", rec.PID, byPID.GetId(), err, id[:12])
	}
	byCgroup, err := client.GetContainerByCgroup(ctx, &enricherv1.GetContainerByCgroupRequest{Path: rec.CgroupPath})
	if err != nil || byCgroup.GetId() != id {
		t.Errorf("gRPC GetContainerByCgroup(%s) = %s, %v; want %s", rec.CgroupPath, byCgroup.GetId(), err, id[:12])
	}
	for _, arg := range []string{fmt.Sprintf("pid:%d", rec.PID), "cgroup:" + rec.CgroupPath, id[:12]} {
		got := cliGet(t, d, arg)
		if got.ID != id {
			t.Errorf("cri-enricherd get %s = %s, want %s", arg, got.ID, id[:12])
		}
	}
	list := cliOutput(t, d, "list", "-n", "consumers")
	if !strings.Contains(list, "watched") || !strings.Contains(list, id[:12]) {
		t.Errorf("cri-enricherd list -n consumers:\n%s\nwant the pod and its container", list)
	}

	if err := rt.RemovePod(ctx, p.SandboxID); err != nil {
		t.Fatal(err)
	}
	for name, events := range map[string]*seen{"gRPC": grpcEvents, "CLI": cliEvents} {
		eventually(t, 30*time.Second, name+" watch saw the container added and deleted", func() error {
			if !events.has("ADDED", id) || !events.has("DELETED", id) {
				return fmt.Errorf("events so far: %v", events.list())
			}
			return nil
		})
		if !events.has("ADDED", p.SandboxID) {
			t.Errorf("%s watch did not see the sandbox added", name)
		}
	}
}

// seen collects "TYPE id" strings from a watch.
type seen struct {
	mu     sync.Mutex
	events []string
}

func (s *seen) add(typ, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, typ+" "+id)
}

func (s *seen) has(typ, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e == typ+" "+id {
			return true
		}
	}
	return false
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

func watchGRPC(ctx context.Context, t *testing.T, c enricherv1.EnricherClient) *seen {
	t.Helper()
	stream, err := c.Watch(ctx, &enricherv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{}
	synced := make(chan struct{})
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if ev.GetType() == enricherv1.EventType_SYNCED {
				close(synced)
				continue
			}
			s.add(ev.GetType().String(), ev.GetRecord().GetId())
		}
	}()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("gRPC watch never sent SYNCED")
	}
	return s
}

func watchCLI(ctx context.Context, t *testing.T, d *daemon) *seen {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t), "watch", "-o", "json", "--socket", d.Socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &seen{}
	synced := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Type   string         `json:"type"`
				Record *enrich.Record `json:"record"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			if ev.Type == "SYNCED" {
				close(synced)
				continue
			}
			if ev.Record != nil {
				s.add(ev.Type, ev.Record.ID)
			}
		}
	}()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("cri-enricherd watch never printed SYNCED")
	}
	return s
}

func cliOutput(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary(t), append(args, "--socket", d.Socket)...).CombinedOutput()
	if err != nil {
		t.Fatalf("cri-enricherd %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func cliGet(t *testing.T, d *daemon, arg string) enrich.Record {
	t.Helper()
	var rec enrich.Record
	out := cliOutput(t, d, "get", arg, "-o", "json")
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("cri-enricherd get %s -o json: %v\n%s", arg, err, out)
	}
	return rec
}
