package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/gpu/sim/applycost"
	"github.com/tessera-gpu/tessera/migconfig"
)

// demoLayouts changes one GPU of all-balanced: GPU 3 trades its two 1g
// slices for one more 2g, and GPU 5 becomes seven 1g slices.
const demoLayouts = `version: v1
mig-configs:
  demo:
    - devices: [0, 1, 2, 4, 6, 7]
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    - devices: [3]
      mig-enabled: true
      mig-devices: {"2g.20gb": 2, "3g.40gb": 1}
    - devices: [5]
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
`

func newDemoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show incremental MIG layout changes on a simulated node",
		Long: `Run Tessera on a simulated node of 8× A100-80GB (no GPU needed): apply NVIDIA's
all-balanced layout, change one GPU and show that only that GPU's changed
instances are touched, compare the NVML calls with mig-parted's full wipe,
show a busy slice being held back and applied once its process ends, then
run the node agent on a simulated 2× H100-80GB node and edit its
configuration file to watch it converge.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), "a100-80gb")
		},
	}
	return cmd
}

// demo holds the simulated node the demo works on.
type demo struct {
	w    io.Writer
	cat  *migconfig.Catalog
	sim  *sim.Node
	node *gpu.Node
	step int
}

func (d *demo) title(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.w, "\n== %d. %s\n\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) show(ctx context.Context) (migconfig.NodeState, error) {
	state, err := d.node.Snapshot(ctx)
	if err != nil {
		return state, err
	}
	return state, printNode(d.w, d.cat, state)
}

// apply resolves a layout, diffs it against the node, applies it and
// returns what was done and the NVML mutating calls it took.
func (d *demo) apply(ctx context.Context, f *migconfig.File, config string) (gpu.ApplyResult, int, error) {
	state, err := d.node.Snapshot(ctx)
	if err != nil {
		return gpu.ApplyResult{}, 0, err
	}
	desired, err := f.Resolve(d.cat, config, state)
	if err != nil {
		return gpu.ApplyResult{}, 0, err
	}
	ops, err := migconfig.DiffNode(d.cat, state, desired)
	if err != nil {
		return gpu.ApplyResult{}, 0, err
	}
	d.sim.ResetCounters()
	res, err := d.node.Apply(ctx, ops, gpu.ApplyOptions{})
	return res, d.sim.MutatingCalls(), err
}

func runDemo(ctx context.Context, w io.Writer, modelKey string) error {
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, modelKey+":8", sim.WithAmpereAutoReset())
	if err != nil {
		return err
	}
	node, err := gpu.Open(ctx, s, gpu.Options{Catalog: cat, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer node.Close()
	d := &demo{w: w, cat: cat, sim: s, node: node}

	defaults, err := migconfig.ParseFile(migconfig.DefaultLayoutFileName, migconfig.DefaultLayoutFile())
	if err != nil {
		return err
	}
	custom, err := migconfig.ParseFile("demo.yaml", []byte(demoLayouts))
	if err != nil {
		return err
	}
	m, _ := cat.ByKey(modelKey)

	d.title("A simulated node: 8× %s, MIG off", m.Name)
	if _, err := d.show(ctx); err != nil {
		return err
	}

	d.title("tessera mig apply -c all-balanced")
	res, calls, err := d.apply(ctx, defaults, "all-balanced")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d operations, %d NVML mutating calls\n\n", len(res.Done), calls)
	before, err := d.show(ctx)
	if err != nil {
		return err
	}

	d.title("Change one GPU: GPU 3 trades its two 1g slices for a 2g")
	fmt.Fprintf(w, "%s\n", demoLayouts)
	state, err := node.Snapshot(ctx)
	if err != nil {
		return err
	}
	desired, err := custom.Resolve(cat, "demo", state)
	if err != nil {
		return err
	}
	// Only GPU 3 for this step; GPU 5 changes in the next one.
	desired[5] = layoutOf(state, 5)
	ops, err := migconfig.DiffNode(cat, state, desired)
	if err != nil {
		return err
	}
	wipe, err := applycost.FullWipe(cat, state, desired)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "plan (tessera mig plan):\n%s", indent(migconfig.FormatOps(ops)))
	s.ResetCounters()
	res, err = node.Apply(ctx, ops, gpu.ApplyOptions{})
	if err != nil {
		return err
	}
	calls = s.MutatingCalls()
	destroyed := s.DestroyedInstances()
	fmt.Fprintf(w, "\napplied: %d NVML mutating calls, %d instances destroyed.\n", calls, destroyed)
	fmt.Fprintf(w, "mig-parted would wipe GPU 3: %d operations (%s).\n\n", len(wipe), countKinds(wipe))
	after, err := d.show(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nuntouched instances (same MIG device UUIDs): %d of %d\n",
		applycost.Untouched(before, after), countInstances(before))

	d.title("A busy slice is never destroyed: GPU 5's 3g.40gb runs a process, GPU 5 becomes 7×1g.10gb")
	pid, err := startOn(s, after, 5, "3g.40gb", m)
	if err != nil {
		return err
	}
	res, _, err = d.apply(ctx, custom, "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", res.String())
	if _, err := d.show(ctx); err != nil {
		return err
	}

	d.title("The process ends; apply again converges")
	if err := s.StopProcess(pid); err != nil {
		return err
	}
	res, _, err = d.apply(ctx, custom, "demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n", res.String())
	final, err := d.show(ctx)
	if err != nil {
		return err
	}
	desired, err = custom.Resolve(cat, "demo", final)
	if err != nil {
		return err
	}
	left, err := migconfig.DiffNode(cat, final, desired)
	if err != nil {
		return err
	}
	if len(left) != 0 {
		return fmt.Errorf("demo: node did not converge: %s", migconfig.FormatOps(left))
	}
	fmt.Fprintf(w, "\ntessera mig assert -c demo: layout \"demo\" is applied\n")
	return d.demoAgent(ctx)
}

// layoutOf returns GPU i's current layout, placements included.
func layoutOf(state migconfig.NodeState, i int) migconfig.GPULayout {
	g, _ := state.GPU(i)
	l := migconfig.GPULayout{MigEnabled: g.Mig.Current}
	for _, in := range g.Instances {
		l.Instances = append(l.Instances, migconfig.Instance{Profile: in.Profile, Placement: in.Placement})
	}
	return l
}

func startOn(s *sim.Node, state migconfig.NodeState, gpuIndex int, profile string, m *migconfig.GPUModel) (uint32, error) {
	g, _ := state.GPU(gpuIndex)
	p, ok := m.ProfileByName(profile)
	if !ok {
		return 0, fmt.Errorf("demo: no profile %s", profile)
	}
	for _, in := range g.Instances {
		if in.Profile == p.ID && len(in.ComputeInstances) > 0 {
			return s.StartProcess(in.ComputeInstances[0].UUID)
		}
	}
	return 0, fmt.Errorf("demo: gpu %d has no %s instance", gpuIndex, profile)
}

func countInstances(s migconfig.NodeState) int {
	n := 0
	for _, g := range s.GPUs {
		n += len(g.Instances)
	}
	return n
}

func countKinds(ops []migconfig.Op) string {
	var destroys, creates int
	for _, o := range ops {
		switch o.Kind {
		case migconfig.OpDestroyInstance:
			destroys++
		case migconfig.OpCreateInstance:
			creates++
		}
	}
	return fmt.Sprintf("%d destroys, %d creates", destroys, creates)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
