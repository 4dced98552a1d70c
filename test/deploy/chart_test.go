package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/cri-enricherd/cri-enricherd/pkg/config"
)

// chartOwnedKeys are the daemon settings the chart derives from its own
// values (mount paths, downward API); .Values.config may not set them.
var chartOwnedKeys = []string{"runtime.endpoint", "cgroup.root", "proc.root", "api.socket", "api.grpc_socket", "node_name"}

func TestChart_LintsStrictlyInEveryScenario(t *testing.T) {
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if out, err := helmRun(t, "lint", "--strict", chartDir, "-f", file); err != nil {
				t.Fatalf("helm lint --strict -f %s: %v\n%s", file, err, out)
			}
		})
	}
}

func TestChart_RendersValidObjectsInEveryScenario(t *testing.T) {
	want := map[string][]string{
		"default":    {"ConfigMap", "DaemonSet", "Service", "ServiceAccount"},
		"monitoring": {"ConfigMap", "DaemonSet", "DashboardConfigMap", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"},
		"k3s":        {"ConfigMap", "DaemonSet", "PodMonitor", "ServiceAccount"},
		"crio":       {"ConfigMap", "DaemonSet", "Service", "ServiceAccount"},
	}
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rel := render(t, "-f", file) // strict decoding happens here
			if w, ok := want[name]; ok && !slices.Equal(rel.sortedKinds(), w) {
				t.Errorf("rendered %v, want %v", rel.sortedKinds(), w)
			}
			checkNamesAndLabels(t, rel)
			checkReferences(t, rel)
		})
	}
}

// checkNamesAndLabels applies the API server's rules for names and labels,
// which decoding alone does not.
func checkNamesAndLabels(t *testing.T, rel release) {
	t.Helper()
	type meta struct {
		kind, name, ns string
		labels         map[string]string
	}
	var metas []meta
	add := func(kind, name, ns string, l map[string]string) { metas = append(metas, meta{kind, name, ns, l}) }
	if o := rel.ServiceAccount; o != nil {
		add("ServiceAccount", o.Name, o.Namespace, o.Labels)
	}
	if o := rel.ConfigMap; o != nil {
		add("ConfigMap", o.Name, o.Namespace, o.Labels)
	}
	if o := rel.Service; o != nil {
		add("Service", o.Name, o.Namespace, o.Labels)
		if errs := validation.IsDNS1035Label(o.Name); len(errs) > 0 {
			t.Errorf("Service name %q: %v", o.Name, errs)
		}
	}
	if o := rel.DaemonSet; o != nil {
		add("DaemonSet", o.Name, o.Namespace, o.Labels)
		add("DaemonSet pod template", "", namespace, o.Spec.Template.Labels)
	}
	if o := rel.ServiceMonitor; o != nil {
		add("ServiceMonitor", o.Name, o.Namespace, o.Labels)
	}
	if o := rel.PodMonitor; o != nil {
		add("PodMonitor", o.Name, o.Namespace, o.Labels)
	}
	if o := rel.PrometheusRule; o != nil {
		add("PrometheusRule", o.Name, o.Namespace, o.Labels)
	}
	for _, m := range metas {
		if m.kind != "DaemonSet pod template" {
			if errs := validation.IsDNS1123Subdomain(m.name); len(errs) > 0 {
				t.Errorf("%s name %q: %v", m.kind, m.name, errs)
			}
			if m.ns != namespace {
				t.Errorf("%s namespace = %q, want %q", m.kind, m.ns, namespace)
			}
		}
		for k, v := range m.labels {
			if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
				t.Errorf("%s label %s=%q: %v", m.kind, k, v, errs)
			}
		}
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if m.labels[k] == "" {
				t.Errorf("%s lacks label %s", m.kind, k)
			}
		}
	}
}

// checkReferences follows every reference between the objects: selectors,
// named ports, volumes, the ConfigMap and the ServiceAccount.
func checkReferences(t *testing.T, rel release) {
	t.Helper()
	ds := rel.DaemonSet
	pod := ds.Spec.Template
	if ds.Spec.Selector == nil || !selectorMatches(t, ds.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("DaemonSet selector %v does not match its pod labels %v", ds.Spec.Selector, pod.Labels)
	}
	c := rel.container(t)
	if !hasPort(c, "metrics") {
		t.Fatalf("container has no port named metrics: %+v", c.Ports)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("probe %+v does not target the metrics port", p)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("volume mount %s names no volume", m.Name)
		}
	}
	if cm := volumes["config"].ConfigMap; cm == nil || rel.ConfigMap == nil || cm.Name != rel.ConfigMap.Name {
		t.Errorf("config volume %+v does not name the rendered ConfigMap", volumes["config"])
	}
	if sa := rel.ServiceAccount; sa != nil && pod.Spec.ServiceAccountName != sa.Name {
		t.Errorf("pods run as ServiceAccount %q, rendered %q", pod.Spec.ServiceAccountName, sa.Name)
	}
	if svc := rel.Service; svc != nil {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("Service selector %v does not match the pods", svc.Spec.Selector)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
			t.Errorf("Service ports = %+v, want one named metrics targeting port metrics", svc.Spec.Ports)
		}
	}
	if sm := rel.ServiceMonitor; sm != nil {
		if rel.Service == nil || !selectorMatches(t, sm.Spec.Selector.MatchLabels, rel.Service.Labels) {
			t.Errorf("ServiceMonitor selector %v does not match the Service", sm.Spec.Selector.MatchLabels)
		}
		checkEndpoints(t, sm.Spec.Endpoints)
	}
	if pm := rel.PodMonitor; pm != nil {
		if !selectorMatches(t, pm.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("PodMonitor selector %v does not match the pods", pm.Spec.Selector.MatchLabels)
		}
		checkEndpoints(t, pm.Spec.PodMetricsEndpoints)
	}
}

func selectorMatches(t *testing.T, sel, target map[string]string) bool {
	t.Helper()
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(target))
}

func checkEndpoints(t *testing.T, eps []scrapeEndpoint) {
	t.Helper()
	if len(eps) != 1 || eps[0].Port != "metrics" || eps[0].Path == "" {
		t.Errorf("scrape endpoints = %+v, want one on port metrics with a path", eps)
	}
}

func hasPort(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
}

// renderedConfig is the ConfigMap's config file, loaded by the daemon.
type renderedConfig struct {
	text string
	cfg  config.Config
}

func loadRenderedConfig(t *testing.T, rel release) renderedConfig {
	t.Helper()
	if rel.ConfigMap == nil {
		t.Fatal("no ConfigMap rendered")
	}
	text, ok := rel.ConfigMap.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap has no config.yaml: keys %v", mapKeys(rel.ConfigMap.Data))
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatalf("the daemon rejects the rendered config: %v\n%s", err, text)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("rendered config does not validate: %v", err)
	}
	return renderedConfig{text: text, cfg: cfg}
}

func TestChart_ConfigLoadsWithTheDaemonsLoaderAndMatchesTheMounts(t *testing.T) {
	sockets := map[string]struct{ dir, name string }{
		"default":    {"/run/containerd", "containerd.sock"},
		"monitoring": {"/run/containerd", "containerd.sock"},
		"k3s":        {"/run/k3s/containerd", "containerd.sock"},
		"crio":       {"/run/crio", "crio.sock"},
	}
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rel := render(t, "-f", file)
			cfg := loadRenderedConfig(t, rel).cfg
			c := rel.container(t)
			if !slices.Equal(c.Args, []string{"--config", "/etc/cri-enricherd/config.yaml"}) {
				t.Errorf("args = %q, want --config /etc/cri-enricherd/config.yaml", c.Args)
			}
			checkHostMount(t, rel, "cgroup.root", cfg.Cgroup.Root, "/sys/fs/cgroup", true)
			checkHostMount(t, rel, "proc.root", cfg.Proc.Root, "/proc", true)
			want, ok := sockets[name]
			if !ok {
				t.Skipf("no expected socket for scenario %s", name)
			}
			socket := strings.TrimPrefix(cfg.Runtime.Endpoint, "unix://")
			if filepath.Base(socket) != want.name {
				t.Errorf("runtime.endpoint %s, want socket %s", cfg.Runtime.Endpoint, want.name)
			}
			// The mount is the socket's directory itself, never the file.
			mount, vol := checkHostMount(t, rel, "runtime.endpoint", filepath.Dir(socket), want.dir, true)
			if mount.MountPath != filepath.Dir(socket) || vol.HostPath.Path != want.dir {
				t.Errorf("runtime socket: mount %s of host %s, want the directory %s mounted at %s", mount.MountPath, vol.HostPath.Path, want.dir, filepath.Dir(socket))
			}
			if tp := vol.HostPath.Type; tp == nil || *tp != corev1.HostPathDirectory {
				t.Errorf("runtime socket volume type = %v, want Directory", tp)
			}
			// The API socket's directory is shared with the host at the
			// same path, read-write, created when missing.
			apiDir := filepath.Dir(cfg.API.Socket)
			mount, vol = checkHostMount(t, rel, "api.socket", apiDir, apiDir, false)
			if mount.MountPath != apiDir {
				t.Errorf("api socket dir mounted at %s, want %s", mount.MountPath, apiDir)
			}
			if tp := vol.HostPath.Type; tp == nil || *tp != corev1.HostPathDirectoryOrCreate {
				t.Errorf("api socket volume type = %v, want DirectoryOrCreate", tp)
			}
			if cfg.API.GRPCSocket == "" || filepath.Dir(cfg.API.GRPCSocket) != apiDir {
				t.Errorf("api.grpc_socket = %q, want a socket beside api.socket in %s", cfg.API.GRPCSocket, apiDir)
			}
		})
	}
}

// checkHostMount finds the volume mount holding path and checks it is a
// hostPath mount of hostPath with the given read-only flag.
func checkHostMount(t *testing.T, rel release, key, path, hostPath string, readOnly bool) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	c := rel.container(t)
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")) && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("%s %s is under no volume mount", key, path)
	}
	var vol corev1.Volume
	for _, v := range rel.DaemonSet.Spec.Template.Spec.Volumes {
		if v.Name == best.Name {
			vol = v
		}
	}
	if vol.HostPath == nil {
		t.Fatalf("%s %s: volume %s is not a hostPath", key, path, best.Name)
	}
	below := strings.TrimPrefix(strings.TrimPrefix(path, best.MountPath), "/")
	if got := filepath.Join(vol.HostPath.Path, below); got != hostPath {
		t.Errorf("%s %s is host path %s, want %s", key, path, got, hostPath)
	}
	if best.ReadOnly != readOnly {
		t.Errorf("%s: mount %s readOnly = %v, want %v", key, best.MountPath, best.ReadOnly, readOnly)
	}
	return best, vol
}

func TestChart_HostPathsAreReadOnlyExceptTheAPISocketDir(t *testing.T) {
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rel := render(t, "-f", file)
			c := rel.container(t)
			hostVolumes := map[string]bool{}
			for _, v := range rel.DaemonSet.Spec.Template.Spec.Volumes {
				if v.HostPath != nil {
					hostVolumes[v.Name] = true
				}
			}
			if len(hostVolumes) != 4 {
				t.Errorf("hostPath volumes = %v, want runtime socket dir, cgroup, proc and api socket dir", mapKeys(hostVolumes))
			}
			for _, m := range c.VolumeMounts {
				if !hostVolumes[m.Name] {
					continue
				}
				if wantRO := m.Name != "api-socket-dir"; m.ReadOnly != wantRO {
					t.Errorf("hostPath mount %s (%s) readOnly = %v, want %v", m.Name, m.MountPath, m.ReadOnly, wantRO)
				}
				if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
					t.Errorf("mount %s propagates Bidirectional, which needs a privileged container", m.Name)
				}
				if m.Name != "api-socket-dir" && !strings.HasPrefix(m.MountPath, "/host/") {
					t.Errorf("host mount %s at %s, want under /host/", m.Name, m.MountPath)
				}
			}
		})
	}
}

func TestChart_ConfigHoldsOnlyChartOwnedAndUserKeys(t *testing.T) {
	owned := []string{"api.grpc_socket", "api.socket", "cgroup.root", "proc.root", "runtime.endpoint"}
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rel := render(t, "-f", file)
			var written map[string]any
			if err := yaml.Unmarshal([]byte(loadRenderedConfig(t, rel).text), &written); err != nil {
				t.Fatal(err)
			}
			user, _ := scenarioValues(t, file)["config"].(map[string]any)
			want := append(flatKeys(user, ""), owned...)
			sort.Strings(want)
			if got := flatKeys(written, ""); !slices.Equal(got, want) {
				t.Errorf("config file keys = %v\nwant the chart's %v plus the user's %v: the chart must not add defaults of its own", got, owned, flatKeys(user, ""))
			}
		})
	}
}

// flatKeys lists the dotted leaf keys of a nested map, sorted.
func flatKeys(m map[string]any, prefix string) []string {
	var keys []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			keys = append(keys, flatKeys(sub, prefix+k+".")...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	sort.Strings(keys)
	return keys
}

func TestChart_ConfigValuesReachTheDaemonUnchanged(t *testing.T) {
	// Numbers must not turn into 1e+06, octal modes must stay octal, "off"
	// must stay a string.
	rel := render(t, withValues(t, `
config:
  cache:
    size: 1000000
  runtime:
    rate_limit: 0.5
    events: "off"
    relist_interval: 90s
  api:
    socket_mode: "0600"
    socket_group: 1000
  metrics:
    pod_label_allowlist: [app.kubernetes.io/name, team]
  enrich:
    export_env: true
`)...)
	cfg := loadRenderedConfig(t, rel).cfg
	got := []any{cfg.Cache.Size, cfg.Runtime.RateLimit, string(cfg.Runtime.Events), cfg.Runtime.RelistInterval.String(),
		fmt.Sprintf("%04o", uint32(cfg.API.SocketMode)), cfg.API.SocketGroup, cfg.Metrics.PodLabelAllowlist, cfg.Enrich.ExportEnv}
	want := []any{1000000, 0.5, "off", "1m30s", "0600", "1000", []string{"app.kubernetes.io/name", "team"}, true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %v, want %v", got, want)
	}
}

func TestChart_EmptyGRPCNameTurnsTheGRPCAPIOff(t *testing.T) {
	cfg := loadRenderedConfig(t, render(t, withValues(t, `apiSocket: {grpcName: ""}`)...)).cfg
	if cfg.API.GRPCSocket != "" {
		t.Errorf("api.grpc_socket = %q, want empty (off)", cfg.API.GRPCSocket)
	}
}

func TestChart_SecureDefaults(t *testing.T) {
	for name, file := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rel := render(t, "-f", file)
			spec := rel.DaemonSet.Spec.Template.Spec
			sc := rel.container(t).SecurityContext
			if sc == nil {
				t.Fatal("container has no securityContext")
			}
			checks := []struct {
				what string
				ok   bool
			}{
				{"readOnlyRootFilesystem true", ptrIs(sc.ReadOnlyRootFilesystem, true)},
				{"allowPrivilegeEscalation false", ptrIs(sc.AllowPrivilegeEscalation, false)},
				{"privileged false", ptrIs(sc.Privileged, false)},
				{"capabilities drop [ALL], add none", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
				{"seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
				{"pod seccomp RuntimeDefault", spec.SecurityContext != nil && spec.SecurityContext.SeccompProfile != nil && spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
				{"automountServiceAccountToken false", ptrIs(spec.AutomountServiceAccountToken, false)},
				{"ServiceAccount automountServiceAccountToken false", rel.ServiceAccount == nil || ptrIs(rel.ServiceAccount.AutomountServiceAccountToken, false)},
				{"hostPID false", !spec.HostPID},
				{"hostNetwork false", !spec.HostNetwork},
				{"hostIPC false", !spec.HostIPC},
				{"enableServiceLinks false", ptrIs(spec.EnableServiceLinks, false)},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("want %s", c.what)
				}
			}
		})
	}
}

func ptrIs[T comparable](p *T, want T) bool { return p != nil && *p == want }

func TestChart_DefaultPodSpec(t *testing.T) {
	rel := render(t)
	spec := rel.DaemonSet.Spec.Template.Spec
	c := rel.container(t)
	t.Run("runs as uid 0 by default, documented", func(t *testing.T) {
		psc := spec.SecurityContext
		if psc == nil || !ptrIs(psc.RunAsUser, 0) || !ptrIs(psc.RunAsGroup, 0) || !ptrIs(psc.RunAsNonRoot, false) {
			t.Errorf("pod securityContext = %+v, want runAsUser 0, runAsGroup 0, runAsNonRoot false", psc)
		}
	})
	t.Run("tolerates every NoSchedule taint", func(t *testing.T) {
		want := []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		if !reflect.DeepEqual(spec.Tolerations, want) {
			t.Errorf("tolerations = %+v, want %+v", spec.Tolerations, want)
		}
		if !reflect.DeepEqual(spec.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}) {
			t.Errorf("nodeSelector = %v", spec.NodeSelector)
		}
	})
	t.Run("node name from the downward API", func(t *testing.T) {
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("env = %+v, want NODE_NAME from spec.nodeName", c.Env)
		}
	})
	t.Run("probes", func(t *testing.T) {
		if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("liveness probe = %+v, want GET /healthz", p)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
			t.Errorf("readiness probe = %+v, want GET /readyz", p)
		}
	})
	t.Run("resources", func(t *testing.T) {
		r := c.Resources
		want := map[string]resource.Quantity{
			"requests.cpu": resource.MustParse("20m"), "requests.memory": resource.MustParse("64Mi"),
			"limits.memory": resource.MustParse("256Mi"),
		}
		got := map[string]resource.Quantity{}
		for k, v := range r.Requests {
			got["requests."+string(k)] = v
		}
		for k, v := range r.Limits {
			got["limits."+string(k)] = v
		}
		if len(got) != len(want) {
			t.Errorf("resources = %v, want %v (no CPU limit)", got, want)
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || g.Cmp(w) != 0 {
				t.Errorf("resources %s = %v, want %v", k, got[k], w)
			}
		}
	})
	t.Run("rolling update, one node at a time", func(t *testing.T) {
		u := rel.DaemonSet.Spec.UpdateStrategy
		if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable.String() != "1" {
			t.Errorf("updateStrategy = %+v", u)
		}
	})
	t.Run("no priority class unless set", func(t *testing.T) {
		if spec.PriorityClassName != "" {
			t.Errorf("priorityClassName = %q", spec.PriorityClassName)
		}
	})
	t.Run("image names no registry", func(t *testing.T) {
		first, _, _ := strings.Cut(c.Image, "/")
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			t.Errorf("image %s names a registry; the operator sets image.registry", c.Image)
		}
		if !strings.HasPrefix(c.Image, "cri-enricherd/cri-enricherd:") {
			t.Errorf("image = %s", c.Image)
		}
	})
}

func TestChart_ImageReference(t *testing.T) {
	cases := []struct {
		name, values, want string
	}{
		{"app version by default", ``, "cri-enricherd/cri-enricherd:" + appVersion(t)},
		{"tag", "image: {tag: v9.9.9}", "cri-enricherd/cri-enricherd:v9.9.9"},
		{"registry set by the operator", "image: {registry: mirror.example:5000/}", "mirror.example:5000/cri-enricherd/cri-enricherd:" + appVersion(t)},
		{"digest pins", "image: {tag: v1, digest: sha256:" + strings.Repeat("ab", 32) + "}", "cri-enricherd/cri-enricherd:v1@sha256:" + strings.Repeat("ab", 32)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := render(t, withValues(t, tc.values)...).container(t).Image; got != tc.want {
				t.Errorf("image = %s, want %s", got, tc.want)
			}
		})
	}
}

func appVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %v", err)
	}
	return chart.AppVersion
}

func TestChart_MetricsPortAndPathFollowTheDaemon(t *testing.T) {
	defaults := config.Defaults()
	_, port, err := net.SplitHostPort(defaults.Metrics.Address)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		args       []string
		port, path string
	}{
		{"daemon defaults", withValues(t, "serviceMonitor: {enabled: true}"), port, defaults.Metrics.Path},
		{"from config", withValues(t, "podMonitor: {enabled: true}\nconfig: {metrics: {address: \":9100\", path: /prom}}"), "9100", "/prom"},
		{"ipv6 wildcard", withValues(t, "serviceMonitor: {enabled: true}\nconfig: {metrics: {address: \"[::]:9200\"}}"), "9200", defaults.Metrics.Path},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rel := render(t, tc.args...)
			c := rel.container(t)
			i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" })
			if i < 0 {
				t.Fatalf("no container port named metrics: %+v", c.Ports)
			}
			if got := strconv.Itoa(int(c.Ports[i].ContainerPort)); got != tc.port {
				t.Errorf("metrics containerPort = %s, want %s", got, tc.port)
			}
			var eps []scrapeEndpoint
			if rel.ServiceMonitor != nil {
				eps = rel.ServiceMonitor.Spec.Endpoints
			} else if rel.PodMonitor != nil {
				eps = rel.PodMonitor.Spec.PodMetricsEndpoints
			}
			if len(eps) != 1 || eps[0].Path != tc.path {
				t.Errorf("scrape endpoints = %+v, want path %s", eps, tc.path)
			}
		})
	}
}

func TestChart_ChecksumAnnotationFollowsTheConfig(t *testing.T) {
	checksum := func(values string) string {
		t.Helper()
		sum := render(t, withValues(t, values)...).DaemonSet.Spec.Template.Annotations["checksum/config"]
		if len(sum) != 64 {
			t.Fatalf("checksum/config = %q, want a sha256", sum)
		}
		return sum
	}
	base := checksum(`{}`)
	if again := checksum(`{}`); again != base {
		t.Errorf("same values, different checksums %s and %s", base, again)
	}
	if other := checksum("podLabels: {team: a}"); other != base {
		t.Errorf("a pod label changed the config checksum")
	}
	for _, values := range []string{"config: {log: {level: debug}}", "runtime: {socketDir: /run/crio, socketName: crio.sock}"} {
		if checksum(values) == base {
			t.Errorf("%s changed the config file but not the checksum", values)
		}
	}
}

func TestChart_RejectsBadValues(t *testing.T) {
	cases := []struct {
		name, values, want string
		schema             bool // the schema refuses it, so helm lint fails too
	}{
		{"unknown top-level key", "imageTag: v1", "additional properties 'imageTag' not allowed", true},
		{"misspelt nested key", "image: {pullpolicy: Always}", "additional properties 'pullpolicy' not allowed", true},
		{"unknown daemon key", "config: {log: {lvl: debug}}", "additional properties 'lvl' not allowed", true},
		{"chart-owned daemon key", "config: {cgroup: {root: /sys/fs/cgroup}}", "additional properties 'root' not allowed", true},
		{"node_name in config", "config: {node_name: worker-1}", "additional properties 'node_name' not allowed", true},
		{"port as a string", `service: {port: "9808"}`, "/service/port", true},
		{"int key given text", "config: {cache: {size: big}}", "/config/cache/size", true},
		{"duration without a unit", "config: {runtime: {timeout: 5}}", "/config/runtime/timeout", true},
		{"unquoted octal mode", "config: {api: {socket_mode: 0660}}", "/config/api/socket_mode", true},
		{"unquoted off", "config: {runtime: {events: off}}", "/config/runtime/events", true},
		{"relative socket dir", "runtime: {socketDir: run/containerd}", "/runtime/socketDir", true},
		{"bad toleration operator", "tolerations: [{operator: Any}]", "/tolerations/0/operator", true},
		{"tolerations not a list", "tolerations: {operator: Exists}", "/tolerations", true},
		// Template guards: helm lint only logs a template's fail, by design.
		{"both monitors", "serviceMonitor: {enabled: true}\npodMonitor: {enabled: true}", "not both", false},
		{"loopback metrics address", `config: {metrics: {address: "127.0.0.1:9808"}}`, "loopback", false},
		{"service monitor without service", "serviceMonitor: {enabled: true}\nservice: {enabled: false}", "service.enabled", false},
		{"one name for both sockets", "apiSocket: {name: api.sock, grpcName: api.sock}", "must differ", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := withValues(t, tc.values)
			cmds := [][]string{templateArgs(args...)}
			if tc.schema {
				cmds = append(cmds, append([]string{"lint", "--strict", chartDir}, args...))
			}
			for _, cmd := range cmds {
				out, err := helmRun(t, cmd...)
				if err == nil {
					t.Errorf("helm %s accepted %q", cmd[0], tc.values)
					continue
				}
				if !strings.Contains(out, tc.want) {
					t.Errorf("helm %s rejected %q without saying %q:\n%s", cmd[0], tc.values, tc.want, out)
				}
			}
		})
	}
}

func TestChart_RefusesChartOwnedKeysEvenWithoutTheSchema(t *testing.T) {
	for _, values := range []string{"config: {runtime: {endpoint: /run/x.sock}}", "config: {node_name: worker-1}"} {
		args := templateArgs(append(withValues(t, values), "--skip-schema-validation")...)
		out, err := helmRun(t, args...)
		if err == nil || !strings.Contains(out, "config.") {
			t.Errorf("helm template --skip-schema-validation accepted %q (%v):\n%s", values, err, out)
		}
	}
}

func TestChart_SchemaCoversEveryDaemonKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := parseSchema(data)
	if err != nil {
		t.Fatal(err)
	}
	cfgSchema, ok := schema.Properties["config"]
	if !ok {
		t.Fatal("values.schema.json has no config property")
	}
	inSchema := map[string]schemaNode{}
	cfgSchema.leaves("", inSchema)
	typeFor := map[string]string{
		"duration": "#/definitions/duration", "int": "integer", "float": "number",
		"bool": "boolean", "string": "string", "octal": "string", "strings": "array",
	}
	for _, doc := range config.Reference() {
		node, ok := inSchema[doc.Key]
		delete(inSchema, doc.Key)
		switch {
		case slices.Contains(chartOwnedKeys, doc.Key):
			if ok {
				t.Errorf("config.%s is set by the chart; the schema must not accept it", doc.Key)
			}
		case !ok:
			t.Errorf("values.schema.json lacks config.%s (%s): add it under properties.config", doc.Key, doc.Type)
		case !node.accepts(typeFor[doc.Type]):
			t.Errorf("config.%s is a %s in the daemon; the schema says %s", doc.Key, doc.Type, node.describe())
		}
	}
	for key := range inSchema {
		t.Errorf("values.schema.json accepts config.%s, which the daemon does not know", key)
	}
}

// TestChart_ShipsTheDashboardForGrafanasSidecar checks that the dashboard
// ConfigMap carries the very file the metrics tests check, with the
// sidecar's label.
func TestChart_ShipsTheDashboardForGrafanasSidecar(t *testing.T) {
	rel := render(t, "-f", filepath.Join(chartDir, "ci", "monitoring-values.yaml"))
	if rel.Dashboard == nil {
		t.Fatal("no dashboard ConfigMap rendered with dashboard.enabled")
	}
	want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "cri-enricherd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rel.Dashboard.Data["cri-enricherd.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("dashboard ConfigMap data differs from dashboards/cri-enricherd.json")
	}
	if rel.Dashboard.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard labels %v lack grafana_dashboard=1", rel.Dashboard.Labels)
	}
	if def := render(t); def.Dashboard != nil {
		t.Errorf("dashboard ConfigMap rendered by default")
	}
}
