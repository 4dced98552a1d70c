package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

// metricsGet sends GET path to the metrics listener.
func metricsGet(t *testing.T, d *runningDaemon, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.cfg.Metrics.Address + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func TestDaemon_MetricsListenerFollowsAddressPathAndPprof(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	endpoint := rt.Start(t)
	tests := []struct {
		name     string
		settings settings
		want     map[string]int // path -> status on the configured metrics.address
	}{
		{"defaults", nil, map[string]int{"/metrics": 200, "/debug/pprof/": 404, "/healthz": 200}},
		{"metrics.address elsewhere", settings{"metrics.address": freeAddr(t)}, map[string]int{"/metrics": 200}},
		{"metrics.path elsewhere", settings{"metrics.path": "/internal/prometheus"},
			map[string]int{"/internal/prometheus": 200, "/metrics": 404}},
		{"debug.pprof on", settings{"debug.pprof": "true"}, map[string]int{"/debug/pprof/": 200, "/metrics": 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newHost(t).start(endpoint, tt.settings)
			for path, want := range tt.want {
				code, body := metricsGet(t, d, path)
				if code != want {
					t.Errorf("%v: GET %s%s = %d, want %d", tt.settings, d.cfg.Metrics.Address, path, code, want)
				}
				if path == d.cfg.Metrics.Path && !strings.Contains(body, "cri_enricherd_build_info") {
					t.Errorf("%s serves no exposition", path)
				}
			}
		})
	}
}

func TestDaemon_MetricsPodLabelAllowlistPicksThePodInfoLabels(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", Labels: map[string]string{"app.kubernetes.io/name": "web", "team": "payments"}})
	endpoint := rt.Start(t)
	tests := []struct {
		allowlist string
		want      []string // label pairs on pod_info
		wantNot   []string
	}{
		{"", nil, []string{"label_"}},
		{"app.kubernetes.io/name", []string{`label_app_kubernetes_io_name="web"`}, []string{"label_team"}},
		{"app.kubernetes.io/name,team", []string{`label_app_kubernetes_io_name="web"`, `label_team="payments"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.allowlist, func(t *testing.T) {
			d := newHost(t).start(endpoint, settings{"metrics.pod_label_allowlist": tt.allowlist})
			d.waitReady()
			var series []string
			for s := range d.scrape() {
				if strings.HasPrefix(s, "cri_enricherd_pod_info{") {
					series = append(series, s)
				}
			}
			if len(series) != 1 {
				t.Fatalf("pod_info series %v, want one", series)
			}
			for _, w := range tt.want {
				if !strings.Contains(series[0], w) {
					t.Errorf("allowlist %q: %s lacks %s", tt.allowlist, series[0], w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(series[0], w) {
					t.Errorf("allowlist %q: %s has %s", tt.allowlist, series[0], w)
				}
			}
		})
	}
}

func TestDaemon_EnrichKeysBoundWhatRecordsCarry(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	long := strings.Repeat("x", 100)
	_, ids := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", Containers: []fakecri.ContainerSpec{{
		Name: "app", Labels: map[string]string{"tier": "front", "long": long}, Annotations: map[string]string{"note": "hello"},
	}}})
	endpoint := rt.Start(t)
	const labels = 6 // the kubelet's four and the spec's two
	tests := []struct {
		name     string
		settings settings
		check    func(rec enrich.Record) bool
	}{
		{"defaults export neither env nor annotations and keep every label", nil, func(r enrich.Record) bool {
			return r.Env == nil && r.Annotations == nil && len(r.Labels) == labels && r.Labels["long"] == long && r.Trimmed == 0
		}},
		{"enrich.export_env", settings{"enrich.export_env": "true"}, func(r enrich.Record) bool {
			return strings.Contains(strings.Join(r.Env, " "), "HOSTNAME=fakecri") && r.Annotations == nil
		}},
		{"enrich.export_annotations", settings{"enrich.export_annotations": "true"}, func(r enrich.Record) bool {
			return r.Annotations["note"] == "hello" && r.Env == nil
		}},
		{"enrich.max_labels", settings{"enrich.max_labels": "2"}, func(r enrich.Record) bool {
			return len(r.Labels) == 2 && r.Trimmed >= labels-2
		}},
		{"enrich.max_value_length", settings{"enrich.max_value_length": "10"}, func(r enrich.Record) bool {
			return r.Labels["long"] == long[:10] && len(r.Labels) == labels
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newHost(t).start(endpoint, tt.settings)
			d.waitReady()
			rec, ok := d.record(ids[0])
			if !ok || !tt.check(rec) {
				b, _ := json.Marshal(rec)
				t.Errorf("%v: record %s", tt.settings, b)
			}
		})
	}
}

func TestDaemon_NodeNameReachesRecordsAndBuildInfo(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	_, ids := podWith(rt, "web-0", 1)
	endpoint := rt.Start(t)
	for _, node := range []string{"", "node-a"} {
		t.Run(node, func(t *testing.T) {
			d := newHost(t).start(endpoint, settings{"node_name": node})
			d.waitReady()
			rec, _ := d.record(ids[0])
			info := d.metric("cri_enricherd_build_info", `node="`+node+`"`)
			if rec.Node != node || info != 1 {
				t.Errorf("node_name %q: record node %q, build_info{node=%q} = %v", node, rec.Node, node, info)
			}
		})
	}
}

// logEntry is one line of the JSON log.
type logEntry struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

func TestDaemon_LogLevelAndFormatShapeTheLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		level, format string
		check         func(t *testing.T, lines []string)
	}{
		{"debug", "json", func(t *testing.T, lines []string) {
			if e := jsonEntries(t, lines); !hasEntry(e, "debug", "container cgroup added") {
				t.Errorf("log.level debug: no debug line for the cgroup seen in %v", e)
			}
		}},
		{"info", "json", func(t *testing.T, lines []string) {
			e := jsonEntries(t, lines)
			if !hasEntry(e, "info", "starting") || hasLevel(e, "debug") {
				t.Errorf("log.level info: want the start line and no debug line in %v", e)
			}
		}},
		{"warn", "json", func(t *testing.T, lines []string) {
			e := jsonEntries(t, lines)
			if !hasEntry(e, "warn", "sync with runtime failed; will retry") || hasLevel(e, "info") || hasLevel(e, "debug") {
				t.Errorf("log.level warn: want the failed first sync and no info or debug line in %v", e)
			}
		}},
		{"info", "console", func(t *testing.T, lines []string) {
			for _, l := range lines {
				if json.Valid([]byte(l)) {
					t.Errorf("log.format console: a JSON line %s", l)
				}
			}
			if !strings.Contains(strings.Join(lines, "\n"), "\tINFO\t") {
				t.Errorf("log.format console: no INFO column in %q", lines)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.level+" "+tt.format, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			rt := fakecri.New()
			rt.Inject(fakecri.RPCListPodSandbox, fakecri.FailFirst(1, codes.Unavailable)) // a warning: the first sync fails
			_, startContainer := startedLater(rt)
			d := h.start(rt.Start(t), settings{"log.level": tt.level, "log.format": tt.format, "runtime.events": "off"})
			d.waitReady()
			h.addCgroup(h.cgroupRoot, podUID, startContainer())
			eventually(t, 10*time.Second, "the container's cgroup is seen", func() bool {
				return d.metric("cri_enricherd_cgroup_events_total", `kind="added"`) >= 1
			})
			if err := d.stop(); err != nil { // every line is written once serve returned
				t.Fatal(err)
			}
			tt.check(t, d.logs.lines())
		})
	}
}

func jsonEntries(t *testing.T, lines []string) []logEntry {
	t.Helper()
	entries := make([]logEntry, 0, len(lines))
	for _, l := range lines {
		var e logEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log.format json: line %q: %v", l, err)
		}
		entries = append(entries, e)
	}
	return entries
}

func hasEntry(entries []logEntry, level, msg string) bool {
	for _, e := range entries {
		if e.Level == level && e.Msg == msg {
			return true
		}
	}
	return false
}

func hasLevel(entries []logEntry, level string) bool {
	for _, e := range entries {
		if e.Level == level {
			return true
		}
	}
	return false
}
