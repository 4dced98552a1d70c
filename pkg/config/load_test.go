package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoad_UsesDefaultsWhenNothingIsSet(t *testing.T) {
	t.Parallel()
	got := mustLoad(t, nil, nil)
	if !reflect.DeepEqual(got, Defaults()) {
		t.Errorf("Load(nil, nil) = %+v, want Defaults() %+v", got, Defaults())
	}
}

// The defaults are part of the public contract; this table is the contract.
func TestDefaults_MatchTheDocumentedContract(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"runtime.endpoint": "", "runtime.timeout": "2s", "runtime.connect_timeout": "5s",
		"runtime.max_concurrency": "4", "runtime.rate_limit": "0", "runtime.max_retries": "4",
		"runtime.retry_base": "100ms", "runtime.retry_max": "2s", "runtime.bootstrap_timeout": "30s",
		"runtime.relist_interval": "5m0s", "runtime.events": "auto", "runtime.containerd_events": "true",
		"cgroup.root": "/sys/fs/cgroup", "cgroup.rescan_interval": "1m0s", "proc.root": "/proc",
		"cache.size": "10000", "cache.deleted_grace": "5m0s", "cache.negative_ttl": "30s",
		"api.socket": "/run/cri-enricherd/api.sock", "api.grpc_socket": "/run/cri-enricherd/grpc.sock",
		"api.socket_mode": "0660", "api.socket_group": "",
		"api.address": "", "api.allow_non_loopback": "false", "api.ondemand_timeout": "2s",
		"api.ondemand_rate": "10", "api.ondemand_burst": "20",
		"api.max_watchers": "64",
		"metrics.address":  ":9808", "metrics.path": "/metrics", "metrics.pod_label_allowlist": "",
		"enrich.export_env": "false", "enrich.export_annotations": "false",
		"enrich.max_labels": "256", "enrich.max_value_length": "4096",
		"log.level": "info", "log.format": "json", "debug.pprof": "false", "node_name": "",
	}
	got := map[string]string{}
	for _, d := range Reference() {
		got[d.Key] = d.Default
	}
	if !reflect.DeepEqual(got, want) {
		for k := range merged(got, want) {
			if got[k] != want[k] {
				t.Errorf("default of %s = %q, want %q", k, got[k], want[k])
			}
		}
	}
	if err := Defaults().Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v", err)
	}
}

func merged(a, b map[string]string) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func TestLoad_FileOverridesEveryDefault(t *testing.T) {
	t.Parallel()
	got := mustLoad(t, []string{"--config", "testdata/full.yaml"}, nil)
	want := Config{
		Runtime: RuntimeConfig{
			Endpoint: "unix:///run/containerd/containerd.sock", Timeout: 3 * time.Second,
			ConnectTimeout: 10 * time.Second, MaxConcurrency: 8, RateLimit: 50, MaxRetries: 2,
			RetryBase: 200 * time.Millisecond, RetryMax: 5 * time.Second, BootstrapTimeout: time.Minute,
			RelistInterval: 10 * time.Minute, Events: EventsOff,
		},
		Cgroup: CgroupConfig{Root: "/host/sys/fs/cgroup", RescanInterval: 2 * time.Minute},
		Proc:   ProcConfig{Root: "/host/proc"},
		Cache:  CacheConfig{Size: 20000, DeletedGrace: 10 * time.Minute, NegativeTTL: time.Minute},
		API: APIConfig{
			Socket: "/var/run/cri-enricherd/api.sock", GRPCSocket: "/var/run/cri-enricherd/grpc.sock",
			SocketMode: 0o600, SocketGroup: "1000",
			Address: "127.0.0.1:9810", AllowNonLoopback: true, OnDemandTimeout: 5 * time.Second, OnDemandRate: 2.5, OnDemandBurst: 4, MaxWatchers: 16,
		},
		Metrics: MetricsConfig{
			Address: "0.0.0.0:9809", Path: "/prom",
			PodLabelAllowlist: []string{"app.kubernetes.io/name", "team"},
		},
		Enrich:     EnrichConfig{ExportEnv: true, ExportAnnotations: true, MaxLabels: 64, MaxValueLength: 1024},
		Log:        LogConfig{Level: "debug", Format: "console"},
		Debug:      DebugConfig{Pprof: true},
		NodeName:   "worker-1",
		ConfigFile: "testdata/full.yaml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(full.yaml) =\n%+v\nwant\n%+v", got, want)
	}
	def := Defaults()
	for _, s := range settings() {
		if s.text(&got) == s.text(&def) {
			t.Errorf("testdata/full.yaml leaves %s at its default, so the test cannot see it is read", s.key)
		}
	}
}

func TestLoad_FullFixtureSetsEveryKey(t *testing.T) {
	t.Parallel()
	f, err := readFile("testdata/full.yaml", settings())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Reference() {
		if _, ok := f.values[d.Key]; !ok {
			t.Errorf("testdata/full.yaml does not set %s", d.Key)
		}
	}
}

func TestLoad_FlagsOverrideEnvOverrideFileOverrideDefaults(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, "runtime:\n  timeout: 3s\nmetrics:\n  pod_label_allowlist: [team]\ndebug:\n  pprof: true\n")
	cfg := "--config=" + file
	tests := []struct {
		name string
		args []string
		env  []string
		get  func(Config) any
		want any
	}{
		{"default", nil, nil, timeout, 2 * time.Second},
		{"file over default", []string{cfg}, nil, timeout, 3 * time.Second},
		{"env over file", []string{cfg}, []string{"CRI_ENRICHERD_RUNTIME_TIMEOUT=4s"}, timeout, 4 * time.Second},
		{"flag over env", []string{cfg, "--runtime-timeout", "5s"}, []string{"CRI_ENRICHERD_RUNTIME_TIMEOUT=4s"}, timeout, 5 * time.Second},
		{"flag over file", []string{cfg, "--runtime-timeout=6s"}, nil, timeout, 6 * time.Second},
		{"empty env counts as unset", []string{cfg}, []string{"CRI_ENRICHERD_RUNTIME_TIMEOUT="}, timeout, 3 * time.Second},
		{"last duplicate env wins", nil, []string{"CRI_ENRICHERD_RUNTIME_TIMEOUT=4s", "CRI_ENRICHERD_RUNTIME_TIMEOUT=7s"}, timeout, 7 * time.Second},
		{"config path from env", nil, []string{"CRI_ENRICHERD_CONFIG=" + file}, timeout, 3 * time.Second},
		{"config flag over config env", []string{cfg}, []string{"CRI_ENRICHERD_CONFIG=/nonexistent.yaml"}, timeout, 3 * time.Second},
		{"list from file", []string{cfg}, nil, allowlist, []string{"team"}},
		{"list from env replaces file", []string{cfg}, []string{"CRI_ENRICHERD_METRICS_POD_LABEL_ALLOWLIST=app, tier"}, allowlist, []string{"app", "tier"}},
		{"repeated list flag appends", []string{cfg, "--metrics-pod-label-allowlist=app", "--metrics-pod-label-allowlist", "tier,zone"}, nil, allowlist, []string{"app", "tier", "zone"}},
		{"bool from file", []string{cfg}, nil, pprof, true},
		{"bool flag without value", []string{"--debug-pprof"}, nil, pprof, true},
		{"bool flag false over env", []string{"--debug-pprof=false"}, []string{"CRI_ENRICHERD_DEBUG_PPROF=true"}, pprof, false},
		{"env over file for bool", []string{cfg}, []string{"CRI_ENRICHERD_DEBUG_PPROF=false"}, pprof, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.get(mustLoad(t, tt.args, tt.env))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func timeout(c Config) any   { return c.Runtime.Timeout }
func allowlist(c Config) any { return c.Metrics.PodLabelAllowlist }
func pprof(c Config) any     { return c.Debug.Pprof }

func TestLoad_ReadsNodeNameFromDownwardAPI(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, "node_name: from-file\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"NODE_NAME alone", nil, []string{"NODE_NAME=worker-a"}, "worker-a"},
		{"prefixed variable wins over NODE_NAME", nil, []string{"NODE_NAME=worker-a", "CRI_ENRICHERD_NODE_NAME=worker-b"}, "worker-b"},
		{"NODE_NAME over file", []string{"--config", file}, []string{"NODE_NAME=worker-a"}, "worker-a"},
		{"flag over NODE_NAME", []string{"--node-name=worker-c"}, []string{"NODE_NAME=worker-a"}, "worker-c"},
		{"file when no variable", []string{"--config", file}, nil, "from-file"},
		{"empty when unset", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mustLoad(t, tt.args, tt.env).NodeName; got != tt.want {
				t.Errorf("NodeName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad_IgnoresUnrelatedPrefixedVariables(t *testing.T) {
	t.Parallel()
	// Kubernetes service links for a Service named cri-enricherd.
	env := []string{"CRI_ENRICHERD_SERVICE_HOST=10.0.0.1", "CRI_ENRICHERD_PORT=tcp://10.0.0.1:9808"}
	if got := mustLoad(t, nil, env); !reflect.DeepEqual(got, Defaults()) {
		t.Errorf("Load with service-link variables = %+v, want defaults", got)
	}
}

func TestLoad_RejectsUnknownKeysInFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"typo of a key", "runtime:\n  endpont: /run/x.sock\n", "runtime.endpont: unknown key; did you mean runtime.endpoint? (%s:2)"},
		{"typo of a section", "runtme:\n  timeout: 1s\n", "runtme: unknown key; did you mean runtime? (%s:1)"},
		{"unknown top-level key", "color: blue\n", "color: unknown key (%s:1)"},
		{"keys are case-sensitive", "Log:\n  level: debug\n", "Log: unknown key; did you mean log? (%s:1)"},
		{"key below a leaf", "cache:\n  size:\n    max: 5\n", `cache.size: {...} must be a single int value (from %s:3)`},
		{"scalar where a section belongs", "cache: 5\n", `cache: "5" must be a mapping of cache.* keys (%s:1)`},
		{"duplicate key", "log:\n  level: debug\n  level: info\n", "log.level: duplicate key (%s:3)"},
		{"merge keys are not supported", "base: &b\n  level: debug\nlog:\n  <<: *b\n", "base: unknown key (%s:1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tt.yaml)
			_, err := Load([]string{"--config", path}, nil)
			want := strings.ReplaceAll(tt.want, "%s", path)
			problems := problemsOf(t, err)
			found := false
			for _, p := range problems {
				found = found || p == want
			}
			if !found {
				t.Errorf("problems = %q, want one to be %q", problems, want)
			}
		})
	}
}

func TestLoad_ReportsEveryProblemTogether(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
runtime:
  timeout: -1s
  connect_timeout: 5
  retry_base: 3s
  retry_max: 1s
  events: sometimes
cache:
  size: abc
api:
  socket: relative/api.sock
  socket_mode: "0999"
  address: ":8080"
metrics:
  address: ":99999"
log:
  level: verbose
colour: red
`)
	args := []string{"--config", path, "--enrich-max-labels=lots"}
	env := []string{"CRI_ENRICHERD_RUNTIME_MAX_CONCURRENCY=0"}
	_, err := Load(args, env)
	assertProblems(t, problemsOf(t, err), []string{
		"colour: unknown key",
		`runtime.timeout: "-1s" must be a positive duration (from ` + path + ":3)",
		`runtime.connect_timeout: "5" must be a duration with a unit`,
		`runtime.max_concurrency: 0 must be at least 1 (from env CRI_ENRICHERD_RUNTIME_MAX_CONCURRENCY)`,
		`runtime.retry_base: "3s" must not exceed runtime.retry_max (1s)`,
		`runtime.events: "sometimes" must be one of auto, on, off`,
		`cache.size: "abc" must be a whole number`,
		`api.socket: "relative/api.sock" must be an absolute path`,
		`api.socket_mode: "0999" must be an octal file mode`,
		`api.address: ":8080" must be a loopback address`,
		`metrics.address: ":99999" must be host:port`,
		`enrich.max_labels: "lots" must be a whole number (from flag --enrich-max-labels)`,
		`log.level: "verbose" must be one of debug, info, warn, error`,
	})
}

// A key that fails to decode keeps its default; a check between it and
// another key would then report a value nobody gave, at the operator's
// line. Only the decode error is reported.
func TestLoad_ChecksBetweenKeysSkipAKeyThatFailedToDecode(t *testing.T) {
	t.Parallel()
	tests := []struct{ yaml, want string }{
		{"runtime:\n  retry_base: abc\n  retry_max: 1ms\n", `runtime.retry_base: "abc" must be a duration`},
		{"runtime:\n  retry_base: 1h\n  retry_max: abc\n", `runtime.retry_max: "abc" must be a duration`},
	}
	for _, tt := range tests {
		_, err := Load([]string{"--config", writeConfig(t, tt.yaml)}, nil)
		assertProblems(t, problemsOf(t, err), []string{tt.want})
	}
}

func TestLoad_ParsesSocketModeAsOctal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string // api.socket_mode as written in the file, "" to use env
		env     string
		want    os.FileMode
		problem string
	}{
		{name: "leading zero", env: "0660", want: 0o660},
		{name: "no leading zero is still octal", env: "640", want: 0o640},
		{name: "0o prefix", env: "0o600", want: 0o600},
		{name: "widest", env: "0777", want: 0o777},
		{name: "zero would read as the default 0660", env: "0", problem: `api.socket_mode: "0000" must be an octal mode between 0001 and 0777`},
		{name: "unquoted in YAML", yaml: "0600", want: 0o600},
		{name: "unquoted without zero in YAML", yaml: "600", want: 0o600},
		{name: "quoted in YAML", yaml: `"0640"`, want: 0o640},
		{name: "sticky bit", env: "1777", problem: `api.socket_mode: "1777" must be an octal mode between 0001 and 0777`},
		{name: "not octal", env: "0999", problem: `api.socket_mode: "0999" must be an octal file mode such as "0660"`},
		{name: "symbolic", env: "rw-rw----", problem: `api.socket_mode: "rw-rw----" must be an octal file mode`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var args, env []string
			if tt.yaml != "" {
				args = []string{"--config", writeConfig(t, "api:\n  socket_mode: "+tt.yaml+"\n")}
			} else {
				env = []string{"CRI_ENRICHERD_API_SOCKET_MODE=" + tt.env}
			}
			c, err := Load(args, env)
			if tt.problem != "" {
				problems := problemsOf(t, err)
				if len(problems) != 1 || !strings.HasPrefix(problems[0], tt.problem) {
					t.Errorf("problems = %q, want one starting %q", problems, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.API.SocketMode != tt.want {
				t.Errorf("SocketMode = %04o, want %04o", c.API.SocketMode, tt.want)
			}
		})
	}
}

func TestLoad_DurationsNeedAUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"seconds", "5s", 5 * time.Second, true},
		{"compound", "1m30s", 90 * time.Second, true},
		{"bare number", "5", 0, false},
		{"words", "five seconds", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, "cgroup:\n  rescan_interval: "+tt.value+"\n")
			c, err := Load([]string{"--config", path}, nil)
			if !tt.ok {
				assertProblems(t, problemsOf(t, err), []string{"cgroup.rescan_interval: "})
				return
			}
			if err != nil || c.Cgroup.RescanInterval != tt.want {
				t.Errorf("RescanInterval = %v, %v; want %v", c.Cgroup.RescanInterval, err, tt.want)
			}
		})
	}
}

func TestLoad_KeysWithoutValueKeepTheirDefault(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml string }{
		{"empty file", ""},
		{"comments only", "# nothing\n"},
		{"null document", "~\n"},
		{"null section", "runtime:\n"},
		{"null leaf", "runtime:\n  timeout:\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tt.yaml)
			got := mustLoad(t, []string{"--config", path}, nil)
			want := Defaults()
			want.ConfigFile = path
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want defaults", got)
			}
		})
	}
}

func TestLoad_FailsWhenInputCannotBeRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		yaml string
		want string
	}{
		{name: "missing file", args: []string{"--config", "/nonexistent/config.yaml"}, want: "read config file"},
		{name: "syntax error", yaml: "runtime: [\n", want: "parse config file"},
		{name: "two documents", yaml: "log:\n  level: info\n---\nlog:\n  level: debug\n", want: "only one YAML document"},
		{name: "top level is a list", yaml: "- a\n- b\n", want: "top level must be a mapping"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: "unknown flag: --no-such-flag"},
		{name: "positional argument", args: []string{"serve"}, want: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.yaml != "" {
				args = []string{"--config", writeConfig(t, tt.yaml)}
			}
			_, err := Load(args, nil)
			var verr *ValidationError
			if err == nil || errors.As(err, &verr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want a plain error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad_HelpReturnsErrHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h"} {
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			if _, err := Load([]string{arg}, nil); !errors.Is(err, ErrHelp) {
				t.Errorf("Load(%s) error = %v, want ErrHelp", arg, err)
			}
		})
	}
	if usage := Usage("cri-enricherd"); !strings.Contains(usage, "--runtime-max-retries int") ||
		!strings.Contains(usage, "CRI_ENRICHERD_RUNTIME_MAX_RETRIES") {
		t.Errorf("Usage lacks flags or the environment rule:\n%s", usage)
	}
}

func TestLoad_VersionIgnoresBrokenConfiguration(t *testing.T) {
	t.Parallel()
	env := []string{"CRI_ENRICHERD_CACHE_SIZE=abc", "CRI_ENRICHERD_CONFIG=/nonexistent.yaml"}
	c, err := Load([]string{"--version"}, env)
	if err != nil || !c.ShowVersion {
		t.Errorf("Load(--version) = ShowVersion %v, %v; want true, nil", c.ShowVersion, err)
	}
}

func TestLoad_BadFlagValuesAreProblemsNotParseErrors(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{"--debug-pprof=maybe", "--runtime-rate-limit=fast"}, nil)
	assertProblems(t, problemsOf(t, err), []string{
		`runtime.rate_limit: "fast" must be a finite number (from flag --runtime-rate-limit)`,
		`debug.pprof: "maybe" must be true or false (from flag --debug-pprof)`,
	})
}
