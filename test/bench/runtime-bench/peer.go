package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// The reacting peer is this program run again with these set: the
// runtime's endpoint and the cgroup directory to watch.
const (
	peerEndpointEnv = "RUNTIME_BENCH_PEER_ENDPOINT"
	peerCgroupEnv   = "RUNTIME_BENCH_PEER_CGROUPS"
)

// peerTimes is how long after its cgroup appeared a container's
// ContainerStatus answered, and then its PodSandboxStatus, in nanoseconds.
type peerTimes struct {
	CS   time.Duration `json:"cs"`
	Both time.Duration `json:"both"`
}

// reactingPeer times the per-container pattern as an enricher without
// events runs it on a node: a process of its own (this program again, see
// runPeer) watches the cgroup tree and, for each new container cgroup,
// asks ContainerStatus(verbose) and then PodSandboxStatus(verbose) of the
// sandbox the answer names, at once, from a client that was idle until the
// cgroup appeared. It returns the time from the cgroup appearing to the
// second answer and to the first, for the containers of more pods made
// while it watches (numbered from first on), with no daemon running.
//
// This is the runtime's round trip as any enricher pays it when a cgroup
// appears: the calls wake a process, the runtime and the transports from
// idle, on a machine busy creating the pod. rawRoundTrips measures the same
// two calls back to back, warm, which no enricher reacting to a cgroup
// gets; both are reported.
func reactingPeer(ctx context.Context, rt runtimeUnderTest, o options, first, pods int) (both, cs summary, err error) {
	self, err := os.Executable()
	if err != nil {
		return summary{}, summary{}, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), peerEndpointEnv+"="+rt.endpoint(), peerCgroupEnv+"="+rt.cgroupDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return summary{}, summary{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return summary{}, summary{}, err
	}
	if err := cmd.Start(); err != nil {
		return summary{}, summary{}, fmt.Errorf("start the reacting peer: %w", err)
	}
	took, err := drivePeer(ctx, rt, o, first, pods, stdin, bufio.NewReader(stdout))
	if err != nil {
		// The peer may be blocked writing what nobody will read.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return summary{}, summary{}, err
	}
	if err := cmd.Wait(); err != nil {
		return summary{}, summary{}, fmt.Errorf("the reacting peer: %w", err)
	}
	var ds, firsts []time.Duration
	for _, p := range took.pods {
		for _, id := range p.containers {
			if t, ok := took.byID[id]; ok {
				ds, firsts = append(ds, t.Both), append(firsts, t.CS)
			}
		}
	}
	if len(ds) == 0 {
		return summary{}, summary{}, fmt.Errorf("the reacting peer timed none of %d pods' containers", pods)
	}
	return summarize(ds), summarize(firsts), nil
}

// peerRun is what the peer timed, by ID, and the pods made meanwhile.
type peerRun struct {
	byID map[string]peerTimes
	pods []createdPod
}

// drivePeer waits for the peer to be ready, makes the pods, then ends the
// peer's stdin and reads its timings.
func drivePeer(ctx context.Context, rt runtimeUnderTest, o options, first, pods int, stdin io.WriteCloser, out *bufio.Reader) (peerRun, error) {
	defer func() { _ = stdin.Close() }()
	var run peerRun
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return run, fmt.Errorf("the reacting peer did not get ready: %q, %v", line, err)
	}
	for p := range pods {
		pod, err := rt.runPod(ctx, first+p, o.perPod)
		if err != nil {
			return run, err
		}
		run.pods = append(run.pods, pod)
	}
	time.Sleep(o.settleTime) // the last lookups still on their way
	if err := stdin.Close(); err != nil {
		return run, err
	}
	if err := json.NewDecoder(out).Decode(&run.byID); err != nil {
		return run, fmt.Errorf("read the reacting peer's timings: %w", err)
	}
	return run, nil
}

// runPeerIfAsked runs the reacting peer's process and exits, when this
// program was started as the peer (see reactingPeer); otherwise it returns.
func runPeerIfAsked() {
	endpoint := os.Getenv(peerEndpointEnv)
	if endpoint == "" {
		return
	}
	if err := runPeer(endpoint, os.Getenv(peerCgroupEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "runtime-bench: reacting peer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runPeer is the reacting peer's process: it watches the cgroups, prints
// "ready" once it has walked them, times each new cgroup's lookup, and when
// its stdin ends prints the timings by ID as JSON.
func runPeer(endpoint, dir string) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", endpoint, err)
	}
	defer func() { _ = conn.Close() }()
	c := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Connected before it is ready, as an enricher is once it runs: no
	// lookup pays for the dial.
	vctx, vcancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = c.Version(vctx, &runtimeapi.VersionRequest{})
	vcancel()
	if err != nil {
		return fmt.Errorf("version of %s: %w", endpoint, err)
	}
	var (
		mu   sync.Mutex
		took = map[string]peerTimes{}
		wg   sync.WaitGroup
		live atomic.Bool // the walk of the cgroups already there is over
		cut  atomic.Int64
	)
	w := cgroup.NewWatcher(dir, zap.NewNop(), cgroup.WatcherOptions{})
	watching := make(chan struct{})
	var runErr error
	go func() {
		defer close(watching)
		runErr = w.Run(ctx, func(ev cgroup.Event) {
			if ev.Kind != cgroup.Added || !live.Load() {
				return
			}
			at, id := time.Now(), ev.Ref.ContainerID
			wg.Add(1)
			go func() {
				defer wg.Done()
				t, ok := peerLookup(ctx, c, id, at)
				switch {
				case ok:
					mu.Lock()
					took[id] = t
					mu.Unlock()
				case ctx.Err() != nil:
					cut.Add(1)
				}
			}()
		})
	}()
	select {
	case <-w.Ready():
		live.Store(true)
	case <-watching:
		return fmt.Errorf("watch %s: %w", dir, runErr)
	}
	fmt.Println("ready")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	cancel()
	<-watching
	wg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if n := cut.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "runtime-bench: reacting peer: %d lookups still running at the end were not timed\n", n)
	}
	return json.NewEncoder(os.Stdout).Encode(took)
}

// peerLookup is the peer's lookup of a cgroup's ID: false for an ID that is
// not a container the runtime knows (a sandbox's cgroup, one not
// registered yet), which the peer does not time.
func peerLookup(ctx context.Context, c runtimeapi.RuntimeServiceClient, id string, at time.Time) (peerTimes, bool) {
	cs, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return peerTimes{}, false
	}
	t := peerTimes{CS: time.Since(at)}
	res, err := enrich.Container(cs, "", enrich.Options{})
	if err != nil || res.SandboxID == "" {
		return peerTimes{}, false
	}
	if _, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: res.SandboxID, Verbose: true}); err != nil {
		return peerTimes{}, false
	}
	t.Both = time.Since(at)
	return t, true
}
