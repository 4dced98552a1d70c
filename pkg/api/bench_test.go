package api

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// benchHandler serves 10,000 cached records with kubelet-sized labels.
func benchHandler(b *testing.B) (*Handler, []string) {
	b.Helper()
	c := cache.New()
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i))))
		pod := &enrich.Pod{SandboxID: fmt.Sprintf("%064x", 1<<40+i/4), Name: fmt.Sprintf("web-%d", i/4), Namespace: "shop",
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"}}
		c.Put(enrich.Record{ID: ids[i], ShortID: ids[i][:12], Name: "app", State: "running", PID: 1000 + i,
			Labels: map[string]string{
				"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": pod.Name,
				"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": "0f1e2d3c-aaaa-bbbb-cccc-000000000009",
			},
			Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	}
	return NewHandler(c, nil, nil, zap.NewNop(), Options{}), ids
}

func BenchmarkHandlerGetContainerFullID(b *testing.B) {
	h, ids := benchHandler(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/v1/containers/"+ids[i%len(ids)], nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		i++
	}
}

func BenchmarkHandlerGetContainerPrefix(b *testing.B) {
	h, ids := benchHandler(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/v1/containers/"+ids[i%len(ids)][:12], nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		i++
	}
}
