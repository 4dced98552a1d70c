// Package cli is the command-line interface for people, built into the
// daemon's binary: `cri-enricherd get|list|watch` ask a running daemon
// through its HTTP API on the unix socket and print kubectl-style tables,
// or the API's own JSON or YAML.
//
// Run returns the process exit status; main calls os.Exit with it.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cri-enricherd/cri-enricherd/pkg/client"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// The exit statuses, documented in every command's help.
const (
	ExitOK          = 0
	ExitNotFound    = 1
	ExitUsage       = 2
	ExitUnreachable = 3
	ExitError       = 4
)

const exitHelp = `Exit status: 0 success, 1 not found, 2 usage error, 3 daemon unreachable,
4 any other error.
`

// Commands are the names Run handles; anything else is the daemon's.
var Commands = []string{"get", "list", "watch"}

// IsCommand says whether the first argument names a CLI command.
func IsCommand(arg string) bool { return slices.Contains(Commands, arg) }

// IO is where a command reads its environment and writes.
type IO struct {
	Environ []string // os.Environ form
	Stdout  io.Writer
	Stderr  io.Writer
}

// Run runs one command, args[0] being its name, and returns the exit
// status. ctx ends a watch (on SIGINT, say) with status 0.
func Run(ctx context.Context, args []string, stdio IO) int {
	if len(args) == 0 || !IsCommand(args[0]) {
		_, _ = fmt.Fprintf(stdio.Stderr, "cri-enricherd: want one of the commands %s\n", strings.Join(Commands, ", "))
		return ExitUsage
	}
	cmd := commands[args[0]]
	fs := newFlagSet(args[0], stdio.Environ)
	cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(stdio, args[0], err)
	}
	if help, _ := fs.GetBool("help"); help {
		_, _ = fmt.Fprintf(stdio.Stdout, "Usage: %s\n\n%s\nFlags:\n%s\n%s", cmd.usage, cmd.about, fs.FlagUsages(), exitHelp)
		return ExitOK
	}
	socket, _ := fs.GetString("socket")
	inv := &invocation{ctx: ctx, fs: fs, io: stdio, client: client.New(socket)}
	if err := cmd.run(inv); err != nil {
		var usage *usageErr
		if errors.As(err, &usage) {
			return usageError(stdio, args[0], err)
		}
		_, _ = fmt.Fprintf(stdio.Stderr, "cri-enricherd %s: %v\n", args[0], err)
		return exitStatus(err)
	}
	return ExitOK
}

// command is one subcommand: its help and flags, and what it does.
type command struct {
	usage string // first line of the help
	about string // the rest
	flags func(fs *pflag.FlagSet)
	run   func(inv *invocation) error
}

var commands = map[string]command{
	"get": {
		usage: "cri-enricherd get <ID|pid:PID|cgroup:PATH|cgroupid:N|ip:ADDRESS> [flags]",
		about: `Print the container or pod sandbox with this ID (full, or a unique prefix of
at least 12 characters), the container process PID lives in, or the
container a cgroup path belongs to (as /proc/<pid>/cgroup or an eBPF tool
shows it).
`,
		flags: func(fs *pflag.FlagSet) { outputFlag(fs, "table", "table, wide, json or yaml") },
		run:   runGet,
	},
	"list": {
		usage: "cri-enricherd list [flags]",
		about: `List the containers and pod sandboxes the daemon knows, sorted by namespace,
pod and name.
`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringP("namespace", "n", "", "only records of pods in this namespace")
			fs.StringP("selector", "l", "", "only records whose container or pod labels match key=value[,key=value] (equality only)")
			fs.Bool("include-deleted", false, "also list records deleted within the grace period")
			fs.Bool("no-sandboxes", false, "list containers only, not pod sandboxes")
			outputFlag(fs, "table", "table, wide, json or yaml")
		},
		run: runList,
	},
	"watch": {
		usage: "cri-enricherd watch [flags]",
		about: `Print the live records, then every change as it happens: ADDED, UPDATED and
DELETED events, until interrupted. -o json prints the API's events, one per
line, including the SYNCED event that ends the initial state.
`,
		flags: func(fs *pflag.FlagSet) {
			outputFlag(fs, "table", "table or json")
			fs.Uint64("revision", 0, "resume after this revision instead of starting with the current state")
		},
		run: runWatch,
	},
}

func newFlagSet(name string, environ []string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run prints errors itself
	fs.SortFlags = false
	fs.BoolP("help", "h", false, "show this help")
	key, def := socketSetting(environ)
	fs.String("socket", def, "unix socket of the daemon's HTTP API (default from "+key+")")
	return fs
}

// socketSetting returns the environment variable of api.socket and the
// socket to use: the variable's value if set, else the daemon's default.
// The CLI and the daemon thus find the same socket.
func socketSetting(environ []string) (env, socket string) {
	for _, d := range config.Reference() {
		if d.Key != "api.socket" {
			continue
		}
		env, socket = d.Env[0], d.Default
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, env+"="); ok && v != "" {
				socket = v
			}
		}
	}
	return env, socket
}

func outputFlag(fs *pflag.FlagSet, def, allowed string) {
	fs.StringP("output", "o", def, "output format: "+allowed)
}

// usageErr is a command line the command cannot run.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageErr{msg: fmt.Sprintf(format, args...)} }

func usageError(stdio IO, name string, err error) int {
	_, _ = fmt.Fprintf(stdio.Stderr, "cri-enricherd %s: %v\nRun 'cri-enricherd %s --help' for usage.\n", name, err, name)
	return ExitUsage
}

// exitStatus classifies a failure.
func exitStatus(err error) int {
	var apiErr *client.APIError
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return ExitUnreachable
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		return ExitNotFound
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest:
		return ExitUsage
	}
	return ExitError
}

// invocation is one run of a command.
type invocation struct {
	ctx    context.Context
	fs     *pflag.FlagSet
	io     IO
	client *client.Client
}

func (inv *invocation) output(allowed ...string) (string, error) {
	o, _ := inv.fs.GetString("output")
	if !slices.Contains(allowed, o) {
		return "", usagef("output format %q: want one of %s", o, strings.Join(allowed, ", "))
	}
	return o, nil
}

func runGet(inv *invocation) error {
	if inv.fs.NArg() != 1 {
		return usagef("want exactly one ID, pid:PID, cgroup:PATH, cgroupid:N or ip:ADDRESS, got %d arguments", inv.fs.NArg())
	}
	format, err := inv.output("table", "wide", "json", "yaml")
	if err != nil {
		return err
	}
	fetch, err := getter(inv.fs.Arg(0))
	if err != nil {
		return err
	}
	recs, doc, err := fetch(inv.ctx, inv.client)
	if err != nil {
		return err
	}
	return printRecords(inv.io.Stdout, format, recs, doc)
}

// fetcher asks the daemon one get request: the records for the table and
// the document for -o json and yaml.
type fetcher func(context.Context, *client.Client) ([]enrich.Record, any, error)

// one adapts a single-record request to a fetcher.
func one(get func(context.Context, *client.Client) (enrich.Record, error)) fetcher {
	return func(ctx context.Context, c *client.Client) ([]enrich.Record, any, error) {
		rec, err := get(ctx, c)
		return []enrich.Record{rec}, rec, err
	}
}

// getter reads the argument of get and returns the request it means.
// Obvious mistakes are usage errors here rather than a round trip.
func getter(arg string) (fetcher, error) {
	if raw, ok := strings.CutPrefix(arg, "pid:"); ok {
		pid, err := strconv.Atoi(raw)
		if err != nil || pid <= 0 {
			return nil, usagef("pid:%s: want a positive process ID", raw)
		}
		return one(func(ctx context.Context, c *client.Client) (enrich.Record, error) { return c.ContainerByPID(ctx, pid) }), nil
	}
	if path, ok := strings.CutPrefix(arg, "cgroup:"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, usagef("cgroup:%s: want an absolute cgroup path", path)
		}
		return one(func(ctx context.Context, c *client.Client) (enrich.Record, error) {
			return c.ContainerByCgroup(ctx, path)
		}), nil
	}
	if raw, ok := strings.CutPrefix(arg, "cgroupid:"); ok {
		id, err := query.ParseCgroupID(raw)
		if err != nil {
			return nil, usagef("cgroupid:%s: want a positive decimal cgroup ID", raw)
		}
		return one(func(ctx context.Context, c *client.Client) (enrich.Record, error) {
			return c.ContainerByCgroupID(ctx, id)
		}), nil
	}
	if ip, ok := strings.CutPrefix(arg, "ip:"); ok {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, usagef("ip:%s: want an IPv4 or IPv6 address", ip)
		}
		return podByIP(ip), nil
	}
	if !id.IsPrefix(arg) {
		return nil, usagef("%q is not an ID (12 to 64 lowercase hex characters), pid:PID, cgroup:PATH, cgroupid:N or ip:ADDRESS", arg)
	}
	return one(func(ctx context.Context, c *client.Client) (enrich.Record, error) { return c.Container(ctx, arg) }), nil
}

// podByIP fetches the pod holding ip: its sandbox and containers in the
// table, the pod document in JSON and YAML.
func podByIP(ip string) fetcher {
	return func(ctx context.Context, c *client.Client) ([]enrich.Record, any, error) {
		pod, err := c.PodByIP(ctx, ip)
		if err != nil {
			return nil, nil, err
		}
		recs := append([]enrich.Record{*pod.Sandbox}, pod.Containers...)
		return recs, pod, nil
	}
}

func runList(inv *invocation) error {
	if inv.fs.NArg() != 0 {
		return usagef("unexpected argument %q", inv.fs.Arg(0))
	}
	format, err := inv.output("table", "wide", "json", "yaml")
	if err != nil {
		return err
	}
	o := query.ListOptions{}
	o.Namespace, _ = inv.fs.GetString("namespace")
	o.Selector, _ = inv.fs.GetString("selector")
	o.IncludeDeleted, _ = inv.fs.GetBool("include-deleted")
	o.ExcludeSandboxes, _ = inv.fs.GetBool("no-sandboxes")
	if _, err := query.ParseSelector(o.Selector); err != nil {
		return usagef("%v", err)
	}
	recs, err := inv.client.Containers(inv.ctx, o)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []enrich.Record{}
	}
	return printRecords(inv.io.Stdout, format, recs, map[string]any{"items": recs})
}

func runWatch(inv *invocation) error {
	if inv.fs.NArg() != 0 {
		return usagef("unexpected argument %q", inv.fs.Arg(0))
	}
	format, err := inv.output("table", "json")
	if err != nil {
		return err
	}
	resume, _ := inv.fs.GetUint64("revision")
	p := newEventPrinter(inv.io.Stdout, format)
	err = inv.client.Watch(inv.ctx, resume, p.print)
	if inv.ctx.Err() != nil {
		return nil // interrupted: the normal way to stop watching
	}
	if err == nil {
		return errors.New("the daemon ended the stream")
	}
	return err
}

// eventPrinter prints a watch stream.
type eventPrinter struct {
	w      io.Writer
	format string
	table  *table
}

func newEventPrinter(w io.Writer, format string) *eventPrinter {
	p := &eventPrinter{w: w, format: format}
	if format == "table" {
		p.table = newTable(w, false, true)
	}
	return p
}

// print writes one event. The table holds the initial state back until
// SYNCED, so that it is aligned as one block, like kubectl get --watch.
func (p *eventPrinter) print(ev watch.Event) error {
	if p.format == "json" {
		return json.NewEncoder(p.w).Encode(ev)
	}
	if ev.Type == watch.Synced {
		p.table.header() // even when there is no record yet
		return p.table.flush()
	}
	p.table.row(string(ev.Type), ev.Record)
	if ev.Revision == 0 {
		return nil // part of the initial state
	}
	return p.table.flush()
}
