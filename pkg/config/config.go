package config

import (
	"os"
	"time"
)

// Config is the complete, typed configuration of one cri-enricherd process,
// and the key table: every leaf field is a key, named by its yaml tags
// (runtime.max_retries), described by its usage tag, and read from the
// variables in its env tag after its CRI_ENRICHERD_ name. Load walks the
// file itself rather than decoding through the tags (see load).
type Config struct {
	Runtime  RuntimeConfig `yaml:"runtime"`
	Cgroup   CgroupConfig  `yaml:"cgroup"`
	Proc     ProcConfig    `yaml:"proc"`
	Cache    CacheConfig   `yaml:"cache"`
	API      APIConfig     `yaml:"api"`
	Metrics  MetricsConfig `yaml:"metrics"`
	Enrich   EnrichConfig  `yaml:"enrich"`
	Log      LogConfig     `yaml:"log"`
	Debug    DebugConfig   `yaml:"debug"`
	NodeName string        `yaml:"node_name" env:"NODE_NAME" usage:"Kubernetes node name attached to records and metrics; NODE_NAME (downward API) is read too"`

	// ShowVersion is set by --version: main prints the version and exits.
	// It is a command, not a setting, so it has no key.
	ShowVersion bool `yaml:"-"`
	// ConfigFile is the YAML file that was read ("" when none), for the
	// start-up log line.
	ConfigFile string `yaml:"-"`
}

// RuntimeConfig says how to reach and pace the CRI runtime.
type RuntimeConfig struct {
	// Endpoint is "unix:///path" or an absolute socket path; "" means try
	// WellKnownEndpoints in order.
	Endpoint         string        `yaml:"endpoint" usage:"CRI socket as unix:///path or an absolute path; empty tries the well-known containerd, CRI-O, k3s and cri-dockerd sockets in order"`
	Timeout          time.Duration `yaml:"timeout" usage:"deadline of each CRI call; the whole-node List calls of a sync have runtime.bootstrap_timeout instead"`
	ConnectTimeout   time.Duration `yaml:"connect_timeout" usage:"how long to wait for the CRI socket to accept a connection"`
	MaxConcurrency   int           `yaml:"max_concurrency" usage:"CRI calls in flight at once"`
	RateLimit        float64       `yaml:"rate_limit" usage:"CRI calls started per second, in bursts of up to one second's worth; 0 means no limit"`
	MaxRetries       int           `yaml:"max_retries" usage:"retries of a failed CRI call after the first try; 0 never retries"`
	RetryBase        time.Duration `yaml:"retry_base" usage:"backoff before the first retry, doubled for each further one"`
	RetryMax         time.Duration `yaml:"retry_max" usage:"longest backoff between retries"`
	BootstrapTimeout time.Duration `yaml:"bootstrap_timeout" usage:"deadline of the start-up listing of sandboxes and containers"`
	RelistInterval   time.Duration `yaml:"relist_interval" usage:"how often to relist every sandbox and container, repairing missed events"`
	Events           EventsMode    `yaml:"events" usage:"follow the runtime's GetContainerEvents stream: auto (when the runtime serves it, else the cgroup watcher alone), on (required: the daemon exits with an error when the runtime has none) or off"`
	ContainerdEvents bool          `yaml:"containerd_events" usage:"where the runtime serves no CRI event stream (containerd 1.6, 1.7), follow containerd's own create and task-start events on the same socket, so a container is known before its first process and its status is asked the moment it started; a runtime without them (CRI-O) is left to the cgroup watcher"`
}

// EventsMode says whether to follow the runtime's GetContainerEvents stream.
type EventsMode string

// The values runtime.events accepts.
const (
	// EventsAuto uses the stream when the runtime implements it and falls back
	// to relisting when it answers Unimplemented.
	EventsAuto EventsMode = "auto"
	// EventsOn requires the stream; a runtime without it is an error.
	EventsOn EventsMode = "on"
	// EventsOff never opens the stream and relies on cgroup events and relists.
	EventsOff EventsMode = "off"
)

// CgroupConfig locates the cgroup hierarchy (the host's, when containerised).
type CgroupConfig struct {
	Root           string        `yaml:"root" usage:"mount point of the host's cgroup filesystem"`
	RescanInterval time.Duration `yaml:"rescan_interval" usage:"how often to rescan the cgroup tree for containers that file events missed"`
}

// ProcConfig locates procfs (the host's, when containerised).
type ProcConfig struct {
	Root string `yaml:"root" usage:"mount point of the host's procfs"`
}

// CacheConfig bounds the record cache.
type CacheConfig struct {
	Size         int           `yaml:"size" usage:"records (live or recently deleted containers and sandboxes) held before the least recently used is evicted; at least 100"`
	DeletedGrace time.Duration `yaml:"deleted_grace" usage:"how long a deleted container stays answerable; 0 forgets it at once"`
	NegativeTTL  time.Duration `yaml:"negative_ttl" usage:"base backoff before an ID that resolved to nothing is looked up again"`
}

// APIConfig describes the local query API.
type APIConfig struct {
	Socket           string        `yaml:"socket" usage:"Unix socket of the query API"`
	GRPCSocket       string        `yaml:"grpc_socket" usage:"Unix socket of the gRPC API, created with api.socket_mode and api.socket_group; empty disables it"`
	SocketMode       os.FileMode   `yaml:"socket_mode" usage:"permission bits of the API sockets, in octal"`
	SocketGroup      string        `yaml:"socket_group" usage:"group (name or numeric gid) owning the API sockets; empty keeps the process's group"`
	Address          string        `yaml:"address" usage:"optional TCP host:port for the query API, loopback only unless api.allow_non_loopback; empty disables it"`
	AllowNonLoopback bool          `yaml:"allow_non_loopback" usage:"let api.address bind a non-loopback address (the API has no authentication)"`
	OnDemandTimeout  time.Duration `yaml:"ondemand_timeout" usage:"how long a request for an unknown full container ID waits for a CRI lookup (at most 20s)"`
	OnDemandRate     float64       `yaml:"ondemand_rate" usage:"lookups of unknown full IDs that API requests may start per second (each costs up to two CRI calls); beyond it they are answered 429; 0 means no limit"`
	OnDemandBurst    int           `yaml:"ondemand_burst" usage:"on-demand lookups allowed at once above api.ondemand_rate"`
	MaxWatchers      int           `yaml:"max_watchers" usage:"watch streams served at once"`
}

// MetricsConfig describes the Prometheus endpoint.
type MetricsConfig struct {
	Address           string   `yaml:"address" usage:"host:port of the Prometheus endpoint; may be non-loopback so it can be scraped"`
	Path              string   `yaml:"path" usage:"HTTP path of the Prometheus endpoint"`
	PodLabelAllowlist []string `yaml:"pod_label_allowlist" usage:"pod label keys exported on info metrics as label_<key>, every character outside [a-zA-Z0-9_] replaced by _; empty exports none"`
}

// EnrichConfig bounds what a record may carry.
type EnrichConfig struct {
	ExportEnv         bool `yaml:"export_env" usage:"include container environment variables in records (they may hold secrets)"`
	ExportAnnotations bool `yaml:"export_annotations" usage:"include container and pod annotations in records"`
	MaxLabels         int  `yaml:"max_labels" usage:"labels or annotations kept per object; further ones are dropped"`
	MaxValueLength    int  `yaml:"max_value_length" usage:"longest label, annotation or environment value kept, in bytes; longer ones are truncated"`
}

// LogConfig selects the logger's level and encoding; see NewLogger.
type LogConfig struct {
	Level  string `yaml:"level" usage:"least severe level logged: debug, info, warn or error"`
	Format string `yaml:"format" usage:"log encoding: json or console"`
}

// DebugConfig holds switches for troubleshooting.
type DebugConfig struct {
	Pprof bool `yaml:"pprof" usage:"serve /debug/pprof/ on the metrics listener (exposes internals to anyone who can reach it)"`
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Runtime: RuntimeConfig{
			Timeout:          2 * time.Second,
			ConnectTimeout:   5 * time.Second,
			MaxConcurrency:   4,
			MaxRetries:       4,
			RetryBase:        100 * time.Millisecond,
			RetryMax:         2 * time.Second,
			BootstrapTimeout: 30 * time.Second,
			RelistInterval:   5 * time.Minute,
			Events:           EventsAuto,
			ContainerdEvents: true,
		},
		Cgroup: CgroupConfig{Root: "/sys/fs/cgroup", RescanInterval: time.Minute},
		Proc:   ProcConfig{Root: "/proc"},
		Cache:  CacheConfig{Size: 10000, DeletedGrace: 5 * time.Minute, NegativeTTL: 30 * time.Second},
		API: APIConfig{
			Socket:          "/run/cri-enricherd/api.sock",
			GRPCSocket:      "/run/cri-enricherd/grpc.sock",
			SocketMode:      0o660,
			OnDemandTimeout: 2 * time.Second,
			OnDemandRate:    10,
			OnDemandBurst:   20,
			MaxWatchers:     64,
		},
		Metrics: MetricsConfig{Address: ":9808", Path: "/metrics"},
		Enrich:  EnrichConfig{MaxLabels: 256, MaxValueLength: 4096},
		Log:     LogConfig{Level: "info", Format: "json"},
	}
}

// WellKnownEndpoints lists the CRI sockets tried, in order, when
// runtime.endpoint is empty: containerd, CRI-O, k3s's embedded containerd,
// cri-dockerd. It returns a new slice on every call.
func WellKnownEndpoints() []string {
	return []string{
		"unix:///run/containerd/containerd.sock",
		"unix:///run/crio/crio.sock",
		"unix:///run/k3s/containerd/containerd.sock",
		"unix:///var/run/cri-dockerd.sock",
	}
}
