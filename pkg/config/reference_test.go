package config

import (
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// configFields maps each public key, derived from the yaml tags, to the
// address of its field in c.
func configFields(v reflect.Value, prefix string, out map[string]any) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == v.Type().PkgPath() {
			configFields(v.Field(i), key, out)
			continue
		}
		out[key] = v.Field(i).Addr().Interface()
	}
}

func TestReference_CoversEveryConfigField(t *testing.T) {
	t.Parallel()
	var c Config
	fields := map[string]any{}
	configFields(reflect.ValueOf(&c).Elem(), "", fields)

	docs := map[string]bool{}
	for _, d := range Reference() {
		docs[d.Key] = true
	}
	for key := range fields {
		if !docs[key] {
			t.Errorf("Config field %s has no key in the reference", key)
		}
	}
	for _, s := range settings() {
		addr, ok := fields[s.key]
		if !ok {
			t.Errorf("key %s names no Config field", s.key)
			continue
		}
		// The key must fill the field its yaml tag names, not a neighbour.
		if s.field(&c).Addr().Interface() != addr {
			t.Errorf("key %s is bound to the wrong Config field", s.key)
		}
		if s.usage == "" {
			t.Errorf("key %s has no description", s.key)
		}
	}
}

func TestReference_FlagAndEnvNamesAreDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]string{"--config": "", "--version": "", "--help": "", configEnv: ""}
	for _, d := range Reference() {
		for _, name := range append([]string{d.Flag}, d.Env...) {
			if other, dup := seen[name]; dup {
				t.Errorf("%s is used by %s and %q", name, d.Key, other)
			}
			seen[name] = d.Key
		}
		if !strings.HasPrefix(d.Env[0], envPrefix) {
			t.Errorf("%s: first variable %s lacks the %s prefix", d.Key, d.Env[0], envPrefix)
		}
	}
}

func TestReferenceMarkdown_MatchesGolden(t *testing.T) {
	t.Parallel()
	const golden = "testdata/reference.md"
	got := ReferenceMarkdown()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s is out of date; run go test ./pkg/config -update and copy it into the README", golden)
	}
}
