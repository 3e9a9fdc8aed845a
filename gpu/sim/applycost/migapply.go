package applycost

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Transition is one layout change on a simulated node: every GPU starts in
// layout From and goes to layout To, both configs of Layouts.
type Transition struct {
	// Name identifies the transition in reports.
	Name string
	// Node is the simulated node, as "MODEL:COUNT".
	Node string
	// Layouts is a layout file in mig-parted's format; empty means the
	// built-in layouts.
	Layouts string
	// From and To are config names in Layouts.
	From, To string
}

// Strategy turns a node and a desired layout into ops.
type Strategy struct {
	// Name identifies the strategy in reports.
	Name string
	// Plan returns the ops that take node to desired.
	Plan func(cat *migconfig.Catalog, node migconfig.NodeState, desired map[int]migconfig.GPULayout) ([]migconfig.Op, error)
}

// Strategies are the two ways of applying a layout that are compared:
// Tessera's incremental Diff and mig-parted's full wipe.
func Strategies() []Strategy {
	return []Strategy{
		{Name: "tessera", Plan: migconfig.DiffNode},
		{Name: "full-wipe", Plan: FullWipe},
	}
}

// Result is what one strategy did for one transition.
type Result struct {
	// MutatingCalls counts NVML create, destroy and mode-change calls.
	MutatingCalls int
	// Destroyed counts GPU instances destroyed.
	Destroyed int
	// Untouched counts the instances of From that survived, judged by
	// their MIG device UUIDs.
	Untouched int
}

// Measure sets up tr.From on a fresh simulated node, then applies tr.To
// with strategy s and counts what it took. It checks that the node ends in
// tr.To, so a strategy cannot win by doing less than asked.
func Measure(ctx context.Context, tr Transition, s Strategy) (Result, error) {
	cat := migconfig.Builtin()
	simNode, err := sim.NewFromSpec(cat, tr.Node, sim.WithAmpereAutoReset())
	if err != nil {
		return Result{}, err
	}
	node, err := gpu.Open(ctx, simNode, gpu.Options{Catalog: cat, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return Result{}, err
	}
	defer node.Close()
	file, err := layoutFile(tr)
	if err != nil {
		return Result{}, err
	}
	if _, err := applyWith(ctx, cat, node, file, tr.From, Strategies()[0]); err != nil {
		return Result{}, fmt.Errorf("%s: set up %s: %w", tr.Name, tr.From, err)
	}
	before, err := node.Snapshot(ctx)
	if err != nil {
		return Result{}, err
	}
	simNode.ResetCounters()
	after, err := applyWith(ctx, cat, node, file, tr.To, s)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %s: %w", tr.Name, s.Name, err)
	}
	desired, err := file.Resolve(cat, tr.To, after)
	if err != nil {
		return Result{}, err
	}
	if left, err := migconfig.DiffNode(cat, after, desired); err != nil || len(left) > 0 {
		return Result{}, fmt.Errorf("%s: %s did not reach %s: %v %s", tr.Name, s.Name, tr.To, err, migconfig.FormatOps(left))
	}
	return Result{
		MutatingCalls: simNode.MutatingCalls(),
		Destroyed:     simNode.DestroyedInstances(),
		Untouched:     Untouched(before, after),
	}, nil
}

func layoutFile(tr Transition) (*migconfig.File, error) {
	if tr.Layouts == "" {
		return migconfig.ParseFile(migconfig.DefaultLayoutFileName, migconfig.DefaultLayoutFile())
	}
	return migconfig.ParseFile(tr.Name+".yaml", []byte(tr.Layouts))
}

func applyWith(ctx context.Context, cat *migconfig.Catalog, node *gpu.Node, file *migconfig.File, config string, s Strategy) (migconfig.NodeState, error) {
	state, err := node.Snapshot(ctx)
	if err != nil {
		return state, err
	}
	desired, err := file.Resolve(cat, config, state)
	if err != nil {
		return state, err
	}
	ops, err := s.Plan(cat, state, desired)
	if err != nil {
		return state, err
	}
	res, err := node.Apply(ctx, ops, gpu.ApplyOptions{})
	if err != nil {
		return state, err
	}
	if len(res.HeldBack) > 0 || len(res.PendingReset) > 0 {
		return state, fmt.Errorf("apply held back %d ops, %d GPUs pending reset", len(res.HeldBack), len(res.PendingReset))
	}
	return node.Snapshot(ctx)
}

// Untouched counts the instances of before that are still there in after,
// judged by their MIG device UUIDs.
func Untouched(before, after migconfig.NodeState) int {
	n := 0
	for _, g := range before.GPUs {
		a, _ := after.GPU(g.Index)
		for _, in := range g.Instances {
			for _, x := range a.Instances {
				if sameMIGDevices(in, x) {
					n++
				}
			}
		}
	}
	return n
}

// Transitions is the fixed set of layout changes the benchmark measures.
func Transitions() []Transition {
	const oneGPU = `version: v1
mig-configs:
  balanced:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
  one-gpu-changed:
    - devices: [0, 1, 2, 4, 5, 6, 7]
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    - devices: [3]
      mig-enabled: true
      mig-devices: {"2g.20gb": 2, "3g.40gb": 1}
  grow-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 4, "3g.40gb": 1}
`
	const twoThrees = `version: v1
mig-configs:
  two-3g:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.40gb": 2}
  3g-and-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.40gb": 1, "1g.10gb": 4}
`
	const h200 = `version: v1
mig-configs:
  seven-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.18gb": 7}
  five-1g-one-2g:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.18gb": 5, "2g.35gb": 1}
`
	const a30 = `version: v1
mig-configs:
  four-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.6gb": 4}
  2g-and-1g:
    - devices: all
      mig-enabled: true
      mig-devices: {"2g.12gb": 1, "1g.6gb": 2}
`
	return []Transition{
		{Name: "one GPU of 8 changes (A100-80GB)", Node: "a100-80gb:8", Layouts: oneGPU, From: "balanced", To: "one-gpu-changed"},
		{Name: "2g becomes 2×1g on every GPU (A100-80GB)", Node: "a100-80gb:8", Layouts: oneGPU, From: "balanced", To: "grow-1g"},
		{Name: "3g+3g becomes 3g+4×1g (H100-80GB)", Node: "h100-80gb:8", Layouts: twoThrees, From: "two-3g", To: "3g-and-1g"},
		{Name: "7×1g becomes 5×1g+2g (H200)", Node: "h200:8", Layouts: h200, From: "seven-1g", To: "five-1g-one-2g"},
		{Name: "4×1g becomes 2g+2×1g (A30)", Node: "a30:4", Layouts: a30, From: "four-1g", To: "2g-and-1g"},
		{Name: "all-balanced becomes all-1g.5gb (A100-40GB)", Node: "a100-40gb:8", From: "all-balanced", To: "all-1g.5gb"},
		{Name: "all-7g becomes all-balanced (A100-40GB)", Node: "a100-40gb:8", From: "all-7g.40gb", To: "all-balanced"},
	}
}

// Row is one line of the report: a transition measured with both
// strategies.
type Row struct {
	Transition Transition
	Tessera    Result
	FullWipe   Result
}

// Report measures every transition with both strategies.
func Report(ctx context.Context) ([]Row, error) {
	var rows []Row
	for _, tr := range Transitions() {
		row := Row{Transition: tr}
		var err error
		if row.Tessera, err = Measure(ctx, tr, Strategies()[0]); err != nil {
			return nil, err
		}
		if row.FullWipe, err = Measure(ctx, tr, Strategies()[1]); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Markdown formats rows as the README's table.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| transition | NVML mutating calls: tessera / full wipe | instances destroyed: tessera / full wipe | instances untouched: tessera / full wipe |\n")
	b.WriteString("|---|---|---|---|\n")
	var tc, wc, td, wd int
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d / %d | %d / %d | %d / %d |\n", r.Transition.Name,
			r.Tessera.MutatingCalls, r.FullWipe.MutatingCalls,
			r.Tessera.Destroyed, r.FullWipe.Destroyed,
			r.Tessera.Untouched, r.FullWipe.Untouched)
		tc, wc = tc+r.Tessera.MutatingCalls, wc+r.FullWipe.MutatingCalls
		td, wd = td+r.Tessera.Destroyed, wd+r.FullWipe.Destroyed
	}
	fmt.Fprintf(&b, "| **total** | **%d / %d** (%.2f×) | **%d / %d** (%.2f×) | |\n", tc, wc, ratio(tc, wc), td, wd, ratio(td, wd))
	return b.String()
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// sameMIGDevices reports whether two observations are the same instance:
// MIG device UUIDs are new whenever an instance is re-created, even at the
// same placement with the same GPU-instance ID.
func sameMIGDevices(a, b migconfig.Instance) bool {
	if len(a.ComputeInstances) == 0 || len(a.ComputeInstances) != len(b.ComputeInstances) {
		return false
	}
	for i := range a.ComputeInstances {
		if a.ComputeInstances[i].UUID != b.ComputeInstances[i].UUID {
			return false
		}
	}
	return true
}
