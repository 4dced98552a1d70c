package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// The IDs the fuzz handler knows: two cached containers sharing a 12-char
// prefix (409 for it), a cached sandbox, one ID only the runtime knows
// (found on demand) and one whose on-demand lookup never finishes (504).
const (
	fuzzIDA       = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	fuzzIDB       = "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222"
	fuzzSandbox   = "cccccccccccc3333333333333333333333333333333333333333333333333333"
	fuzzOnDemand  = "dddddddddddd4444444444444444444444444444444444444444444444444444"
	fuzzSlowID    = "eeeeeeeeeeee5555555555555555555555555555555555555555555555555555"
	fuzzPodUID    = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
	fuzzSlowPID   = 44
	fuzzOnDemPID  = 43
	fuzzCachedPID = 42
)

// fuzzStatuses are the only answers a request for one record may get: a
// record, a refusal of the argument, not found, an ambiguous prefix, or an
// on-demand lookup out of time. Never 500, never 502 from these fakes.
var fuzzStatuses = map[int]bool{200: true, 400: true, 404: true, 409: true, 504: true}

// fuzzResolver answers on-demand lookups and remembers what it was asked.
type fuzzResolver struct {
	mu    sync.Mutex
	asked []string
}

func (f *fuzzResolver) Lookup(ctx context.Context, id string) (enrich.Record, error) {
	f.mu.Lock()
	f.asked = append(f.asked, id)
	f.mu.Unlock()
	switch id {
	case fuzzOnDemand:
		return enrich.Record{ID: id, ShortID: id[:12], Name: "new"}, nil
	case fuzzSlowID:
		<-ctx.Done()
		return enrich.Record{}, fmt.Errorf("lookup %s: %w", id, ctx.Err())
	}
	return enrich.Record{}, fmt.Errorf("%s: %w", id, lookup.ErrNotFound)
}

// takeAsked returns and forgets the IDs asked since the last call.
func (f *fuzzResolver) takeAsked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	asked := f.asked
	f.asked = nil
	return asked
}

// fuzzPIDs maps a few PIDs to containers and remembers what it was asked.
type fuzzPIDs struct {
	mu    sync.Mutex
	asked []int
}

func (f *fuzzPIDs) Resolve(pid int) (string, cgroup.Ref, error) {
	f.mu.Lock()
	f.asked = append(f.asked, pid)
	f.mu.Unlock()
	id := map[int]string{fuzzCachedPID: fuzzIDA, fuzzOnDemPID: fuzzOnDemand, fuzzSlowPID: fuzzSlowID}[pid]
	switch {
	case pid == 1:
		return "", cgroup.Ref{}, fmt.Errorf("pid 1: %w", cgroup.ErrNoContainer)
	case id == "":
		return "", cgroup.Ref{}, fmt.Errorf("pid %d: %w", pid, fs.ErrNotExist)
	}
	return "/kubepods/burstable/pod" + fuzzPodUID + "/" + id, cgroup.Ref{ContainerID: id, PodUID: fuzzPodUID}, nil
}

func (f *fuzzPIDs) takeAsked() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	asked := f.asked
	f.asked = nil
	return asked
}

func newFuzzHandler() (*Handler, *fuzzResolver, *fuzzPIDs) {
	c := cache.New()
	pod := &enrich.Pod{SandboxID: fuzzSandbox, Name: "web-0", Namespace: "shop", UID: fuzzPodUID}
	c.Put(enrich.Record{ID: fuzzIDA, ShortID: fuzzIDA[:12], Name: "app", Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	c.Put(enrich.Record{ID: fuzzIDB, ShortID: fuzzIDB[:12], Name: "side", Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	c.Put(enrich.Record{ID: fuzzSandbox, ShortID: fuzzSandbox[:12], Name: "web-0", IsPodSandbox: true, Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	res, pids := &fuzzResolver{}, &fuzzPIDs{}
	// A short on-demand timeout keeps the slow ID's 504 cheap per input.
	h := NewHandler(query.New(c, res, pids, zap.NewNop(), 5*time.Millisecond), zap.NewNop(), Options{})
	return h, res, pids
}

// serveFuzz sends GET target (already escaped) through the handler's own
// mux, as a client on the socket would.
func serveFuzz(t *testing.T, h http.Handler, target string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://cri-enricherd"+target, nil)
	if err != nil {
		t.Fatalf("escaped target %q does not parse: %v", target, err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Header().Get("Content-Type"), w.Body.String()
}

// muxAnswered reports whether the mux answered before any handler ran: its
// plain-text 404 for a path no route matches (an empty or "/" segment), or
// a redirect to the cleaned path (a "." or ".." segment; which 3xx depends
// on the Go release). The handlers themselves answer JSON only.
func muxAnswered(escapedPath string, code int, contentType string) bool {
	switch {
	case code == http.StatusNotFound && strings.HasPrefix(contentType, "text/plain"):
		return true
	case code >= 300 && code < 400:
		return path.Clean(escapedPath) != escapedPath
	}
	return false
}

// checkAnswer holds for every answer of the handler itself: an allowed
// status and a JSON body.
func checkAnswer(t *testing.T, target string, code int, contentType, body string) {
	t.Helper()
	if !fuzzStatuses[code] {
		t.Fatalf("GET %q = %d %q, want one of 200/400/404/409/504", target, code, body)
	}
	if contentType != "application/json" || !json.Valid([]byte(body)) {
		t.Fatalf("GET %q = %d with %q body %q, want JSON", target, code, contentType, body)
	}
}

func checkResolverAsked(t *testing.T, target string, res *fuzzResolver) {
	t.Helper()
	for _, asked := range res.takeAsked() {
		if !id.IsFull(asked) {
			t.Fatalf("GET %q made an on-demand lookup of malformed id %q", target, asked)
		}
	}
}

func FuzzContainerID(f *testing.F) {
	for _, seed := range []string{
		fuzzIDA, fuzzIDA[:12], fuzzIDA[:13], fuzzSandbox, fuzzOnDemand, fuzzSlowID, fuzzIDA + "0",
		strings.ToUpper(fuzzIDA), strings.Repeat("f", 64), strings.Repeat("g", 64), strings.Repeat("a", 11),
		"", ".", "..", "a/b", "../../etc/passwd", "%2e%2e", "aaaaaaaaaaaa\x00", "ééééééé", "\xff\xfe",
		strings.Repeat("a", 10000), fuzzIDA[:12] + "?x=1", fuzzIDA + "#frag",
	} {
		f.Add(seed)
	}
	h, res, _ := newFuzzHandler()
	f.Fuzz(func(t *testing.T, ref string) {
		escaped := "/v1/containers/" + url.PathEscape(ref)
		code, ct, body := serveFuzz(t, h, escaped)
		if !muxAnswered(escaped, code, ct) {
			checkAnswer(t, escaped, code, ct, body)
			if !id.IsPrefix(ref) && code != http.StatusBadRequest {
				t.Fatalf("GET %q with a malformed id = %d, want 400", escaped, code)
			}
		}
		checkResolverAsked(t, escaped, res)
	})
}

func FuzzPID(f *testing.F) {
	for _, seed := range []string{
		"42", "43", "44", "1", "77", "0", "-1", "+42", "0042", " 42", "42 ", "0x2a", "1e3", "4194304", "4194305",
		"9223372036854775807", "99999999999999999999", "", ".", "..", "42/x", "४२", "\x00",
	} {
		f.Add(seed)
	}
	h, res, pids := newFuzzHandler()
	f.Fuzz(func(t *testing.T, raw string) {
		escaped := "/v1/pids/" + url.PathEscape(raw)
		code, ct, body := serveFuzz(t, h, escaped)
		if !muxAnswered(escaped, code, ct) {
			checkAnswer(t, escaped, code, ct, body)
			if pid, err := strconv.Atoi(raw); (err != nil || pid < 1 || pid > query.MaxPID) && code != http.StatusBadRequest {
				t.Fatalf("GET %q with a malformed pid = %d, want 400", escaped, code)
			}
		}
		for _, pid := range pids.takeAsked() {
			if pid < 1 || pid > query.MaxPID {
				t.Fatalf("GET %q resolved pid %d", escaped, pid)
			}
		}
		checkResolverAsked(t, escaped, res)
	})
}

func FuzzCgroupPath(f *testing.F) {
	for _, seed := range []string{
		"/kubepods/burstable/pod" + fuzzPodUID + "/" + fuzzIDA,
		"/kubepods/burstable/pod" + fuzzPodUID + "/" + fuzzOnDemand,
		"/kubepods/besteffort/pod" + fuzzPodUID + "/crio-" + fuzzSlowID,
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice/cri-containerd-" + fuzzIDA + ".scope",
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice/crio-conmon-" + fuzzIDA + ".scope",
		"/system.slice/docker-" + strings.Repeat("f", 64) + ".scope/init",
		"/kubepods/pod" + fuzzPodUID + "/" + strings.ToUpper(fuzzIDA),
		"/kubepods/pod" + fuzzPodUID + "/" + fuzzIDA[:12],
		"/", "", "relative/" + fuzzIDA, "/../" + fuzzIDA, "/a\x00b", "//" + fuzzIDA + "//",
		"/" + strings.Repeat("x/", 3000), "/libpod-" + strings.Repeat("g", 64) + ".scope",
	} {
		f.Add(seed)
	}
	h, res, _ := newFuzzHandler()
	f.Fuzz(func(t *testing.T, p string) {
		target := "/v1/cgroups?path=" + url.QueryEscape(p)
		code, ct, body := serveFuzz(t, h, target)
		checkAnswer(t, target, code, ct, body)
		if !strings.HasPrefix(p, "/") && code != http.StatusBadRequest {
			t.Fatalf("GET %q with a relative path = %d, want 400", target, code)
		}
		checkResolverAsked(t, target, res)
	})
}
