// Command tessera partitions NVIDIA GPUs with MIG and fills the slices with
// inference replicas. This binary holds every entry point: `tessera mig`
// replaces mig-parted with incremental, placement-aware layout changes;
// `tessera demo` runs the system on simulated GPUs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses. Scripts can tell a layout that is not applied (or only
// partly applied) from a failure.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitNotInSync = 3 // assert: layout not applied; apply: work held back
)

// exitError carries an exit status with an error.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func withStatus(code int, err error) error { return &statusError{code: code, err: err} }

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status. It is
// main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "tessera: %v\n", err)
	var se *statusError
	if errors.As(err, &se) {
		return se.code
	}
	if isUsageError(err) {
		return exitUsage
	}
	return exitError
}

func isUsageError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand", "flag needs an argument", "invalid argument", "accepts ", "requires "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tessera",
		Short: "Partition NVIDIA GPUs with MIG and serve inference on the slices",
		Long: `Tessera partitions NVIDIA GPUs with MIG and fills the slices with inference
replicas.

Every flag can also be set with an environment variable: --config-file is
TESSERA_CONFIG_FILE, --backend is TESSERA_BACKEND, and so on. A flag given on
the command line wins over its variable.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newAgentCommand(), newMigCommand(), newPlanCommand(), newBenchCommand(), newDemoCommand(), newVersionCommand())
	return root
}

// applyEnv sets every flag not given on the command line from its
// TESSERA_<FLAG> environment variable.
func applyEnv(flags *pflag.FlagSet) error {
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := "TESSERA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := flags.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Tessera's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "tessera %s\n", buildVersion())
			return nil
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return fmt.Sprintf("%s (%s)", v, s.Value[:12])
			}
		}
		if v != "" {
			return v
		}
	}
	return "(devel)"
}
