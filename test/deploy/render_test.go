package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../../deploy/helm/cri-enricherd"
	releaseName = "cri-enricherd"
	namespace   = "cri-enricherd"

	envDeployCheck = "CRI_ENRICHERD_DEPLOY_CHECK"
	envHelm        = "CRI_ENRICHERD_HELM"
	envPromtool    = "CRI_ENRICHERD_PROMTOOL"
)

// tool finds a command named by the environment variable env, on PATH or in
// GOPATH/bin. A missing tool skips the test, or fails it under
// CRI_ENRICHERD_DEPLOY_CHECK=1.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (set %s, or run make deploy-check, which installs it)", name, env)
	if os.Getenv(envDeployCheck) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// helmRun runs helm with args and returns its combined output.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, envHelm, "helm"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// templateArgs are the arguments of `helm template` for the release the
// checks and the plain manifests use.
func templateArgs(extra ...string) []string {
	return append([]string{"template", releaseName, chartDir, "--namespace", namespace}, extra...)
}

// renderText renders the chart with extra helm arguments (-f, --set).
func renderText(t *testing.T, extra ...string) string {
	t.Helper()
	out, err := helmRun(t, templateArgs(extra...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(extra, " "), err, out)
	}
	return out
}

// withValues writes values (YAML) to a temp file and returns the -f
// arguments naming it, so a test states its values exactly as a user would
// type them rather than through --set's own typing rules.
func withValues(t *testing.T, values string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", path}
}

// release is one rendering of the chart, each object decoded strictly into
// its API type.
type release struct {
	Kinds          []string // in rendering order
	ServiceAccount *corev1.ServiceAccount
	ConfigMap      *corev1.ConfigMap
	Dashboard      *corev1.ConfigMap // the Grafana dashboard, when enabled
	Service        *corev1.Service
	DaemonSet      *appsv1.DaemonSet
	ServiceMonitor *serviceMonitor
	PodMonitor     *podMonitor
	PrometheusRule *prometheusRule
	Namespace      *corev1.Namespace // only in the plain manifests
}

// render renders the chart and decodes it; any decoding problem fails t.
func render(t *testing.T, extra ...string) release {
	t.Helper()
	rel, err := decodeRelease(renderText(t, extra...))
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(extra, " "), err)
	}
	return rel
}

var documentSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeRelease splits a multi-document YAML stream and decodes each object
// into its type, refusing unknown fields, duplicate keys, unknown kinds and
// a kind rendered twice.
func decodeRelease(stream string) (release, error) {
	var rel release
	var problems []error
	for i, doc := range documentSep.Split(stream, -1) {
		data, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			problems = append(problems, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		if string(data) == "null" {
			continue // comments only
		}
		if err := rel.add(data); err != nil {
			problems = append(problems, fmt.Errorf("document %d: %w", i, err))
		}
	}
	return rel, errors.Join(problems...)
}

func (r *release) add(data []byte) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return err
	}
	id := tm.APIVersion + "/" + tm.Kind
	targets := map[string]any{
		"v1/ServiceAccount": &r.ServiceAccount,
		"v1/ConfigMap":      &r.ConfigMap,
		"v1/Service":        &r.Service,
		"v1/Namespace":      &r.Namespace,
		"apps/v1/DaemonSet": &r.DaemonSet,
		"monitoring.coreos.com/v1/ServiceMonitor": &r.ServiceMonitor,
		"monitoring.coreos.com/v1/PodMonitor":     &r.PodMonitor,
		"monitoring.coreos.com/v1/PrometheusRule": &r.PrometheusRule,
	}
	target, ok := targets[id]
	if !ok {
		return fmt.Errorf("unexpected object %s", id)
	}
	kind := tm.Kind
	if id == "v1/ConfigMap" && isDashboard(data) {
		target, kind = &r.Dashboard, "DashboardConfigMap"
	}
	if slices.Contains(r.Kinds, kind) {
		return fmt.Errorf("%s rendered twice", kind)
	}
	if err := decodeStrict(data, target); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	r.Kinds = append(r.Kinds, kind)
	return nil
}

// isDashboard tells the dashboard ConfigMap from the config one by name.
func isDashboard(data []byte) bool {
	var m struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	return json.Unmarshal(data, &m) == nil && strings.HasSuffix(m.Metadata.Name, "-dashboard")
}

// decodeStrict decodes JSON into v, failing on fields v does not have.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

// sortedKinds is r.Kinds sorted, for comparing sets of objects.
func (r release) sortedKinds() []string {
	k := append([]string{}, r.Kinds...)
	sort.Strings(k)
	return k
}

// container is the DaemonSet's only container.
func (r release) container(t *testing.T) corev1.Container {
	t.Helper()
	if r.DaemonSet == nil {
		t.Fatal("no DaemonSet rendered")
	}
	cs := r.DaemonSet.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("DaemonSet has %d containers, want 1", len(cs))
	}
	return cs[0]
}

// scenarios lists the chart's ci/*-values.yaml files by scenario name.
func scenarios(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	for _, want := range []string{"default", "monitoring", "k3s", "crio"} {
		if out[want] == "" {
			t.Fatalf("ci/%s-values.yaml is missing", want)
		}
	}
	return out
}

// scenarioValues reads a scenario's values file as generic YAML.
func scenarioValues(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if v == nil {
		v = map[string]any{}
	}
	return v
}

// mapKeys lists a map's keys, sorted, for messages.
func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
