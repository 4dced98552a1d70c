// Command demo is `make demo`: it starts a throwaway containerd with a few
// sample pods, runs the cri-enricherd binary against it, prints the enriched
// records as a table, and tears everything down again.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("daemon", "bin/cri-enricherd", "the cri-enricherd binary to run")
	variant := flag.String("variant", "", "containerd-2.4 or containerd-1.6 (default: 2.4 when installed)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	v, err := pickVariant(*variant)
	if err != nil {
		return err
	}
	fmt.Printf("starting a throwaway %s ...\n", v.Name)
	rt, err := harness.Start(ctx, v, harness.Options{})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("tearing down the runtime, its pods, mounts and network namespaces ...")
		if err := rt.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: cleanup:", err)
		}
	}()
	if err := samplePods(ctx, rt); err != nil {
		return err
	}
	return runDaemon(ctx, *bin, rt.Endpoint())
}

func pickVariant(name string) (harness.Variant, error) {
	if name != "" {
		v, err := harness.VariantByName(name)
		if err != nil {
			return v, err
		}
		return v, harness.Usable(v)
	}
	var errs []error
	for _, n := range []string{harness.Containerd24, harness.Containerd16} {
		v, _ := harness.VariantByName(n)
		err := harness.Usable(v)
		if err == nil {
			return v, nil
		}
		errs = append(errs, err)
	}
	return harness.Variant{}, fmt.Errorf("no runtime usable (run `make deps` as root): %w", errors.Join(errs...))
}

// sampleRecords is what samplePods makes: 3 sandboxes and 4 containers.
const sampleRecords = 7

func samplePods(ctx context.Context, rt *harness.Runtime) error {
	specs := []harness.PodSpec{
		{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app": "web"},
			Containers: []harness.ContainerSpec{{Name: "nginx"}, {Name: "envoy"}}},
		{Name: "api-0", Namespace: "shop", Labels: map[string]string{"app": "api"},
			Containers: []harness.ContainerSpec{{Name: "server"}}},
		{Name: "node-agent-x1", Namespace: "kube-system", HostNetwork: true,
			Containers: []harness.ContainerSpec{{Name: "agent"}}},
	}
	for _, s := range specs {
		if _, err := rt.RunPod(ctx, s); err != nil {
			return fmt.Errorf("sample pod %s: %w", s.Name, err)
		}
	}
	fmt.Printf("created %d sample pods\n", len(specs))
	return nil
}

func runDaemon(ctx context.Context, bin, endpoint string) error {
	dir, err := os.MkdirTemp("", "cri-enricherd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")
	addr, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--runtime-endpoint", endpoint, "--api-socket", sock, "--api-grpc-socket", filepath.Join(dir, "grpc.sock"),
		"--metrics-address", addr, "--log-level", "warn")
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	recs, err := waitForRecords(ctx, client, sampleRecords, exited)
	if err != nil {
		data, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
		return fmt.Errorf("%w\ndaemon log:\n%s", err, data)
	}
	printTable(os.Stdout, recs)
	return nil
}

// waitForRecords polls the API until it lists want records with PIDs.
func waitForRecords(ctx context.Context, c *http.Client, want int, exited <-chan struct{}) ([]enrich.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		recs, err := list(c)
		if err == nil && complete(recs) >= want {
			return recs, nil
		}
		if err == nil {
			err = fmt.Errorf("%d of %d records complete", complete(recs), want)
		}
		select {
		case <-exited:
			return recs, errors.New("the daemon exited")
		case <-ctx.Done():
			return recs, fmt.Errorf("waiting for the daemon's records: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func complete(recs []enrich.Record) int {
	n := 0
	for _, r := range recs {
		if r.PID != 0 && r.Pod != nil {
			n++
		}
	}
	return n
}

func list(c *http.Client) ([]enrich.Record, error) {
	resp, err := c.Get("http://cri-enricherd/v1/containers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list = %d: %s", resp.StatusCode, body)
	}
	var out struct {
		Items []enrich.Record `json:"items"`
	}
	return out.Items, json.Unmarshal(body, &out)
}

// freeLoopbackPort returns a loopback address with a port free right now.
func freeLoopbackPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func printTable(w io.Writer, recs []enrich.Record) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tCONTAINER\tID\tSANDBOX\tPOD IP\tHOST NET\tPID\tSTATE\tPOD SOURCE")
	for _, r := range recs {
		name, sandbox := r.Name, "no"
		if r.IsPodSandbox {
			name, sandbox = "(pause)", "yes"
		}
		var pod enrich.Pod
		if r.Pod != nil {
			pod = *r.Pod
		}
		ip := pod.IP
		if ip == "" {
			ip = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%d\t%s\t%s\n",
			pod.Namespace, pod.Name, name, r.ShortID, sandbox, ip, pod.HostNetwork, r.PID, r.State, r.PodSource)
	}
	_ = tw.Flush()
}
