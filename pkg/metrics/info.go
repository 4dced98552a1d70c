package metrics

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// RecordLister lists cached records; *cache.Cache implements it.
type RecordLister interface {
	List(f cache.Filter) []enrich.Record
}

var _ RecordLister = (*cache.Cache)(nil)

// infoCollector exports one _info series per live record and per pod at
// scrape time, so a deleted container's series goes away with its record
// and nothing has to be unregistered.
type infoCollector struct {
	records      RecordLister
	podLabelKeys []string // allowlisted pod label keys, in label order
	container    *prometheus.Desc
	pod          *prometheus.Desc
}

// WatchRecords registers the info collector over records: a
// cri_enricherd_container_info series for every live container and sandbox,
// and a cri_enricherd_pod_info series for every pod (from its current
// sandbox) carrying the pod labels named in podLabelAllowlist as
// label_<key>, none when it is empty. Records marked deleted are left out:
// they stay in the cache for their grace period only so that late API
// callers can still resolve them.
func (m *Metrics) WatchRecords(records RecordLister, podLabelAllowlist []string) {
	m.registry.MustRegister(newInfoCollector(records, podLabelAllowlist))
}

func newInfoCollector(records RecordLister, podLabelAllowlist []string) *infoCollector {
	c := &infoCollector{records: records}
	podLabels := []string{"pod", "namespace", "pod_uid", "sandbox_id", "pod_ip", "host_network", "runtime_handler"}
	seen := map[string]bool{}
	for _, key := range podLabelAllowlist {
		// Config validation rejects colliding keys; the first one wins here
		// so a bad allowlist can never make the registry panic.
		if name := config.PodLabelName(key); !seen[name] {
			seen[name] = true
			c.podLabelKeys = append(c.podLabelKeys, key)
			podLabels = append(podLabels, name)
		}
	}
	c.container = prometheus.NewDesc(namespace+"_container_info",
		"A live container or pod sandbox in the cache: always 1. Join on cgroup_path (cAdvisor's id) or container_id.",
		[]string{"container_id", "container", "pod", "namespace", "pod_uid", "image", "image_id", "runtime", "cgroup_path", "is_pod_sandbox"}, nil)
	c.pod = prometheus.NewDesc(namespace+"_pod_info",
		"A pod with a live sandbox in the cache, one series per pod (its current sandbox): always 1. Pod labels appear as label_<key> only when metrics.pod_label_allowlist names them.",
		podLabels, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *infoCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.container
	ch <- c.pod
}

// Collect implements prometheus.Collector.
func (c *infoCollector) Collect(ch chan<- prometheus.Metric) {
	recs := c.records.List(cache.Filter{})
	for i := range recs {
		if recs[i].DeletedAt == nil {
			ch <- infoMetric(c.container, c.containerValues(&recs[i]))
		}
	}
	for _, p := range currentPods(recs) {
		ch <- infoMetric(c.pod, c.podValues(p))
	}
}

// currentPods picks one sandbox per pod, so that joins on (namespace, pod)
// stay one-to-one while a pod's old sandbox is still in the cache after the
// kubelet made a new one: the ready one, else the latest attempt. A sandbox
// record is preferred; a container's copy of its pod stands in only when the
// sandbox record is gone (evicted from a full cache).
func currentPods(recs []enrich.Record) []*enrich.Pod {
	type candidate struct {
		pod     *enrich.Pod
		sandbox bool
	}
	best := map[string]candidate{}
	for i := range recs {
		rec := &recs[i]
		if rec.DeletedAt != nil || rec.Pod == nil || rec.Pod.SandboxID == "" {
			continue
		}
		key := enrich.PodKey(rec.Pod)
		cur, ok := best[key]
		if !ok || (rec.IsPodSandbox && !cur.sandbox) ||
			(rec.IsPodSandbox == cur.sandbox && enrich.MoreCurrent(rec.Pod, cur.pod)) {
			best[key] = candidate{pod: rec.Pod, sandbox: rec.IsPodSandbox}
		}
	}
	pods := make([]*enrich.Pod, 0, len(best))
	for _, c := range best {
		pods = append(pods, c.pod)
	}
	return pods
}

func (c *infoCollector) containerValues(rec *enrich.Record) []string {
	var pod, ns, uid string
	if rec.Pod != nil {
		pod, ns, uid = rec.Pod.Name, rec.Pod.Namespace, rec.Pod.UID
	}
	name := rec.Name
	if rec.IsPodSandbox {
		name = "" // a sandbox's record name is its pod's name, not a container's
	}
	return []string{rec.ID, name, pod, ns, uid, rec.Image.Name, rec.Image.ID, rec.Runtime,
		rec.CgroupPath, strconv.FormatBool(rec.IsPodSandbox)}
}

func (c *infoCollector) podValues(p *enrich.Pod) []string {
	values := []string{p.Name, p.Namespace, p.UID, p.SandboxID, p.IP, strconv.FormatBool(p.HostNetwork), p.RuntimeHandler}
	for _, key := range c.podLabelKeys {
		values = append(values, p.Labels[key])
	}
	return values
}

// infoMetric builds a gauge set to 1. Values come from the runtime, so any
// invalid UTF-8 is replaced rather than failing the whole scrape.
func infoMetric(desc *prometheus.Desc, values []string) prometheus.Metric {
	for i, v := range values {
		values[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 1, values...)
}
