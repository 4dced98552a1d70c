package config

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
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
		v := &textValue{text: s.text(&defaults), typeName: s.typeName()}
		f := fs.VarPF(v, s.flagName(), "", s.usage)
		if v.typeName == "bool" {
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

// load decodes each key from the source that wins for it and validates the
// result, collecting every problem.
//
// Viper is not used because each of its mechanisms loses a promise of Load:
// AutomaticEnv and BindEnv read os.LookupEnv, not environ (parallel tests;
// test/deploy must not see the CI's NODE_NAME); ReadConfig folds key case
// ("Log:" passes), drops line numbers, stops at a duplicate key, and yields
// 0600 and 600 as the ints 384 and 600, so no hook can read them as octal;
// BindPFlag casts an int flag's "abc" to 0. Defaults and precedence are all
// it would add, and lookup does those in 15 lines.
func load(sets []setting, fs *pflag.FlagSet, env map[string]string, path string) (Config, error) {
	file, err := readFile(path, sets)
	if err != nil {
		return Config{}, err
	}
	c := Defaults() // a key that fails to decode keeps its default, so it is reported once
	c.ConfigFile = path
	problems := file.problems
	from, failed := map[string]string{}, map[string]bool{}
	for _, s := range sets {
		raw, source, ok := lookup(s, fs, env, file)
		if !ok {
			continue
		}
		from[s.key] = source
		if err := decode(s.field(&c), raw); err != nil {
			failed[s.key] = true
			problems = append(problems, problem{key: s.key, text: fmt.Sprintf("%s: %s %v", s.key, show(raw), err)})
		}
	}
	for _, p := range check(c) {
		// A key that failed to decode holds its default: a check of it
		// would judge a value nobody gave, and name the operator's line.
		if !failed[p.key] && !failed[p.against] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return Config{}, newValidationError(sets, annotate(problems, from))
	}
	return c, nil
}

// lookup returns a key's raw value and where it came from: a flag that was
// given, else the first of its variables that is set and not empty (canonical
// name first), else the file. ok is false when the default stands. Other
// CRI_ENRICHERD_* variables are ignored rather than rejected: Kubernetes
// injects service links such as CRI_ENRICHERD_SERVICE_HOST into pods in the
// namespace of a Service with that name.
func lookup(s setting, fs *pflag.FlagSet, env map[string]string, file fileValues) (raw any, source string, ok bool) {
	if f := fs.Lookup(s.flagName()); f.Changed {
		return f.Value.String(), "flag --" + f.Name, true
	}
	for _, name := range s.envNames() {
		if val := env[name]; val != "" {
			return val, "env " + name, true
		}
	}
	if val, ok := file.values[s.key]; ok {
		return val, fmt.Sprintf("%s:%d", file.path, file.lines[s.key]), true
	}
	return nil, "", false
}

// annotate appends the source to each problem that does not name one yet.
func annotate(problems []problem, from map[string]string) []problem {
	for i, p := range problems {
		if source, ok := from[p.key]; ok && !p.located {
			problems[i].text = fmt.Sprintf("%s (from %s)", p.text, source)
		}
	}
	return problems
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
	changed  bool
}

func (t *textValue) String() string { return t.text }
func (t *textValue) Type() string   { return t.typeName }

func (t *textValue) Set(s string) error {
	if t.typeName == "strings" && t.changed {
		s = t.text + "," + s
	}
	t.text, t.changed = s, true
	return nil
}
