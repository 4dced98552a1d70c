package config

import (
	"reflect"
	"testing"

	"go.uber.org/zap/zapcore"
)

// logged returns the fields MarshalLogObject adds for c, as zap's map
// encoder holds them (ints as int64, string lists as []any).
func logged(t *testing.T, sets []setting, c Config) map[string]any {
	t.Helper()
	enc := zapcore.NewMapObjectEncoder()
	if err := marshalSettings(sets, c, enc); err != nil {
		t.Fatal(err)
	}
	return enc.Fields
}

func TestMarshalLogObject_ShowsValuesAsWritten(t *testing.T) {
	t.Parallel()
	c := Defaults()
	c.Metrics.PodLabelAllowlist = []string{"team"}
	got := logged(t, settings(), c)
	want := map[string]any{
		"runtime.timeout":             "2s",
		"runtime.max_concurrency":     int64(4),
		"runtime.rate_limit":          0.0,
		"runtime.events":              "auto",
		"api.socket_mode":             "0660",
		"debug.pprof":                 false,
		"cache.negative_ttl":          "30s",
		"metrics.pod_label_allowlist": []any{"team"},
	}
	for key, w := range want {
		if !reflect.DeepEqual(got[key], w) {
			t.Errorf("logged %s = %#v, want %#v", key, got[key], w)
		}
	}
	if len(got) != len(Reference()) {
		t.Errorf("logged %d keys, want %d", len(got), len(Reference()))
	}
}

func TestMarshalLogObject_LogsEveryKey(t *testing.T) {
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
}

func TestMarshalLogObject_MasksSecretSettingsThatAreSet(t *testing.T) {
	t.Parallel()
	sets := settings()
	for i := range sets {
		if sets[i].key == "api.socket_group" || sets[i].key == "runtime.endpoint" {
			sets[i].secret = true
		}
	}
	c := Defaults()
	c.API.SocketGroup = "hunter2"
	got := logged(t, sets, c)
	if got["api.socket_group"] != redactedValue {
		t.Errorf("set secret = %v, want %s", got["api.socket_group"], redactedValue)
	}
	if got["runtime.endpoint"] != "" {
		t.Errorf("empty secret = %v, want empty, so an unset secret is visible as unset", got["runtime.endpoint"])
	}
}
