// Package benchdata builds the synthetic records that the benchmarks and
// load programs serve: kubelet-sized, so that what they measure is what a
// node's cache holds. A pod has eight labels (the kubelet's three
// io.kubernetes.pod.* ones plus five of a typical Deployment), an IP and a
// compact CNI result; a container has the kubelet's four labels, an image
// reference, three mounts, resources and a cgroup path.
//
// It lives under internal/ so that package tests and the programs under
// test/bench share one definition of "realistic" without it becoming API.
package benchdata

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// ID returns a deterministic 64-hex ID for seed.
func ID(seed string) string {
	sum := sha256.Sum256([]byte("benchdata/" + seed))
	return hex.EncodeToString(sum[:])
}

// created is a fixed time so records, and so encoded answers, are stable.
var created = time.Date(2026, 11, 28, 2, 44, 42, 108353583, time.UTC)

// Pod returns the pod data of pod number n.
func Pod(n int) *enrich.Pod {
	name := fmt.Sprintf("checkout-7d9f8c6b5-%05d", n)
	ns := "shop"
	uid := podUID(n)
	at := created
	return &enrich.Pod{
		SandboxID: ID(fmt.Sprintf("sandbox/%d", n)), Name: name, Namespace: ns, UID: uid, State: "ready",
		Labels: map[string]string{
			"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid,
			"app.kubernetes.io/name": "checkout", "app.kubernetes.io/instance": "checkout-prod",
			"app.kubernetes.io/component": "api", "app.kubernetes.io/version": "2.14.1",
			"pod-template-hash": "7d9f8c6b5",
		},
		IP:            fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+2),
		AdditionalIPs: []string{},
		CNIResult: fmt.Sprintf(`{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.244.%d.%d","Gateway":"10.244.0.1"}],"Mac":"ce:4f:1a:%02x:%02x:07","Sandbox":"/var/run/netns/cni-%s"}},"DNS":[{},{}],"Routes":[{"dst":"0.0.0.0/0"}]}`,
			(n/250)%250, n%250+2, n%256, (n/256)%256, uid),
		CreatedAt: &at,
	}
}

func podUID(n int) string {
	h := ID(fmt.Sprintf("uid/%d", n))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Container returns container number c of pod number n, its pod attached.
func Container(n, c int) enrich.Record {
	pod := Pod(n)
	id := ID(fmt.Sprintf("container/%d/%d", n, c))
	name := fmt.Sprintf("c%d", c)
	at, started := created, created.Add(70*time.Millisecond)
	uid := int64(1000)
	base := "/var/lib/kubelet/pods/" + pod.UID
	return enrich.Record{
		ID: id, ShortID: id[:12], Name: name, State: "running", Runtime: "containerd",
		CreatedAt: &at, StartedAt: &started,
		Image: enrich.Image{Name: "registry.example.com/shop/checkout:2.14.1",
			Ref: "registry.example.com/shop/checkout@sha256:" + ID("image"), ID: "sha256:" + ID("image-id")},
		PID: 20000 + n*8 + c, UserUID: &uid,
		Labels: map[string]string{
			"io.kubernetes.container.name": name, "io.kubernetes.pod.name": pod.Name,
			"io.kubernetes.pod.namespace": pod.Namespace, "io.kubernetes.pod.uid": pod.UID,
		},
		LogPath:    fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", pod.Namespace, pod.Name, pod.UID, name),
		CgroupPath: "/kubepods/burstable/pod" + pod.UID + "/" + id,
		Mounts: []enrich.Mount{
			{HostPath: base + "/etc-hosts", ContainerPath: "/etc/hosts", Propagation: "private"},
			{HostPath: base + "/containers/" + name + "/" + id[:8], ContainerPath: "/dev/termination-log", Propagation: "private"},
			{HostPath: base + "/volumes/kubernetes.io~projected/kube-api-access-x7k2p", ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount",
				ReadOnly: true, Propagation: "private"},
		},
		Resources: enrich.Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimitInBytes: 512 << 20},
		Pod:       pod, PodSource: enrich.PodSourceSandboxStatus,
	}
}

// Sandbox returns the sandbox record of pod number n.
func Sandbox(n int) enrich.Record {
	pod := Pod(n)
	at := created
	uid := int64(65535)
	return enrich.Record{
		ID: pod.SandboxID, ShortID: pod.SandboxID[:12], Name: pod.Name, State: "ready", Runtime: "containerd",
		CreatedAt: &at, Image: enrich.Image{Name: "registry.k8s.io/pause:3.10"}, PID: 10000 + n, UserUID: &uid,
		Labels:     pod.Labels,
		CgroupPath: "/kubepods/burstable/pod" + pod.UID + "/" + pod.SandboxID,
		Mounts:     []enrich.Mount{}, Resources: enrich.Resources{CPUShares: 2},
		IsPodSandbox: true, Pod: pod, PodSource: enrich.PodSourceSandboxStatus,
	}
}

// Records returns n container records, perPod to a pod, and the sandboxes
// of their pods: what a cache holding n containers holds.
func Records(n, perPod int) (containers, sandboxes []enrich.Record) {
	containers = make([]enrich.Record, n)
	for i := range containers {
		containers[i] = Container(i/perPod, i%perPod)
	}
	for p := 0; p*perPod < n; p++ {
		sandboxes = append(sandboxes, Sandbox(p))
	}
	return containers, sandboxes
}
