package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// A codec turns the text a user wrote (a YAML scalar, an environment variable,
// a flag argument) into a typed value and back. Every layer hands values over
// as text so that one parser, and one error message, serves them all.
type codec[T any] struct {
	typeName string                  // shown in --help and the reference table
	parse    func(string) (T, error) // error text completes "<key>: <value> ..."
	parseAny func(any) (T, error)    // optional: non-text input (YAML sequences)
	format   func(T) string          // as a user would write it
	display  func(T) any             // for the effective-config log line
}

// decode reads text, or whatever parseAny understands.
func (cd codec[T]) decode(raw any) (T, error) {
	if cd.parseAny != nil {
		return cd.parseAny(raw)
	}
	s, ok := raw.(string)
	if !ok {
		var zero T
		return zero, fmt.Errorf("must be a single %s value", cd.typeName)
	}
	return cd.parse(s)
}

var durationCodec = codec[time.Duration]{
	typeName: "duration",
	parse: func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New(`must be a duration with a unit, such as "2s" or "1m30s"`)
		}
		return d, nil
	},
	format:  time.Duration.String,
	display: func(d time.Duration) any { return d.String() },
}

var intCodec = codec[int]{
	typeName: "int",
	parse: func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("must be a whole number")
		}
		return n, nil
	},
	format:  strconv.Itoa,
	display: func(n int) any { return n },
}

var floatCodec = codec[float64]{
	typeName: "float",
	parse: func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("must be a finite number")
		}
		return f, nil
	},
	format:  func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) },
	display: func(f float64) any { return f },
}

var boolCodec = codec[bool]{
	typeName: "bool",
	parse: func(s string) (bool, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return false, errors.New("must be true or false")
		}
		return b, nil
	},
	format:  strconv.FormatBool,
	display: func(b bool) any { return b },
}

// modeCodec reads a file mode as octal whether or not it has a leading 0 or
// 0o, so "660", "0660" and "0o660" all mean rw-rw----. The range is checked
// by Validate, which also sees modes set in code.
var modeCodec = codec[os.FileMode]{
	typeName: "octal",
	parse: func(s string) (os.FileMode, error) {
		digits := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0o"), "0O")
		m, err := strconv.ParseUint(digits, 8, 32)
		if err != nil {
			return 0, errors.New(`must be an octal file mode such as "0660"`)
		}
		return os.FileMode(m), nil
	},
	format:  formatMode,
	display: func(m os.FileMode) any { return formatMode(m) },
}

func formatMode(m os.FileMode) string { return fmt.Sprintf("%04o", uint32(m)) }

// listCodec reads a YAML sequence, or comma-separated text from the
// environment and flags (repeated flags are joined with commas first).
var listCodec = codec[[]string]{
	typeName: "strings",
	parse:    splitList,
	parseAny: func(raw any) ([]string, error) {
		switch v := raw.(type) {
		case string:
			return splitList(v)
		case []any:
			return itemsAsStrings(v)
		}
		return nil, errors.New("must be a list of strings")
	},
	format:  func(l []string) string { return strings.Join(l, ",") },
	display: func(l []string) any { return append([]string{}, l...) },
}

func splitList(s string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out, nil
}

func itemsAsStrings(items []any) ([]string, error) {
	out := make([]string, 0, len(items))
	for _, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, errors.New("must be a list of strings")
		}
		out = append(out, s)
	}
	return out, nil
}

func stringCodec[T ~string]() codec[T] {
	return codec[T]{
		typeName: "string",
		parse:    func(s string) (T, error) { return T(s), nil },
		format:   func(v T) string { return string(v) },
		display:  func(v T) any { return string(v) },
	}
}

// show renders a raw or typed value for a problem message: text quoted, so
// that an empty or space-padded value is visible.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			parts[i] = show(item)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return "{...}"
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}
