package query

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// ListOptions are the filters both APIs accept when listing containers or
// pods. Empty fields select everything.
type ListOptions struct {
	Namespace string
	PodName   string
	PodUID    string
	SandboxID string
	// Selector is "key=value,key2=value2" (see ParseSelector).
	Selector         string
	IncludeDeleted   bool
	ExcludeSandboxes bool
}

// Filter validates o and returns the cache filter for listing containers:
// a selector key matches a container label or a pod label.
func (o ListOptions) Filter() (cache.Filter, error) {
	if o.SandboxID != "" && !id.IsPrefix(o.SandboxID) {
		return cache.Filter{}, failf(CodeInvalid, "sandbox: malformed id %q", Truncate(o.SandboxID))
	}
	labels, err := ParseSelector(o.Selector)
	if err != nil {
		return cache.Filter{}, err
	}
	return cache.Filter{
		Namespace: o.Namespace, PodName: o.PodName, PodUID: o.PodUID, SandboxID: o.SandboxID,
		Labels: labels, IncludeDeleted: o.IncludeDeleted, ExcludeSandboxes: o.ExcludeSandboxes,
	}, nil
}

// PodFilter is Filter for listing pods: the selector matches pod labels
// only, so a pod's sandbox and containers are selected together.
func (o ListOptions) PodFilter() (cache.Filter, error) {
	sel := o.Selector
	o.Selector = ""
	f, err := o.Filter()
	if err != nil {
		return f, err
	}
	labels, err := ParseSelector(sel)
	if err != nil || len(labels) == 0 {
		return f, err
	}
	f.Match = func(rec enrich.Record) bool {
		if rec.Pod == nil {
			return false
		}
		for k, v := range labels {
			if got, ok := rec.Pod.Labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	return f, nil
}

var (
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ParseSelector reads an equality-based label selector, "key=value" terms
// joined by commas ("==" also works), into the labels it requires. Keys and
// values follow Kubernetes' label syntax. Anything else kubectl accepts
// (!=, in, notin, bare keys) is refused: the daemon matches equality only.
func ParseSelector(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	labels := map[string]string{}
	for term := range strings.SplitSeq(s, ",") {
		key, value, err := parseTerm(term)
		if err != nil {
			return nil, failf(CodeInvalid, "selector %q: %v", Truncate(s), err)
		}
		if prev, dup := labels[key]; dup && prev != value {
			return nil, failf(CodeInvalid, "selector %q: key %q given twice with different values", Truncate(s), key)
		}
		labels[key] = value
	}
	return labels, nil
}

func parseTerm(term string) (string, string, error) {
	term = strings.TrimSpace(term)
	key, value, ok := strings.Cut(term, "=")
	if !ok || strings.HasSuffix(key, "!") {
		return "", "", fmt.Errorf("term %q is not key=value (only equality is supported)", term)
	}
	value = strings.TrimPrefix(value, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !isLabelKey(key) {
		return "", "", fmt.Errorf("%q is not a label key", key)
	}
	if value != "" && (len(value) > 63 || !labelNameRE.MatchString(value)) {
		return "", "", fmt.Errorf("%q is not a label value", value)
	}
	return key, value, nil
}

// isLabelKey follows Kubernetes: an optional DNS subdomain prefix and "/",
// then a name of at most 63 characters.
func isLabelKey(k string) bool {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		if len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
			return false
		}
		name = rest
	}
	return len(name) <= 63 && labelNameRE.MatchString(name)
}
