package gpu_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// These tests run the whole path the CLI and the agent take — layout file
// → Resolve → Diff → Apply → Snapshot — on the standard simulated machines.

// flow is one simulated node with the built-in layouts.
type flow struct {
	t     *testing.T
	cat   *migconfig.Catalog
	sim   *sim.Node
	node  *gpu.Node
	file  *migconfig.File
	model *migconfig.GPUModel
}

func newFlow(t *testing.T, spec string) *flow {
	t.Helper()
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, spec, sim.WithAmpereAutoReset())
	if err != nil {
		t.Fatal(err)
	}
	node, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: cat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	file, err := migconfig.ParseFile(migconfig.DefaultLayoutFileName, migconfig.DefaultLayoutFile())
	if err != nil {
		t.Fatal(err)
	}
	key := strings.SplitN(spec, ":", 2)[0]
	model, ok := cat.ByKey(key)
	if !ok {
		t.Fatalf("no model %s", key)
	}
	return &flow{t: t, cat: cat, sim: s, node: node, file: file, model: model}
}

// plan observes the node and diffs it against config.
func (f *flow) plan(config string) (migconfig.NodeState, []migconfig.Op) {
	f.t.Helper()
	state, err := f.node.Snapshot(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	desired, err := f.file.Resolve(f.cat, config, state)
	if err != nil {
		f.t.Fatalf("resolve %s: %v", config, err)
	}
	ops, err := migconfig.DiffNode(f.cat, state, desired)
	if err != nil {
		f.t.Fatalf("diff %s: %v", config, err)
	}
	return state, ops
}

// apply plans config and applies it, returning the result and error.
func (f *flow) apply(config string) (gpu.ApplyResult, error) {
	f.t.Helper()
	_, ops := f.plan(config)
	return f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
}

// gpuOf returns GPU i of a fresh snapshot.
func (f *flow) gpuOf(i int) migconfig.GPUState {
	f.t.Helper()
	state, err := f.node.Snapshot(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return state.GPUs[i]
}

// converged fails the test unless the node matches config.
func (f *flow) converged(config string) {
	f.t.Helper()
	if _, ops := f.plan(config); len(ops) > 0 {
		f.t.Fatalf("node does not match %s; still to do:\n%s", config, migconfig.FormatOps(ops))
	}
}

// configsFor returns the built-in configs that select this model's GPUs.
func (f *flow) configsFor() []string {
	state, err := f.node.Snapshot(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, name := range f.file.ConfigNames() {
		desired, err := f.file.Resolve(f.cat, name, state)
		if err != nil {
			f.t.Fatalf("built-in %s does not resolve on %s: %v", name, f.model.Key, err)
		}
		if len(desired) > 0 {
			names = append(names, name)
		}
	}
	return names
}

// TestApplyEveryDefaultLayoutOnStandardMachines applies each built-in
// layout that names the machine's GPUs, one after another, and checks that
// each converges in one pass, destroys only what Diff planned, and never
// touches instances the next layout keeps.
func TestApplyEveryDefaultLayoutOnStandardMachines(t *testing.T) {
	for _, m := range sim.Machines() {
		t.Run(m.Spec(), func(t *testing.T) {
			f := newFlow(t, m.Spec())
			configs := f.configsFor()
			if len(configs) < 5 {
				t.Fatalf("only %d built-in layouts select %s: %v", len(configs), m.Model, configs)
			}
			for _, want := range []string{"all-disabled", "all-enabled", "all-balanced"} {
				if !contains(configs, want) {
					t.Errorf("no built-in %s for %s", want, m.Model)
				}
			}
			// Back and forth through every layout, ending where it began.
			sequence := append(append([]string{}, configs...), configs[0])
			for _, config := range sequence {
				before, ops := f.plan(config)
				destroys := 0
				for _, op := range ops {
					if op.Kind == migconfig.OpDestroyInstance {
						destroys++
					}
				}
				f.sim.ResetCounters()
				res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
				if err != nil {
					t.Fatalf("apply %s: %v", config, err)
				}
				if len(res.HeldBack) > 0 || len(res.PendingReset) > 0 {
					t.Fatalf("apply %s held back work on an idle node:\n%s", config, res)
				}
				if got := f.sim.DestroyedInstances(); got != destroys {
					t.Errorf("apply %s destroyed %d instances, the plan %d", config, got, destroys)
				}
				f.converged(config)
				after, err := f.node.Snapshot(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if kept := countKept(before, after); kept != countInstances(before)-destroys {
					t.Errorf("apply %s: %d instances survived, want %d", config, kept, countInstances(before)-destroys)
				}
			}
		})
	}
}

// TestFaultMidApplyConverges fails each kind of mutating NVML call part way
// through an apply, and checks the error names the GPU, the op and the
// NVML code, that no busy or unrelated instance is lost, and that a second
// apply converges.
func TestFaultMidApplyConverges(t *testing.T) {
	calls := []string{
		"CreateGpuInstanceWithPlacement",
		"GpuInstanceCreateComputeInstance",
		"ComputeInstanceDestroy",
		"GpuInstanceDestroy",
	}
	for _, m := range []string{"a100-40gb:8", "h100-80gb:8", "a30:4"} {
		for _, call := range calls {
			for _, nth := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%s/%d", m, call, nth), func(t *testing.T) {
					f := newFlow(t, m)
					if _, err := f.apply("all-balanced"); err != nil {
						t.Fatal(err)
					}
					target := allOneG(t, f)
					f.sim.InjectFault(sim.Fault{Call: call, Nth: nth, Return: nvml.ERROR_UNKNOWN})
					res, err := f.apply(target)
					var opErr *gpu.OpError
					if !errors.As(err, &opErr) {
						t.Fatalf("apply with a fault on %s #%d: err = %v, want an *gpu.OpError", call, nth, err)
					}
					// The failure is GPU-local: the failing GPU stops
					// there, every other GPU reaches the target.
					failed := opErr.Op.GPU
					if len(res.Failed) != 1 || res.Failed[0].Op.GPU != failed {
						t.Errorf("failed ops %+v, want one on gpu %d", res.Failed, failed)
					}
					for _, sk := range res.Skipped {
						if sk.Op.GPU != failed {
							t.Errorf("skipped op on gpu %d, which did not fail: %s", sk.Op.GPU, sk.Op)
						}
					}
					_, left := f.plan(target)
					if len(left) == 0 {
						t.Errorf("nothing left to do after a failure on gpu %d", failed)
					}
					for _, op := range left {
						if op.GPU != failed {
							t.Errorf("gpu %d was not brought to %s after gpu %d failed: %s", op.GPU, target, failed, op)
						}
					}
					msg := err.Error()
					for _, want := range []string{fmt.Sprintf("gpu %d", opErr.Op.GPU), "ERROR_UNKNOWN (999)"} {
						if !strings.Contains(msg, want) {
							t.Errorf("error %q does not name %q", msg, want)
						}
					}
					if !errors.Is(err, nvml.ERROR_UNKNOWN) {
						t.Errorf("error does not unwrap to the NVML code: %v", err)
					}
					// The next pass finishes the job.
					res, err = f.apply(target)
					if err != nil {
						t.Fatalf("second apply: %v", err)
					}
					if len(res.HeldBack) > 0 {
						t.Fatalf("second apply held back work:\n%s", res)
					}
					f.converged(target)
				})
			}
		}
	}
}

// TestBusyInstanceNeverDestroyed applies a layout that needs a busy
// instance's slices on every standard machine: the busy instance survives,
// everything else is applied, and the rest follows once the process ends.
func TestBusyInstanceNeverDestroyed(t *testing.T) {
	for _, m := range sim.Machines() {
		t.Run(m.Spec(), func(t *testing.T) {
			f := newFlow(t, m.Spec())
			if _, err := f.apply("all-balanced"); err != nil {
				t.Fatal(err)
			}
			state, err := f.node.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The largest instance of GPU 1 (which all-1g cannot keep)
			// gets a process.
			g := state.GPUs[1]
			busy := g.Instances[0]
			for _, in := range g.Instances {
				p, _ := f.model.ProfileByID(in.Profile)
				q, _ := f.model.ProfileByID(busy.Profile)
				if p.ComputeSlices > q.ComputeSlices {
					busy = in
				}
			}
			uuid := busy.ComputeInstances[0].UUID
			pid, err := f.sim.StartProcess(uuid)
			if err != nil {
				t.Fatal(err)
			}
			target := allOneG(t, f)
			res, err := f.apply(target)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.HeldBack) == 0 {
				t.Fatalf("nothing held back:\n%s", res)
			}
			for _, h := range res.HeldBack {
				if h.Op.GPU != 1 {
					t.Errorf("held back work on gpu %d: %s", h.Op.GPU, h.Op)
				}
			}
			after, err := f.node.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !hasMIGDevice(after, uuid) {
				t.Fatalf("busy MIG device %s was destroyed", uuid)
			}
			_, left := f.plan(target)
			for _, op := range left {
				if op.GPU != 1 {
					t.Errorf("gpu %d was not brought to %s: %s", op.GPU, target, op)
				}
			}
			if err := f.sim.StopProcess(pid); err != nil {
				t.Fatal(err)
			}
			if _, err := f.apply(target); err != nil {
				t.Fatal(err)
			}
			f.converged(target)
		})
	}
}

// allOneG returns the built-in all-1g config of the flow's model with the
// most instances (all-1g.5gb on A100-40GB, all-1g.6gb on A30, …).
func allOneG(t *testing.T, f *flow) string {
	t.Helper()
	best, most := "", 0
	for _, p := range f.model.Profiles {
		if p.ComputeSlices == 1 && !p.HasMediaExtensions() && p.MaxCount > most {
			best, most = migconfig.ConfigNameForProfile(p.Name), p.MaxCount
		}
	}
	if best == "" {
		t.Fatalf("%s has no 1g profile", f.model.Key)
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func countInstances(s migconfig.NodeState) int {
	n := 0
	for _, g := range s.GPUs {
		n += len(g.Instances)
	}
	return n
}

// countKept counts instances of before whose MIG devices all survive.
func countKept(before, after migconfig.NodeState) int {
	n := 0
	for _, g := range before.GPUs {
		for _, in := range g.Instances {
			kept := len(in.ComputeInstances) > 0
			for _, ci := range in.ComputeInstances {
				kept = kept && hasMIGDevice(after, ci.UUID)
			}
			if kept {
				n++
			}
		}
	}
	return n
}

func hasMIGDevice(s migconfig.NodeState, uuid string) bool {
	for _, g := range s.GPUs {
		for _, in := range g.Instances {
			for _, ci := range in.ComputeInstances {
				if ci.UUID == uuid {
					return true
				}
			}
		}
	}
	return false
}

// TestBusyGPUModeChangeHeldBack is the reviewer's repro of MIG mode
// changes on busy GPUs: the busy GPU's change is held back, the other GPU
// is applied, and the rest follows once the process ends.
func TestBusyGPUModeChangeHeldBack(t *testing.T) {
	t.Run("disable with a busy instance", func(t *testing.T) {
		f := newFlow(t, "h100-80gb:2")
		if _, err := f.apply("all-balanced"); err != nil {
			t.Fatal(err)
		}
		var uuid string
		for _, in := range f.gpuOf(0).Instances {
			if p, _ := f.model.ProfileByID(in.Profile); p.ComputeSlices == 3 {
				uuid = in.ComputeInstances[0].UUID
			}
		}
		if uuid == "" {
			t.Fatal("all-balanced has no 3g instance on gpu 0")
		}
		pid, err := f.sim.StartProcess(uuid)
		if err != nil {
			t.Fatal(err)
		}
		_, ops := f.plan("all-disabled")
		if _, held := migconfig.HoldBack(ops); len(held) != 2 || held[1].Kind != migconfig.OpSetMigMode || held[1].GPU != 0 {
			t.Errorf("plan holds back %s, want gpu 0's busy destroy and its disable", migconfig.FormatOps(held))
		}
		res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("apply all-disabled: %v\n%s", err, res)
		}
		if g := f.gpuOf(1); g.Mig.Current || g.Mig.Pending || len(g.Instances) != 0 {
			t.Errorf("gpu 1 not disabled: mode %+v, instances %d", g.Mig, len(g.Instances))
		}
		if len(res.HeldBack) != 2 || res.HeldBack[1].Op.Kind != migconfig.OpSetMigMode {
			t.Fatalf("held back:\n%s", res)
		}
		for _, h := range res.HeldBack {
			if h.Op.GPU != 0 {
				t.Errorf("held back on gpu %d: %s", h.Op.GPU, h.Op)
			}
		}
		g := f.gpuOf(0)
		if !g.Mig.Current || len(g.Instances) != 1 || !hasMIGDevice(migconfig.NodeState{GPUs: []migconfig.GPUState{g}}, uuid) {
			t.Errorf("gpu 0: mode %+v, instances %v; want MIG on with only the busy instance", g.Mig, g.Instances)
		}
		if err := f.sim.StopProcess(pid); err != nil {
			t.Fatal(err)
		}
		if res, err := f.apply("all-disabled"); err != nil || len(res.HeldBack) != 0 {
			t.Fatalf("after the process ended: %v\n%s", err, res)
		}
		f.converged("all-disabled")
	})
	t.Run("enable with a process on the GPU", func(t *testing.T) {
		f := newFlow(t, "h100-80gb:2")
		pid, err := f.sim.StartProcess(f.gpuOf(0).UUID)
		if err != nil {
			t.Fatal(err)
		}
		_, ops := f.plan("all-balanced")
		run, held := migconfig.HoldBack(ops)
		if len(held) == 0 || held[0].Kind != migconfig.OpSetMigMode {
			t.Fatalf("plan holds back %s, want gpu 0's enable first", migconfig.FormatOps(held))
		}
		for _, op := range held {
			if op.GPU != 0 {
				t.Errorf("plan holds back gpu %d: %s", op.GPU, op)
			}
		}
		for _, op := range run {
			if op.GPU != 1 {
				t.Errorf("plan runs gpu %d: %s", op.GPU, op)
			}
		}
		res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("apply all-balanced: %v\n%s", err, res)
		}
		if len(res.HeldBack) != len(held) || res.HeldBack[0].Op.Kind != migconfig.OpSetMigMode {
			t.Errorf("held back:\n%s", res)
		}
		if g := f.gpuOf(0); g.Mig.Current || len(g.Instances) != 0 {
			t.Errorf("gpu 0 changed: mode %+v", g.Mig)
		}
		_, left := f.plan("all-balanced")
		for _, op := range left {
			if op.GPU != 0 {
				t.Errorf("gpu 1 was not brought to all-balanced: %s", op)
			}
		}
		if err := f.sim.StopProcess(pid); err != nil {
			t.Fatal(err)
		}
		if _, err := f.apply("all-balanced"); err != nil {
			t.Fatal(err)
		}
		f.converged("all-balanced")
	})
}

// TestBusyMediaInstanceHeldBack is the reviewer's repro of held instances
// that still count: a busy 1g.10gb+me that the layout moves stays, so the
// new +me instance waits for it instead of failing the apply.
func TestBusyMediaInstanceHeldBack(t *testing.T) {
	f := newFlow(t, "a100-80gb:2")
	me, _ := f.model.ProfileByName("1g.10gb+me")
	twoG, _ := f.model.ProfileByName("2g.20gb")
	state, _ := f.plan("all-disabled")
	enable := map[int]migconfig.GPULayout{}
	for _, g := range state.GPUs {
		enable[g.Index] = migconfig.GPULayout{MigEnabled: true, Instances: []migconfig.Instance{{Profile: me.ID, Placement: migconfig.Placement{Start: 0, Size: 1}}}}
	}
	ops, err := migconfig.DiffNode(f.cat, state, enable)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	state, _ = f.plan("all-disabled")
	busy := state.GPUs[0].Instances[0]
	pid, err := f.sim.StartProcess(busy.ComputeInstances[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	desired := migconfig.GPULayout{MigEnabled: true, Instances: []migconfig.Instance{{Profile: twoG.ID}, {Profile: twoG.ID}, {Profile: twoG.ID}, {Profile: me.ID}}}
	plan := func() []migconfig.Op {
		state, _ := f.plan("all-disabled")
		ops, err := migconfig.DiffNode(f.cat, state, map[int]migconfig.GPULayout{0: desired, 1: desired})
		if err != nil {
			t.Fatal(err)
		}
		return ops
	}
	ops = plan()
	_, held := migconfig.HoldBack(ops)
	heldMe := false
	for _, op := range held {
		if op.GPU != 0 {
			t.Errorf("plan holds back gpu %d: %s", op.GPU, op)
		}
		heldMe = heldMe || (op.Kind == migconfig.OpCreateInstance && op.Instance.Profile == me.ID)
	}
	if !heldMe {
		t.Errorf("plan runs gpu 0's +me create while the busy +me stays; held:\n%s", migconfig.FormatOps(held))
	}
	res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, res)
	}
	var blocked bool
	for _, h := range res.HeldBack {
		if h.Op.GPU != 0 {
			t.Errorf("held back on gpu %d: %s", h.Op.GPU, h.Op)
		}
		if h.Op.Kind == migconfig.OpCreateInstance && h.Op.Instance.Profile == me.ID {
			blocked = strings.HasPrefix(h.Reason, "blocked by busy instance")
		}
	}
	if !blocked {
		t.Errorf("the +me create is not held back as blocked:\n%s", res)
	}
	if g := f.gpuOf(1); len(g.Instances) != 4 {
		t.Errorf("gpu 1: %d instances, want the layout's 4", len(g.Instances))
	}
	if !hasMIGDevice(migconfig.NodeState{GPUs: []migconfig.GPUState{f.gpuOf(0)}}, busy.ComputeInstances[0].UUID) {
		t.Fatal("the busy +me instance was destroyed")
	}
	if err := f.sim.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	if res, err := f.node.Apply(context.Background(), plan(), gpu.ApplyOptions{}); err != nil || len(res.HeldBack) != 0 {
		t.Fatalf("after the process ended: %v\n%s", err, res)
	}
	if left := plan(); len(left) != 0 {
		t.Errorf("not converged: %s", migconfig.FormatOps(left))
	}
}
