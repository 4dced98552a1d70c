package metrics_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/metrics"
)

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// series returns the label sets of every sample of the named metric on page.
func series(page, name string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelPair.FindAllStringSubmatch(rest[:strings.LastIndexByte(rest, '}')], -1) {
			labels[m[1]] = m[2]
		}
		out = append(out, labels)
	}
	return out
}

// find returns the label sets whose label key has value.
func find(sets []map[string]string, key, value string) []map[string]string {
	var out []map[string]string
	for _, s := range sets {
		if s[key] == value {
			out = append(out, s)
		}
	}
	return out
}

func podLabelNames(sets []map[string]string) []string {
	var names []string
	for _, s := range sets {
		for k := range s {
			if strings.HasPrefix(k, "label_") && !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestInfo_PodLabelsAppearOnlyWhenAllowlisted(t *testing.T) {
	cases := []struct {
		name      string
		allowlist []string
		want      []string          // label_ names on pod_info
		web       map[string]string // their values on shop/web-0
	}{
		{"empty by default", nil, nil, nil},
		{"one key, sanitized", []string{"app.kubernetes.io/name"}, []string{"label_app_kubernetes_io_name"},
			map[string]string{"label_app_kubernetes_io_name": "web-shop"}},
		{"two keys", []string{"app", "tier"}, []string{"label_app", "label_tier"},
			map[string]string{"label_app": "web", "label_tier": "frontend"}},
		{"colliding keys keep the first", []string{"app.name", "app_name"}, []string{"label_app_name"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page := scrape(t, newFixture(t, tc.allowlist...).metrics)
			pods := series(page, "cri_enricherd_pod_info")
			if got := podLabelNames(pods); !slices.Equal(got, tc.want) {
				t.Errorf("pod_info label_ names = %v, want %v", got, tc.want)
			}
			if got := podLabelNames(series(page, "cri_enricherd_container_info")); got != nil {
				t.Errorf("container_info has pod labels %v, want none", got)
			}
			web := find(pods, "pod", "web-0")
			if len(web) != 1 {
				t.Fatalf("pod_info for web-0: %v, want one series", web)
			}
			for k, v := range tc.web {
				if web[0][k] != v {
					t.Errorf("web-0 %s = %q, want %q", k, web[0][k], v)
				}
			}
		})
	}
}

func TestInfo_SeriesDisappearWhenTheirRecordsAreDeleted(t *testing.T) {
	f := newFixture(t)
	sidecar := hexID("c2")
	steps := []struct {
		name          string
		change        func()
		containerIDs  []string // container_info series of shop/web-0
		webPodSandbox string   // pod_info sandbox_id of web-0, "" for none
	}{
		{"all live", func() {}, []string{f.web.ID, f.app.ID, sidecar}, f.web.ID},
		{"container marked deleted", func() { f.cache.MarkDeleted(f.app.ID, time.Time{}) }, []string{f.web.ID, sidecar}, f.web.ID},
		{"sandbox record gone, a container still names the pod", func() { f.cache.Delete(f.web.ID) }, []string{sidecar}, f.web.ID},
		{"last container removed", func() { f.cache.Delete(sidecar) }, nil, ""},
	}
	for _, step := range steps {
		step.change()
		page := scrape(t, f.metrics)
		var ids []string
		for _, s := range find(series(page, "cri_enricherd_container_info"), "pod", "web-0") {
			ids = append(ids, s["container_id"])
		}
		slices.Sort(ids)
		want := slices.Sorted(slices.Values(step.containerIDs))
		if !slices.Equal(ids, want) {
			t.Errorf("%s: container_info ids = %v, want %v", step.name, ids, want)
		}
		var sandboxID string
		if web := find(series(page, "cri_enricherd_pod_info"), "pod", "web-0"); len(web) == 1 {
			sandboxID = web[0]["sandbox_id"]
		} else if len(web) > 1 {
			t.Errorf("%s: %d pod_info series for web-0, want at most one", step.name, len(web))
		}
		if sandboxID != step.webPodSandbox {
			t.Errorf("%s: pod_info sandbox_id = %q, want %q", step.name, sandboxID, step.webPodSandbox)
		}
	}
}

func TestInfo_OnePodInfoPerPodFromItsCurrentSandbox(t *testing.T) {
	uid := "0b6c3e4e-4444-4c8e-9d3a-000000000004"
	older := sandbox("b1", "shop", "db-0", uid, "10.88.0.7", nil)
	older.Pod.State = "notready"
	newer := sandbox("b2", "shop", "db-0", uid, "10.88.0.8", nil)
	newer.Pod.Attempt = 1
	cases := []struct {
		name  string
		recs  []enrich.Record
		wantS string
	}{
		{"ready beats not ready", []enrich.Record{older, newer}, newer.ID},
		{"order of the cache does not matter", []enrich.Record{newer, older}, newer.ID},
		{"a later attempt beats an earlier one", []enrich.Record{withState(older, "ready"), newer}, newer.ID},
		{"a sandbox record beats a container's copy", []enrich.Record{container("d1", "db", "postgres:17", newer), older}, older.ID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New()
			for _, rec := range tc.recs {
				c.Put(rec)
			}
			m := metrics.New(metrics.BuildInfo{Version: "test"})
			m.WatchRecords(c, nil)
			pods := series(scrape(t, m), "cri_enricherd_pod_info")
			if len(pods) != 1 || pods[0]["sandbox_id"] != tc.wantS {
				t.Errorf("pod_info = %v, want one series with sandbox_id %s", pods, tc.wantS)
			}
		})
	}
}

func withState(rec enrich.Record, state string) enrich.Record {
	pod := *rec.Pod
	pod.State = state
	rec.Pod = &pod
	return rec
}

func TestInfo_InvalidUTF8FromTheRuntimeDoesNotFailTheScrape(t *testing.T) {
	c := cache.New()
	rec := container("e1", "bad\xffname", "img", sandbox("e0", "ns", "p\xfe", "uid", "10.0.0.1", nil))
	c.Put(rec)
	m := metrics.New(metrics.BuildInfo{Version: "test"})
	m.WatchRecords(c, nil)
	page := scrape(t, m)
	if got := find(series(page, "cri_enricherd_container_info"), "container", "bad\uFFFDname"); len(got) != 1 {
		t.Errorf("container_info with the name repaired: %v\n%s", got, page)
	}
}

// TestPodLabelName_AgreesWithConfigValidation proves config validation
// checks collisions under the name the info collector exports: a key listed
// twice makes config name its exported label.
func TestPodLabelName_AgreesWithConfigValidation(t *testing.T) {
	keys := []string{"app", "team", "app.kubernetes.io/name", "app.kubernetes.io/part-of",
		"example.com/tier", "k8s-app", "pod-template-hash", "Under_Score", "a.b-c_d", "x/y.z", "9lives"}
	exported := regexp.MustCompile(`exports the same label (\S+) as`)
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Metrics.PodLabelAllowlist = []string{key, key}
			var verr *config.ValidationError
			if err := cfg.Validate(); !errors.As(err, &verr) {
				t.Fatalf("Validate() = %v, want a duplicate-label problem", err)
			}
			var configName string
			for _, p := range verr.Problems {
				if m := exported.FindStringSubmatch(p); m != nil {
					configName = m[1]
				}
			}
			if got := config.PodLabelName(key); got != configName {
				t.Errorf("config.PodLabelName(%q) = %q, config validation checks %q", key, got, configName)
			}
		})
	}
}
