package config

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// redactedValue replaces the value of a secret setting that is set.
const redactedValue = "[REDACTED]"

// Redacted returns the effective configuration keyed by public key name,
// with durations and modes as a user would write them and secret settings
// masked, for logging at start-up. No setting is secret today; marking one
// in the key table is all it takes.
func (c Config) Redacted() map[string]any {
	return redact(settings(), c)
}

func redact(sets []setting, c Config) map[string]any {
	out := make(map[string]any, len(sets))
	for _, s := range sets {
		out[s.key] = redactedDisplay(s, &c)
	}
	return out
}

func redactedDisplay(s setting, c *Config) any {
	if s.secret && s.text(c) != "" {
		return redactedValue
	}
	return displayValue(s.field(c))
}

// MarshalLogObject logs the redacted configuration in key-table order, so
// zap.Object("config", cfg) gives one readable start-up line.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return marshalSettings(settings(), c, enc)
}

// marshalSettings adds each value with zap's field for its type (string,
// int, float, bool or string list).
func marshalSettings(sets []setting, c Config, enc zapcore.ObjectEncoder) error {
	for _, s := range sets {
		zap.Any(s.key, redactedDisplay(s, &c)).AddTo(enc)
	}
	return nil
}
