package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ValidationError lists every problem found in a configuration, each naming
// the key, the offending value and what is allowed.
type ValidationError struct {
	Problems []string
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, "invalid configuration (%d %s):", len(e.Problems), noun)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// problem is one line of a ValidationError; key orders it and finds its
// source, located says the text already names one.
type problem struct {
	key     string
	text    string
	located bool
	// against is the other key of a check between two keys: when either
	// failed to decode, the check compared a default nobody wrote, and is
	// left out (the decode error is the problem to report).
	against string
}

// newValidationError orders problems as the key table is, unknown keys first,
// so problems about one section stay together.
func newValidationError(sets []setting, problems []problem) *ValidationError {
	rank := make(map[string]int, len(sets))
	for i, s := range sets {
		rank[s.key] = i + 1
	}
	sort.SliceStable(problems, func(i, j int) bool { return rank[problems[i].key] < rank[problems[j].key] })
	e := &ValidationError{Problems: make([]string, len(problems))}
	for i, p := range problems {
		e.Problems[i] = p.text
	}
	return e
}

// Validate reports every problem of c at once as a *ValidationError, or nil.
func (c Config) Validate() error {
	if problems := check(c); len(problems) > 0 {
		return newValidationError(settings(), problems)
	}
	return nil
}

// Allowed values of the enumerated keys.
var (
	eventModes = []string{string(EventsAuto), string(EventsOn), string(EventsOff)}
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "console"}
)

// minCacheSize keeps a node's live containers in the cache: a node runs up
// to 110 pods by default, each with a sandbox and a container, and a cache
// smaller than that would evict live records and re-ask the runtime.
const minCacheSize = 100

func check(c Config) []problem {
	var ch checker
	ch.runtime(c.Runtime)
	ch.absPath("cgroup.root", c.Cgroup.Root)
	ch.positive("cgroup.rescan_interval", c.Cgroup.RescanInterval)
	ch.absPath("proc.root", c.Proc.Root)
	ch.atLeast("cache.size", c.Cache.Size, minCacheSize)
	ch.nonNegative("cache.deleted_grace", c.Cache.DeletedGrace)
	ch.positive("cache.negative_ttl", c.Cache.NegativeTTL)
	ch.api(c.API, c.Metrics)
	ch.metrics(c.Metrics)
	ch.atLeast("enrich.max_labels", c.Enrich.MaxLabels, 1)
	ch.atLeast("enrich.max_value_length", c.Enrich.MaxValueLength, 1)
	ch.oneOf("log.level", c.Log.Level, logLevels)
	ch.oneOf("log.format", c.Log.Format, logFormats)
	if c.NodeName != "" && !isDNSSubdomain(c.NodeName) {
		ch.add("node_name", c.NodeName, "must be a Kubernetes node name (lowercase letters, digits, '-' and '.')")
	}
	return ch.problems
}

// checker collects problems; its helpers each test one rule.
type checker struct{ problems []problem }

func (ch *checker) add(key string, value any, reason string, args ...any) {
	text := fmt.Sprintf("%s: %s %s", key, show(value), fmt.Sprintf(reason, args...))
	ch.problems = append(ch.problems, problem{key: key, text: text})
}

// MaxOnDemandTimeout bounds api.ondemand_timeout below the HTTP API's
// 30s write timeout, with room for the rest of the answer.
const MaxOnDemandTimeout = 20 * time.Second

// addAgainst adds a problem of key that compares it with the key other.
func (ch *checker) addAgainst(key, other string, value any, reason string, args ...any) {
	ch.add(key, value, reason, args...)
	ch.problems[len(ch.problems)-1].against = other
}

func (ch *checker) positive(key string, d time.Duration) {
	if d <= 0 {
		ch.add(key, d.String(), "must be a positive duration")
	}
}

func (ch *checker) nonNegative(key string, d time.Duration) {
	if d < 0 {
		ch.add(key, d.String(), "must be a duration of 0 or more")
	}
}

func (ch *checker) atLeast(key string, n, least int) {
	if n < least {
		ch.add(key, n, "must be at least %d", least)
	}
}

func (ch *checker) absPath(key, p string) {
	if !filepath.IsAbs(p) {
		ch.add(key, p, "must be an absolute path")
	}
}

func (ch *checker) oneOf(key, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		ch.add(key, v, "must be one of %s", strings.Join(allowed, ", "))
	}
}

func (ch *checker) runtime(r RuntimeConfig) {
	if !validEndpoint(r.Endpoint) {
		ch.add("runtime.endpoint", r.Endpoint, "must be empty (auto-detect), unix:///absolute/path or an absolute path")
	}
	ch.positive("runtime.timeout", r.Timeout)
	ch.positive("runtime.connect_timeout", r.ConnectTimeout)
	ch.atLeast("runtime.max_concurrency", r.MaxConcurrency, 1)
	if r.RateLimit < 0 || math.IsNaN(r.RateLimit) || math.IsInf(r.RateLimit, 0) {
		ch.add("runtime.rate_limit", r.RateLimit, "must be 0 (unlimited) or a positive number of calls per second")
	}
	ch.atLeast("runtime.max_retries", r.MaxRetries, 0)
	ch.positive("runtime.retry_base", r.RetryBase)
	ch.positive("runtime.retry_max", r.RetryMax)
	if r.RetryBase > 0 && r.RetryMax > 0 && r.RetryBase > r.RetryMax {
		ch.addAgainst("runtime.retry_base", "runtime.retry_max", r.RetryBase.String(), "must not exceed runtime.retry_max (%s)", r.RetryMax)
	}
	ch.positive("runtime.bootstrap_timeout", r.BootstrapTimeout)
	ch.positive("runtime.relist_interval", r.RelistInterval)
	ch.oneOf("runtime.events", string(r.Events), eventModes)
}

// validEndpoint accepts what the CRI client dials: nothing (auto-detect),
// unix:///abs/path or /abs/path.
func validEndpoint(e string) bool {
	if e == "" {
		return true
	}
	path, _ := strings.CutPrefix(e, "unix://")
	return filepath.IsAbs(path)
}

func (ch *checker) api(a APIConfig, m MetricsConfig) {
	ch.absPath("api.socket", a.Socket)
	if a.GRPCSocket != "" {
		ch.absPath("api.grpc_socket", a.GRPCSocket)
		if filepath.Clean(a.GRPCSocket) == filepath.Clean(a.Socket) {
			ch.addAgainst("api.grpc_socket", "api.socket", a.GRPCSocket, "must differ from api.socket")
		}
	}
	// 0 is refused rather than honoured: the socket code reads a zero mode
	// as its default 0660, which would widen what the operator asked for.
	if a.SocketMode&^0o777 != 0 || a.SocketMode == 0 {
		ch.add("api.socket_mode", formatMode(a.SocketMode), "must be an octal mode between 0001 and 0777")
	}
	if a.SocketGroup != "" && !validGroup(a.SocketGroup) {
		ch.add("api.socket_group", a.SocketGroup, "must be a group name or a numeric gid")
	}
	if a.Address != "" {
		ch.apiAddress(a, m)
	}
	ch.positive("api.ondemand_timeout", a.OnDemandTimeout)
	if a.OnDemandTimeout > MaxOnDemandTimeout {
		ch.add("api.ondemand_timeout", a.OnDemandTimeout.String(), "must be at most %s: the HTTP API cuts an answer not written within 30s, and the client would get none", MaxOnDemandTimeout)
	}
	if a.OnDemandRate < 0 || math.IsNaN(a.OnDemandRate) || math.IsInf(a.OnDemandRate, 0) {
		ch.add("api.ondemand_rate", a.OnDemandRate, "must be 0 (unlimited) or a positive number of lookups per second")
	}
	ch.atLeast("api.ondemand_burst", a.OnDemandBurst, 1)
	ch.atLeast("api.max_watchers", a.MaxWatchers, 1)
}

// apiAddress keeps the unauthenticated API off the network by default: an
// empty host or a wildcard would bind every interface of the node.
func (ch *checker) apiAddress(a APIConfig, m MetricsConfig) {
	host, port, ok := ch.hostPort("api.address", a.Address)
	if !ok {
		return
	}
	if !a.AllowNonLoopback && !isLoopback(host) {
		ch.add("api.address", a.Address,
			"must be a loopback address such as 127.0.0.1:%d or localhost:%d (an empty host binds every interface); set api.allow_non_loopback to expose the API", port, port)
	}
	if mhost, mport, err := splitHostPort(m.Address); err == nil && mport == port && sameListener(host, mhost) {
		ch.addAgainst("api.address", "metrics.address", a.Address, "must not use the port of metrics.address (%q)", m.Address)
	}
}

func (ch *checker) metrics(m MetricsConfig) {
	ch.hostPort("metrics.address", m.Address)
	switch {
	case !strings.HasPrefix(m.Path, "/") || strings.ContainsAny(m.Path, " \t\r\n?#{}"):
		ch.add("metrics.path", m.Path, "must be a URL path starting with /, such as /metrics")
	case !cleanURLPath(m.Path):
		ch.add("metrics.path", m.Path, "must be a clean URL path (no empty, . or .. elements, no malformed %%-escapes): no request could reach it")
	case reservedPath(m.Path):
		ch.add("metrics.path", m.Path, "must not be a path the metrics listener already serves (/healthz, /readyz, /debug/pprof/...)")
	}
	exported := map[string]string{}
	for _, label := range m.PodLabelAllowlist {
		if !isLabelKey(label) {
			ch.add("metrics.pod_label_allowlist", label, "must be a Kubernetes label key such as app.kubernetes.io/name")
			continue
		}
		name := PodLabelName(label)
		if first, dup := exported[name]; dup {
			ch.add("metrics.pod_label_allowlist", label, "exports the same label %s as %q", name, first)
			continue
		}
		exported[name] = label
	}
}

// cleanURLPath says whether a request can reach p: the HTTP mux refuses
// (panics on) a pattern with empty, . or .. elements, and the server answers
// 400 to a path with a malformed escape. A trailing slash is allowed.
func cleanURLPath(p string) bool {
	if _, err := url.PathUnescape(p); err != nil {
		return false
	}
	clean := path.Clean(p)
	return clean == p || clean+"/" == p
}

// reservedPath says whether p collides with the probes and pprof, which the
// metrics listener serves too.
func reservedPath(p string) bool {
	p = strings.TrimSuffix(p, "/")
	return p == "" || p == "/healthz" || p == "/readyz" || p == "/debug" || strings.HasPrefix(p, "/debug/pprof")
}

// hostPort checks host:port with a numeric port; the host may be empty.
func (ch *checker) hostPort(key, addr string) (string, int, bool) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		ch.add(key, addr, "must be host:port with a port between 1 and 65535, such as 127.0.0.1:8080 or :9808")
		return "", 0, false
	}
	return host, port, true
}

func splitHostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q out of range", portText)
	}
	return host, port, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameListener says whether two hosts on one port would collide: the same
// host, either of them binding every interface, or "localhost" beside a
// loopback address (it binds the first loopback address it resolves to).
func sameListener(a, b string) bool {
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	localhost := func(h, other string) bool { return strings.EqualFold(h, "localhost") && isLoopback(other) }
	return strings.EqualFold(a, b) || wildcard(a) || wildcard(b) || localhost(a, b) || localhost(b, a)
}

var (
	groupNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$`)
	dnsLabel     = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	subdomainRE  = regexp.MustCompile(`^` + dnsLabel + `(\.` + dnsLabel + `)*$`)
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	promInvalidR = regexp.MustCompile(`[^a-zA-Z0-9_]`)
)

func validGroup(g string) bool {
	if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
		return gid != math.MaxUint32 // (gid_t)-1 means "no change" to chown
	}
	return groupNameRE.MatchString(g)
}

func isDNSSubdomain(s string) bool {
	return len(s) <= 253 && subdomainRE.MatchString(s)
}

// isLabelKey follows Kubernetes: an optional DNS subdomain prefix and "/",
// then a name of at most 63 characters.
func isLabelKey(k string) bool {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		if !isDNSSubdomain(prefix) {
			return false
		}
		name = rest
	}
	return len(name) <= 63 && labelNameRE.MatchString(name)
}

// PodLabelName is the Prometheus label a pod label key is exported as:
// "label_" and the key with every character outside [a-zA-Z0-9_] replaced by
// "_", the kube-state-metrics rule. The metrics package exports allowlisted
// keys under it, and Validate rejects allowlists where two keys collide.
func PodLabelName(labelKey string) string {
	return "label_" + promInvalidR.ReplaceAllString(labelKey, "_")
}
