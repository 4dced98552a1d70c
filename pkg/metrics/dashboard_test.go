package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard the Helm chart ships.
var dashboardPath = filepath.Join("..", "..", "deploy", "helm", "cri-enricherd", "dashboards", "cri-enricherd.json")

// ownMetricName is how the dashboard and the docs name the daemon's series.
var ownMetricName = regexp.MustCompile(`cri_enricherd_[a-z0-9_]+`)

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	return d
}

// flatPanels lists every panel, rows' nested panels included.
func flatPanels(panels []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// exportedNames is every series name the daemon serves, read from the
// registry wired as in assemble: family names, plus _bucket, _sum and
// _count for histograms and summaries.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	families, err := newFixture(t).metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		switch f.GetType().String() {
		case "HISTOGRAM":
			names[f.GetName()+"_bucket"] = true
			fallthrough
		case "SUMMARY":
			names[f.GetName()+"_sum"], names[f.GetName()+"_count"] = true, true
		}
	}
	return names
}

// unknownNames lists the cri_enricherd_ names in expr the daemon does not export.
func unknownNames(expr string, exported map[string]bool) []string {
	var unknown []string
	for _, name := range ownMetricName.FindAllString(expr, -1) {
		if !exported[name] {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

func TestDashboard_IsAGrafanaDashboardOnATemplatedPrometheus(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "cri-enricherd" || d.SchemaVersion < 36 {
		t.Errorf("uid = %q, schemaVersion = %d; want cri-enricherd and a current schema", d.UID, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" || vars["node"] != "query" {
		t.Errorf("template variables = %v, want datasource (datasource), node and instance (query)", vars)
	}
	ids := map[int]string{}
	for _, p := range flatPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v with %d targets, want ${datasource} and a query", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: datasource %+v, expr %q", p.Title, tg.RefID, tg.Datasource, tg.Expr)
			}
		}
	}
}

func TestDashboard_QueriesOnlyMetricsTheDaemonExports(t *testing.T) {
	d := loadDashboard(t)
	exported := exportedNames(t)
	var used []string
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			if unknown := unknownNames(tg.Expr, exported); unknown != nil {
				t.Errorf("panel %q target %s queries %v, which the daemon does not export", p.Title, tg.RefID, unknown)
			}
			used = append(used, ownMetricName.FindAllString(tg.Expr, -1)...)
		}
	}
	for _, v := range d.Templating.List {
		if unknown := unknownNames(v.Definition+string(v.Query), exported); unknown != nil {
			t.Errorf("variable %s queries %v, which the daemon does not export", v.Name, unknown)
		}
	}
	if len(used) == 0 {
		t.Fatal("no panel queries a cri_enricherd_ metric")
	}
}

// grafanaVars stands in for the dashboard's variables so the queries parse
// as plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$node", ".*", "$instance", ".*")

func TestDashboard_QueriesAreValidPromQL(t *testing.T) {
	var exprs []string
	for _, p := range flatPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			exprs = append(exprs, grafanaVars.Replace(tg.Expr))
		}
	}
	checkPromQL(t, exprs)
}

// checkPromQL has promtool parse every expression as a recording rule.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("check:expr_%d", i), Expr: e})
	}
	if len(rules) == 0 {
		t.Fatal("no expressions to check")
	}
	// JSON is YAML, so the rules file needs no YAML library.
	file, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "check", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	promtool(t, "", "check", "rules", writeTemp(t, "rules.yaml", string(file)))
}

func TestPromQLJoinsDoc_ExamplesAreValidAndUseExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "promql-joins.md"))
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t)
	var exprs []string
	blocks := strings.Split(string(data), "```")
	for i := 1; i < len(blocks); i += 2 {
		body, ok := strings.CutPrefix(blocks[i], "promql\n")
		if !ok {
			continue
		}
		exprs = append(exprs, body)
		if unknown := unknownNames(body, exported); unknown != nil {
			t.Errorf("example %d uses %v, which the daemon does not export", len(exprs), unknown)
		}
	}
	if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "cgroup_path") }) {
		t.Error("no example joins on cgroup_path")
	}
	checkPromQL(t, exprs)
}
