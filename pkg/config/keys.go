package config

import (
	"fmt"
	"reflect"
	"strings"
)

// envPrefix starts every environment variable Load reads, except the
// downward-API aliases listed per setting.
const envPrefix = "CRI_ENRICHERD_"

// setting documents one public key. The key is the path of yaml tags to its
// Config field, whose type decides how it is parsed and shown (codec.go);
// flag, environment variable, reference row and log field derive from it.
type setting struct {
	key      string
	usage    string
	secret   bool     // masked in the log line when non-empty
	extraEnv []string // also read, with lower priority than the CRI_ENRICHERD_ name
}

func key(name, usage string) setting { return setting{key: name, usage: usage} }

func (s setting) alsoEnv(names ...string) setting {
	s.extraEnv = append(append([]string{}, s.extraEnv...), names...)
	return s
}

// field returns the Config field the key names, following the yaml tags.
func (s setting) field(c *Config) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for name := range strings.SplitSeq(s.key, ".") {
		i := fieldIndex(v.Type(), name)
		if i < 0 {
			panic(fmt.Sprintf("config: key %s names no Config field", s.key))
		}
		v = v.Field(i)
	}
	return v
}

func fieldIndex(t reflect.Type, tag string) int {
	if t.Kind() != reflect.Struct {
		return -1
	}
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("yaml") == tag {
			return i
		}
	}
	return -1
}

// text is the key's value in c as a user would write it.
func (s setting) text(c *Config) string { return formatValue(s.field(c)) }

// typeName is the key's type as --help and the reference show it.
func (s setting) typeName() string { return typeNameOf(s.field(&Config{}).Type()) }

// flagName maps runtime.max_retries to runtime-max-retries.
func (s setting) flagName() string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(s.key)
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
	return []setting{
		key("runtime.endpoint", "CRI socket as unix:///path or an absolute path; empty tries the well-known containerd, CRI-O, k3s and cri-dockerd sockets in order"),
		key("runtime.timeout", "deadline of each CRI call; the whole-node List calls of a sync have runtime.bootstrap_timeout instead"),
		key("runtime.connect_timeout", "how long to wait for the CRI socket to accept a connection"),
		key("runtime.max_concurrency", "CRI calls in flight at once"),
		key("runtime.rate_limit", "CRI calls started per second, in bursts of up to one second's worth; 0 means no limit"),
		key("runtime.max_retries", "retries of a failed CRI call after the first try; 0 never retries"),
		key("runtime.retry_base", "backoff before the first retry, doubled for each further one"),
		key("runtime.retry_max", "longest backoff between retries"),
		key("runtime.bootstrap_timeout", "deadline of the start-up listing of sandboxes and containers"),
		key("runtime.relist_interval", "how often to relist every sandbox and container, repairing missed events"),
		key("runtime.events", "follow the runtime's GetContainerEvents stream: auto (when the runtime serves it, else the cgroup watcher alone), on (required: the daemon exits with an error when the runtime has none) or off"),

		key("cgroup.root", "mount point of the host's cgroup filesystem"),
		key("cgroup.rescan_interval", "how often to rescan the cgroup tree for containers that file events missed"),
		key("proc.root", "mount point of the host's procfs"),

		key("cache.size", "records (live or recently deleted containers and sandboxes) held before the least recently used is evicted; at least 100"),
		key("cache.deleted_grace", "how long a deleted container stays answerable; 0 forgets it at once"),
		key("cache.negative_ttl", "base backoff before an ID that resolved to nothing is looked up again"),

		key("api.socket", "Unix socket of the query API"),
		key("api.grpc_socket", "Unix socket of the gRPC API, created with api.socket_mode and api.socket_group; empty disables it"),
		key("api.socket_mode", "permission bits of the API sockets, in octal"),
		key("api.socket_group", "group (name or numeric gid) owning the API sockets; empty keeps the process's group"),
		key("api.address", "optional TCP host:port for the query API, loopback only unless api.allow_non_loopback; empty disables it"),
		key("api.allow_non_loopback", "let api.address bind a non-loopback address (the API has no authentication)"),
		key("api.ondemand_timeout", "how long a request for an unknown full container ID waits for a CRI lookup"),
		key("api.ondemand_rate", "lookups of unknown full IDs that API requests may start per second (each costs up to two CRI calls); beyond it they are answered 429; 0 means no limit"),
		key("api.ondemand_burst", "on-demand lookups allowed at once above api.ondemand_rate"),
		key("api.max_watchers", "watch streams served at once"),

		key("metrics.address", "host:port of the Prometheus endpoint; may be non-loopback so it can be scraped"),
		key("metrics.path", "HTTP path of the Prometheus endpoint"),
		key("metrics.pod_label_allowlist", "pod label keys exported on info metrics as label_<key>, every character outside [a-zA-Z0-9_] replaced by _; empty exports none"),

		key("enrich.export_env", "include container environment variables in records (they may hold secrets)"),
		key("enrich.export_annotations", "include container and pod annotations in records"),
		key("enrich.max_labels", "labels or annotations kept per object; further ones are dropped"),
		key("enrich.max_value_length", "longest label, annotation or environment value kept, in bytes; longer ones are truncated"),

		key("log.level", "least severe level logged: debug, info, warn or error"),
		key("log.format", "log encoding: json or console"),

		key("debug.pprof", "serve /debug/pprof/ on the metrics listener (exposes internals to anyone who can reach it)"),

		key("node_name", "Kubernetes node name attached to records and metrics; NODE_NAME (downward API) is read too").alsoEnv("NODE_NAME"),
	}
}
