package gpu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// fixture is a simulated node opened through package gpu.
type fixture struct {
	t    *testing.T
	cat  *migconfig.Catalog
	sim  *sim.Node
	node *gpu.Node
	logs *bytes.Buffer
}

// open opens a simulated node built from spec with the built-in catalog.
func open(t *testing.T, spec string, opts ...sim.Option) *fixture {
	t.Helper()
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, spec, opts...)
	if err != nil {
		t.Fatalf("sim.NewFromSpec(%q): %v", spec, err)
	}
	return openSim(t, cat, s)
}

// openSim opens s with catalog cat (nil: no catalog).
func openSim(t *testing.T, cat *migconfig.Catalog, s *sim.Node) *fixture {
	t.Helper()
	logs := &bytes.Buffer{}
	n, err := gpu.Open(context.Background(), s, gpu.Options{
		Catalog: cat,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("gpu.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &fixture{t: t, cat: cat, sim: s, node: n, logs: logs}
}

func (f *fixture) snapshot() migconfig.NodeState {
	f.t.Helper()
	st, err := f.node.Snapshot(context.Background())
	if err != nil {
		f.t.Fatalf("Snapshot: %v", err)
	}
	return st
}

func (f *fixture) gpu(i int) migconfig.GPUState {
	f.t.Helper()
	st := f.snapshot()
	if i >= len(st.GPUs) {
		f.t.Fatalf("snapshot has %d GPUs, want index %d", len(st.GPUs), i)
	}
	return st.GPUs[i]
}

func (f *fixture) model(g migconfig.GPUState) *migconfig.GPUModel {
	f.t.Helper()
	m, ok := f.cat.ByKey(g.Model)
	if !ok {
		f.t.Fatalf("gpu %d: model %q not in catalog", g.Index, g.Model)
	}
	return m
}

// create returns an op that creates profile name at start on GPU g.
func (f *fixture) create(g migconfig.GPUState, name string, start int, c migconfig.Compute) migconfig.Op {
	f.t.Helper()
	p, ok := f.model(g).ProfileByName(name)
	if !ok {
		f.t.Fatalf("gpu %d: no profile %q", g.Index, name)
	}
	return migconfig.Op{
		Kind: migconfig.OpCreateInstance, GPU: g.Index, GPUUUID: g.UUID, ProfileName: name,
		Instance: migconfig.Instance{Profile: p.ID, Placement: migconfig.Placement{Start: start, Size: p.MemorySlices}, Compute: c},
	}
}

// destroy returns an op that destroys the observed instance in.
func destroy(g migconfig.GPUState, in migconfig.Instance) migconfig.Op {
	return migconfig.Op{Kind: migconfig.OpDestroyInstance, GPU: g.Index, GPUUUID: g.UUID, Instance: in, Busy: in.Busy}
}

func setMode(g migconfig.GPUState, enable bool) migconfig.Op {
	return migconfig.Op{Kind: migconfig.OpSetMigMode, GPU: g.Index, GPUUUID: g.UUID, Enable: enable}
}

// apply runs ops and fails the test on error.
func (f *fixture) apply(ops []migconfig.Op, opts gpu.ApplyOptions) gpu.ApplyResult {
	f.t.Helper()
	res, err := f.node.Apply(context.Background(), ops, opts)
	if err != nil {
		f.t.Fatalf("Apply: %v\nresult so far:\n%s", err, res)
	}
	return res
}

// instanceAt returns the instance of g at placement start.
func instanceAt(t *testing.T, g migconfig.GPUState, start int) migconfig.Instance {
	t.Helper()
	for _, in := range g.Instances {
		if in.Placement.Start == start {
			return in
		}
	}
	t.Fatalf("gpu %d: no instance at start %d; have %+v", g.Index, start, g.Instances)
	return migconfig.Instance{}
}

func placements(g migconfig.GPUState) []string {
	var out []string
	for _, in := range g.Instances {
		out = append(out, fmt.Sprintf("%d@%s", in.Profile, in.Placement))
	}
	return out
}

func TestSnapshotFreshNodes(t *testing.T) {
	for _, m := range migconfig.Builtin().Models() {
		t.Run(m.Key, func(t *testing.T) {
			f := open(t, m.Key+":3")
			st := f.snapshot()
			if len(st.GPUs) != 3 {
				t.Fatalf("got %d GPUs, want 3", len(st.GPUs))
			}
			uuids, buses := map[string]bool{}, map[string]bool{}
			for i, g := range st.GPUs {
				if g.Index != i {
					t.Errorf("GPU %d: Index %d", i, g.Index)
				}
				if !strings.HasPrefix(g.UUID, "GPU-") || uuids[g.UUID] {
					t.Errorf("GPU %d: UUID %q not GPU-… or not unique", i, g.UUID)
				}
				uuids[g.UUID] = true
				if g.PCIBusID == "" || buses[g.PCIBusID] {
					t.Errorf("GPU %d: PCI bus ID %q empty or not unique", i, g.PCIBusID)
				}
				buses[g.PCIBusID] = true
				if g.Model != m.Key {
					t.Errorf("GPU %d: Model %q, want %q", i, g.Model, m.Key)
				}
				if !slices.Contains(m.DeviceIDs, g.DeviceID) {
					t.Errorf("GPU %d: DeviceID %#x not one of the model's %#x", i, g.DeviceID, m.DeviceIDs)
				}
				if g.Name == "" {
					t.Errorf("GPU %d: empty name", i)
				}
				if m.MemoryMiB > 0 && g.MemoryMiB != m.MemoryMiB {
					t.Errorf("GPU %d: MemoryMiB %d, want %d", i, g.MemoryMiB, m.MemoryMiB)
				}
				if !g.MigCapable || g.Mig.Current || g.Mig.Pending {
					t.Errorf("GPU %d: MigCapable %v, mode %+v; want capable, disabled", i, g.MigCapable, g.Mig)
				}
				if len(g.Instances) != 0 || len(g.Processes) != 0 {
					t.Errorf("GPU %d: instances %v, processes %v on a fresh node", i, g.Instances, g.Processes)
				}
			}
		})
	}
}

// TestSnapshotEveryProfile creates one instance of every profile at every
// placement, one at a time, and checks what Snapshot reports: real profile
// IDs, placements, one full compute instance with a MIG UUID and memory.
func TestSnapshotEveryProfile(t *testing.T) {
	for _, m := range migconfig.Builtin().Models() {
		t.Run(m.Key, func(t *testing.T) {
			f := open(t, m.Key+":1", sim.WithMigEnabled())
			g := f.gpu(0)
			if !g.Mig.Current || !g.Mig.Pending {
				t.Fatalf("mode %+v, want enabled", g.Mig)
			}
			seenUUID := map[string]bool{}
			for _, p := range m.Profiles {
				for _, pl := range p.Placements {
					f.apply([]migconfig.Op{f.create(g, p.Name, pl.Start, migconfig.Compute{})}, gpu.ApplyOptions{})
					got := f.gpu(0)
					if len(got.Instances) != 1 {
						t.Fatalf("%s at %s: got instances %v", p.Name, pl, placements(got))
					}
					in := got.Instances[0]
					if in.Profile != p.ID || in.Placement != pl {
						t.Errorf("%s at %s: got profile %d at %s", p.Name, pl, in.Profile, in.Placement)
					}
					if in.Compute != (migconfig.Compute{}) {
						t.Errorf("%s at %s: Compute %+v, want zero (one full CI)", p.Name, pl, in.Compute)
					}
					if len(in.ComputeInstances) != 1 {
						t.Fatalf("%s at %s: %d compute instances, want 1", p.Name, pl, len(in.ComputeInstances))
					}
					ci := in.ComputeInstances[0]
					if ci.Slices != p.ComputeSlices || ci.Start != 0 {
						t.Errorf("%s at %s: CI slices %d start %d, want %d at 0", p.Name, pl, ci.Slices, ci.Start, p.ComputeSlices)
					}
					if !strings.HasPrefix(ci.UUID, "MIG-") || seenUUID[ci.UUID] {
						t.Errorf("%s at %s: MIG UUID %q not MIG-… or reused", p.Name, pl, ci.UUID)
					}
					seenUUID[ci.UUID] = true
					if p.MemoryMiB > 0 && ci.MemoryMiB <= 0 {
						t.Errorf("%s at %s: MIG device memory %d", p.Name, pl, ci.MemoryMiB)
					}
					if in.Busy || len(ci.Processes) != 0 {
						t.Errorf("%s at %s: busy %v processes %v on a new instance", p.Name, pl, in.Busy, ci.Processes)
					}
					f.apply([]migconfig.Op{destroy(got, in)}, gpu.ApplyOptions{})
				}
			}
			if got := f.gpu(0); len(got.Instances) != 0 {
				t.Errorf("instances left: %v", placements(got))
			}
		})
	}
}

func TestApplyCreatesAndDestroysInOrder(t *testing.T) {
	f := open(t, "a100-40gb:2", sim.WithMigEnabled())
	g := f.gpu(1)
	ops := []migconfig.Op{
		f.create(g, "3g.20gb", 4, migconfig.Compute{}),
		f.create(g, "2g.10gb", 0, migconfig.Compute{}),
		f.create(g, "1g.5gb", 3, migconfig.Compute{}),
		f.create(g, "1g.5gb", 2, migconfig.Compute{}),
	}
	res := f.apply(ops, gpu.ApplyOptions{})
	if len(res.Done) != 4 || len(res.HeldBack) != 0 || len(res.PendingReset) != 0 {
		t.Fatalf("result:\n%s", res)
	}
	got := f.gpu(1)
	want := []string{"14@0:2", "19@2:1", "19@3:1", "9@4:4"}
	if !slices.Equal(placements(got), want) {
		t.Fatalf("instances %v, want %v (sorted by placement)", placements(got), want)
	}
	if other := f.gpu(0); len(other.Instances) != 0 {
		t.Errorf("gpu 0 touched: %v", placements(other))
	}
	// GI IDs come from the driver; all we require is that they are
	// distinct.
	ids := map[int]bool{}
	for _, in := range got.Instances {
		if ids[in.GPUInstanceID] {
			t.Errorf("GI ID %d reported twice", in.GPUInstanceID)
		}
		ids[in.GPUInstanceID] = true
	}

	// Destroy two of them from the snapshot; the others stay.
	res = f.apply([]migconfig.Op{destroy(got, got.Instances[1]), destroy(got, got.Instances[3])}, gpu.ApplyOptions{})
	if len(res.Done) != 2 {
		t.Fatalf("result:\n%s", res)
	}
	if got, want := placements(f.gpu(1)), []string{"14@0:2", "19@3:1"}; !slices.Equal(got, want) {
		t.Fatalf("after destroy: %v, want %v", got, want)
	}
	if !strings.Contains(f.logs.String(), "msg=\"mig op\"") || !strings.Contains(f.logs.String(), "outcome=done") {
		t.Errorf("no structured op log lines:\n%s", f.logs)
	}
}

func TestApplyComputeInstanceSplit(t *testing.T) {
	f := open(t, "a100-80gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "3g.40gb", 0, migconfig.Compute{Slices: 1, Count: 3})}, gpu.ApplyOptions{})
	in := f.gpu(0).Instances[0]
	if in.Compute != (migconfig.Compute{Slices: 1, Count: 3}) {
		t.Errorf("Compute %+v, want 3x 1c", in.Compute)
	}
	if len(in.ComputeInstances) != 3 {
		t.Fatalf("compute instances %+v, want 3", in.ComputeInstances)
	}
	uuids := map[string]bool{}
	for i, ci := range in.ComputeInstances {
		if ci.Slices != 1 || ci.Start != i {
			t.Errorf("CI %d: slices %d start %d, want 1 at %d", i, ci.Slices, ci.Start, i)
		}
		uuids[ci.UUID] = true
	}
	if len(uuids) != 3 {
		t.Errorf("MIG UUIDs not distinct: %+v", in.ComputeInstances)
	}
	// Destroy removes every CI, then the GI.
	f.apply([]migconfig.Op{destroy(f.gpu(0), in)}, gpu.ApplyOptions{})
	if got := f.gpu(0); len(got.Instances) != 0 {
		t.Errorf("left: %v", placements(got))
	}
}

func TestSnapshotProcesses(t *testing.T) {
	f := open(t, "h100-80gb:2", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "1g.10gb", 0, migconfig.Compute{}), f.create(g, "1g.10gb", 1, migconfig.Compute{})}, gpu.ApplyOptions{})
	g = f.gpu(0)
	pid, err := f.sim.StartProcess(g.Instances[1].ComputeInstances[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	g = f.gpu(0)
	if g.Instances[0].Busy || !g.Instances[1].Busy {
		t.Errorf("busy flags %v %v, want false true", g.Instances[0].Busy, g.Instances[1].Busy)
	}
	if got := g.Instances[1].ComputeInstances[0].Processes; !slices.Equal(got, []uint32{pid}) {
		t.Errorf("MIG device processes %v, want [%d]", got, pid)
	}
	if len(g.Processes) != 0 {
		t.Errorf("GPU-level processes %v, want none (the process runs on a MIG device)", g.Processes)
	}
	if err := f.sim.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	if g = f.gpu(0); g.Instances[1].Busy {
		t.Errorf("still busy after the process stopped")
	}

	// A GPU without MIG reports its processes itself.
	f2 := open(t, "h100-80gb:1")
	g2 := f2.gpu(0)
	pid2, err := f2.sim.StartProcess(g2.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got := f2.gpu(0).Processes; !slices.Equal(got, []uint32{pid2}) {
		t.Errorf("GPU processes %v, want [%d]", got, pid2)
	}
}

func TestApplyHoldsBackBusyInstanceAndOverlappingCreates(t *testing.T) {
	f := open(t, "a100-40gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "3g.20gb", 0, migconfig.Compute{}), f.create(g, "3g.20gb", 4, migconfig.Compute{})}, gpu.ApplyOptions{})
	g = f.gpu(0)
	busy := instanceAt(t, g, 0)
	if _, err := f.sim.StartProcess(busy.ComputeInstances[0].UUID); err != nil {
		t.Fatal(err)
	}
	g = f.gpu(0) // busy now marked
	f.sim.ResetCounters()
	ops := []migconfig.Op{
		destroy(g, instanceAt(t, g, 0)),
		destroy(g, instanceAt(t, g, 4)),
		f.create(g, "2g.10gb", 2, migconfig.Compute{}), // overlaps the busy 0:4
		f.create(g, "1g.5gb", 4, migconfig.Compute{}),  // free after the second destroy
		f.create(g, "1g.5gb", 5, migconfig.Compute{}),
	}
	res := f.apply(ops, gpu.ApplyOptions{})
	if len(res.Done) != 3 || len(res.HeldBack) != 2 {
		t.Fatalf("want 3 done, 2 held; got:\n%s", res)
	}
	if res.HeldBack[0].Op.Kind != migconfig.OpDestroyInstance || !strings.Contains(res.HeldBack[0].Reason, "busy") {
		t.Errorf("first held op %v: %q", res.HeldBack[0].Op, res.HeldBack[0].Reason)
	}
	wantReason := fmt.Sprintf("blocked by busy instance GI %d at 0:4", busy.GPUInstanceID)
	if res.HeldBack[1].Op.Kind != migconfig.OpCreateInstance || res.HeldBack[1].Reason != wantReason {
		t.Errorf("second held op %v: %q, want %q", res.HeldBack[1].Op, res.HeldBack[1].Reason, wantReason)
	}
	if got, want := placements(f.gpu(0)), []string{"9@0:4", "19@4:1", "19@5:1"}; !slices.Equal(got, want) {
		t.Errorf("instances %v, want %v", got, want)
	}
	if calls := f.sim.Calls(); calls["GpuInstanceDestroy"] != 1 || calls["ComputeInstanceDestroy"] != 1 {
		t.Errorf("destroy calls %v: the busy instance must not be touched", calls)
	}
	if !strings.Contains(res.String(), "held") || !strings.Contains(res.String(), wantReason) {
		t.Errorf("String() lacks the held ops:\n%s", res)
	}
}

func TestApplyBusyCheckedLiveAndWhenPlanned(t *testing.T) {
	f := open(t, "a30:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "2g.12gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	g = f.gpu(0) // planned while idle
	if _, err := f.sim.StartProcess(g.Instances[0].ComputeInstances[0].UUID); err != nil {
		t.Fatal(err)
	}
	res := f.apply([]migconfig.Op{destroy(g, g.Instances[0])}, gpu.ApplyOptions{})
	if len(res.HeldBack) != 1 || len(res.Done) != 0 {
		t.Fatalf("a process started after planning must hold the destroy back:\n%s", res)
	}

	// Planned busy, idle now: still held back (the planner said so).
	f2 := open(t, "a30:1", sim.WithMigEnabled())
	g2 := f2.gpu(0)
	f2.apply([]migconfig.Op{f2.create(g2, "2g.12gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	op := destroy(f2.gpu(0), f2.gpu(0).Instances[0])
	op.Busy = true
	if res := f2.apply([]migconfig.Op{op}, gpu.ApplyOptions{}); len(res.HeldBack) != 1 {
		t.Fatalf("an op planned busy must be held back:\n%s", res)
	}
	if res := f2.apply([]migconfig.Op{op}, gpu.ApplyOptions{Force: true}); len(res.Done) != 1 {
		t.Fatalf("Force must destroy it:\n%s", res)
	}
}

func TestApplyInUseAtDestroyIsHeldBack(t *testing.T) {
	t.Run("force with a process", func(t *testing.T) {
		f := open(t, "h200:1", sim.WithMigEnabled())
		g := f.gpu(0)
		f.apply([]migconfig.Op{f.create(g, "2g.35gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
		g = f.gpu(0)
		if _, err := f.sim.StartProcess(g.Instances[0].ComputeInstances[0].UUID); err != nil {
			t.Fatal(err)
		}
		g = f.gpu(0)
		// Force skips the process check; NVML then refuses with IN_USE,
		// which holds the op and every overlapping create back.
		res, err := f.node.Apply(context.Background(), []migconfig.Op{
			destroy(g, g.Instances[0]),
			f.create(g, "1g.18gb", 1, migconfig.Compute{}),
			f.create(g, "1g.18gb", 2, migconfig.Compute{}),
		}, gpu.ApplyOptions{Force: true})
		if err != nil {
			t.Fatalf("IN_USE must not be fatal: %v", err)
		}
		if len(res.HeldBack) != 2 || len(res.Done) != 1 {
			t.Fatalf("result:\n%s", res)
		}
		if !strings.Contains(res.HeldBack[0].Reason, "ERROR_IN_USE (19)") {
			t.Errorf("reason %q does not name IN_USE", res.HeldBack[0].Reason)
		}
		if !strings.Contains(res.HeldBack[1].Reason, "blocked by busy instance") {
			t.Errorf("reason %q", res.HeldBack[1].Reason)
		}
	})
	t.Run("GI destroy returns IN_USE", func(t *testing.T) {
		f := open(t, "a100-80gb:1", sim.WithMigEnabled())
		g := f.gpu(0)
		f.apply([]migconfig.Op{f.create(g, "4g.40gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
		g = f.gpu(0)
		f.sim.InjectFault(sim.Fault{Call: "GpuInstanceDestroy", Return: nvml.ERROR_IN_USE})
		res, err := f.node.Apply(context.Background(), []migconfig.Op{destroy(g, g.Instances[0])}, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("IN_USE must not be fatal: %v", err)
		}
		if len(res.HeldBack) != 1 || !strings.Contains(res.HeldBack[0].Reason, "GpuInstance.Destroy") {
			t.Fatalf("result:\n%s", res)
		}
	})
}

func TestApplyFaultOnNthCreate(t *testing.T) {
	f := open(t, "a100-40gb:2", sim.WithMigEnabled())
	g := f.gpu(1)
	f.sim.InjectFault(sim.Fault{Call: "CreateGpuInstanceWithPlacement", Nth: 2, Return: nvml.ERROR_UNKNOWN})
	ops := []migconfig.Op{
		f.create(g, "2g.10gb", 0, migconfig.Compute{}),
		f.create(g, "3g.20gb", 4, migconfig.Compute{}),
		f.create(g, "2g.10gb", 2, migconfig.Compute{}),
	}
	// GPU 0's ops come after the failure: a failure is GPU-local, so
	// they still run.
	g0 := f.gpu(0)
	other := []migconfig.Op{f.create(g0, "4g.20gb", 0, migconfig.Compute{}), f.create(g0, "3g.20gb", 4, migconfig.Compute{})}
	res, err := f.node.Apply(context.Background(), append(append([]migconfig.Op(nil), ops...), other...), gpu.ApplyOptions{})
	var opErr *gpu.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("error %v (%T), want *gpu.OpError", err, err)
	}
	want := fmt.Sprintf("gpu 1 (%s): create 3g.20gb at 4:4: CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)", g.UUID)
	if err.Error() != want {
		t.Errorf("error\n  %s\nwant\n  %s", err, want)
	}
	if !errors.Is(err, nvml.ERROR_UNKNOWN) || opErr.Return != nvml.ERROR_UNKNOWN || opErr.Call != "CreateGpuInstanceWithPlacement" {
		t.Errorf("OpError %+v does not carry the return code", opErr)
	}
	if len(res.Done) != 3 || res.Done[0].GPU != 1 || res.Done[0].Instance.Placement.Start != 0 || res.Done[1].GPU != 0 || res.Done[2].GPU != 0 {
		t.Errorf("partial result:\n%s", res)
	}
	if len(res.Failed) != 1 || res.Failed[0].Op.Instance.Placement.Start != 4 {
		t.Errorf("failed ops %+v, want the 3g.20gb at 4:4", res.Failed)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Op.Instance.Placement.Start != 2 || !strings.HasPrefix(res.Skipped[0].Reason, "gpu 1 failed earlier: ") {
		t.Errorf("skipped ops %+v, want gpu 1's last create", res.Skipped)
	}
	if got, want := placements(f.gpu(1)), []string{"14@0:2"}; !slices.Equal(got, want) {
		t.Errorf("partial state %v, want %v", got, want)
	}
	if got, want := placements(f.gpu(0)), []string{"5@0:4", "9@4:4"}; !slices.Equal(got, want) {
		t.Errorf("gpu 0: %v, want %v (applied despite gpu 1's failure)", got, want)
	}

	// The failed op can simply be retried: the next pass converges.
	res = f.apply(ops[1:], gpu.ApplyOptions{})
	if got, want := placements(f.gpu(1)), []string{"14@0:2", "14@2:2", "9@4:4"}; !slices.Equal(got, want) {
		t.Errorf("after retry %v, want %v", got, want)
	}
}

func TestApplyInsufficientResources(t *testing.T) {
	f := open(t, "a100-40gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "4g.20gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	_, err := f.node.Apply(context.Background(), []migconfig.Op{f.create(g, "2g.10gb", 2, migconfig.Compute{})}, gpu.ApplyOptions{})
	if !errors.Is(err, nvml.ERROR_INSUFFICIENT_RESOURCES) {
		t.Fatalf("error %v, want INSUFFICIENT_RESOURCES", err)
	}
	if !strings.Contains(err.Error(), "ERROR_INSUFFICIENT_RESOURCES (23)") {
		t.Errorf("error %q does not name the code", err)
	}
}

func TestApplyCIFailureRollsBack(t *testing.T) {
	f := open(t, "h100-80gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.sim.InjectFault(sim.Fault{Call: "GpuInstanceCreateComputeInstance", Nth: 2, Return: nvml.ERROR_INSUFFICIENT_RESOURCES})
	_, err := f.node.Apply(context.Background(), []migconfig.Op{f.create(g, "3g.40gb", 4, migconfig.Compute{Slices: 1, Count: 3})}, gpu.ApplyOptions{})
	var opErr *gpu.OpError
	if !errors.As(err, &opErr) || opErr.Call != "CreateComputeInstance" {
		t.Fatalf("error %v, want an OpError from CreateComputeInstance", err)
	}
	if got := f.gpu(0); len(got.Instances) != 0 {
		t.Errorf("half-built instance left behind: %+v", got.Instances)
	}
}

func TestApplyRefusesWrongGPU(t *testing.T) {
	f := open(t, "a100-80gb:2", sim.WithMigEnabled())
	st := f.snapshot()
	f.sim.ResetCounters()
	op := f.create(st.GPUs[0], "1g.10gb", 0, migconfig.Compute{})
	op.GPUUUID = st.GPUs[1].UUID
	res, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{})
	if !errors.Is(err, gpu.ErrWrongGPU) {
		t.Fatalf("error %v, want ErrWrongGPU", err)
	}
	if !strings.Contains(err.Error(), st.GPUs[1].UUID) || !strings.Contains(err.Error(), st.GPUs[0].UUID) {
		t.Errorf("error %q should name both UUIDs", err)
	}
	if len(res.Done) != 0 || f.sim.MutatingCalls() != 0 {
		t.Errorf("acted on a wrong GPU: %s, %d mutating calls", res, f.sim.MutatingCalls())
	}
	op.GPUUUID = ""
	if _, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{}); !errors.Is(err, gpu.ErrWrongGPU) {
		t.Errorf("op without UUID: error %v, want ErrWrongGPU", err)
	}
	op.GPU, op.GPUUUID = 7, st.GPUs[0].UUID
	if _, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{}); err == nil {
		t.Errorf("op on a GPU index that does not exist: no error")
	}
	if f.sim.MutatingCalls() != 0 {
		t.Errorf("%d mutating calls", f.sim.MutatingCalls())
	}
}

func TestApplyRefusesStaleInstance(t *testing.T) {
	f := open(t, "a100-40gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "2g.10gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	g = f.gpu(0)
	planned := destroy(g, g.Instances[0])

	for name, tamper := range map[string]func(*migconfig.Op){
		"placement": func(op *migconfig.Op) { op.Instance.Placement = migconfig.Placement{Start: 2, Size: 2} },
		"profile":   func(op *migconfig.Op) { op.Instance.Profile = 15 },
		"gone":      func(op *migconfig.Op) { op.Instance.GPUInstanceID += 100 },
	} {
		t.Run(name, func(t *testing.T) {
			op := planned
			tamper(&op)
			f.sim.ResetCounters()
			_, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{})
			if !errors.Is(err, gpu.ErrNodeChanged) {
				t.Fatalf("error %v, want ErrNodeChanged", err)
			}
			if f.sim.MutatingCalls() != 0 {
				t.Errorf("%d mutating calls on a stale op", f.sim.MutatingCalls())
			}
		})
	}

	// The node really changing under the plan: destroy and re-create the
	// instance elsewhere, then run the old plan.
	f.apply([]migconfig.Op{planned, f.create(g, "2g.10gb", 4, migconfig.Compute{})}, gpu.ApplyOptions{})
	_, err := f.node.Apply(context.Background(), []migconfig.Op{planned}, gpu.ApplyOptions{})
	if !errors.Is(err, gpu.ErrNodeChanged) {
		t.Fatalf("error %v, want ErrNodeChanged", err)
	}
	if got := placements(f.gpu(0)); !slices.Equal(got, []string{"14@4:2"}) {
		t.Errorf("instances %v", got)
	}
}

func TestApplyAmpereModeChangeWaitsForReset(t *testing.T) {
	f := open(t, "a100-40gb:2")
	st := f.snapshot()
	g := st.GPUs[0]
	ops := []migconfig.Op{
		setMode(g, true),
		f.create(g, "7g.40gb", 0, migconfig.Compute{}),
		setMode(st.GPUs[1], false), // already disabled: nothing to do
	}
	res := f.apply(ops, gpu.ApplyOptions{})
	if !slices.Equal(res.PendingReset, []int{0}) {
		t.Fatalf("PendingReset %v, want [0]\n%s", res.PendingReset, res)
	}
	if len(res.Done) != 2 || res.Done[0].Kind != migconfig.OpSetMigMode || res.Done[1].GPU != 1 {
		t.Errorf("done:\n%s", res)
	}
	if len(res.HeldBack) != 1 || res.HeldBack[0].Op.Kind != migconfig.OpCreateInstance || !strings.Contains(res.HeldBack[0].Reason, "reset") {
		t.Errorf("held back:\n%s", res)
	}
	if got := f.gpu(0).Mig; got != (migconfig.MigMode{Current: false, Pending: true}) {
		t.Errorf("mode %+v, want pending enable", got)
	}
	if calls := f.sim.Calls(); calls["SetMigMode"] != 1 {
		t.Errorf("SetMigMode called %d times, want 1 (the disabled GPU needs none)", calls["SetMigMode"])
	}
	if !strings.Contains(res.String(), "pending-reset") {
		t.Errorf("String() lacks the pending reset:\n%s", res)
	}

	// The operator resets the GPU; the next pass goes on.
	if err := f.sim.ResetGPU(0); err != nil {
		t.Fatal(err)
	}
	g = f.gpu(0)
	if !g.Mig.Current {
		t.Fatalf("mode after reset %+v", g.Mig)
	}
	res = f.apply([]migconfig.Op{setMode(g, true), f.create(g, "7g.40gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	if len(res.Done) != 2 || len(res.PendingReset) != 0 {
		t.Errorf("after reset:\n%s", res)
	}
}

func TestApplyAmpereAutoReset(t *testing.T) {
	f := open(t, "a30:1", sim.WithAmpereAutoReset())
	g := f.gpu(0)
	res := f.apply([]migconfig.Op{setMode(g, true), f.create(g, "4g.24gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	if len(res.Done) != 2 || len(res.PendingReset) != 0 {
		t.Fatalf("result:\n%s", res)
	}
}

func TestApplyHopperModeChangeIsImmediate(t *testing.T) {
	f := open(t, "h100-80gb:2")
	g := f.gpu(1)
	res := f.apply([]migconfig.Op{setMode(g, true), f.create(g, "7g.80gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	if len(res.Done) != 2 || len(res.PendingReset) != 0 || len(res.HeldBack) != 0 {
		t.Fatalf("result:\n%s", res)
	}
	got := f.gpu(1)
	if !got.Mig.Current || len(got.Instances) != 1 {
		t.Errorf("gpu 1: mode %+v, instances %v", got.Mig, placements(got))
	}
	// And back: destroy, then disable.
	res = f.apply([]migconfig.Op{destroy(got, got.Instances[0]), setMode(got, false)}, gpu.ApplyOptions{})
	if len(res.Done) != 2 {
		t.Fatalf("result:\n%s", res)
	}
	if m := f.gpu(1).Mig; m.Current || m.Pending {
		t.Errorf("mode %+v, want disabled", m)
	}
}

func TestApplyModeChangeFailure(t *testing.T) {
	f := open(t, "h100-80gb:1")
	g := f.gpu(0)
	f.sim.InjectFault(sim.Fault{Call: "SetMigMode", Return: nvml.ERROR_NO_PERMISSION})
	res, err := f.node.Apply(context.Background(), []migconfig.Op{setMode(g, true)}, gpu.ApplyOptions{})
	if !errors.Is(err, nvml.ERROR_NO_PERMISSION) || !strings.Contains(err.Error(), "SetMigMode: ERROR_NO_PERMISSION (4)") {
		t.Fatalf("error %v", err)
	}
	if len(res.Done) != 0 {
		t.Errorf("result:\n%s", res)
	}
}

func TestApplyStopsWhenContextIsDone(t *testing.T) {
	f := open(t, "h100-80gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.sim.ResetCounters()
	res, err := f.node.Apply(ctx, []migconfig.Op{f.create(g, "1g.10gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if len(res.Done) != 0 || f.sim.MutatingCalls() != 0 {
		t.Errorf("acted after cancel: %s", res)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "context canceled") {
		t.Errorf("the unreached op is not reported skipped:\n%s", res)
	}
}

func TestApplyRefusesCreateWithoutPlacement(t *testing.T) {
	f := open(t, "h100-80gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	op := f.create(g, "1g.10gb", 0, migconfig.Compute{})
	op.Instance.Placement = migconfig.Placement{}
	if _, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{}); err == nil {
		t.Fatal("create without placement accepted")
	}
}

func TestReadModelMatchesBuiltin(t *testing.T) {
	for _, m := range migconfig.Builtin().Models() {
		t.Run(m.Key, func(t *testing.T) {
			for _, opts := range [][]sim.Option{nil, {sim.WithMigEnabled()}} {
				f := open(t, m.Key+":1", opts...)
				got, err := f.node.ReadModel(context.Background(), 0)
				if err != nil {
					t.Fatalf("ReadModel: %v", err)
				}
				if got.Key != m.Key || got.Architecture != m.Architecture {
					t.Errorf("identity %q/%q, want %q/%q", got.Key, got.Architecture, m.Key, m.Architecture)
				}
				if !namesDerivable(&m) {
					// The simulator reports the catalog's figures and
					// cannot report the driver's names, so ReadModel
					// derives them; when the catalog's own figures do not
					// derive its names, only the names may differ.
					t.Logf("catalog model %s: names are not derivable from its memory figures; names not compared", m.Key)
					for i := range got.Profiles {
						if b, ok := m.ProfileByID(got.Profiles[i].ID); ok {
							got.Profiles[i].Name = b.Name
						}
					}
				}
				if d := migconfig.CompareModels(&m, &got); len(d) != 0 {
					t.Errorf("ReadModel differs from the built-in model:\n  %s", strings.Join(d, "\n  "))
				}
			}
		})
	}
}

// namesDerivable reports whether every profile name of m follows from its
// MiB and the model's total memory by the naming rule.
func namesDerivable(m *migconfig.GPUModel) bool {
	for _, p := range m.Profiles {
		if gpu.DeriveProfileName(p.ComputeSlices, p.ComputeSlices, uint64(p.MemoryMiB), uint64(m.MemoryMiB)<<20, p.Index) != p.Name {
			return false
		}
	}
	return true
}

func TestEffectiveCatalog(t *testing.T) {
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, "a100-40gb:2,h100-80gb:1,a30:1")
	if err != nil {
		t.Fatal(err)
	}
	f := openSim(t, cat, s)
	eff, diffs, err := f.node.EffectiveCatalog(context.Background())
	if err != nil {
		t.Fatalf("EffectiveCatalog: %v", err)
	}
	if len(diffs) != 0 {
		t.Errorf("differences on a simulated node built from the catalog: %v", diffs)
	}
	if !slices.Equal(eff.Keys(), cat.Keys()) {
		t.Errorf("keys %v, want %v", eff.Keys(), cat.Keys())
	}
	// A catalog whose A30 table is wrong: the observed table wins and the
	// difference is reported.
	wrong, _ := cat.ByKey("a30")
	bad := *wrong
	bad.Profiles = slices.Clone(bad.Profiles)
	bad.Profiles[1].MemoryMiB = 12345
	badCat, err := cat.WithModel(bad)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := sim.NewFromSpec(cat, "a30:1")
	if err != nil {
		t.Fatal(err)
	}
	f2 := openSim(t, badCat, s2)
	eff, diffs, err = f2.node.EffectiveCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.HasPrefix(diffs[0], "a30: ") || !strings.Contains(diffs[0], "12345") {
		t.Errorf("differences %q", diffs)
	}
	m, _ := eff.ByKey("a30")
	if m.Profiles[1].MemoryMiB != wrong.Profiles[1].MemoryMiB {
		t.Errorf("effective MiB %d, want the observed %d", m.Profiles[1].MemoryMiB, wrong.Profiles[1].MemoryMiB)
	}
	if !strings.Contains(f2.logs.String(), "12345") {
		t.Errorf("difference not logged:\n%s", f2.logs)
	}
}

// TestUnknownModel opens a node whose catalog lacks the GPU model: the GPU
// is still reported, its profiles come from NVML, and creates still work.
func TestUnknownModel(t *testing.T) {
	builtin := migconfig.Builtin()
	m, _ := builtin.ByKey("h100-80gb")
	s := sim.New(m, 1, sim.WithMigEnabled())
	f := openSim(t, nil, s)
	g := f.gpu(0)
	if g.Model != "" || !g.MigCapable || !g.Mig.Current {
		t.Fatalf("unknown GPU: model %q capable %v mode %+v", g.Model, g.MigCapable, g.Mig)
	}
	got, err := f.node.ReadModel(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key == "" || !slices.Contains(got.DeviceIDs, g.DeviceID) {
		t.Errorf("derived identity: key %q device IDs %#x", got.Key, got.DeviceIDs)
	}
	if d := migconfig.CompareModels(m, &got); len(d) != 0 {
		t.Errorf("profiles read from NVML differ:\n  %s", strings.Join(d, "\n  "))
	}
	op := migconfig.Op{Kind: migconfig.OpCreateInstance, GPU: 0, GPUUUID: g.UUID,
		Instance: migconfig.Instance{Profile: 9, Placement: migconfig.Placement{Start: 4, Size: 4}}}
	res, err := f.node.Apply(context.Background(), []migconfig.Op{op}, gpu.ApplyOptions{})
	if err != nil || len(res.Done) != 1 {
		t.Fatalf("create on an unknown model: %v\n%s", err, res)
	}
	if got := placements(f.gpu(0)); !slices.Equal(got, []string{"9@4:4"}) {
		t.Errorf("instances %v", got)
	}
	eff, diffs, err := f.node.EffectiveCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Models()) != 1 || len(diffs) != 1 {
		t.Errorf("effective catalog of an unknown model: %d models, differences %q", len(eff.Models()), diffs)
	}
}

func TestReturnName(t *testing.T) {
	for r, want := range map[nvml.Return]string{
		nvml.SUCCESS:                      "SUCCESS (0)",
		nvml.ERROR_NOT_SUPPORTED:          "ERROR_NOT_SUPPORTED (3)",
		nvml.ERROR_NO_PERMISSION:          "ERROR_NO_PERMISSION (4)",
		nvml.ERROR_NOT_FOUND:              "ERROR_NOT_FOUND (6)",
		nvml.ERROR_RESET_REQUIRED:         "ERROR_RESET_REQUIRED (16)",
		nvml.ERROR_IN_USE:                 "ERROR_IN_USE (19)",
		nvml.ERROR_INSUFFICIENT_RESOURCES: "ERROR_INSUFFICIENT_RESOURCES (23)",
		nvml.ERROR_INVALID_STATE:          "ERROR_INVALID_STATE (29)",
		nvml.ERROR_UNKNOWN:                "ERROR_UNKNOWN (999)",
		nvml.Return(77):                   "NVML_RETURN (77)",
	} {
		if got := gpu.ReturnName(r); got != want {
			t.Errorf("ReturnName(%d) = %q, want %q", int32(r), got, want)
		}
	}
}

func TestDeriveProfileName(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		c, g     int
		mib      uint64
		totalMiB uint64
		index    migconfig.ProfileIndex
		want     string
	}{
		{1, 1, 4864, 40536, migconfig.ProfileIndex1Slice, "1g.5gb"},
		{1, 1, 4864, 40536, migconfig.ProfileIndex1SliceRev1, "1g.5gb+me"},
		{1, 1, 9856, 40536, migconfig.ProfileIndex1SliceRev2, "1g.10gb"},
		{3, 3, 19968, 40536, migconfig.ProfileIndex3Slice, "3g.20gb"},
		{7, 7, 40192, 40536, migconfig.ProfileIndex7Slice, "7g.40gb"},
		{1, 3, 40192, 81920, migconfig.ProfileIndex3Slice, "1c.3g.40gb"},
		{7, 7, 80896, 81920, migconfig.ProfileIndex7Slice, "7g.80gb"},
		{1, 1, 5952, 24000, migconfig.ProfileIndex1Slice, "1g.6gb"},
		{2, 2, 11968, 24000, migconfig.ProfileIndex2SliceRev1, "2g.12gb+me"},
		{1, 1, 1024, 8192, 0x0D, "1g.1gb-me"},
		{1, 1, 1024, 8192, 0x0F, "1g.1gb+me.all"},
		{1, 1, 1024, 8192, 0x0A, "1g.1gb+gfx"},
	} {
		if got := gpu.DeriveProfileName(tc.c, tc.g, tc.mib, tc.totalMiB*mib, tc.index); got != tc.want {
			t.Errorf("DeriveProfileName(%d, %d, %d, %d MiB, %d) = %q, want %q", tc.c, tc.g, tc.mib, tc.totalMiB, tc.index, got, tc.want)
		}
	}
}

func TestClosedNode(t *testing.T) {
	f := open(t, "a30:1")
	if err := f.node.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.Snapshot(context.Background()); err == nil {
		t.Error("Snapshot on a closed node: no error")
	}
}

func TestOpenFailsWithoutLibrary(t *testing.T) {
	// Without libnvidia-ml, Init fails; Open must report it, not crash.
	lib := gpu.NewNVML()
	n, err := gpu.Open(context.Background(), lib, gpu.Options{})
	if err == nil {
		_ = n.Close()
		t.Skip("an NVIDIA driver is present on this machine")
	}
	if !strings.Contains(err.Error(), "Init") {
		t.Errorf("error %q does not name Init", err)
	}
}

// TestNotMigCapable covers a GPU without MIG: it is reported, not capable,
// without a model, and EffectiveCatalog leaves it out.
func TestNotMigCapable(t *testing.T) {
	// MemorySlices is set only because sim.New panics on a model with 0
	// (reported to the simulator's author); no profiles means no MIG.
	l4 := &migconfig.GPUModel{Key: "l4", Name: "L4", ProductNames: []string{"NVIDIA L4"}, DeviceIDs: []uint32{0x27B810DE}, MemoryMiB: 23034, MemorySlices: 1}
	s := sim.New(l4, 1)
	cat := migconfig.Builtin()
	f := openSim(t, cat, s)
	g := f.gpu(0)
	if g.MigCapable || g.Model != "" || g.Mig.Current || len(g.Instances) != 0 {
		t.Errorf("GPU without MIG: %+v", g)
	}
	if g.MemoryMiB != 23034 || g.DeviceID != 0x27B810DE {
		t.Errorf("identity: %+v", g)
	}
	if _, err := f.node.ReadModel(context.Background(), 0); err == nil {
		t.Error("ReadModel of a GPU without MIG: no error")
	}
	eff, diffs, err := f.node.EffectiveCatalog(context.Background())
	if err != nil || len(diffs) != 0 || !slices.Equal(eff.Keys(), cat.Keys()) {
		t.Errorf("EffectiveCatalog: %v, %q, %v", err, diffs, eff.Keys())
	}
}

func TestApplyResultString(t *testing.T) {
	op := migconfig.Op{Kind: migconfig.OpCreateInstance, GPU: 2, ProfileName: "1g.10gb",
		Instance: migconfig.Instance{Profile: 19, Placement: migconfig.Placement{Start: 3, Size: 1}}}
	res := gpu.ApplyResult{
		Done:         []migconfig.Op{op},
		HeldBack:     []gpu.Held{{Op: op, Reason: "blocked by busy instance GI 1 at 0:4"}},
		PendingReset: []int{5},
	}
	want := "" +
		"done           gpu 2: create 1g.10gb at 3:1\n" +
		"held           gpu 2: create 1g.10gb at 3:1  (blocked by busy instance GI 1 at 0:4)\n" +
		"pending-reset  gpu 5: MIG mode change  (takes effect after a GPU reset or reboot)\n"
	if got := res.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
}

// rows returns the result's rows of one status.
func rows(res gpu.ApplyResult, status string) [][3]string {
	var out [][3]string
	for _, r := range res.Rows() {
		if r[0] == status {
			out = append(out, r)
		}
	}
	return out
}

// TestApplyFailureIsGPULocal fails an NVML call on one GPU: that GPU's
// remaining ops are skipped, every other GPU is applied, and the error
// carries each failure.
func TestApplyFailureIsGPULocal(t *testing.T) {
	plan := func(f *fixture) []migconfig.Op {
		var ops []migconfig.Op
		for _, g := range f.snapshot().GPUs {
			ops = append(ops, f.create(g, "1g.10gb", 0, migconfig.Compute{}), f.create(g, "2g.20gb", 2, migconfig.Compute{}))
		}
		return ops
	}
	gpuIndex := func(i int) *int { return &i }

	t.Run("one GPU fails", func(t *testing.T) {
		f := open(t, "h100-80gb:3", sim.WithMigEnabled())
		uuid0 := f.gpu(0).UUID
		f.sim.InjectFault(sim.Fault{Call: "CreateGpuInstanceWithPlacement", GPU: gpuIndex(0), Return: nvml.ERROR_UNKNOWN})
		res, err := f.node.Apply(context.Background(), plan(f), gpu.ApplyOptions{})
		var opErr *gpu.OpError
		if !errors.As(err, &opErr) || opErr.Op.GPU != 0 {
			t.Fatalf("error %v, want an *OpError for gpu 0", err)
		}
		if !errors.Is(err, nvml.ERROR_UNKNOWN) {
			t.Errorf("error %v does not unwrap to the NVML code", err)
		}
		want := fmt.Sprintf("gpu 0 (%s): create 1g.10gb at 0:1: CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)", uuid0)
		if err.Error() != want {
			t.Errorf("error\n  %s\nwant\n  %s", err, want)
		}
		// GPU 0: the failed op, then its second op skipped.
		if len(res.Failed) != 1 || res.Failed[0].Op.GPU != 0 || res.Failed[0].Reason != "CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)" {
			t.Errorf("Failed %+v", res.Failed)
		}
		wantSkip := "gpu 0 failed earlier: create 1g.10gb at 0:1: CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)"
		if len(res.Skipped) != 1 || res.Skipped[0].Op.GPU != 0 || res.Skipped[0].Op.Instance.Placement.Start != 2 || res.Skipped[0].Reason != wantSkip {
			t.Errorf("Skipped %+v, want gpu 0's second op with reason %q", res.Skipped, wantSkip)
		}
		if len(res.HeldBack) != 0 {
			t.Errorf("a failure is not a hold-back: %+v", res.HeldBack)
		}
		if got := f.gpu(0); len(got.Instances) != 0 {
			t.Errorf("gpu 0: %v, want nothing created", placements(got))
		}
		// GPUs 1 and 2: applied in full.
		if len(res.Done) != 4 {
			t.Errorf("done:\n%s", res)
		}
		for _, i := range []int{1, 2} {
			if got, want := placements(f.gpu(i)), []string{"19@0:1", "14@2:2"}; !slices.Equal(got, want) {
				t.Errorf("gpu %d: %v, want %v", i, got, want)
			}
		}
		if len(rows(res, "failed")) != 1 || len(rows(res, "skipped")) != 1 || !strings.Contains(res.String(), wantSkip) {
			t.Errorf("String() does not show the failure and the skipped op:\n%s", res)
		}
		// The next pass finishes gpu 0.
		g0 := f.gpu(0)
		f.apply([]migconfig.Op{f.create(g0, "1g.10gb", 0, migconfig.Compute{}), f.create(g0, "2g.20gb", 2, migconfig.Compute{})}, gpu.ApplyOptions{})
		if got := placements(f.gpu(0)); len(got) != 2 {
			t.Errorf("gpu 0 after retry: %v", got)
		}
	})

	t.Run("two GPUs fail", func(t *testing.T) {
		f := open(t, "h100-80gb:3", sim.WithMigEnabled())
		f.sim.InjectFault(sim.Fault{Call: "CreateGpuInstanceWithPlacement", GPU: gpuIndex(0), Return: nvml.ERROR_UNKNOWN})
		f.sim.InjectFault(sim.Fault{Call: "CreateGpuInstanceWithPlacement", GPU: gpuIndex(2), Nth: 2, Return: nvml.ERROR_NO_PERMISSION})
		res, err := f.node.Apply(context.Background(), plan(f), gpu.ApplyOptions{})
		if !errors.Is(err, nvml.ERROR_UNKNOWN) || !errors.Is(err, nvml.ERROR_NO_PERMISSION) {
			t.Fatalf("error %v, want both NVML codes", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "gpu 0 (") || !strings.Contains(msg, "gpu 2 (") {
			t.Errorf("error %q does not name both GPUs", msg)
		}
		if len(res.Failed) != 2 || len(res.Skipped) != 1 || len(res.Done) != 3 {
			t.Errorf("result:\n%s", res)
		}
		if got := placements(f.gpu(1)); len(got) != 2 {
			t.Errorf("gpu 1: %v, want both creates", got)
		}
		if got, want := placements(f.gpu(2)), []string{"19@0:1"}; !slices.Equal(got, want) {
			t.Errorf("gpu 2: %v, want %v (the op before the failure)", got, want)
		}
	})

	t.Run("wrong GPU", func(t *testing.T) {
		f := open(t, "h100-80gb:2", sim.WithMigEnabled())
		st := f.snapshot()
		bad := f.create(st.GPUs[0], "1g.10gb", 0, migconfig.Compute{})
		bad.GPUUUID = st.GPUs[1].UUID
		ops := []migconfig.Op{bad, f.create(st.GPUs[0], "1g.10gb", 1, migconfig.Compute{}), f.create(st.GPUs[1], "1g.10gb", 0, migconfig.Compute{})}
		res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
		if !errors.Is(err, gpu.ErrWrongGPU) {
			t.Fatalf("error %v, want ErrWrongGPU", err)
		}
		if len(res.Failed) != 1 || len(res.Skipped) != 1 || len(res.Done) != 1 || res.Done[0].GPU != 1 {
			t.Errorf("result:\n%s", res)
		}
		if got := f.gpu(0); len(got.Instances) != 0 {
			t.Errorf("gpu 0 touched: %v", placements(got))
		}
	})
}

// cancelOnDone is a slog handler that cancels a context at the first op
// Apply reports done.
type cancelOnDone struct {
	slog.Handler
	cancel context.CancelFunc
}

func (h cancelOnDone) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "outcome" && a.Value.String() == "done" {
			h.cancel()
		}
		return true
	})
	return h.Handler.Handle(ctx, r)
}

// TestApplyCancelStopsEveryGPU cancels the context after the first op: no
// other op runs, on any GPU, and the unreached ops are reported skipped.
func TestApplyCancelStopsEveryGPU(t *testing.T) {
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, "h100-80gb:2", sim.WithMigEnabled())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: cat,
		Logger: slog.New(cancelOnDone{Handler: slog.NewTextHandler(&bytes.Buffer{}, nil), cancel: cancel})})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	f := &fixture{t: t, cat: cat, sim: s, node: n}
	st := f.snapshot()
	ops := []migconfig.Op{
		f.create(st.GPUs[0], "1g.10gb", 0, migconfig.Compute{}),
		f.create(st.GPUs[0], "1g.10gb", 1, migconfig.Compute{}),
		f.create(st.GPUs[1], "1g.10gb", 0, migconfig.Compute{}),
	}
	res, err := n.Apply(ctx, ops, gpu.ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if len(res.Done) != 1 || len(res.Skipped) != 2 || len(res.Failed) != 0 {
		t.Fatalf("result:\n%s", res)
	}
	for _, sk := range res.Skipped {
		if !strings.Contains(sk.Reason, "context canceled") {
			t.Errorf("skipped reason %q", sk.Reason)
		}
	}
	if got := f.gpu(1); len(got.Instances) != 0 {
		t.Errorf("gpu 1 applied after cancel: %v", placements(got))
	}
}

// TestApplyModeChangeInUseIsHeldBack covers SetMigMode answering IN_USE,
// as its return or as its activation status: the change and the GPU's
// later ops are held back, and the other GPUs are applied.
func TestApplyModeChangeInUseIsHeldBack(t *testing.T) {
	t.Run("hopper, process on the GPU", func(t *testing.T) {
		f := open(t, "h100-80gb:2")
		st := f.snapshot()
		pid, err := f.sim.StartProcess(st.GPUs[0].UUID)
		if err != nil {
			t.Fatal(err)
		}
		// Planned while idle (Busy unset): NVML's IN_USE decides.
		ops := []migconfig.Op{
			setMode(st.GPUs[0], true), f.create(st.GPUs[0], "7g.80gb", 0, migconfig.Compute{}),
			setMode(st.GPUs[1], true), f.create(st.GPUs[1], "7g.80gb", 0, migconfig.Compute{}),
		}
		res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("IN_USE on a mode change must not be an error: %v\n%s", err, res)
		}
		if len(res.HeldBack) != 2 || res.HeldBack[0].Op.Kind != migconfig.OpSetMigMode || res.HeldBack[1].Op.GPU != 0 {
			t.Fatalf("held back:\n%s", res)
		}
		if r := res.HeldBack[0].Reason; !strings.Contains(r, "ERROR_IN_USE (19)") || !strings.Contains(r, fmt.Sprint(pid)) {
			t.Errorf("reason %q names neither IN_USE nor the pid", r)
		}
		if len(res.Done) != 2 || res.Done[0].GPU != 1 {
			t.Errorf("gpu 1 not applied:\n%s", res)
		}
		if g := f.gpu(0); g.Mig.Current || len(g.Instances) != 0 {
			t.Errorf("gpu 0 changed: %+v", g)
		}
		if g := f.gpu(1); !g.Mig.Current || len(g.Instances) != 1 {
			t.Errorf("gpu 1: mode %+v, instances %v", g.Mig, placements(g))
		}
	})
	t.Run("ampere, activation in use", func(t *testing.T) {
		f := open(t, "a100-40gb:1", sim.WithAmpereAutoReset())
		g := f.gpu(0)
		if _, err := f.sim.StartProcess(g.UUID); err != nil {
			t.Fatal(err)
		}
		res, err := f.node.Apply(context.Background(), []migconfig.Op{setMode(g, true), f.create(g, "7g.40gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("activation IN_USE must not be an error: %v", err)
		}
		if len(res.Done) != 0 || len(res.HeldBack) != 2 || !strings.Contains(res.HeldBack[0].Reason, "ERROR_IN_USE (19)") {
			t.Fatalf("result:\n%s", res)
		}
		if !slices.Equal(res.PendingReset, []int{0}) {
			t.Errorf("PendingReset %v: the requested mode is pending", res.PendingReset)
		}
	})
	t.Run("busy when planned", func(t *testing.T) {
		f := open(t, "h100-80gb:1")
		g := f.gpu(0)
		op := setMode(g, true)
		op.Busy = true
		f.sim.ResetCounters()
		res := f.apply([]migconfig.Op{op, f.create(g, "7g.80gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
		if len(res.HeldBack) != 2 || len(res.Done) != 0 {
			t.Fatalf("a mode change planned busy must be held back with what follows:\n%s", res)
		}
		if f.sim.MutatingCalls() != 0 {
			t.Errorf("%d mutating calls", f.sim.MutatingCalls())
		}
		if res := f.apply([]migconfig.Op{op}, gpu.ApplyOptions{Force: true}); len(res.Done) != 1 {
			t.Errorf("Force on an idle GPU must change the mode:\n%s", res)
		}
	})
	t.Run("disable with a held instance", func(t *testing.T) {
		f := open(t, "h100-80gb:2", sim.WithMigEnabled())
		st := f.snapshot()
		for _, g := range st.GPUs {
			f.apply([]migconfig.Op{f.create(g, "3g.40gb", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
		}
		st = f.snapshot()
		if _, err := f.sim.StartProcess(st.GPUs[0].Instances[0].ComputeInstances[0].UUID); err != nil {
			t.Fatal(err)
		}
		// Planned while idle: the live process check holds the destroy,
		// and so the disable.
		var ops []migconfig.Op
		for _, g := range st.GPUs {
			ops = append(ops, destroy(g, g.Instances[0]), setMode(g, false))
		}
		f.sim.ResetCounters()
		res, err := f.node.Apply(context.Background(), ops, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, res)
		}
		if len(res.HeldBack) != 2 || res.HeldBack[1].Op.Kind != migconfig.OpSetMigMode || !strings.Contains(res.HeldBack[1].Reason, "blocked by busy instance") {
			t.Fatalf("held back:\n%s", res)
		}
		if calls := f.sim.Calls(); calls["SetMigMode"] != 1 {
			t.Errorf("SetMigMode called %d times, want 1 (gpu 1 only)", calls["SetMigMode"])
		}
		if g := f.gpu(1); g.Mig.Current {
			t.Errorf("gpu 1 still has MIG on")
		}
	})
}

// TestApplyCreateBlockedByHeldMediaInstance: NVML refuses a second +me
// instance while the busy one is held back; that is a hold-back too.
func TestApplyCreateBlockedByHeldMediaInstance(t *testing.T) {
	f := open(t, "a100-80gb:1", sim.WithMigEnabled())
	g := f.gpu(0)
	f.apply([]migconfig.Op{f.create(g, "1g.10gb+me", 0, migconfig.Compute{})}, gpu.ApplyOptions{})
	g = f.gpu(0)
	busy := g.Instances[0]
	if _, err := f.sim.StartProcess(busy.ComputeInstances[0].UUID); err != nil {
		t.Fatal(err)
	}
	res, err := f.node.Apply(context.Background(), []migconfig.Op{
		destroy(g, busy),
		f.create(g, "2g.20gb", 2, migconfig.Compute{}),
		f.create(g, "1g.10gb+me", 6, migconfig.Compute{}),
	}, gpu.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, res)
	}
	want := fmt.Sprintf("blocked by busy instance GI %d at 0:1", busy.GPUInstanceID)
	if len(res.HeldBack) != 2 || !strings.HasPrefix(res.HeldBack[1].Reason, want) || !strings.Contains(res.HeldBack[1].Reason, "ERROR_INSUFFICIENT_RESOURCES (23)") {
		t.Fatalf("held back:\n%s", res)
	}
	if len(res.Done) != 1 {
		t.Errorf("done:\n%s", res)
	}
}

// TestApplyDestroyPartWay covers a GPU instance whose compute instances
// cannot all be destroyed: processes on any of them hold the destroy back
// before anything is touched; a failure part-way is reported with how far
// it got; and the next pass converges.
func TestApplyDestroyPartWay(t *testing.T) {
	split := migconfig.Compute{Slices: 1, Count: 3}
	setup := func(t *testing.T) (*fixture, migconfig.GPUState) {
		f := open(t, "a100-80gb:1", sim.WithMigEnabled())
		g := f.gpu(0)
		f.apply([]migconfig.Op{f.create(g, "3g.40gb", 0, split)}, gpu.ApplyOptions{})
		return f, f.gpu(0)
	}
	desired := func(f *fixture) migconfig.GPULayout {
		p, _ := f.model(f.gpu(0)).ProfileByName("3g.40gb")
		return migconfig.GPULayout{MigEnabled: true, Instances: []migconfig.Instance{{Profile: p.ID, Compute: split}}}
	}
	// converge re-plans against the 3g [3x 1c] layout until nothing is
	// left to do.
	converge := func(t *testing.T, f *fixture) {
		t.Helper()
		g := f.gpu(0)
		ops, err := migconfig.Diff(f.model(g), g, desired(f))
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) != 2 {
			t.Fatalf("next pass: %s, want a destroy and a create", migconfig.FormatOps(ops))
		}
		f.apply(ops, gpu.ApplyOptions{})
		g = f.gpu(0)
		if ops, _ := migconfig.Diff(f.model(g), g, desired(f)); len(ops) != 0 {
			t.Fatalf("not converged: %s", migconfig.FormatOps(ops))
		}
		if len(g.Instances) != 1 || len(g.Instances[0].ComputeInstances) != 3 {
			t.Errorf("instances %+v", g.Instances)
		}
	}

	t.Run("process on the last CI", func(t *testing.T) {
		f, g := setup(t)
		if _, err := f.sim.StartProcess(g.Instances[0].ComputeInstances[2].UUID); err != nil {
			t.Fatal(err)
		}
		op := destroy(g, g.Instances[0]) // planned while idle
		f.sim.ResetCounters()
		res := f.apply([]migconfig.Op{op}, gpu.ApplyOptions{})
		if len(res.HeldBack) != 1 {
			t.Fatalf("result:\n%s", res)
		}
		if calls := f.sim.Calls(); calls["ComputeInstanceDestroy"] != 0 {
			t.Errorf("%d compute instances destroyed before the busy one was found", calls["ComputeInstanceDestroy"])
		}
	})
	t.Run("IN_USE on the second CI", func(t *testing.T) {
		f, g := setup(t)
		f.sim.InjectFault(sim.Fault{Call: "ComputeInstanceDestroy", Nth: 2, Return: nvml.ERROR_IN_USE})
		res, err := f.node.Apply(context.Background(), []migconfig.Op{destroy(g, g.Instances[0])}, gpu.ApplyOptions{})
		if err != nil {
			t.Fatalf("IN_USE must not be fatal: %v", err)
		}
		if len(res.HeldBack) != 1 || !strings.Contains(res.HeldBack[0].Reason, "1 of 3 compute instances destroyed") {
			t.Fatalf("the reason must say the instance is half dismantled:\n%s", res)
		}
		if got := f.gpu(0).Instances[0].ComputeInstances; len(got) != 2 {
			t.Fatalf("compute instances left: %+v", got)
		}
		converge(t, f)
	})
	t.Run("error on the second CI", func(t *testing.T) {
		f, g := setup(t)
		f.sim.InjectFault(sim.Fault{Call: "ComputeInstanceDestroy", Nth: 2, Return: nvml.ERROR_UNKNOWN})
		res, err := f.node.Apply(context.Background(), []migconfig.Op{destroy(g, g.Instances[0])}, gpu.ApplyOptions{})
		if !errors.Is(err, nvml.ERROR_UNKNOWN) || !strings.Contains(err.Error(), "1 of 3 compute instances destroyed") {
			t.Fatalf("error %v must say how far the destroy got", err)
		}
		if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Reason, "1 of 3") {
			t.Errorf("result:\n%s", res)
		}
		converge(t, f)
	})
	t.Run("forced with a process on the last CI", func(t *testing.T) {
		f, g := setup(t)
		pid, err := f.sim.StartProcess(g.Instances[0].ComputeInstances[2].UUID)
		if err != nil {
			t.Fatal(err)
		}
		res := f.apply([]migconfig.Op{destroy(g, g.Instances[0])}, gpu.ApplyOptions{Force: true})
		if len(res.HeldBack) != 1 || !strings.Contains(res.HeldBack[0].Reason, "2 of 3 compute instances destroyed") {
			t.Fatalf("result:\n%s", res)
		}
		// While the process runs the remnant is busy and stays; the
		// layout is built beside it.
		g = f.gpu(0)
		remnant := g.Instances[0]
		if !remnant.Busy || len(remnant.ComputeInstances) != 1 {
			t.Fatalf("remnant %+v, want one busy compute instance", remnant)
		}
		ops, err := migconfig.Diff(f.model(g), g, desired(f))
		if err != nil {
			t.Fatal(err)
		}
		run, held := migconfig.HoldBack(ops)
		if len(held) != 1 || held[0].Kind != migconfig.OpDestroyInstance || held[0].Instance.GPUInstanceID != remnant.GPUInstanceID {
			t.Fatalf("held %s, want the remnant's destroy", migconfig.FormatOps(held))
		}
		f.apply(ops, gpu.ApplyOptions{})
		if err := f.sim.StopProcess(pid); err != nil {
			t.Fatal(err)
		}
		// Once the process ends the remnant goes.
		g = f.gpu(0)
		ops, err = migconfig.Diff(f.model(g), g, desired(f))
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) != 1 || ops[0].Kind != migconfig.OpDestroyInstance || ops[0].Instance.GPUInstanceID != remnant.GPUInstanceID {
			t.Fatalf("after the process: %s, want the remnant destroyed (ran before: %s)", migconfig.FormatOps(ops), migconfig.FormatOps(run))
		}
		f.apply(ops, gpu.ApplyOptions{})
		g = f.gpu(0)
		if ops, _ := migconfig.Diff(f.model(g), g, desired(f)); len(ops) != 0 {
			t.Fatalf("not converged: %s", migconfig.FormatOps(ops))
		}
	})
}

func TestApplyResultStringFailedAndSkipped(t *testing.T) {
	op := migconfig.Op{Kind: migconfig.OpCreateInstance, GPU: 2, ProfileName: "1g.10gb",
		Instance: migconfig.Instance{Profile: 19, Placement: migconfig.Placement{Start: 3, Size: 1}}}
	res := gpu.ApplyResult{
		Failed:  []gpu.Held{{Op: op, Reason: "CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)"}},
		Skipped: []gpu.Held{{Op: op, Reason: "gpu 2 failed earlier: create 1g.10gb at 3:1: CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)"}},
	}
	want := "" +
		"failed         gpu 2: create 1g.10gb at 3:1  (CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999))\n" +
		"skipped        gpu 2: create 1g.10gb at 3:1  (gpu 2 failed earlier: create 1g.10gb at 3:1: CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999))\n"
	if got := res.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
}
