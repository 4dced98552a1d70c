package deploy

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const metricsDir = "../../pkg/metrics"

var alertNames = []string{
	"CriEnricherdRuntimeUnreachable",
	"CriEnricherdNotReady",
	"CriEnricherdLookupFailureRatioHigh",
	"CriEnricherdFallbackHitsRising",
	"CriEnricherdEventStreamDown",
}

// monitoringRules renders the monitoring scenario's PrometheusRule.
func monitoringRules(t *testing.T, extra ...string) *prometheusRule {
	t.Helper()
	rel := render(t, append([]string{"-f", scenarios(t)["monitoring"]}, extra...)...)
	if rel.PrometheusRule == nil {
		t.Fatal("the monitoring scenario rendered no PrometheusRule")
	}
	return rel.PrometheusRule
}

func ruleNames(pr *prometheusRule) []string {
	var names []string
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

func TestPrometheusRule_HasEveryAlertAndHonoursDisabled(t *testing.T) {
	if got := ruleNames(monitoringRules(t)); !slices.Equal(got, alertNames) {
		t.Errorf("alerts = %v, want %v", got, alertNames)
	}
	got := ruleNames(monitoringRules(t, withValues(t, "prometheusRule: {disabled: {CriEnricherdFallbackHitsRising: true}}")...))
	if slices.Contains(got, "CriEnricherdFallbackHitsRising") || len(got) != len(alertNames)-1 {
		t.Errorf("with CriEnricherdFallbackHitsRising disabled, alerts = %v", got)
	}
	if rel := render(t); rel.PrometheusRule != nil || rel.ServiceMonitor != nil || rel.PodMonitor != nil {
		t.Errorf("default values render monitoring objects: %v", rel.Kinds)
	}
}

// daemonMetrics lists the series names and label names pkg/metrics
// defines: the Name of every *Opts literal, and the first of two string
// literals passed in a row to a helper (name, help, labels...), all prefixed
// with the package's namespace constant.
func daemonMetrics(t *testing.T) (names, labelNames map[string]bool) {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(metricsDir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var prefix string
	var bare []string
	labelNames = map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				if len(n.Names) == 1 && n.Names[0].Name == "namespace" && len(n.Values) == 1 {
					prefix = stringLit(n.Values[0]) + "_"
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Name" && stringLit(n.Value) != "" {
					bare = append(bare, stringLit(n.Value))
				}
			case *ast.CallExpr:
				bare, labelNames = namesFromCall(n, bare, labelNames)
			case *ast.CompositeLit:
				// []string{"rpc"} holds label names.
				if at, ok := n.Type.(*ast.ArrayType); ok && isIdent(at.Elt, "string") {
					for _, e := range n.Elts {
						if s := stringLit(e); s != "" {
							labelNames[s] = true
						}
					}
				}
			}
			return true
		})
	}
	if prefix != "cri_enricherd_" {
		t.Fatalf("pkg/metrics namespace = %q, want cri_enricherd", strings.TrimSuffix(prefix, "_"))
	}
	names = map[string]bool{}
	for _, b := range bare {
		names[prefix+b] = true
	}
	return names, labelNames
}

func namesFromCall(call *ast.CallExpr, bare []string, labelNames map[string]bool) ([]string, map[string]bool) {
	for i := 0; i+1 < len(call.Args); i++ {
		if stringLit(call.Args[i]) == "" || stringLit(call.Args[i+1]) == "" {
			continue
		}
		bare = append(bare, stringLit(call.Args[i]))
		for _, a := range call.Args[i+2:] {
			if s := stringLit(a); s != "" {
				labelNames[s] = true
			}
		}
		break
	}
	return bare, labelNames
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

var (
	seriesRE   = regexp.MustCompile(`\bcri_enricherd_[a-z0-9_]+`)
	matchersRE = regexp.MustCompile(`\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
)

func TestPrometheusRule_NamesOnlyDaemonMetrics(t *testing.T) {
	names, labelNames := daemonMetrics(t)
	for _, must := range []string{"cri_enricherd_ready", "cri_enricherd_cri_requests_total", "cri_enricherd_event_stream_connected"} {
		if !names[must] {
			t.Fatalf("found no %s in pkg/metrics; the name scan is broken (found %v)", must, sortedSet(names))
		}
	}
	// Target labels Prometheus adds, and those the chart's relabeling adds.
	targetLabels := map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true, "node": true, "container": true, "service": true, "endpoint": true}
	for _, r := range monitoringRules(t).Spec.Groups[0].Rules {
		for _, series := range seriesRE.FindAllString(r.Expr, -1) {
			base := series
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(series, suffix); ok && names[b] {
					base = b
				}
			}
			if !names[base] {
				t.Errorf("%s uses %s, which pkg/metrics does not define", r.Alert, series)
			}
		}
		for _, label := range exprLabels(r.Expr) {
			if !labelNames[label] && !targetLabels[label] {
				t.Errorf("%s uses label %s, which no pkg/metrics series has", r.Alert, label)
			}
		}
	}
}

// exprLabels lists the label names an expression matches or groups on.
func exprLabels(expr string) []string {
	var out []string
	for _, m := range matchersRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range matcherRE.FindAllStringSubmatch(m[1], -1) {
			out = append(out, l[1])
		}
	}
	for _, m := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPrometheusRule_PassesPromtool checks the rule group with promtool and
// runs the alert unit tests in testdata/rules-test.yaml against it.
func TestPrometheusRule_PassesPromtool(t *testing.T) {
	promtool := tool(t, envPromtool, "promtool")
	spec, err := yaml.Marshal(monitoringRules(t).Spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "rules-test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules-test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules-test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool %s: %v\n%s\nrules:\n%s", strings.Join(args, " "), err, out.String(), spec)
		}
	}
}
