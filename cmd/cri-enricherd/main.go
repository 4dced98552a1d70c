// Command cri-enricherd is the node daemon: it watches the node's container
// cgroups and the runtime's events, looks each container and pod sandbox up
// through the CRI, and serves the enriched records on a local API and as
// Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap/zapcore"

	"github.com/cri-enricherd/cri-enricherd/pkg/cli"
	"github.com/cri-enricherd/cri-enricherd/pkg/config"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the process exit status: 0 on a clean stop, 1 on a runtime
// failure, 2 on a bad configuration. The commands get, list and watch are
// the command-line interface, with the exit statuses of package cli.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && cli.IsCommand(args[0]) {
		return cli.Run(ctx, args, cli.IO{Environ: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr})
	}
	cfg, err := config.Load(args, os.Environ())
	switch {
	case errors.Is(err, config.ErrHelp):
		fmt.Print(config.Usage("cri-enricherd"))
		return 0
	case err != nil: // a *config.ValidationError or unreadable input
		fmt.Fprintf(os.Stderr, "cri-enricherd: %v\n", err)
		return 2
	}
	if cfg.ShowVersion {
		fmt.Println("cri-enricherd", version)
		return 0
	}
	if err := serve(ctx, cfg, zapcore.Lock(os.Stderr)); err != nil {
		fmt.Fprintf(os.Stderr, "cri-enricherd: %v\n", err)
		return 1
	}
	return 0
}
