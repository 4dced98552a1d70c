package config

import (
	"os"
	"time"
)

// Config is the complete, typed configuration of one cri-enricherd process.
// The yaml tags spell the public key names (see Reference): the key table
// finds each field through them, though the file is not decoded with them.
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
	NodeName string        `yaml:"node_name"`

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
	Endpoint         string        `yaml:"endpoint"`
	Timeout          time.Duration `yaml:"timeout"`
	ConnectTimeout   time.Duration `yaml:"connect_timeout"`
	MaxConcurrency   int           `yaml:"max_concurrency"`
	RateLimit        float64       `yaml:"rate_limit"` // calls per second, 0 = unlimited
	MaxRetries       int           `yaml:"max_retries"`
	RetryBase        time.Duration `yaml:"retry_base"`
	RetryMax         time.Duration `yaml:"retry_max"`
	BootstrapTimeout time.Duration `yaml:"bootstrap_timeout"`
	RelistInterval   time.Duration `yaml:"relist_interval"`
	Events           EventsMode    `yaml:"events"`
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
	Root           string        `yaml:"root"`
	RescanInterval time.Duration `yaml:"rescan_interval"`
}

// ProcConfig locates procfs (the host's, when containerised).
type ProcConfig struct {
	Root string `yaml:"root"`
}

// CacheConfig bounds the record cache.
type CacheConfig struct {
	Size         int           `yaml:"size"`
	DeletedGrace time.Duration `yaml:"deleted_grace"`
	NegativeTTL  time.Duration `yaml:"negative_ttl"`
}

// APIConfig describes the local query API.
type APIConfig struct {
	Socket           string        `yaml:"socket"`
	GRPCSocket       string        `yaml:"grpc_socket"` // "" = gRPC API off
	SocketMode       os.FileMode   `yaml:"socket_mode"`
	SocketGroup      string        `yaml:"socket_group"` // group name or numeric gid; "" keeps the process's group
	Address          string        `yaml:"address"`      // optional TCP listener, "" = off
	AllowNonLoopback bool          `yaml:"allow_non_loopback"`
	OnDemandTimeout  time.Duration `yaml:"ondemand_timeout"`
	OnDemandRate     float64       `yaml:"ondemand_rate"` // lookups of unknown IDs per second, 0 = unlimited
	OnDemandBurst    int           `yaml:"ondemand_burst"`
	MaxWatchers      int           `yaml:"max_watchers"`
}

// MetricsConfig describes the Prometheus endpoint.
type MetricsConfig struct {
	Address           string   `yaml:"address"`
	Path              string   `yaml:"path"`
	PodLabelAllowlist []string `yaml:"pod_label_allowlist"`
}

// EnrichConfig bounds what a record may carry.
type EnrichConfig struct {
	ExportEnv         bool `yaml:"export_env"`
	ExportAnnotations bool `yaml:"export_annotations"`
	MaxLabels         int  `yaml:"max_labels"`
	MaxValueLength    int  `yaml:"max_value_length"`
}

// LogConfig selects the logger's level and encoding; see NewLogger.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // json or console
}

// DebugConfig holds switches for troubleshooting.
type DebugConfig struct {
	Pprof bool `yaml:"pprof"`
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
