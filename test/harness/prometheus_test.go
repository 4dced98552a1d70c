package harness_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

func TestPrometheus_ScrapesItsTargetAndEvaluatesRules(t *testing.T) {
	if _, err := os.Stat(harness.PrometheusPath()); err != nil {
		if os.Getenv(harness.EnvE2E) == "1" {
			t.Fatalf("prometheus: %v (run make promtool)", err)
		}
		t.Skipf("prometheus: %v", err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE demo_ready gauge\ndemo_ready 1")
	}))
	defer target.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := harness.StartPrometheus(ctx, harness.PrometheusOptions{
		Interval: time.Second,
		Targets:  []harness.ScrapeTarget{{Address: strings.TrimPrefix(target.URL, "http://"), Labels: map[string]string{"node": "n1"}}},
		RuleGroups: []any{map[string]any{"name": "demo", "rules": []any{
			map[string]any{"alert": "DemoNotReady", "expr": "demo_ready == 0"},
			map[string]any{"alert": "DemoReady", "expr": "demo_ready == 1"},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	var alerts []harness.Alert
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if alerts, err = p.Alerts(ctx); err == nil && len(alerts) == 1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(alerts) != 1 || alerts[0].Labels["alertname"] != "DemoReady" {
		t.Fatalf("alerts = %+v (%v), want DemoReady alone\n%s", alerts, err, p.LogTail())
	}
	up, err := p.Query(ctx, `up{node="n1"}`)
	if err != nil || len(up) != 1 || up[0].Value != 1 {
		t.Errorf("up = %+v, %v; want one target up", up, err)
	}
	if _, err := p.Query(ctx, "sum(("); err == nil {
		t.Errorf("a malformed query was not an error")
	}
	health, err := p.RuleHealth(ctx)
	if err != nil || len(health) != 2 {
		t.Errorf("rule health = %v, %v; want both rules", health, err)
	}
}
