// Package config owns cri-enricherd's settings: their names, defaults and
// documentation, how they are read (defaults, then a YAML file given by
// --config, then CRI_ENRICHERD_* environment variables, then flags), and the
// rules a valid configuration obeys.
//
// Everything a run needs comes back from Load as one typed Config value; no
// other package reads flags, files or the environment. Load keeps no state
// and never reads the process environment directly, so it is safe to call
// from parallel tests.
//
// The fields of Config and their tags are the single source of truth: flags,
// environment variable names, the README reference (Reference) and the
// effective-config log line (MarshalLogObject) are all generated from them.
package config
