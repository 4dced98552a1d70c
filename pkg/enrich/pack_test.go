package enrich

import (
	"fmt"
	"reflect"
	"testing"
)

// clone deep-copies what packing rewrites, so the packed record can be
// compared with the original.
func cloneForPack(r Record) Record {
	c := r
	c.Labels = copyMap(r.Labels)
	c.Annotations = copyMap(r.Annotations)
	c.Env = append([]string(nil), r.Env...)
	c.Mounts = append([]Mount(nil), r.Mounts...)
	if r.Pod != nil {
		p := *r.Pod
		p.Labels, p.Annotations = copyMap(r.Pod.Labels), copyMap(r.Pod.Annotations)
		p.AdditionalIPs = append([]string(nil), r.Pod.AdditionalIPs...)
		c.Pod = &p
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func manyLabels(prefix string, n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("%s-key-%d", prefix, i)] = fmt.Sprintf("%s-value-%d-%s", prefix, i, string(rune('a'+i%26)))
	}
	return m
}

func TestPack_KeepsEveryValue(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	container := Record{ID: id, ShortID: id[:12], Name: "app", Image: Image{Name: "busybox", Ref: "sha256:1", ID: "sha256:2"},
		LogPath: "/var/log/x", CgroupPath: "/kubepods/x", Labels: manyLabels("l", 40), Annotations: manyLabels("a", 30),
		Env: []string{"A=1", "B=2"}, Mounts: []Mount{{HostPath: "/h1", ContainerPath: "/c1"}, {HostPath: "/h2", ContainerPath: "/etc/hosts"}}}
	sameRef := container
	sameRef.Image.Ref = sameRef.Image.ID
	pod := &Pod{SandboxID: id, Name: "web-0", Namespace: "shop", UID: "u", IP: "10.0.0.1", AdditionalIPs: []string{"fd00::1"},
		CNIResult: `{"x":1}`, Labels: manyLabels("p", 40), Annotations: manyLabels("pa", 10)}
	sandbox := Record{ID: id, ShortID: id[:12], Name: "web-0", Image: Image{Name: "pause", Resolved: "pause"}, CgroupPath: "/kubepods/p",
		Labels: pod.Labels, Annotations: pod.Annotations, IsPodSandbox: true, Pod: pod}
	for _, tc := range []struct {
		name string
		rec  Record
		pack func(*Record)
	}{
		{"container", container, packContainer},
		{"container whose image ref is its ID", sameRef, packContainer},
		{"sandbox", sandbox, packSandbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := cloneForPack(tc.rec)
			got := cloneForPack(tc.rec)
			if tc.rec.IsPodSandbox { // the record shares the pod's maps, as Sandbox builds it
				got.Labels, got.Annotations = got.Pod.Labels, got.Pod.Annotations
			}
			tc.pack(&got)
			checkField(t, "packed record", got, want)
			if !reflect.DeepEqual(got.Pod, want.Pod) {
				t.Errorf("packed pod = %+v, want %+v", got.Pod, want.Pod)
			}
		})
	}
}
