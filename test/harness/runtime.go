package harness

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Options tune Start. The zero value works.
type Options struct {
	// BaseDir is where the runtime's temp dir is made (default os.TempDir()).
	BaseDir string
	// StartTimeout bounds each wait for the CRI to become ready (default 30s).
	StartTimeout time.Duration
	// Logf receives progress and best-effort cleanup notes (t.Logf fits).
	Logf func(format string, args ...any)
	// Ctr, Busybox and CNIBinDir override the tool locations; empty means
	// the environment (EnvCtr, EnvBusybox, EnvCNIBin) or the Debian path.
	Ctr, Busybox, CNIBinDir string
	// HostReachable gives the bridge the subnet's first address, so the
	// host (a kubelet's HTTP probes, a test) can reach pod IPs on it. The
	// harness makes the bridge itself instead of the CNI plugin's
	// isGateway, which would also switch on the host's ip_forward; pods get
	// no default route and nothing is forwarded or masqueraded.
	HostReachable bool
	// UnaryInterceptor, when set, wraps every unary call of Client and
	// ImageClient, RunPod's and Close's included: a benchmark times
	// RunPodSandbox and StartContainer with it. Nil changes nothing.
	UnaryInterceptor grpc.UnaryClientInterceptor
}

func (o Options) withDefaults() Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	o.Ctr, o.Busybox, o.CNIBinDir = ctrPath(o.Ctr), busyboxPath(o.Busybox), cniBinDir(o.CNIBinDir)
	return o
}

// layout is every path of one runtime, all inside its temp dir.
type layout struct {
	dir, root, state, socket, config, log, opt, runcRoot string
	cniConf, cniIPAM, podLogs, imageArchive              string
}

func newLayout(dir string) layout {
	p := func(name string) string { return filepath.Join(dir, name) }
	return layout{
		dir: dir, root: p("root"), state: p("state"), socket: p("containerd.sock"),
		config: p("config.toml"), log: p("containerd.log"), opt: p("opt"), runcRoot: p("runc"),
		cniConf: p("cni/net.d"), cniIPAM: p("cni/ipam"), podLogs: p("pods"), imageArchive: p("images.tar"),
	}
}

func (l layout) mkdirs() error {
	for _, d := range []string{l.root, l.state, l.opt, l.runcRoot, l.cniConf, l.cniIPAM, l.podLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// Runtime is one containerd with the CRI plugin, private to its caller:
// own root, state, socket, CNI network and images. Its methods are safe for
// concurrent use.
type Runtime struct {
	variant Variant
	opts    Options
	layout  layout
	conn    *grpc.ClientConn
	client  runtimeapi.RuntimeServiceClient
	images  runtimeapi.ImageServiceClient

	ops sync.WaitGroup // RunPod calls in flight

	mu      sync.Mutex
	slot    netSlot
	daemon  *daemon
	kubelet *Kubelet // the kubelet running on this runtime, if any
	closed  bool
	host    hostState
}

// Start runs a fresh containerd of variant v and waits until its CRI
// answers, the CNI network is ready and the test images are imported.
// Callers must `defer rt.Close()`; on error Start has already cleaned up.
func Start(ctx context.Context, v Variant, opts Options) (*Runtime, error) {
	if err := v.Available(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	dir, err := os.MkdirTemp(opts.BaseDir, "crie-"+v.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("create runtime dir: %w", err)
	}
	r := &Runtime{variant: v, opts: opts, layout: newLayout(dir), host: newHostState()}
	if err := r.start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", v.Name, err), r.Close())
	}
	return r, nil
}

func (r *Runtime) start(ctx context.Context) error {
	if n := len(r.layout.socket); n > 100 {
		return fmt.Errorf("socket path %s is %d bytes, too long for a unix socket", r.layout.socket, n)
	}
	slot, err := acquireNetSlot()
	if err != nil {
		return err
	}
	r.slot = slot
	// A run that crashed with this slot may have left its bridge behind.
	if err := deleteLink(slot.bridgeName()); err != nil {
		return err
	}
	if r.opts.HostReachable {
		if err := slot.createBridge(); err != nil {
			return err
		}
	}
	if err := r.layout.mkdirs(); err != nil {
		return err
	}
	if err := writeFiles(r.layout, r.variant, slot, r.opts.CNIBinDir); err != nil {
		return err
	}
	if err := r.dial(); err != nil {
		return err
	}
	if err := r.launch(ctx); err != nil {
		return err
	}
	return r.loadImages(ctx)
}

// dial makes one client connection for the runtime's whole life. The short
// reconnect backoff lets the same client work again soon after Restart.
func (r *Runtime) dial() error {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	}
	if r.opts.UnaryInterceptor != nil {
		opts = append(opts, grpc.WithChainUnaryInterceptor(r.opts.UnaryInterceptor))
	}
	conn, err := grpc.NewClient(r.Endpoint(), opts...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", r.Endpoint(), err)
	}
	r.conn = conn
	r.client = runtimeapi.NewRuntimeServiceClient(conn)
	r.images = runtimeapi.NewImageServiceClient(conn)
	return nil
}

// launch starts the containerd process and waits for its CRI.
func (r *Runtime) launch(ctx context.Context) error {
	d, err := startDaemon(r.variant, r.layout)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.daemon = d
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout)
	defer cancel()
	return waitReady(ctx, d, r.client, r.layout.log)
}

func (r *Runtime) loadImages(ctx context.Context) error {
	if err := writeImageArchive(r.layout.imageArchive, r.opts.Busybox, harnessImages()); err != nil {
		return err
	}
	if err := importImages(ctx, r.opts.Ctr, r.layout.socket, r.layout.imageArchive); err != nil {
		return err
	}
	for _, spec := range harnessImages() {
		if err := r.waitImage(ctx, spec.name); err != nil {
			return err
		}
	}
	return nil
}

// TagImage gives the imported image src a second name dst, such as the
// image a pod spec asks for, and waits until the CRI knows it. Both are
// full references (registry/repository:tag, or @digest): ctr stores names
// as given, and the tests name only the harness's neutral registry.
func (r *Runtime) TagImage(ctx context.Context, src, dst string) error {
	if err := tagImage(ctx, r.opts.Ctr, r.layout.socket, src, dst); err != nil {
		return err
	}
	return r.waitImage(ctx, dst)
}

// waitImage polls until the CRI's image store has name: containerd's CRI
// plugin learns of imports and tags from events, a moment later.
func (r *Runtime) waitImage(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout)
	defer cancel()
	for {
		resp, err := r.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: name}})
		if err != nil {
			return fmt.Errorf("image status %s: %w", name, err)
		}
		if resp.GetImage() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("image %s not visible to the CRI: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Variant returns the containerd build this runtime runs.
func (r *Runtime) Variant() Variant { return r.variant }

// Endpoint is the CRI endpoint in unix:// form, as the daemon under test
// and crictl take it.
func (r *Runtime) Endpoint() string { return "unix://" + r.layout.socket }

// SocketPath is the containerd socket path (for ctr --address).
func (r *Runtime) SocketPath() string { return r.layout.socket }

// Dir is the runtime's temp dir; it is gone after Close.
func (r *Runtime) Dir() string { return r.layout.dir }

// LogPath is containerd's log file, useful to attach to a failing test.
func (r *Runtime) LogPath() string { return r.layout.log }

// LogTail returns the last lines of containerd's log.
func (r *Runtime) LogTail() string { return logTail(r.layout.log) }

// Client is the CRI runtime service client on this runtime's socket. It
// stays usable across Kill and Restart.
func (r *Runtime) Client() runtimeapi.RuntimeServiceClient { return r.client }

// ImageClient is the CRI image service client on this runtime's socket.
func (r *Runtime) ImageClient() runtimeapi.ImageServiceClient { return r.images }

// CNISubnet is the subnet pod IPs of this runtime come from.
func (r *Runtime) CNISubnet() netip.Prefix { return r.slot.subnet() }

// BridgeName is the host bridge the CNI plugin attaches pods to.
func (r *Runtime) BridgeName() string { return r.slot.bridgeName() }

// PID is the containerd process id, or 0 when it is not running.
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.daemon.running() {
		return 0
	}
	return r.daemon.cmd.Process.Pid
}

// Kill SIGKILLs containerd, as a crash would. Shims and containers keep
// running; Restart brings the CRI back over them.
func (r *Runtime) Kill() {
	r.mu.Lock()
	d := r.daemon
	r.mu.Unlock()
	d.stop(syscall.SIGKILL, 0)
}

// Restart stops containerd if it runs (SIGTERM, as a service manager
// would) and starts it again on the same root, state and socket, waiting
// until the CRI is ready. Client stays valid.
func (r *Runtime) Restart(ctx context.Context) error {
	r.mu.Lock()
	d, closed := r.daemon, r.closed
	r.mu.Unlock()
	if closed {
		return errors.New("restart: runtime is closed")
	}
	d.stop(syscall.SIGTERM, 10*time.Second)
	if err := r.launch(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", r.variant.Name, err)
	}
	return nil
}
