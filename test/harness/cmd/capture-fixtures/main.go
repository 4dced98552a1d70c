// Command capture-fixtures starts a real containerd through the test
// harness, runs a CNI pod with two containers and a host-network pod, and
// writes the CRI answers the enricher consumes as protojson files, so unit
// test fixtures come from a real runtime:
//
//	go run ./test/harness/cmd/capture-fixtures -variant containerd-2.4 -out pkg/enrich/testdata/captured/containerd-2.4
//
// It needs root and the binaries from hack/install-test-deps.sh. Ctrl-C
// stops it and still removes everything it started.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "capture-fixtures:", err)
		os.Exit(1)
	}
}

func run() error {
	variantName := flag.String("variant", harness.Containerd24, "containerd variant: "+harness.Containerd16+" or "+harness.Containerd24)
	out := flag.String("out", "", "directory to write the fixtures into (created if missing)")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	flag.Parse()
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	v, err := harness.VariantByName(*variantName)
	if err != nil {
		return err
	}
	if err := harness.Usable(v); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return capture(ctx, v, *out)
}

// fixturePods are the pods captured. Fixed UIDs keep file contents and
// cgroup paths comparable between captures.
func fixturePods() []harness.PodSpec {
	return []harness.PodSpec{
		{
			Name: "web", Namespace: "shop", UID: "6f1c2a8e-4b7d-4e2a-9c3f-0a1b2c3d4e5f",
			Labels:      map[string]string{"app": "web", "tier": "frontend"},
			Annotations: map[string]string{"example.com/owner": "team-shop"},
			Containers: []harness.ContainerSpec{
				{Name: "app", Labels: map[string]string{"version": "1"}},
				{Name: "sidecar", Command: []string{"sh", "-c", "exec sleep 2147483647"}},
			},
		},
		{
			Name: "node-agent", Namespace: "kube-system", UID: "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a",
			Labels: map[string]string{"app": "node-agent"}, HostNetwork: true,
			Containers: []harness.ContainerSpec{{Name: "agent"}},
		},
	}
}

func capture(ctx context.Context, v harness.Variant, out string) (err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	rt, err := harness.Start(ctx, v, harness.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := rt.Close(); closeErr != nil && err == nil {
			err = closeErr
		}
	}()
	var pods []*harness.Pod
	for _, spec := range fixturePods() {
		pod, err := rt.RunPod(ctx, spec)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, rt.LogTail())
		}
		pods = append(pods, pod)
	}
	if err := captureRuntime(ctx, rt.Client(), out); err != nil {
		return err
	}
	for _, pod := range pods {
		if err := capturePod(ctx, rt.Client(), pod, out); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %s fixtures to %s\n", v.Name, out)
	return nil
}

func captureRuntime(ctx context.Context, c runtimeapi.RuntimeServiceClient, out string) error {
	version, err := c.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	containers, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	sandboxes, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	files := map[string]proto.Message{"version.json": version, "list_containers.json": containers, "list_pod_sandbox.json": sandboxes}
	for name, msg := range files {
		if err := writeMessage(filepath.Join(out, name), msg); err != nil {
			return err
		}
	}
	return nil
}

func capturePod(ctx context.Context, c runtimeapi.RuntimeServiceClient, pod *harness.Pod, out string) error {
	sandbox, err := c.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.SandboxID, Verbose: true})
	if err != nil {
		return fmt.Errorf("pod sandbox status %s: %w", pod.Name, err)
	}
	if err := writeMessage(filepath.Join(out, "pod_sandbox_status_"+pod.Name+".json"), sandbox); err != nil {
		return err
	}
	for _, ctr := range pod.Containers {
		status, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.ID, Verbose: true})
		if err != nil {
			return fmt.Errorf("container status %s/%s: %w", pod.Name, ctr.Name, err)
		}
		name := fmt.Sprintf("container_status_%s_%s.json", pod.Name, ctr.Name)
		if err := writeMessage(filepath.Join(out, name), status); err != nil {
			return err
		}
	}
	return nil
}

// writeMessage writes msg as indented protojson. protojson deliberately
// varies its whitespace between builds, so the output is re-indented with
// encoding/json to keep captures diffable.
func writeMessage(path string, msg proto.Message) error {
	raw, err := protojson.Marshal(msg)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", filepath.Base(path), err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("indent %s: %w", filepath.Base(path), err)
	}
	buf.WriteByte('\n')
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
