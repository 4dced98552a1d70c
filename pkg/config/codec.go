package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The type of a Config field decides how a value is read and shown. Every
// layer hands values over as text (a YAML scalar, an environment variable,
// a flag argument) so that one parser, and one error message, serves them
// all; lists also come as YAML sequences.

// decode sets field from raw. On error field keeps its value, so a key that
// fails to decode is reported once, not again by Validate. The error text
// completes "<key>: <value> ...".
func decode(field reflect.Value, raw any) error {
	parsed := reflect.New(field.Type())
	var err error
	if list, ok := parsed.Interface().(*[]string); ok {
		err = parseList(list, raw)
	} else if s, ok := raw.(string); ok {
		err = parseText(parsed.Interface(), s)
	} else {
		err = fmt.Errorf("must be a single %s value", typeNameOf(field.Type()))
	}
	if err == nil {
		field.Set(parsed.Elem())
	}
	return err
}

// parseText parses s into the value ptr points to.
func parseText(ptr any, s string) error {
	t := strings.TrimSpace(s)
	var err error
	switch p := ptr.(type) {
	case *time.Duration:
		if *p, err = time.ParseDuration(t); err != nil {
			return errors.New(`must be a duration with a unit, such as "2s" or "1m30s"`)
		}
	case *int:
		if *p, err = strconv.Atoi(t); err != nil {
			return errors.New("must be a whole number")
		}
	case *float64:
		if *p, err = strconv.ParseFloat(t, 64); err != nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
			return errors.New("must be a finite number")
		}
	case *bool:
		if *p, err = strconv.ParseBool(t); err != nil {
			return errors.New("must be true or false")
		}
	case *os.FileMode:
		// Octal with or without a leading 0 or 0o, so "660", "0660" and
		// "0o660" all mean rw-rw----. Validate checks the range.
		m, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(t, "0o"), "0O"), 8, 32)
		if err != nil {
			return errors.New(`must be an octal file mode such as "0660"`)
		}
		*p = os.FileMode(m)
	case *EventsMode:
		*p = EventsMode(s)
	case *string:
		*p = s
	default:
		panic(fmt.Sprintf("config: no parser for %T", ptr))
	}
	return nil
}

// parseList reads a YAML sequence of strings, or comma-separated text from
// the environment and flags (repeated flags are joined with commas first).
func parseList(p *[]string, raw any) error {
	switch v := raw.(type) {
	case string:
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
		return nil
	case []any:
		*p = make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return errors.New("must be a list of strings")
			}
			*p = append(*p, s)
		}
		return nil
	}
	return errors.New("must be a list of strings")
}

// formatValue renders a field as a user would write it.
func formatValue(field reflect.Value) string {
	switch v := field.Interface().(type) {
	case os.FileMode:
		return formatMode(v)
	case []string:
		return strings.Join(v, ",")
	}
	return fmt.Sprint(field.Interface())
}

// displayValue is a field as the effective-config log line shows it:
// numbers and booleans as such, lists as lists, the rest as written.
func displayValue(field reflect.Value) any {
	switch v := field.Interface().(type) {
	case int, float64, bool:
		return v
	case []string:
		return append([]string{}, v...)
	}
	return formatValue(field)
}

// typeNameOf names a field's type in --help and the reference table.
func typeNameOf(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "duration"
	case reflect.TypeFor[os.FileMode]():
		return "octal"
	}
	switch t.Kind() {
	case reflect.Int:
		return "int"
	case reflect.Float64:
		return "float"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		return "strings"
	}
	return "string"
}

func formatMode(m os.FileMode) string { return fmt.Sprintf("%04o", uint32(m)) }

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
