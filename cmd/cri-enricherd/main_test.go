package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestRun_ExitStatusSaysWhatHappened(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"version", []string{"--version"}, 0},
		{"help", []string{"--help"}, 0},
		{"invalid values are status 2", []string{"--runtime-timeout", "-1s", "--cache-size", "abc"}, 2},
		{"unknown flag is status 2", []string{"--no-such-flag"}, 2},
		{"missing config file is status 2", []string{"--config", "/nonexistent/config.yaml"}, 2},
		{"cli command help", []string{"get", "--help"}, 0},
		{"cli usage error is status 2", []string{"list", "--no-such-flag"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tt.args); got != tt.want {
				t.Errorf("run(%v) = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}

// TestMain checks that every daemon a test ran stopped all it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
