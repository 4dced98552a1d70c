package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate_APIAddressMustBeLoopbackUnlessAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		address string
		allow   bool
		problem string // "" when valid
	}{
		{"", false, ""},
		{"127.0.0.1:8080", false, ""},
		{"127.1.2.3:8080", false, ""},
		{"localhost:8080", false, ""},
		{"[::1]:8080", false, ""},
		{":8080", false, `api.address: ":8080" must be a loopback address such as 127.0.0.1:8080`},
		{"0.0.0.0:8080", false, "must be a loopback address"},
		{"[::]:8080", false, "must be a loopback address"},
		{"10.0.0.1:8080", false, "must be a loopback address"},
		{"node.example.com:8080", false, "must be a loopback address"},
		{":8080", true, ""},
		{"10.0.0.1:8080", true, ""},
		{"127.0.0.1", false, "must be host:port"},
		{"127.0.0.1:0", false, "must be host:port"},
		{"127.0.0.1:65536", false, "must be host:port"},
		{"127.0.0.1:http", false, "must be host:port"},
		{":9808", true, `must not use the port of metrics.address (":9808")`},
		{"127.0.0.1:9808", false, "must not use the port of metrics.address"},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			t.Parallel()
			c := Defaults()
			c.API.Address, c.API.AllowNonLoopback = tt.address, tt.allow
			assertValidation(t, c, tt.problem)
		})
	}
}

func TestValidate_ChecksEachRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Config)
		problem string // "" when valid
	}{
		{"endpoint unix URL", func(c *Config) { c.Runtime.Endpoint = "unix:///run/crio/crio.sock" }, ""},
		{"endpoint bare path", func(c *Config) { c.Runtime.Endpoint = "/run/crio/crio.sock" }, ""},
		{"endpoint relative unix URL", func(c *Config) { c.Runtime.Endpoint = "unix://run/crio.sock" }, `runtime.endpoint: "unix://run/crio.sock" must be empty (auto-detect)`},
		{"endpoint TCP", func(c *Config) { c.Runtime.Endpoint = "tcp://10.0.0.1:1234" }, "runtime.endpoint:"},
		{"endpoint relative path", func(c *Config) { c.Runtime.Endpoint = "containerd.sock" }, "runtime.endpoint:"},
		{"zero timeout", func(c *Config) { c.Runtime.Timeout = 0 }, `runtime.timeout: "0s" must be a positive duration`},
		{"negative relist", func(c *Config) { c.Runtime.RelistInterval = -time.Second }, `runtime.relist_interval: "-1s" must be a positive duration`},
		{"no retries", func(c *Config) { c.Runtime.MaxRetries = 0 }, ""},
		{"api on localhost, metrics on 127.0.0.1, one port", func(c *Config) {
			c.Metrics.Address, c.API.Address = "127.0.0.1:19808", "localhost:19808"
		}, `api.address: "localhost:19808" must not use the port of metrics.address`},
		{"api on 127.0.0.1, metrics on localhost, one port", func(c *Config) {
			c.Metrics.Address, c.API.Address = "localhost:19808", "127.0.0.1:19808"
		}, `api.address: "127.0.0.1:19808" must not use the port of metrics.address`},
		{"api and metrics on two loopback addresses", func(c *Config) {
			c.Metrics.Address, c.API.Address = "127.0.0.2:19808", "127.0.0.1:19808"
		}, ""},
		{"on-demand timeout the HTTP answer outlives", func(c *Config) { c.API.OnDemandTimeout = 20 * time.Second }, ""},
		{"on-demand timeout past the HTTP write timeout", func(c *Config) { c.API.OnDemandTimeout = 40 * time.Second },
			`api.ondemand_timeout: "40s" must be at most 20s`},
		{"negative retries", func(c *Config) { c.Runtime.MaxRetries = -1 }, "runtime.max_retries: -1 must be at least 0"},
		{"unlimited rate", func(c *Config) { c.Runtime.RateLimit = 0 }, ""},
		{"fractional rate", func(c *Config) { c.Runtime.RateLimit = 0.5 }, ""},
		{"negative rate", func(c *Config) { c.Runtime.RateLimit = -1 }, "runtime.rate_limit: -1 must be 0 (unlimited)"},
		{"infinite rate", func(c *Config) { c.Runtime.RateLimit = math.Inf(1) }, "runtime.rate_limit: +Inf"},
		{"retry base equals max", func(c *Config) { c.Runtime.RetryBase = c.Runtime.RetryMax }, ""},
		{"events on", func(c *Config) { c.Runtime.Events = EventsOn }, ""},
		{"events uppercase", func(c *Config) { c.Runtime.Events = "AUTO" }, `runtime.events: "AUTO" must be one of auto, on, off`},
		{"relative cgroup root", func(c *Config) { c.Cgroup.Root = "sys/fs/cgroup" }, `cgroup.root: "sys/fs/cgroup" must be an absolute path`},
		{"empty proc root", func(c *Config) { c.Proc.Root = "" }, `proc.root: "" must be an absolute path`},
		{"tiny cache", func(c *Config) { c.Cache.Size = 99 }, "cache.size: 99 must be at least 100"},
		{"no deleted grace", func(c *Config) { c.Cache.DeletedGrace = 0 }, ""},
		{"negative deleted grace", func(c *Config) { c.Cache.DeletedGrace = -time.Second }, `cache.deleted_grace: "-1s" must be a duration of 0 or more`},
		{"zero negative ttl", func(c *Config) { c.Cache.NegativeTTL = 0 }, "cache.negative_ttl:"},
		{"socket mode with type bits", func(c *Config) { c.API.SocketMode = 0o1660 }, `api.socket_mode: "1660" must be an octal mode between 0001 and 0777`},
		{"socket group name", func(c *Config) { c.API.SocketGroup = "cri-enricherd" }, ""},
		{"socket group gid", func(c *Config) { c.API.SocketGroup = "1000" }, ""},
		{"socket group with space", func(c *Config) { c.API.SocketGroup = "my group" }, `api.socket_group: "my group" must be a group name or a numeric gid`},
		{"socket group -1", func(c *Config) { c.API.SocketGroup = "4294967295" }, "api.socket_group:"},
		{"no watchers", func(c *Config) { c.API.MaxWatchers = 0 }, "api.max_watchers: 0 must be at least 1"},
		{"unlimited on-demand lookups", func(c *Config) { c.API.OnDemandRate = 0 }, ""},
		{"negative on-demand rate", func(c *Config) { c.API.OnDemandRate = -1 }, "api.ondemand_rate: -1 must be 0 (unlimited)"},
		{"zero on-demand burst", func(c *Config) { c.API.OnDemandBurst = 0 }, "api.ondemand_burst: 0 must be at least 1"},
		{"grpc off", func(c *Config) { c.API.GRPCSocket = "" }, ""},
		{"relative grpc socket", func(c *Config) { c.API.GRPCSocket = "grpc.sock" }, `api.grpc_socket: "grpc.sock" must be an absolute path`},
		{"grpc on the http socket", func(c *Config) { c.API.GRPCSocket = c.API.Socket + "/" }, "api.grpc_socket: \"/run/cri-enricherd/api.sock/\" must differ from api.socket"},
		{"metrics on every interface", func(c *Config) { c.Metrics.Address = "0.0.0.0:9808" }, ""},
		{"metrics without port", func(c *Config) { c.Metrics.Address = "0.0.0.0" }, "metrics.address:"},
		{"metrics path relative", func(c *Config) { c.Metrics.Path = "metrics" }, `metrics.path: "metrics" must be a URL path`},
		{"metrics path nested", func(c *Config) { c.Metrics.Path = "/internal/metrics" }, ""},
		{"metrics path on the liveness probe", func(c *Config) { c.Metrics.Path = "/healthz" }, `metrics.path: "/healthz" must not be a path the metrics listener already serves`},
		{"metrics path on the readiness probe", func(c *Config) { c.Metrics.Path = "/readyz/" }, "metrics.path:"},
		{"metrics path under pprof", func(c *Config) { c.Metrics.Path = "/debug/pprof/metrics" }, "metrics.path:"},
		{"metrics path root", func(c *Config) { c.Metrics.Path = "/" }, "metrics.path:"},
		{"metrics path with a wildcard", func(c *Config) { c.Metrics.Path = "/{x}" }, "metrics.path:"},
		{"metrics path with an empty element", func(c *Config) { c.Metrics.Path = "/a//metrics" }, `metrics.path: "/a//metrics" must be a clean URL path`},
		{"metrics path with a dot-dot element", func(c *Config) { c.Metrics.Path = "/a/../metrics" }, "metrics.path:"},
		{"metrics path with a malformed escape", func(c *Config) { c.Metrics.Path = "/%zz" }, "metrics.path:"},
		{"metrics path with a trailing slash", func(c *Config) { c.Metrics.Path = "/metrics/" }, ""},
		{"socket mode zero", func(c *Config) { c.API.SocketMode = 0 }, `api.socket_mode: "0000" must be an octal mode between 0001 and 0777`},
		{"label allowlist valid", func(c *Config) { c.Metrics.PodLabelAllowlist = []string{"app", "app.kubernetes.io/name"} }, ""},
		{"label allowlist invalid", func(c *Config) { c.Metrics.PodLabelAllowlist = []string{"bad key!"} }, `metrics.pod_label_allowlist: "bad key!" must be a Kubernetes label key`},
		{"label allowlist colliding", func(c *Config) { c.Metrics.PodLabelAllowlist = []string{"app.name", "app_name"} }, `metrics.pod_label_allowlist: "app_name" exports the same label label_app_name as "app.name"`},
		{"zero max labels", func(c *Config) { c.Enrich.MaxLabels = 0 }, "enrich.max_labels: 0 must be at least 1"},
		{"zero max value length", func(c *Config) { c.Enrich.MaxValueLength = 0 }, "enrich.max_value_length:"},
		{"log format text", func(c *Config) { c.Log.Format = "text" }, `log.format: "text" must be one of json, console`},
		{"node name", func(c *Config) { c.NodeName = "ip-10-0-0-1.ec2.internal" }, ""},
		{"node name uppercase", func(c *Config) { c.NodeName = "Worker_1" }, `node_name: "Worker_1" must be a Kubernetes node name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Defaults()
			tt.mutate(&c)
			assertValidation(t, c, tt.problem)
		})
	}
}

// assertValidation expects c to be valid when problem is empty, else exactly
// one problem starting with problem.
func assertValidation(t *testing.T, c Config, problem string) {
	t.Helper()
	err := c.Validate()
	if problem == "" {
		if err != nil {
			t.Errorf("Validate() = %v, want nil", err)
		}
		return
	}
	problems := problemsOf(t, err)
	if len(problems) != 1 || !strings.Contains(problems[0], problem) {
		t.Errorf("problems = %q, want one containing %q", problems, problem)
	}
}

func TestValidationError_ListsOneProblemPerLine(t *testing.T) {
	t.Parallel()
	c := Defaults()
	c.Runtime.Timeout = -time.Second
	c.Log.Level = "loud"
	want := "invalid configuration (2 problems):\n" +
		"  runtime.timeout: \"-1s\" must be a positive duration\n" +
		"  log.level: \"loud\" must be one of debug, info, warn, error"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
}
