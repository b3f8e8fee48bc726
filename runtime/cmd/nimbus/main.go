// Command nimbus runs the Nimbus image-classification service.
//
//	nimbus local     everything in one process, no AWS (web, scaler, workers)
//	nimbus web       the web tier alone
//	nimbus worker    one app-tier worker
//	nimbus scaler    the queue-driven scaler
//	nimbus classify  upload files to a running endpoint and print labels
//	nimbus assets    fetch and verify the model, labels and ONNX Runtime
//
// Every flag can also be set as NIMBUS_<FLAG> in the environment, e.g.
// --max-workers as NIMBUS_MAX_WORKERS; a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: nimbus <command> [flags]

commands:
  local      run web tier, scaler and workers in one process (no AWS)
  web        run the web tier
  worker     run one worker
  scaler     run the scaler
  classify   classify files or directories against a running endpoint
  assets     fetch and verify the model, labels and ONNX Runtime into a directory

Run 'nimbus <command> -h' for a command's flags. Every flag can be set as
NIMBUS_<FLAG> in the environment (dashes become underscores).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "nimbus:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	commands := map[string]func(context.Context, []string) error{
		"local":    runLocal,
		"web":      runWeb,
		"worker":   runWorker,
		"scaler":   runScaler,
		"classify": runClassify,
		"assets":   runAssets,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "nimbus: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
	return cmd(ctx, args[1:])
}
