package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// watchServer serves a handler with a watch hub on a unix socket through an
// http.Server whose timeouts are far shorter than the test's streams.
func watchServer(t *testing.T, c *cache.Cache, hubOpts watch.Options) (*http.Client, *watch.Hub) {
	t.Helper()
	hub := watch.New(c, hubOpts)
	h := NewHandler(query.New(c, nil, querytest.PIDs{}, zap.NewNop(), 0), zap.NewNop(), Options{Watches: hub, StreamWriteTimeout: time.Second})
	srv := &http.Server{Handler: h, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, l, 2*time.Second) }()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		hub.Close() // ends the streams, as the daemon does on shutdown
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return client, hub
}

type ndjson struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func openWatch(t *testing.T, client *http.Client, query string) *ndjson {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://cri-enricherd/v1/watch"+query, nil)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	return &ndjson{t: t, resp: resp, sc: sc}
}

// next decodes the next line into an event, or into an error body.
func (s *ndjson) next() (watch.Event, errorBody) {
	s.t.Helper()
	if !s.sc.Scan() {
		s.t.Fatalf("stream ended: %v", s.sc.Err())
	}
	var ev watch.Event
	var e errorBody
	if err := json.Unmarshal(s.sc.Bytes(), &ev); err != nil {
		s.t.Fatalf("line %q: %v", s.sc.Text(), err)
	}
	_ = json.Unmarshal(s.sc.Bytes(), &e)
	return ev, e
}

func TestWatch_StreamsNDJSONEventsPastTheServerTimeouts(t *testing.T) {
	c := cache.New()
	c.Put(enrich.Record{ID: idA, Name: "app"})
	client, _ := watchServer(t, c, watch.Options{})
	s := openWatch(t, client, "")
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q; want 200 application/x-ndjson", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
	if ev, _ := s.next(); ev.Type != watch.Added || ev.Record.Name != "app" || ev.Revision != 0 {
		t.Fatalf("first event %+v, want ADDED app with revision 0", ev)
	}
	synced, _ := s.next()
	if synced.Type != watch.Synced || synced.Record != nil || synced.Revision == 0 {
		t.Fatalf("second event %+v, want SYNCED with a revision and no record", synced)
	}
	time.Sleep(300 * time.Millisecond) // past the server's read and write timeouts
	c.Put(enrich.Record{ID: idB, Name: "side"})
	c.MarkDeleted(idA, time.Time{})
	for _, want := range []struct {
		typ  watch.EventType
		name string
	}{{watch.Added, "side"}, {watch.Deleted, "app"}} {
		ev, _ := s.next()
		if ev.Type != want.typ || ev.Record.Name != want.name || ev.Revision <= synced.Revision {
			t.Fatalf("event %s %s rev %d, want %s %s after %d", ev.Type, ev.Record.Name, ev.Revision, want.typ, want.name, synced.Revision)
		}
	}

	resumed := openWatch(t, client, "?revision="+jsonNumber(synced.Revision))
	for _, typ := range []watch.EventType{watch.Added, watch.Deleted, watch.Synced} {
		if ev, _ := resumed.next(); ev.Type != typ {
			t.Fatalf("resumed stream: %s, want %s", ev.Type, typ)
		}
	}
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestWatch_RefusesBadRequestsWithTheirStatus(t *testing.T) {
	c := cache.New()
	client, hub := watchServer(t, c, watch.Options{MaxWatchers: 1, Replay: 1})
	old := hub.Revision()
	c.Put(enrich.Record{ID: idA})
	c.Put(enrich.Record{ID: idB})
	open := openWatch(t, client, "") // takes the only place
	open.next()
	tests := []struct {
		name, query string
		want        int
	}{
		{"not a number", "?revision=abc", http.StatusBadRequest},
		{"unknown parameter", "?since=1", http.StatusBadRequest},
		{"too many watchers", "", http.StatusTooManyRequests},
		{"revision outside the window", "?revision=" + jsonNumber(old), http.StatusGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Get("http://cri-enricherd/v1/watch" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e errorBody
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != tt.want || e.Status != tt.want {
				t.Errorf("GET /v1/watch%s = %d %+v (%v), want %d with an error body", tt.query, resp.StatusCode, e, err, tt.want)
			}
		})
	}
}

func TestWatch_EndsAStreamWithAnErrorLine(t *testing.T) {
	c := cache.New()
	client, hub := watchServer(t, c, watch.Options{})
	s := openWatch(t, client, "")
	s.next() // SYNCED
	hub.Close()
	_, e := s.next()
	if e.Status != http.StatusServiceUnavailable || !strings.Contains(e.Error, "shutting down") {
		t.Errorf("last line %+v, want a 503 error body", e)
	}
	if s.sc.Scan() {
		t.Errorf("line after the error: %q", s.sc.Text())
	}
}

func TestWatch_WithoutAHubAnswers503(t *testing.T) {
	h, _ := newTestHandler(t)
	if code, _ := get(t, h, "/v1/watch"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/watch without a hub = %d, want 503", code)
	}
}
