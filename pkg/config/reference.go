package config

import (
	"fmt"
	"strings"
)

// KeyDoc documents one configuration key, for the README and --help.
type KeyDoc struct {
	Key         string   // YAML key, e.g. runtime.max_retries
	Flag        string   // e.g. --runtime-max-retries
	Env         []string // variables read, highest priority first
	Type        string   // duration, int, float, bool, string, octal or strings
	Default     string   // as a user would write it; "" for an empty value
	Description string
}

// Reference lists every key in documentation order.
func Reference() []KeyDoc {
	defaults := Defaults()
	sets := settings()
	docs := make([]KeyDoc, len(sets))
	for i, s := range sets {
		docs[i] = KeyDoc{
			Key:         s.key,
			Flag:        "--" + s.flagName(),
			Env:         s.envNames(),
			Type:        s.typeName(),
			Default:     s.text(&defaults),
			Description: s.usage,
		}
	}
	return docs
}

// ReferenceMarkdown renders Reference as the README's configuration table.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| Key | Flag | Environment | Type | Default | Description |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, d := range Reference() {
		env := make([]string, len(d.Env))
		for i, e := range d.Env {
			env[i] = "`" + e + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s | %s |\n",
			d.Key, d.Flag, strings.Join(env, "<br>"), d.Type, markdownDefault(d), markdownEscape(d.Description))
	}
	return b.String()
}

func markdownDefault(d KeyDoc) string {
	switch {
	case d.Default != "":
		return "`" + d.Default + "`"
	case d.Type == "strings":
		return "`[]`"
	}
	return `""`
}

func markdownEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}
