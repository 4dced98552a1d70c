package config

import (
	"reflect"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestRedacted_ShowsValuesAsWritten(t *testing.T) {
	t.Parallel()
	c := Defaults()
	c.Metrics.PodLabelAllowlist = []string{"team"}
	got := c.Redacted()
	want := map[string]any{
		"runtime.timeout":             "2s",
		"runtime.max_concurrency":     4,
		"runtime.rate_limit":          0.0,
		"runtime.events":              "auto",
		"api.socket_mode":             "0660",
		"debug.pprof":                 false,
		"metrics.pod_label_allowlist": []string{"team"},
	}
	for key, w := range want {
		if !reflect.DeepEqual(got[key], w) {
			t.Errorf("Redacted()[%s] = %#v, want %#v", key, got[key], w)
		}
	}
	if len(got) != len(Reference()) {
		t.Errorf("Redacted() has %d keys, want %d", len(got), len(Reference()))
	}
}

func TestRedacted_MasksSecretSettingsThatAreSet(t *testing.T) {
	t.Parallel()
	sets := settings()
	for i := range sets {
		if sets[i].key == "api.socket_group" || sets[i].key == "runtime.endpoint" {
			sets[i].secret = true
		}
	}
	c := Defaults()
	c.API.SocketGroup = "hunter2"
	got := redact(sets, c)
	if got["api.socket_group"] != redactedValue {
		t.Errorf("set secret = %v, want %s", got["api.socket_group"], redactedValue)
	}
	if got["runtime.endpoint"] != "" {
		t.Errorf("empty secret = %v, want empty, so an unset secret is visible as unset", got["runtime.endpoint"])
	}

	enc := zapcore.NewMapObjectEncoder()
	if err := marshalSettings(sets, c, enc); err != nil {
		t.Fatal(err)
	}
	if enc.Fields["api.socket_group"] != redactedValue {
		t.Errorf("logged secret = %v, want %s", enc.Fields["api.socket_group"], redactedValue)
	}
}

func TestConfig_MarshalLogObjectLogsEveryKey(t *testing.T) {
	t.Parallel()
	enc := zapcore.NewMapObjectEncoder()
	if err := Defaults().MarshalLogObject(enc); err != nil {
		t.Fatal(err)
	}
	for _, d := range Reference() {
		if _, ok := enc.Fields[d.Key]; !ok {
			t.Errorf("%s is not logged", d.Key)
		}
	}
	if enc.Fields["cache.negative_ttl"] != "30s" {
		t.Errorf("cache.negative_ttl logged as %v, want 30s", enc.Fields["cache.negative_ttl"])
	}
}
