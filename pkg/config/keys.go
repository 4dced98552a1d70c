package config

import (
	"os"
	"strings"
	"time"
)

// envPrefix starts every environment variable Load reads, except the
// downward-API aliases listed per setting.
const envPrefix = "CRI_ENRICHERD_"

// setting ties one public key to its Config field. Everything else - flag,
// environment variable, reference row, log field - is derived from it.
type setting struct {
	key      string
	usage    string
	typeName string
	secret   bool     // masked by Redacted when non-empty
	extraEnv []string // also read, with lower priority than the CRI_ENRICHERD_ name

	field   func(c *Config) any // pointer to the field, for the drift test
	decode  func(c *Config, raw any) error
	text    func(c *Config) string // as a user would write it
	display func(c *Config) any    // for the effective-config log line
}

// bind builds the setting for one key; field must return the address of the
// Config field the key fills.
func bind[T any](cd codec[T], key string, field func(*Config) *T, usage string) setting {
	return setting{
		key:      key,
		usage:    usage,
		typeName: cd.typeName,
		field:    func(c *Config) any { return field(c) },
		decode: func(c *Config, raw any) error {
			v, err := cd.decode(raw)
			if err == nil {
				*field(c) = v
			}
			return err
		},
		text:    func(c *Config) string { return cd.format(*field(c)) },
		display: func(c *Config) any { return cd.display(*field(c)) },
	}
}

func (s setting) alsoEnv(names ...string) setting {
	s.extraEnv = append(append([]string{}, s.extraEnv...), names...)
	return s
}

// flagName maps runtime.max_retries to runtime-max-retries.
func (s setting) flagName() string { return flagNameFor(s.key) }

func flagNameFor(key string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(key)
}

// envNames maps runtime.max_retries to CRI_ENRICHERD_RUNTIME_MAX_RETRIES,
// followed by any aliases, in priority order.
func (s setting) envNames() []string {
	canonical := envPrefix + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
	return append([]string{canonical}, s.extraEnv...)
}

// settings is the key table, in the order keys are documented and logged.
// It is a function rather than a package variable so nobody can change it.
func settings() []setting {
	str := stringCodec[string]()
	return []setting{
		bind(str, "runtime.endpoint", func(c *Config) *string { return &c.Runtime.Endpoint },
			"CRI socket as unix:///path or an absolute path; empty tries the well-known containerd, CRI-O, k3s and cri-dockerd sockets in order"),
		bind(durationCodec, "runtime.timeout", func(c *Config) *time.Duration { return &c.Runtime.Timeout },
			"deadline of each CRI call; the whole-node List calls of a sync have runtime.bootstrap_timeout instead"),
		bind(durationCodec, "runtime.connect_timeout", func(c *Config) *time.Duration { return &c.Runtime.ConnectTimeout },
			"how long to wait for the CRI socket to accept a connection"),
		bind(intCodec, "runtime.max_concurrency", func(c *Config) *int { return &c.Runtime.MaxConcurrency },
			"CRI calls in flight at once"),
		bind(floatCodec, "runtime.rate_limit", func(c *Config) *float64 { return &c.Runtime.RateLimit },
			"CRI calls started per second, in bursts of up to one second's worth; 0 means no limit"),
		bind(intCodec, "runtime.max_retries", func(c *Config) *int { return &c.Runtime.MaxRetries },
			"retries of a failed CRI call after the first try; 0 never retries"),
		bind(durationCodec, "runtime.retry_base", func(c *Config) *time.Duration { return &c.Runtime.RetryBase },
			"backoff before the first retry, doubled for each further one"),
		bind(durationCodec, "runtime.retry_max", func(c *Config) *time.Duration { return &c.Runtime.RetryMax },
			"longest backoff between retries"),
		bind(durationCodec, "runtime.bootstrap_timeout", func(c *Config) *time.Duration { return &c.Runtime.BootstrapTimeout },
			"deadline of the start-up listing of sandboxes and containers"),
		bind(durationCodec, "runtime.relist_interval", func(c *Config) *time.Duration { return &c.Runtime.RelistInterval },
			"how often to relist every sandbox and container, repairing missed events"),
		bind(stringCodec[EventsMode](), "runtime.events", func(c *Config) *EventsMode { return &c.Runtime.Events },
			"follow the runtime's GetContainerEvents stream: auto (when the runtime serves it, else the cgroup watcher alone), on (required: the daemon exits with an error when the runtime has none) or off"),

		bind(str, "cgroup.root", func(c *Config) *string { return &c.Cgroup.Root },
			"mount point of the host's cgroup filesystem"),
		bind(durationCodec, "cgroup.rescan_interval", func(c *Config) *time.Duration { return &c.Cgroup.RescanInterval },
			"how often to rescan the cgroup tree for containers that file events missed"),
		bind(str, "proc.root", func(c *Config) *string { return &c.Proc.Root },
			"mount point of the host's procfs"),

		bind(intCodec, "cache.size", func(c *Config) *int { return &c.Cache.Size },
			"records (live or recently deleted containers and sandboxes) held before the least recently used is evicted; at least 100"),
		bind(durationCodec, "cache.deleted_grace", func(c *Config) *time.Duration { return &c.Cache.DeletedGrace },
			"how long a deleted container stays answerable; 0 forgets it at once"),
		bind(durationCodec, "cache.negative_ttl", func(c *Config) *time.Duration { return &c.Cache.NegativeTTL },
			"base backoff before an ID that resolved to nothing is looked up again"),

		bind(str, "api.socket", func(c *Config) *string { return &c.API.Socket },
			"Unix socket of the query API"),
		bind(str, "api.grpc_socket", func(c *Config) *string { return &c.API.GRPCSocket },
			"Unix socket of the gRPC API, created with api.socket_mode and api.socket_group; empty disables it"),
		bind(modeCodec, "api.socket_mode", func(c *Config) *os.FileMode { return &c.API.SocketMode },
			"permission bits of the API sockets, in octal"),
		bind(str, "api.socket_group", func(c *Config) *string { return &c.API.SocketGroup },
			"group (name or numeric gid) owning the API sockets; empty keeps the process's group"),
		bind(str, "api.address", func(c *Config) *string { return &c.API.Address },
			"optional TCP host:port for the query API, loopback only unless api.allow_non_loopback; empty disables it"),
		bind(boolCodec, "api.allow_non_loopback", func(c *Config) *bool { return &c.API.AllowNonLoopback },
			"let api.address bind a non-loopback address (the API has no authentication)"),
		bind(durationCodec, "api.ondemand_timeout", func(c *Config) *time.Duration { return &c.API.OnDemandTimeout },
			"how long a request for an unknown full container ID waits for a CRI lookup"),
		bind(floatCodec, "api.ondemand_rate", func(c *Config) *float64 { return &c.API.OnDemandRate },
			"lookups of unknown full IDs that API requests may start per second (each costs up to two CRI calls); beyond it they are answered 429; 0 means no limit"),
		bind(intCodec, "api.ondemand_burst", func(c *Config) *int { return &c.API.OnDemandBurst },
			"on-demand lookups allowed at once above api.ondemand_rate"),
		bind(intCodec, "api.max_watchers", func(c *Config) *int { return &c.API.MaxWatchers },
			"watch streams served at once"),

		bind(str, "metrics.address", func(c *Config) *string { return &c.Metrics.Address },
			"host:port of the Prometheus endpoint; may be non-loopback so it can be scraped"),
		bind(str, "metrics.path", func(c *Config) *string { return &c.Metrics.Path },
			"HTTP path of the Prometheus endpoint"),
		bind(listCodec, "metrics.pod_label_allowlist", func(c *Config) *[]string { return &c.Metrics.PodLabelAllowlist },
			"pod label keys exported on info metrics as label_<key>, every character outside [a-zA-Z0-9_] replaced by _; empty exports none"),

		bind(boolCodec, "enrich.export_env", func(c *Config) *bool { return &c.Enrich.ExportEnv },
			"include container environment variables in records (they may hold secrets)"),
		bind(boolCodec, "enrich.export_annotations", func(c *Config) *bool { return &c.Enrich.ExportAnnotations },
			"include container and pod annotations in records"),
		bind(intCodec, "enrich.max_labels", func(c *Config) *int { return &c.Enrich.MaxLabels },
			"labels or annotations kept per object; further ones are dropped"),
		bind(intCodec, "enrich.max_value_length", func(c *Config) *int { return &c.Enrich.MaxValueLength },
			"longest label, annotation or environment value kept, in bytes; longer ones are truncated"),

		bind(str, "log.level", func(c *Config) *string { return &c.Log.Level },
			"least severe level logged: debug, info, warn or error"),
		bind(str, "log.format", func(c *Config) *string { return &c.Log.Format },
			"log encoding: json or console"),

		bind(boolCodec, "debug.pprof", func(c *Config) *bool { return &c.Debug.Pprof },
			"serve /debug/pprof/ on the metrics listener (exposes internals to anyone who can reach it)"),

		bind(str, "node_name", func(c *Config) *string { return &c.NodeName },
			"Kubernetes node name attached to records and metrics; NODE_NAME (downward API) is read too").
			alsoEnv("NODE_NAME"),
	}
}
