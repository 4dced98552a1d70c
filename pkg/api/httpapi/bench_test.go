package httpapi

import (
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// benchHandler serves a full cache and returns the IDs of its containers.
func benchHandler(b *testing.B) (*Handler, []string) {
	b.Helper()
	c, ids := querytest.FullCache(b)
	return NewHandler(query.New(c, nil, nil, zap.NewNop(), 0), zap.NewNop(), Options{}), ids
}

// discardWriter is a ResponseWriter that keeps only the status and the
// byte count, so the benchmark measures the handler, not a recorder.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) { w.code = code }

func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
}

// benchmarkGet asks for each container in turn by the path path returns.
// The requests are built before the loop: parsing a request is the
// server's cost, not the handler's.
func benchmarkGet(b *testing.B, path func(id string) string) {
	h, ids := benchHandler(b)
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		var err error
		if reqs[i], err = http.NewRequest(http.MethodGet, path(id), nil); err != nil {
			b.Fatal(err)
		}
	}
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
		i++
	}
}

func BenchmarkHandlerGetContainerFullID(b *testing.B) {
	benchmarkGet(b, func(id string) string { return "/v1/containers/" + id })
}

func BenchmarkHandlerGetContainerPrefix(b *testing.B) {
	benchmarkGet(b, func(id string) string { return "/v1/containers/" + id[:12] })
}
