package config

import (
	"reflect"
	"slices"
	"strings"
)

// envPrefix starts every environment variable Load reads, except the
// downward-API aliases a field's env tag lists.
const envPrefix = "CRI_ENRICHERD_"

// setting is one public key: a leaf field of Config, named by the path of
// yaml tags to it and documented by its usage tag. The field's type decides
// how the value is parsed and shown (codec.go); flag, environment variable,
// reference row and log field derive from it.
type setting struct {
	key      string
	usage    string
	index    []int    // of the field in Config, for reflect's FieldByIndex
	secret   bool     // masked in the log line when non-empty
	extraEnv []string // also read, with lower priority than the CRI_ENRICHERD_ name
}

// settings is the key table, in the order of Config's fields, which is the
// order keys are documented and logged.
func settings() []setting {
	return appendSettings(nil, reflect.TypeFor[Config](), "", nil)
}

func appendSettings(sets []setting, t reflect.Type, prefix string, index []int) []setting {
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "-" {
			continue
		}
		key := strings.TrimPrefix(prefix+"."+name, ".")
		fieldIndex := append(slices.Clone(index), i)
		if f.Type.Kind() == reflect.Struct {
			sets = appendSettings(sets, f.Type, key, fieldIndex)
			continue
		}
		sets = append(sets, setting{key: key, usage: f.Tag.Get("usage"), index: fieldIndex,
			secret: f.Tag.Get("secret") == "true", extraEnv: strings.Fields(f.Tag.Get("env"))})
	}
	return sets
}

// field returns the key's field in c.
func (s setting) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(s.index)
}

// text is the key's value in c as a user would write it.
func (s setting) text(c *Config) string { return formatValue(s.field(c)) }

// typeName is the key's type as --help and the reference show it.
func (s setting) typeName() string { return typeNameOf(s.field(&Config{}).Type()) }

// flagName maps runtime.max_retries to runtime-max-retries.
func (s setting) flagName() string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(s.key)
}

// envNames maps runtime.max_retries to CRI_ENRICHERD_RUNTIME_MAX_RETRIES,
// followed by any aliases, in priority order.
func (s setting) envNames() []string {
	canonical := envPrefix + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
	return append([]string{canonical}, s.extraEnv...)
}
