package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222"
	idC = "cccccccccccc3333333333333333333333333333333333333333333333333333"
	idN = "dddddddddddd4444444444444444444444444444444444444444444444444444" // known to the runtime only
	// idLimited is an unknown ID whose on-demand lookup the rate bound refuses.
	idLimited = "eeeeeeeeeeee5555555555555555555555555555555555555555555555555555"
)

// fakeResolver answers on-demand lookups from a map and counts them.
type fakeResolver struct {
	records map[string]enrich.Record
	calls   int
	delay   time.Duration
}

func (f *fakeResolver) Lookup(ctx context.Context, id string) (enrich.Record, error) {
	f.calls++
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return enrich.Record{}, ctx.Err()
		}
	}
	if r, ok := f.records[id]; ok {
		return r, nil
	}
	if id == idLimited {
		return enrich.Record{}, fmt.Errorf("lookup %s: %w", id, lookup.ErrRateLimited)
	}
	return enrich.Record{}, fmt.Errorf("%s: %w", id, lookup.ErrNotFound)
}

func newTestHandler(t *testing.T) (*Handler, *fakeResolver) {
	t.Helper()
	c := cache.New()
	pod := &enrich.Pod{SandboxID: idC, Name: "web-0", Namespace: "shop", UID: "u1", Labels: map[string]string{"app.kubernetes.io/name": "web"}}
	c.Put(enrich.Record{ID: idA, ShortID: idA[:12], Name: "app", Pod: pod, PodSource: enrich.PodSourceSandboxStatus,
		Labels: map[string]string{"io.kubernetes.container.name": "app"}})
	c.Put(enrich.Record{ID: idB, ShortID: idB[:12], Name: "side", Pod: pod, PodSource: enrich.PodSourceSandboxStatus,
		Labels: map[string]string{"io.kubernetes.container.name": "side"}})
	c.Put(enrich.Record{ID: idC, ShortID: idC[:12], Name: "web-0", IsPodSandbox: true, Pod: pod, PodSource: enrich.PodSourceSandboxStatus})
	res := &fakeResolver{records: map[string]enrich.Record{idN: {ID: idN, Name: "new"}}}
	pids := querytest.PIDs{42: idA, 1: ""}
	return NewHandler(query.New(c, res, pids, zap.NewNop(), 200*time.Millisecond), zap.NewNop(), Options{}), res
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
	return w.Code, w.Body.String()
}

// getCase is one GET and what its answer must be: the status, and a
// fragment of the body.
type getCase struct {
	name, url string
	want      int
	body      string
}

// checkGets sends each case's GET to h and checks its status and body.
func checkGets(t *testing.T, h http.Handler, tests []getCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, h, tt.url)
			if code != tt.want || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.url, code, body, tt.want, tt.body)
			}
		})
	}
}

func TestHandler_AnswersEachRequestWithTheRightStatus(t *testing.T) {
	tests := []getCase{
		{"full id", "/v1/containers/" + idA, 200, `"name":"app"`},
		{"unique prefix", "/v1/containers/" + idC[:12], 200, `"is_pod_sandbox":true`},
		{"ambiguous prefix is a conflict", "/v1/containers/" + idA[:12], 409, "ambiguous"},
		{"too short", "/v1/containers/abc", 400, "malformed id"},
		{"uppercase", "/v1/containers/" + strings.ToUpper(idA), 400, "malformed id"},
		{"not hex", "/v1/containers/zzzzzzzzzzzzzz", 400, "malformed id"},
		{"unknown prefix", "/v1/containers/bbbbbbbbbbbbbb", 404, "no container"},
		{"unknown full id found on demand", "/v1/containers/" + idN, 200, `"name":"new"`},
		{"unknown full id the runtime lacks", "/v1/containers/" + strings.Repeat("e", 64), 404, "no container"},
		{"unknown full id over the on-demand rate", "/v1/containers/" + idLimited, 429, "rate limit"},
		{"pid in a container", "/v1/pids/42", 200, `"name":"app"`},
		{"host process", "/v1/pids/1", 404, "not in a container"},
		{"no such process", "/v1/pids/77", 404, "no process"},
		{"negative pid", "/v1/pids/-1", 400, "malformed pid"},
		{"huge pid", "/v1/pids/99999999999", 400, "malformed pid"},
		{"list all", "/v1/containers", 200, `"items"`},
		{"unknown filter", "/v1/containers?colour=red", 400, "unknown query parameter"},
		{"bad bool", "/v1/containers?include_deleted=maybe", 400, "include_deleted"},
		// url.URL.Query drops what it cannot parse: these would answer
		// every container, unfiltered, if the parse error were ignored.
		{"bad escape in a filter", "/v1/containers?namespace=nope%zz", 400, "malformed query"},
		{"semicolon in a filter", "/v1/containers?namespace=nope;x", 400, "malformed query"},
		{"bad escape in a pod filter", "/v1/pods?namespace=nope%", 400, "malformed query"},
		{"bad escape in a cgroup path", "/v1/cgroups?path=%zz", 400, "malformed query"},
		{"bad escape in a watch revision", "/v1/watch?revision=%zz", 400, "malformed query"},
		{"bad sandbox id", "/v1/containers?sandbox=xyz", 400, "sandbox"},
		{"sandbox by its short id", "/v1/containers?sandbox=" + idC[:12], 200, `"name":"side"`},
		{"sandbox prefix of several records", "/v1/containers?sandbox=" + idA[:12], 409, "sandbox"},
		{"sandbox prefix of nothing", "/v1/containers?sandbox=bbbbbbbbbbbb", 200, `{"items":[]}`},
		{"health", "/healthz", 200, "ok"},
		{"ready", "/readyz", 200, "ok"},
	}
	h, _ := newTestHandler(t)
	checkGets(t, h, tests)
}

func TestHandler_ErrorsAreJSONWithAReason(t *testing.T) {
	h, _ := newTestHandler(t)
	code, body := get(t, h, "/v1/containers/xyz")
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Status != code || e.Error == "" {
		t.Errorf("error body %q (err %v), want JSON with a reason and the status", body, err)
	}
}

func TestHandler_ListFiltersAndLeavesOutSandboxesOnRequest(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		url  string
		want int
	}{
		{"/v1/containers", 3},
		{"/v1/containers?sandboxes=false", 2},
		{"/v1/containers?namespace=shop&pod=web-0", 3},
		{"/v1/containers?namespace=other", 0},
		{"/v1/containers?sandbox=" + idC, 3},
	}
	for _, tt := range tests {
		code, body := get(t, h, tt.url)
		var out struct {
			Items []enrich.Record `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 {
			t.Fatalf("GET %s = %d %q", tt.url, code, body)
		}
		if len(out.Items) != tt.want {
			t.Errorf("GET %s: %d items, want %d", tt.url, len(out.Items), tt.want)
		}
	}
}

func TestHandler_OnDemandLookupIsBoundedByItsTimeout(t *testing.T) {
	h, res := newTestHandler(t)
	res.delay = 5 * time.Second
	code, body := get(t, h, "/v1/containers/"+idN)
	if code != http.StatusGatewayTimeout {
		t.Errorf("GET a slow lookup = %d %q, want 504", code, body)
	}
}

func TestHandler_MalformedRequestsNeverReachTheRuntime(t *testing.T) {
	h, res := newTestHandler(t)
	for _, url := range []string{"/v1/containers/xyz", "/v1/pids/0", "/v1/containers/" + strings.Repeat("g", 64), "/v1/containers?sandbox=1"} {
		get(t, h, url)
	}
	if res.calls != 0 {
		t.Errorf("malformed requests caused %d lookups", res.calls)
	}
}

func TestHandler_NotReadyUntilTold(t *testing.T) {
	ready := false
	h := NewHandler(query.New(cache.New(), nil, nil, zap.NewNop(), 0), zap.NewNop(), Options{Ready: func() bool { return ready }})
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d before ready, want 503", code)
	}
	ready = true
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d when ready, want 200", code)
	}
}

func TestHandler_RejectsOtherMethods(t *testing.T) {
	h, _ := newTestHandler(t)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/v1/containers/"+idA, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d, want 405", w.Code)
	}
}
