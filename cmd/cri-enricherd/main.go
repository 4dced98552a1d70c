// Command cri-enricherd is the node daemon: it watches the node's container
// cgroups and the runtime's events, looks each container and pod sandbox up
// through the CRI, and serves the enriched records on a local API and as
// Prometheus metrics.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cri-enricherd/cri-enricherd/pkg/config"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the process exit status: 0 on a clean stop, 1 on a runtime
// failure, 2 on a bad configuration.
func run(args []string) int {
	cfg, err := config.Load(args, os.Environ())
	var invalid *config.ValidationError
	switch {
	case errors.Is(err, config.ErrHelp):
		return 0
	case errors.As(err, &invalid):
		fmt.Fprintf(os.Stderr, "cri-enricherd: %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(os.Stderr, "cri-enricherd: %v\n", err)
		return 2
	}
	if cfg.ShowVersion {
		fmt.Println("cri-enricherd", version)
		return 0
	}
	if err := serve(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "cri-enricherd: %v\n", err)
		return 1
	}
	return 0
}
