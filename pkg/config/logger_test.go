package config

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestNewLogger_HonoursLevelAndFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       LogConfig
		wantDebug bool
		check     func(t *testing.T, line string)
	}{
		{"json at info", LogConfig{Level: "info", Format: "json"}, false, func(t *testing.T, line string) {
			var entry map[string]any
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			if entry["msg"] != "started" || entry["level"] != "info" || entry["component"] != "test" {
				t.Errorf("entry = %v", entry)
			}
		}},
		{"console at debug", LogConfig{Level: "debug", Format: "console"}, true, func(t *testing.T, line string) {
			if !strings.Contains(line, "INFO") || !strings.Contains(line, "started") {
				t.Errorf("line = %q, want a console INFO line", line)
			}
		}},
		{"json at error", LogConfig{Level: "error", Format: "json"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := NewLogger(tt.cfg, zapcore.AddSync(&buf))
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("detail")
			log.Info("started", zap.String("component", "test"))
			out := buf.String()
			if got := strings.Contains(out, "detail"); got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v", got, tt.wantDebug)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if tt.check == nil {
				if out != "" {
					t.Errorf("output = %q, want none below error", out)
				}
				return
			}
			tt.check(t, lines[len(lines)-1])
		})
	}
}

func TestNewLogger_RejectsUnknownLevelOrFormat(t *testing.T) {
	t.Parallel()
	for _, c := range []LogConfig{{Level: "trace", Format: "json"}, {Level: "panic", Format: "json"}, {Level: "info", Format: "text"}} {
		if _, err := NewLogger(c, zapcore.AddSync(io.Discard)); err == nil {
			t.Errorf("NewLogger(%+v) = nil error, want one", c)
		}
	}
}
