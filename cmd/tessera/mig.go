package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/migconfig"
)

// migOptions are the flags shared by the `tessera mig` commands.
type migOptions struct {
	configFile string
	selected   string
	backend    string
	simState   string
	output     string
	verbose    bool
}

func newMigCommand() *cobra.Command {
	o := &migOptions{}
	cat := migconfig.Builtin()
	cmd := &cobra.Command{
		Use:   "mig",
		Short: "Validate, plan, apply, assert and export MIG layouts (replaces mig-parted)",
		Long: `Manage MIG layouts declared in mig-parted's file format (version: v1,
mig-configs). Unlike mig-parted, Tessera changes only what differs: instances
that can stay where they are stay, new ones are created at explicit
placements, and an instance with processes on it is never destroyed unless
you ask with --force (the rest of the layout still applies).

Without -f, Tessera's built-in layouts are used: all-disabled, all-enabled,
all-balanced and all-<profile> for every supported GPU model.

Exit status: 0 success; 1 error; 2 usage error; 3 the node does not match the
layout (assert) or part of the layout was held back (apply).`,
		Example: `  tessera mig validate -f layouts.yaml
  tessera mig plan  -c all-balanced --backend sim:a100-80gb:8
  tessera mig apply -c all-balanced --backend sim:a100-80gb:8 --sim-state /tmp/node.json
  tessera mig assert -c all-balanced
  tessera mig export -o yaml`,
	}
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyEnv(cmd.Flags()); err != nil {
			return withStatus(exitUsage, err)
		}
		switch o.output {
		case "", "table", "json", "yaml":
			return nil
		default:
			return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or yaml", o.output))
		}
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&o.configFile, "config-file", "f", "", `layout file in mig-parted's format ("-" for standard input; default: the built-in layouts)`)
	pf.StringVarP(&o.selected, "selected-config", "c", "", "name of the layout in the file to use (optional if the file has only one)")
	pf.StringVar(&o.backend, "backend", "nvml", backendUsage(cat))
	pf.StringVar(&o.simState, "sim-state", "", "with a sim: backend, keep the simulated node's state in this file across commands")
	pf.StringVarP(&o.output, "output", "o", "", "output format: table, json or yaml (default table; yaml for export)")
	pf.BoolVarP(&o.verbose, "verbose", "v", false, "log every NVML operation to standard error")

	cmd.AddCommand(
		newMigValidateCommand(o, cat),
		newMigPlanCommand(o, cat),
		newMigApplyCommand(o, cat),
		newMigAssertCommand(o, cat),
		newMigExportCommand(o, cat),
	)
	return cmd
}

func (o *migOptions) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// loadFile reads and parses the layout file named by --config-file.
func (o *migOptions) loadFile(stdin io.Reader) (*migconfig.File, error) {
	var (
		name string
		data []byte
		err  error
	)
	switch o.configFile {
	case "":
		name, data = migconfig.DefaultLayoutFileName+" (built-in)", migconfig.DefaultLayoutFile()
	case "-":
		name = "<stdin>"
		data, err = io.ReadAll(stdin)
	default:
		name = o.configFile
		data, err = os.ReadFile(o.configFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read layout file: %w", err)
	}
	return migconfig.ParseFile(name, data)
}

// selectedConfig returns the config to use: -c, or the file's only one.
func (o *migOptions) selectedConfig(f *migconfig.File) (string, error) {
	if o.selected != "" {
		return o.selected, nil
	}
	names := f.ConfigNames()
	if len(names) == 1 {
		return names[0], nil
	}
	return "", withStatus(exitUsage, fmt.Errorf("%s has %d layouts; choose one with -c (for example -c %s)", f.Path, len(names), names[0]))
}

// target is what plan, apply and assert work from: the node, its observed
// state and the layout it should have.
type target struct {
	backend *backend
	file    *migconfig.File
	config  string
	state   migconfig.NodeState
	desired map[int]migconfig.GPULayout
	ops     []migconfig.Op
}

// loadTarget parses the file, opens the backend, observes the node and
// diffs it against the selected layout. Nothing is changed; a layout that
// cannot be applied is refused here, before any mutating NVML call.
func (o *migOptions) loadTarget(cmd *cobra.Command, cat *migconfig.Catalog) (*target, error) {
	f, err := o.loadFile(cmd.InOrStdin())
	if err != nil {
		return nil, err
	}
	config, err := o.selectedConfig(f)
	if err != nil {
		return nil, err
	}
	b, state, err := o.observe(cmd, cat)
	if err != nil {
		return nil, err
	}
	t := &target{backend: b, file: f, config: config, state: state}
	fail := func(err error) (*target, error) {
		b.close()
		return nil, err
	}
	res, err := f.ResolveDetail(b.cat, config, t.state)
	if err != nil {
		return fail(err)
	}
	t.desired = res.Layouts
	warnOverrides(cmd.ErrOrStderr(), res)
	if t.ops, err = migconfig.DiffNode(b.cat, t.state, t.desired); err != nil {
		return fail(err)
	}
	return t, nil
}

// observe opens the backend and reads the node. The caller closes the
// backend.
func (o *migOptions) observe(cmd *cobra.Command, cat *migconfig.Catalog) (*backend, migconfig.NodeState, error) {
	b, err := openBackend(cmd.Context(), cat, o.backend, o.simState, o.logger(cmd.ErrOrStderr()))
	if err != nil {
		return nil, migconfig.NodeState{}, err
	}
	state, err := b.node.Snapshot(cmd.Context())
	if err != nil {
		b.close()
		return nil, migconfig.NodeState{}, err
	}
	return b, state, nil
}

func newMigValidateCommand(o *migOptions, cat *migconfig.Catalog) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check a layout file without touching any GPU",
		Long: `Parse the layout file and check every layout against the GPU models it names
(by device-filter), using exact per-model profile and placement tables.
Errors name the file, line, column and field.

With -c, the selected layout must exist. With --backend given explicitly, the
layout is also resolved against that node's GPUs (which GPUs it selects, and
whether it fits each of them); nothing is changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := o.loadFile(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if err := f.Validate(cat); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.selected != "" {
				if !hasConfig(f, o.selected) {
					return fmt.Errorf("%s: no layout named %q; the file has %v", f.Path, o.selected, f.ConfigNames())
				}
			}
			if cmd.Flags().Changed("backend") || os.Getenv("TESSERA_BACKEND") != "" {
				config, err := o.selectedConfig(f)
				if err != nil {
					return err
				}
				b, state, err := o.observe(cmd, cat)
				if err != nil {
					return err
				}
				defer b.close()
				res, err := f.ResolveDetail(b.cat, config, state)
				if err != nil {
					return err
				}
				warnOverrides(cmd.ErrOrStderr(), res)
				desired := res.Layouts
				fmt.Fprintf(out, "%s: layout %q fits %d of the node's %d GPUs\n", f.Path, config, len(desired), len(state.GPUs))
				return nil
			}
			fmt.Fprintf(out, "%s: %d layouts valid\n", f.Path, len(f.ConfigNames()))
			return nil
		},
	}
}

// warnOverrides tells the user about GPUs that several entries of the
// config select: the last entry wins, as in mig-parted.
func warnOverrides(w io.Writer, res *migconfig.Resolution) {
	for _, o := range res.Overrides {
		fmt.Fprintf(w, "tessera: warning: %s\n", o)
	}
}

func hasConfig(f *migconfig.File, name string) bool {
	for _, n := range f.ConfigNames() {
		if n == name {
			return true
		}
	}
	return false
}

// planView is the machine-readable form of a plan.
type planView struct {
	Config   string         `json:"config"`
	Ops      []migconfig.Op `json:"ops"`
	HeldBack []migconfig.Op `json:"heldBack,omitempty"`
}

func newMigPlanCommand(o *migOptions, cat *migconfig.Catalog) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the operations that apply would run, without running them",
		Long: `Observe the node, compare it with the selected layout and print the ordered
operations (MIG mode changes, destroys, creates with explicit placements)
that apply would run. Destroys of instances with processes on them, and the
creates that need their memory slices, are listed as held back unless
--force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.loadTarget(cmd, cat)
			if err != nil {
				return err
			}
			defer t.backend.close()
			return printPlan(cmd.OutOrStdout(), o.output, t, force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "plan to destroy instances even when processes run on them")
	return cmd
}

func printPlan(w io.Writer, format string, t *target, force bool) error {
	run, held := t.ops, []migconfig.Op(nil)
	if !force {
		run, held = migconfig.HoldBack(t.ops)
	}
	view := planView{Config: t.config, Ops: run, HeldBack: held}
	switch format {
	case "", "table":
		if len(t.ops) == 0 {
			fmt.Fprintf(w, "layout %q is already applied; nothing to do\n", t.config)
			return nil
		}
		tw := newTable(w, "GPU", "OP", "PROFILE", "PLACEMENT", "NOTE")
		for _, op := range run {
			tw.row(opRow(op, "")...)
		}
		for _, op := range held {
			tw.row(opRow(op, "held back: busy GPU or instance")...)
		}
		return tw.flush()
	default:
		return writeStructured(w, format, view)
	}
}

func opRow(op migconfig.Op, note string) []string {
	switch op.Kind {
	case migconfig.OpSetMigMode:
		mode := "disable"
		if op.Enable {
			mode = "enable"
		}
		if op.Busy && note == "" {
			note = "busy (forced)"
		}
		return []string{fmt.Sprint(op.GPU), "mig-mode", mode, "-", note}
	default:
		if op.Busy && note == "" {
			note = "busy (forced)"
		}
		pl := op.Instance.Placement.String()
		if op.Kind == migconfig.OpDestroyInstance {
			pl += fmt.Sprintf(" (GI %d)", op.Instance.GPUInstanceID)
		}
		return []string{fmt.Sprint(op.GPU), op.Kind.String(), op.ProfileName, pl, note}
	}
}

func newMigApplyCommand(o *migOptions, cat *migconfig.Catalog) *cobra.Command {
	var dryRun, force bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Apply a layout, changing only what differs",
		Long: `Apply the selected layout to the node. Only the GPUs the layout selects are
touched, and on each only the instances that must change: the rest keep
running. The whole layout is checked before the first NVML call.

Instances with processes on them are held back: the rest of the layout is
applied, what was held back is reported, and the exit status is 3. Run apply
again once the work has moved. --force skips Tessera's own busy check, but
NVML still refuses to destroy a compute instance, or change the MIG mode of a
GPU, while processes run on it.

A GPU whose operations fail does not stop the others: the error names the
GPU, the operation, the NVML call and its return code, the GPU's remaining
operations are reported as skipped, and the exit status is 1. An apply
interrupted by an error converges when run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.loadTarget(cmd, cat)
			if err != nil {
				return err
			}
			defer t.backend.close()
			out := cmd.OutOrStdout()
			if dryRun {
				return printPlan(out, o.output, t, force)
			}
			if len(t.ops) == 0 {
				if o.output == "" || o.output == "table" {
					fmt.Fprintf(out, "layout %q is already applied; nothing to do\n", t.config)
					return nil
				}
				return writeStructured(out, o.output, gpu.ApplyResult{})
			}
			res, applyErr := t.backend.node.Apply(cmd.Context(), t.ops, gpu.ApplyOptions{Force: force})
			if err := printApplyResult(out, o.output, res); err != nil {
				return err
			}
			if applyErr != nil {
				return fmt.Errorf("apply %q: %w (the node is left as shown above; run apply again to converge)", t.config, applyErr)
			}
			if len(res.HeldBack) > 0 || len(res.PendingReset) > 0 {
				return withStatus(exitNotInSync, fmt.Errorf("layout %q applied except %d held-back operations and %d GPUs waiting for a reset",
					t.config, len(res.HeldBack), len(res.PendingReset)))
			}
			if o.output == "" || o.output == "table" {
				fmt.Fprintf(out, "layout %q applied: %d operations\n", t.config, len(res.Done))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan instead of applying it")
	cmd.Flags().BoolVar(&force, "force", false, "destroy instances and change MIG modes on GPUs Tessera considers busy (NVML itself still refuses while processes run)")
	return cmd
}

func printApplyResult(w io.Writer, format string, res gpu.ApplyResult) error {
	switch format {
	case "", "table":
		tw := newTable(w, "STATUS", "OPERATION", "REASON")
		for _, r := range res.Rows() {
			tw.row(r[0], r[1], r[2])
		}
		return tw.flush()
	default:
		return writeStructured(w, format, res)
	}
}

func newMigAssertCommand(o *migOptions, cat *migconfig.Catalog) *cobra.Command {
	return &cobra.Command{
		Use:   "assert",
		Short: "Exit 0 if the node matches the layout, 3 if it does not",
		Long: `Compare the node with the selected layout. Exit status 0 means every GPU the
layout selects has exactly its MIG mode and instances; 3 means it does not,
and the differences are printed as the operations that would fix them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.loadTarget(cmd, cat)
			if err != nil {
				return err
			}
			defer t.backend.close()
			if len(t.ops) == 0 {
				if o.output == "" || o.output == "table" {
					fmt.Fprintf(cmd.OutOrStdout(), "layout %q is applied\n", t.config)
					return nil
				}
				return writeStructured(cmd.OutOrStdout(), o.output, planView{Config: t.config, Ops: []migconfig.Op{}})
			}
			if err := printPlan(cmd.OutOrStdout(), o.output, t, true); err != nil {
				return err
			}
			return withStatus(exitNotInSync, fmt.Errorf("layout %q is not applied: %d operations needed", t.config, len(t.ops)))
		},
	}
}

func newMigExportCommand(o *migOptions, cat *migconfig.Catalog) *cobra.Command {
	var label string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print the node's current layout as a layout file",
		Long: `Print the node's current MIG layout in mig-parted's format, one entry per
distinct GPU layout, with Tessera's placements so that applying it elsewhere
reproduces the exact layout. -o table prints the node as a table instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, state, err := o.observe(cmd, cat)
			if err != nil {
				return err
			}
			defer b.close()
			out := cmd.OutOrStdout()
			switch o.output {
			case "table":
				return printNode(out, b.cat, state)
			case "", "yaml":
				data, err := migconfig.Export(b.cat, state, label).MarshalYAML()
				if err != nil {
					return err
				}
				_, err = out.Write(data)
				return err
			case "json":
				data, err := migconfig.Export(b.cat, state, label).MarshalJSON()
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", data)
				return err
			default:
				return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or yaml", o.output))
			}
		},
	}
	cmd.Flags().StringVarP(&label, "config-label", "l", "current", "name of the exported layout")
	return cmd
}
