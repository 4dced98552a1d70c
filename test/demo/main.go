// Command demo is `make demo`: it starts a throwaway containerd with a few
// sample pods, runs the cri-enricherd binary against it, prints the enriched
// records as a table, and tears everything down again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
	"github.com/cri-enricherd/cri-enricherd/test/internal/daemonproc"
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
	d, err := daemonproc.Start(daemonproc.Options{Binary: bin, Endpoint: endpoint})
	if err != nil {
		return err
	}
	defer func() { _ = d.Stop(10 * time.Second) }()
	recs, err := waitForRecords(ctx, d, sampleRecords)
	if err != nil {
		return fmt.Errorf("%w\ndaemon log:\n%s", err, d.LogTail(100))
	}
	printTable(os.Stdout, recs)
	return nil
}

// waitForRecords polls the API until it lists want records with PIDs.
func waitForRecords(ctx context.Context, d *daemonproc.Process, want int) ([]enrich.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		recs, err := d.Records()
		if err == nil && complete(recs) >= want {
			return recs, nil
		}
		if err == nil {
			err = fmt.Errorf("%d of %d records complete", complete(recs), want)
		}
		select {
		case <-d.Exited():
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
