package config

import (
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
		out[s.key] = displayValue(s, &c)
	}
	return out
}

func displayValue(s setting, c *Config) any {
	if s.secret && s.text(c) != "" {
		return redactedValue
	}
	return s.display(c)
}

// MarshalLogObject logs the redacted configuration in key-table order, so
// zap.Object("config", cfg) gives one readable start-up line.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return marshalSettings(settings(), c, enc)
}

func marshalSettings(sets []setting, c Config, enc zapcore.ObjectEncoder) error {
	for _, s := range sets {
		switch v := displayValue(s, &c).(type) {
		case string:
			enc.AddString(s.key, v)
		case int:
			enc.AddInt(s.key, v)
		case bool:
			enc.AddBool(s.key, v)
		case float64:
			enc.AddFloat64(s.key, v)
		case []string:
			if err := enc.AddArray(s.key, stringArray(v)); err != nil {
				return err
			}
		default:
			if err := enc.AddReflected(s.key, v); err != nil {
				return err
			}
		}
	}
	return nil
}

type stringArray []string

func (a stringArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, s := range a {
		enc.AppendString(s)
	}
	return nil
}
