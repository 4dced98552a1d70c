package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// EnvPrometheus is the path of the Prometheus server binary (default
// Debian's /usr/bin/prometheus, installed with promtool).
const EnvPrometheus = "CRI_ENRICHERD_TEST_PROMETHEUS"

// PrometheusPath is where the Prometheus server is.
func PrometheusPath() string { return envOr(EnvPrometheus, "/usr/bin/prometheus") }

// ScrapeTarget is one address Prometheus scrapes, with the labels a
// Kubernetes service discovery would have attached (node, pod ...).
type ScrapeTarget struct {
	Address string // host:port
	Labels  map[string]string
}

// PrometheusOptions describe one throwaway Prometheus server.
type PrometheusOptions struct {
	Job         string        // scrape job name (default cri-enricherd)
	MetricsPath string        // default /metrics
	Interval    time.Duration // scrape and rule evaluation interval (default 2s)
	Targets     []ScrapeTarget
	// RuleGroups are Prometheus rule groups (the "groups" list of a rule
	// file, as a PrometheusRule's spec holds them), loaded as one file.
	RuleGroups []any
}

// Prometheus is a Prometheus server on loopback with its data in a temp
// dir, for tests that scrape the daemon the way a cluster's monitoring
// does. It never scrapes anything but the given targets.
type Prometheus struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	http *http.Client
}

// StartPrometheus writes the config and rule file, starts the server and
// waits until it is ready. Callers must Close it.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.Job == "" {
		opts.Job = "cri-enricherd"
	}
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	dir, err := os.MkdirTemp("", "crie-prometheus-")
	if err != nil {
		return nil, fmt.Errorf("create prometheus dir: %w", err)
	}
	p := &Prometheus{dir: dir, log: filepath.Join(dir, "prometheus.log"), http: &http.Client{Timeout: 10 * time.Second}}
	if err := p.start(ctx, opts); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

func (p *Prometheus) start(ctx context.Context, opts PrometheusOptions) error {
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	config, err := p.writeConfig(opts)
	if err != nil {
		return err
	}
	logFile, err := os.Create(p.log)
	if err != nil {
		return fmt.Errorf("create prometheus log: %w", err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(PrometheusPath(), "--config.file="+config, "--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", PrometheusPath(), err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p.waitReady(ctx)
}

// writeConfig writes prometheus.yml and the rule file.
func (p *Prometheus) writeConfig(opts PrometheusOptions) (string, error) {
	var statics []map[string]any
	for _, t := range opts.Targets {
		statics = append(statics, map[string]any{"targets": []string{t.Address}, "labels": t.Labels})
	}
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": opts.Interval.String(), "evaluation_interval": opts.Interval.String()},
		"scrape_configs": []any{map[string]any{
			"job_name": opts.Job, "metrics_path": opts.MetricsPath, "static_configs": statics,
		}},
	}
	if len(opts.RuleGroups) > 0 {
		rules := filepath.Join(p.dir, "rules.yml")
		if err := writeYAML(rules, map[string]any{"groups": opts.RuleGroups}); err != nil {
			return "", err
		}
		cfg["rule_files"] = []string{rules}
	}
	path := filepath.Join(p.dir, "prometheus.yml")
	return path, writeYAML(path, cfg)
}

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (p *Prometheus) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		resp, err := p.http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("prometheus exited: %s", p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready: %w: %s", ctx.Err(), p.LogTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query through the HTTP API. A query
// Prometheus refuses is an error; an empty answer is not.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	out := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", expr, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Alert is one alert of the rules Prometheus evaluates.
type Alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending or firing
}

// Alerts returns the pending and firing alerts.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	err := p.api(ctx, "/api/v1/alerts", &data)
	return data.Alerts, err
}

// RuleHealth returns every loaded rule by name with its health ("ok",
// "err" or "unknown" before the first evaluation) and last error.
func (p *Prometheus) RuleHealth(ctx context.Context) (map[string]string, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api(ctx, "/api/v1/rules", &data); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out[r.Name] = r.Health
			if r.LastError != "" {
				out[r.Name] += ": " + r.LastError
			}
		}
	}
	return out, nil
}

// api GETs a Prometheus HTTP API path and decodes the "data" of a success.
func (p *Prometheus) api(ctx context.Context, path string, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("answer %d %q: %w", resp.StatusCode, bytes.TrimSpace(body), err)
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus: %s", env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// LogTail is the end of the server's log.
func (p *Prometheus) LogTail() string { return tailFile("prometheus log", p.log) }

// Close stops the server and removes its data.
func (p *Prometheus) Close() error {
	if p.cmd != nil && p.cmd.Process != nil {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}
	return os.RemoveAll(p.dir)
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
