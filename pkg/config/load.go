package config

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ErrHelp is returned by Load when -h or --help was given: main prints
// Usage to stdout and exits 0.
var ErrHelp = errors.New("help requested")

// configEnv names the config file when --config is not given.
const configEnv = envPrefix + "CONFIG"

// NewFlagSet returns a flag set with --config, --version, --help and one flag
// per key (runtime.max_retries is --runtime-max-retries). Setting flags hold
// the text as typed; Load parses it, so a bad flag value is reported together
// with every other problem instead of stopping the parse.
func NewFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // Load returns errors; main decides what to print
	fs.Usage = func() {}
	fs.SortFlags = false // keep the key table's grouping by section
	fs.BoolP("help", "h", false, "show this help and exit")
	fs.Bool("version", false, "print the version and exit")
	fs.String("config", "", "YAML configuration file (also "+configEnv+")")
	defaults := Defaults()
	for _, s := range settings() {
		v := &textValue{text: s.text(&defaults), typeName: s.typeName, list: s.typeName == listCodec.typeName}
		f := fs.VarPF(v, s.flagName(), "", s.usage)
		if s.typeName == boolCodec.typeName {
			f.NoOptDefVal = "true" // --debug-pprof alone means true
		}
	}
	return fs
}

// Usage is the text main prints for --help.
func Usage(program string) string {
	return fmt.Sprintf(`Usage: %s [flags]

Every setting is also read from the YAML file named by --config (key
runtime.max_retries) and from the environment (CRI_ENRICHERD_RUNTIME_MAX_RETRIES).
Flags win over the environment, which wins over the file, which wins over
the defaults shown below.

Flags:
%s`, program, NewFlagSet(program).FlagUsages())
}

// Load builds the configuration from command-line arguments (without the
// program name) and an environment in os.Environ form. It returns ErrHelp
// for --help, a Config with only ShowVersion set beyond the defaults for
// --version, a *ValidationError listing every bad or unknown setting, or
// another error when the flags or the config file cannot be read at all.
func Load(args, environ []string) (Config, error) {
	fs := NewFlagSet("cri-enricherd")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("parse flags: %w", err)
	}
	if help, _ := fs.GetBool("help"); help {
		return Config{}, ErrHelp
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: settings are given as flags", fs.Arg(0))
	}
	// --version must work whatever the config says, so nothing is read.
	if version, _ := fs.GetBool("version"); version {
		c := Defaults()
		c.ShowVersion = true
		return c, nil
	}
	env := parseEnviron(environ)
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		path = env[configEnv]
	}
	return load(settings(), fs, env, path)
}

// load layers defaults, file, environment and flags in a fresh viper, then
// decodes and validates every key, collecting all problems.
func load(sets []setting, fs *pflag.FlagSet, env map[string]string, path string) (Config, error) {
	file, err := readFile(path, sets)
	if err != nil {
		return Config{}, err
	}
	fromEnv := envLayer(sets, env)
	v, err := layer(sets, fs, file.values, fromEnv.values)
	if err != nil {
		return Config{}, err
	}
	src := sources{fs: fs, env: fromEnv.names, file: file}

	c := Defaults() // a key that fails to decode keeps its default, so it is reported once
	c.ConfigFile = path
	problems := file.problems
	for _, s := range sets {
		raw := v.Get(s.key)
		if err := s.decode(&c, raw); err != nil {
			problems = append(problems, problem{key: s.key, text: fmt.Sprintf("%s: %s %v", s.key, show(raw), err)})
		}
	}
	problems = append(problems, check(c)...)
	if len(problems) > 0 {
		return Config{}, newValidationError(sets, src.annotate(problems))
	}
	return c, nil
}

// layer stacks the sources in viper. Viper reads the environment only through
// os.LookupEnv, which would make Load untestable without mutating the process
// environment; the injected environment is therefore merged as a second
// config layer above the file, which keeps the documented precedence
// (flags > environment > file > defaults).
func layer(sets []setting, fs *pflag.FlagSet, file, env map[string]any) (*viper.Viper, error) {
	v := viper.New()
	defaults := Defaults()
	for _, s := range sets {
		v.SetDefault(s.key, s.get(&defaults))
		if err := v.BindFlagValue(s.key, textFlag{fs.Lookup(s.flagName())}); err != nil {
			return nil, fmt.Errorf("bind flag for %s: %w", s.key, err)
		}
	}
	if err := v.MergeConfigMap(nest(file)); err != nil {
		return nil, fmt.Errorf("merge config file: %w", err)
	}
	if err := v.MergeConfigMap(nest(env)); err != nil {
		return nil, fmt.Errorf("merge environment: %w", err)
	}
	return v, nil
}

// nest turns {"runtime.timeout": x} into {"runtime": {"timeout": x}}.
func nest(flat map[string]any) map[string]any {
	out := map[string]any{}
	for key, val := range flat {
		m := out
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			child, ok := m[p].(map[string]any)
			if !ok {
				child = map[string]any{}
				m[p] = child
			}
			m = child
		}
		m[parts[len(parts)-1]] = val
	}
	return out
}

// envValues holds the keys set in the environment and which variable set each.
type envValues struct {
	values map[string]any
	names  map[string]string
}

// envLayer picks each key's variable, canonical name first. Empty values
// count as unset, as in viper. Other CRI_ENRICHERD_* variables are ignored
// rather than rejected: Kubernetes injects service links such as
// CRI_ENRICHERD_SERVICE_HOST into pods in the namespace of a Service with
// that name.
func envLayer(sets []setting, env map[string]string) envValues {
	out := envValues{values: map[string]any{}, names: map[string]string{}}
	for _, s := range sets {
		for _, name := range s.envNames() {
			if val := env[name]; val != "" {
				out.values[s.key] = val
				out.names[s.key] = name
				break
			}
		}
	}
	return out
}

// parseEnviron reads KEY=VALUE pairs; a later duplicate wins, as in a shell.
func parseEnviron(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// textValue is a pflag.Value that keeps the argument as typed. A repeated
// list flag appends, like pflag's own string slices.
type textValue struct {
	text     string
	typeName string
	list     bool
	changed  bool
}

func (t *textValue) String() string { return t.text }
func (t *textValue) Type() string   { return t.typeName }

func (t *textValue) Set(s string) error {
	if t.list && t.changed {
		s = t.text + "," + s
	}
	t.text, t.changed = s, true
	return nil
}

// textFlag hands a flag to viper as plain text. Viper would otherwise run
// flags of type "int" or "bool" through cast.ToInt and cast.ToBool, which
// turn "abc" into 0 and false without an error.
type textFlag struct{ f *pflag.Flag }

func (t textFlag) HasChanged() bool    { return t.f.Changed }
func (t textFlag) Name() string        { return t.f.Name }
func (t textFlag) ValueString() string { return t.f.Value.String() }
func (t textFlag) ValueType() string   { return "string" }

// sources says where a key's value came from, so a problem can point at the
// flag, variable or file line to fix.
type sources struct {
	fs   *pflag.FlagSet
	env  map[string]string
	file fileValues
}

func (s sources) of(key string) string {
	if f := s.fs.Lookup(flagNameFor(key)); f != nil && f.Changed {
		return "flag --" + f.Name
	}
	if name, ok := s.env[key]; ok {
		return "env " + name
	}
	if line, ok := s.file.lines[key]; ok {
		return fmt.Sprintf("%s:%d", s.file.path, line)
	}
	return ""
}

// annotate appends the source to each problem that does not name one yet.
func (s sources) annotate(problems []problem) []problem {
	out := make([]problem, len(problems))
	for i, p := range problems {
		out[i] = p
		if from := s.of(p.key); from != "" && !p.located {
			out[i].text = fmt.Sprintf("%s (from %s)", p.text, from)
		}
	}
	return out
}
