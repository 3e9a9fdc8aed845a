package migconfig

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// pkObserve turns a packed layout into an observed GPU state: MIG on, GI
// IDs not in placement order (as on real GPUs), one CI per the compute
// split, and the instances whose indexes are in busy marked busy.
func pkObserve(t testing.TB, m *GPUModel, l GPULayout, busy ...int) GPUState {
	t.Helper()
	packed, err := Pack(m, l)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	g := GPUState{Index: 3, UUID: "GPU-test-3", Model: m.Key, MigCapable: true, Mig: MigMode{Current: true, Pending: true}}
	for i, in := range packed.Instances {
		p, _ := m.ProfileByID(in.Profile)
		c := in.Compute.Normalize(p.ComputeSlices)
		in.GPUInstanceID = 13 - i
		for k := 0; k < c.Count; k++ {
			in.ComputeInstances = append(in.ComputeInstances, ComputeInstance{ID: k, Slices: c.Slices, Start: k * c.Slices})
		}
		g.Instances = append(g.Instances, in)
	}
	for _, b := range busy {
		g.Instances[b].Busy = true
	}
	return g
}

func pkOps(ops []Op) string {
	var parts []string
	for _, o := range ops {
		s := o.String()
		s = s[strings.Index(s, ": ")+2:]
		if i := strings.Index(s, " (GI"); i >= 0 {
			s = s[:i] + s[strings.Index(s, ")")+1:]
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func TestDiffCases(t *testing.T) {
	m := pkA100()
	balanced := pkLayout(t, m, "1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb") // 2g@0 1g@2 1g@3 3g@4
	tests := []struct {
		name    string
		current GPUState
		desired GPULayout
		want    string
	}{
		{"same layout", pkObserve(t, m, balanced), balanced, ""},
		{"same layout placed elsewhere is not moved", pkObserve(t, m, pkLayout(t, m, "2g.10gb@4", "1g.5gb@0")),
			pkLayout(t, m, "1g.5gb", "2g.10gb"), ""},
		{"two 1g become one 2g", pkObserve(t, m, balanced), pkLayout(t, m, "2g.10gb", "2g.10gb", "3g.20gb"),
			"destroy 1g.5gb at 2:1; destroy 1g.5gb at 3:1; create 2g.10gb at 2:2"},
		{"add a 1g into free space", pkObserve(t, m, pkLayout(t, m, "3g.20gb@0")), pkLayout(t, m, "3g.20gb", "1g.5gb"),
			"create 1g.5gb at 6:1"},
		{"3g moves only when it must", pkObserve(t, m, pkLayout(t, m, "3g.20gb@0")), pkLayout(t, m, "3g.20gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"),
			"destroy 3g.20gb at 0:4; create 1g.5gb at 0:1; create 1g.5gb at 1:1; create 1g.5gb at 2:1; create 1g.5gb at 3:1; create 3g.20gb at 4:4"},
		{"explicit placement forces a move", pkObserve(t, m, pkLayout(t, m, "3g.20gb@0")), pkLayout(t, m, "3g.20gb@4"),
			"destroy 3g.20gb at 0:4; create 3g.20gb at 4:4"},
		{"busy instance marked", pkObserve(t, m, pkLayout(t, m, "7g.40gb"), 0), pkLayout(t, m, "3g.20gb", "3g.20gb"),
			"destroy 7g.40gb at 0:8 (busy); create 3g.20gb at 0:4; create 3g.20gb at 4:4"},
		{"busy instance kept when the layout allows", pkObserve(t, m, pkLayout(t, m, "1g.5gb@0", "1g.5gb@5"), 1), pkLayout(t, m, "1g.5gb", "4g.20gb"),
			"destroy 1g.5gb at 0:1; create 4g.20gb at 0:4"},
		{"disable MIG", pkObserve(t, m, pkLayout(t, m, "4g.20gb")), GPULayout{},
			"destroy 4g.20gb at 0:4; set MIG mode disabled"},
		{"enable MIG", GPUState{Index: 3}, pkLayout(t, m, "4g.20gb"),
			"set MIG mode enabled; create 4g.20gb at 0:4"},
		{"MIG already off", GPUState{Index: 3}, GPULayout{}, ""},
		{"half-built instance is rebuilt", func() GPUState {
			g := pkObserve(t, m, pkLayout(t, m, "3g.20gb@4"))
			g.Instances[0].ComputeInstances = nil // GI created, CI creation interrupted
			return g
		}(), pkLayout(t, m, "3g.20gb"), "destroy 3g.20gb at 4:4; create 3g.20gb at 4:4"},
		{"compute split change", pkObserve(t, m, pkLayout(t, m, "3g.20gb@4")),
			GPULayout{MigEnabled: true, Instances: []Instance{{Profile: 9, Compute: Compute{Slices: 1, Count: 3}}}},
			"destroy 3g.20gb at 4:4; create 3g.20gb [3x 1c] at 4:4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Diff(m, tc.current, tc.desired)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if got := pkOps(ops); got != tc.want {
				t.Errorf("Diff ops:\n got  %s\n want %s", got, tc.want)
			}
			for _, o := range ops {
				if o.GPU != tc.current.Index {
					t.Errorf("op %s targets gpu %d, want %d", o, o.GPU, tc.current.Index)
				}
			}
		})
	}
}

func TestDiffRefusesImpossibleLayout(t *testing.T) {
	m := pkA100()
	_, err := Diff(m, pkObserve(t, m, pkLayout(t, m, "1g.5gb")), pkLayout(t, m, "4g.20gb", "4g.20gb"))
	if err == nil || !strings.Contains(err.Error(), "gpu 3 (A100-SXM4-40GB): 2× 4g.20gb exceeds the maximum of 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestHoldBack(t *testing.T) {
	m := pkA100()
	// Busy 1g at 2 must go for a 3g at 0:4; the 4×1g elsewhere is free.
	cur := pkObserve(t, m, pkLayout(t, m, "1g.5gb@2", "1g.5gb@5"), 0)
	ops, err := Diff(m, cur, pkLayout(t, m, "3g.20gb@0", "1g.5gb@4", "1g.5gb@5", "1g.5gb@6"))
	if err != nil {
		t.Fatal(err)
	}
	run, held := HoldBack(ops)
	if got, want := pkOps(run), "create 1g.5gb at 4:1; create 1g.5gb at 6:1"; got != want {
		t.Errorf("run = %s, want %s", got, want)
	}
	if got, want := pkOps(held), "destroy 1g.5gb at 2:1 (busy); create 3g.20gb at 0:4"; got != want {
		t.Errorf("held = %s, want %s", got, want)
	}
	after, err := Simulate(m, cur, run)
	if err != nil {
		t.Fatalf("simulate run ops: %v", err)
	}
	// Once the process ends, the next pass converges.
	for i := range after.Instances {
		after.Instances[i].Busy = false
	}
	ops2, err := Diff(m, after, pkLayout(t, m, "3g.20gb@0", "1g.5gb@4", "1g.5gb@5", "1g.5gb@6"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pkOps(ops2), "destroy 1g.5gb at 2:1; create 3g.20gb at 0:4"; got != want {
		t.Errorf("second pass = %s, want %s", got, want)
	}
}

// randomLayout builds a random valid layout on m by adding random
// instances at random free placements, with random compute splits.
func randomLayout(r *rand.Rand, m *GPUModel) GPULayout {
	l := GPULayout{MigEnabled: true}
	tries := r.IntN(12)
	for i := 0; i < tries; i++ {
		p := m.Profiles[r.IntN(len(m.Profiles))]
		pl := p.Placements[r.IntN(len(p.Placements))]
		in := Instance{Profile: p.ID, Placement: pl}
		if r.IntN(4) == 0 {
			c := 1 + r.IntN(p.ComputeSlices)
			in.Compute = Compute{Slices: c, Count: 1 + r.IntN(max(p.ComputeSlices/c, 1))}
		}
		next := GPULayout{MigEnabled: true, Instances: append(append([]Instance(nil), l.Instances...), in)}
		if checkInstances(m, next) == nil {
			l = next
		}
	}
	return l
}

func unplaced(l GPULayout) GPULayout {
	out := GPULayout{MigEnabled: l.MigEnabled}
	for _, in := range l.Instances {
		out.Instances = append(out.Instances, Instance{Profile: in.Profile, Compute: in.Compute})
	}
	return out
}

// classKey identifies instances that are interchangeable in a layout.
func classKey(m *GPUModel, in Instance) string {
	p, _ := m.ProfileByID(in.Profile)
	c := in.Compute.Normalize(p.ComputeSlices)
	return fmt.Sprintf("%d/%dx%d", in.Profile, c.Count, c.Slices)
}

func multiset(m *GPUModel, in []Instance) string {
	keys := make([]string, len(in))
	for i, x := range in {
		keys[i] = classKey(m, x)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// bestKeep is an oracle independent of Diff's search: over every subset of
// the observed instances, the subsets that can stay where they are while
// the rest of desired still packs, it returns the best (busy, total) kept.
func bestKeep(m *GPUModel, cur GPUState, desired GPULayout) (busy, total int) {
	n := len(cur.Instances)
	bestB, bestT := -1, -1
	for set := 0; set < 1<<n; set++ {
		need := map[string]int{}
		for _, in := range desired.Instances {
			need[classKey(m, in)]++
		}
		ok := true
		var fixed []Instance
		b, tot := 0, 0
		for j := 0; j < n && ok; j++ {
			if set&(1<<j) == 0 {
				continue
			}
			have := cur.Instances[j]
			hc, valid := ObservedCompute(m, have)
			if !valid {
				ok = false
				break
			}
			k := classKey(m, Instance{Profile: have.Profile, Compute: hc})
			if need[k] == 0 {
				ok = false
				break
			}
			need[k]--
			fixed = append(fixed, Instance{Profile: have.Profile, Placement: have.Placement, Compute: hc})
			tot++
			if have.Busy {
				b++
			}
		}
		if !ok {
			continue
		}
		rest := append([]Instance(nil), fixed...)
		for _, in := range desired.Instances {
			k := classKey(m, in)
			if need[k] > 0 {
				need[k]--
				rest = append(rest, in)
			}
		}
		if _, err := Pack(m, GPULayout{MigEnabled: true, Instances: rest}); err != nil {
			continue
		}
		if b > bestB || (b == bestB && tot > bestT) {
			bestB, bestT = b, tot
		}
	}
	return bestB, bestT
}

func TestDiffProperties(t *testing.T) {
	for _, m := range []*GPUModel{pkA100(), pkA30()} {
		t.Run(m.Key, func(t *testing.T) {
			r := rand.New(rand.NewPCG(42, uint64(len(m.Key))))
			for iter := 0; iter < 400; iter++ {
				curLayout := randomLayout(r, m)
				var busy []int
				for i := range curLayout.Instances {
					if r.IntN(3) == 0 {
						busy = append(busy, i)
					}
				}
				cur := pkObserve(t, m, curLayout, busy...)
				desired := unplaced(randomLayout(r, m))
				name := fmt.Sprintf("iter %d: %s -> %s", iter, FormatInstances(m, cur.Instances), FormatInstances(m, desired.Instances))

				ops, err := Diff(m, cur, desired)
				if err != nil {
					t.Fatalf("%s: Diff: %v", name, err)
				}

				// Diff(x, x) is empty.
				if same, err := Diff(m, cur, unplaced(GPULayout{MigEnabled: true, Instances: cur.Instances})); err != nil || len(same) != 0 {
					t.Fatalf("%s: Diff(x, x) = %v, %v", name, same, err)
				}

				// It keeps as many instances as any plan could: busy ones
				// first, then all.
				var keptBusy, kept int
				destroyed := map[int]bool{}
				for _, o := range ops {
					if o.Kind == OpDestroyInstance {
						destroyed[o.Instance.GPUInstanceID] = true
						if o.Busy != o.Instance.Busy {
							t.Fatalf("%s: destroy %s busy flag %v, instance busy %v", name, o, o.Busy, o.Instance.Busy)
						}
					}
				}
				for _, in := range cur.Instances {
					if !destroyed[in.GPUInstanceID] {
						kept++
						if in.Busy {
							keptBusy++
						}
					}
				}
				if wb, wt := bestKeep(m, cur, desired); keptBusy != wb || kept != wt {
					t.Fatalf("%s: kept %d busy / %d total, the best plan keeps %d / %d\nops:\n%s", name, keptBusy, kept, wb, wt, FormatOps(ops))
				}

				// Applying the ops to current yields desired, and creates
				// touch only memory slices that kept instances do not use.
				idle := cur
				idle.Instances = append([]Instance(nil), cur.Instances...)
				for i := range idle.Instances {
					idle.Instances[i].Busy = false
				}
				after, err := Simulate(m, idle, ops)
				if err != nil {
					t.Fatalf("%s: ops do not apply: %v\n%s", name, err, FormatOps(ops))
				}
				if got, want := multiset(m, after.Instances), multiset(m, desired.Instances); got != want {
					t.Fatalf("%s: result %s, want %s", name, got, want)
				}
				if err := ValidateLayout(m, GPULayout{MigEnabled: true, Instances: after.Instances}); err != nil {
					t.Fatalf("%s: result is not a valid layout: %v", name, err)
				}
				for _, in := range cur.Instances {
					if destroyed[in.GPUInstanceID] {
						continue
					}
					for _, o := range ops {
						if o.Kind == OpCreateInstance && o.Instance.Placement.Overlaps(in.Placement) {
							t.Fatalf("%s: %s overlaps kept instance at %s", name, o, in.Placement)
						}
					}
				}

				// A second pass has nothing to do.
				if again, err := Diff(m, after, desired); err != nil || len(again) != 0 {
					t.Fatalf("%s: second Diff = %v, %v", name, FormatOps(again), err)
				}

				// Holding busy destroys back never destroys a busy instance,
				// leaves an applicable plan, and converges once work ends.
				run, _ := HoldBack(ops)
				partial, err := Simulate(m, cur, run)
				if err != nil {
					t.Fatalf("%s: held-back plan does not apply: %v", name, err)
				}
				for i := range partial.Instances {
					partial.Instances[i].Busy = false
				}
				rest, err := Diff(m, partial, desired)
				if err != nil {
					t.Fatal(err)
				}
				final, err := Simulate(m, partial, rest)
				if err != nil {
					t.Fatalf("%s: follow-up plan does not apply: %v", name, err)
				}
				if got, want := multiset(m, final.Instances), multiset(m, desired.Instances); got != want {
					t.Fatalf("%s: after hold-back and follow-up %s, want %s", name, got, want)
				}

				// Disabling MIG holds the mode change back while a busy
				// instance stays, and what runs applies.
				off, err := Diff(m, cur, GPULayout{})
				if err != nil {
					t.Fatal(err)
				}
				offRun, _ := HoldBack(off)
				if _, err := Simulate(m, cur, offRun); err != nil {
					t.Fatalf("%s: held-back disable does not apply: %v\n%s", name, err, FormatOps(offRun))
				}
			}
		})
	}
}

func TestDiffNode(t *testing.T) {
	m := pkA100()
	cat, err := NewCatalog(*m)
	if err != nil {
		t.Fatal(err)
	}
	g0 := pkObserve(t, m, pkLayout(t, m, "7g.40gb"))
	g0.Index, g0.UUID, g0.DeviceID = 0, "GPU-0", 0x20B010DE
	g1 := pkObserve(t, m, pkLayout(t, m, "7g.40gb"))
	g1.Index, g1.UUID, g1.DeviceID = 1, "GPU-1", 0x20B010DE
	node := NodeState{GPUs: []GPUState{g0, g1}}
	ops, err := DiffNode(cat, node, map[int]GPULayout{1: pkLayout(t, m, "4g.20gb", "3g.20gb")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.GPU != 1 || o.GPUUUID != "GPU-1" {
			t.Errorf("op %s touches a GPU that was not asked for", o)
		}
	}
	if len(ops) != 3 {
		t.Errorf("ops = %s", FormatOps(ops))
	}
	if _, err := DiffNode(cat, node, map[int]GPULayout{5: {}}); err == nil || !strings.Contains(err.Error(), "gpu 5: no such GPU") {
		t.Errorf("missing GPU: err = %v", err)
	}
}

// pkBuiltin returns a model of the built-in catalog.
func pkBuiltin(t testing.TB, key string) *GPUModel {
	t.Helper()
	m, ok := Builtin().ByKey(key)
	if !ok {
		t.Fatalf("no built-in model %s", key)
	}
	return m
}

// TestDiffMarksBusyModeChanges checks that a MIG mode change on a GPU with
// processes, or a disable while an instance is busy, is marked Busy, and
// that HoldBack holds it and every later op of that GPU.
func TestDiffMarksBusyModeChanges(t *testing.T) {
	m := pkA100()
	want := pkLayout(t, m, "4g.20gb", "3g.20gb")

	// MIG off, a process on the whole GPU: the enable is busy.
	off := GPUState{Index: 3, UUID: "GPU-test-3", Processes: []uint32{4242}}
	other := GPUState{Index: 4, UUID: "GPU-test-4"}
	ops, err := Diff(m, off, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 || ops[0].Kind != OpSetMigMode || !ops[0].Enable || !ops[0].Busy {
		t.Fatalf("enable on a GPU with processes: ops %s, first not a busy enable (%+v)", pkOps(ops), ops[0])
	}
	ops4, err := Diff(m, other, want)
	if err != nil {
		t.Fatal(err)
	}
	if ops4[0].Busy {
		t.Errorf("enable on an idle GPU marked busy")
	}
	run, held := HoldBack(append(append([]Op(nil), ops...), ops4...))
	if len(held) != 3 || held[0].Kind != OpSetMigMode {
		t.Errorf("held = %s, want the enable and both creates of gpu 3", pkOps(held))
	}
	for _, o := range held {
		if o.GPU != 3 {
			t.Errorf("held op %s of the idle gpu", o)
		}
	}
	if len(run) != 3 {
		t.Errorf("run = %s, want gpu 4's enable and creates", pkOps(run))
	}

	// MIG on, an instance busy: the disable is busy and held, the idle
	// instance is still destroyed.
	cur := pkObserve(t, m, want, 1) // 4g@0 idle, 3g@4 busy
	ops, err = Diff(m, cur, GPULayout{})
	if err != nil {
		t.Fatal(err)
	}
	last := ops[len(ops)-1]
	if last.Kind != OpSetMigMode || last.Enable || !last.Busy {
		t.Fatalf("disable with a busy instance: ops %s, last %+v not a busy disable", pkOps(ops), last)
	}
	run, held = HoldBack(ops)
	if got, want := pkOps(run), "destroy 4g.20gb at 0:4"; got != want {
		t.Errorf("run = %s, want %s", got, want)
	}
	if got, want := pkOps(held), "destroy 3g.20gb at 4:4 (busy); set MIG mode disabled"; got != want {
		t.Errorf("held = %s, want %s", got, want)
	}

	// MIG on, processes outside MIG devices: the disable is busy too.
	idle := pkObserve(t, m, want)
	idle.Processes = []uint32{7}
	ops, err = Diff(m, idle, GPULayout{})
	if err != nil {
		t.Fatal(err)
	}
	if last := ops[len(ops)-1]; !last.Busy {
		t.Errorf("disable on a GPU with processes not busy: %+v", last)
	}
	// Idle everywhere: nothing busy.
	idle.Processes = nil
	ops, _ = Diff(m, idle, GPULayout{})
	for _, o := range ops {
		if o.Busy {
			t.Errorf("idle GPU: op %s marked busy", o)
		}
	}
}

// TestHoldBackRespectsCounts is the reviewer's repro: a busy 1g.10gb+me
// that the new layout moves stays, so creating another +me instance, or
// more instances of a profile than its maximum, must wait for it.
func TestHoldBackRespectsCounts(t *testing.T) {
	t.Run("media extensions", func(t *testing.T) {
		m := pkBuiltin(t, "a100-80gb")
		cur := pkObserve(t, m, pkLayout(t, m, "1g.10gb+me@0"), 0)
		desired := pkLayout(t, m, "2g.20gb", "2g.20gb", "2g.20gb", "1g.10gb+me")
		ops, err := Diff(m, cur, desired)
		if err != nil {
			t.Fatal(err)
		}
		run, held := HoldBack(ops)
		for _, o := range run {
			if o.Kind == OpCreateInstance && strings.HasSuffix(o.ProfileName, "+me") {
				t.Errorf("%s runs while the busy +me instance stays", o)
			}
		}
		if _, err := Simulate(m, cur, run); err != nil {
			t.Fatalf("held-back plan does not apply: %v\nrun:\n%sheld:\n%s", err, FormatOps(run), FormatOps(held))
		}
		// Simulate enforces the limit Diff's plan would hit.
		var meCreate Op
		for _, o := range ops {
			if o.Kind == OpCreateInstance && strings.HasSuffix(o.ProfileName, "+me") {
				meCreate = o
			}
		}
		if _, err := Simulate(m, cur, []Op{meCreate}); err == nil || !strings.Contains(err.Error(), "maximum") {
			t.Errorf("Simulate of a second +me instance: err = %v, want a maximum-count error", err)
		}
		// Once the process ends, the plan converges.
		partial, _ := Simulate(m, cur, run)
		partial.Instances[0].Busy = false
		rest, err := Diff(m, partial, desired)
		if err != nil {
			t.Fatal(err)
		}
		final, err := Simulate(m, partial, rest)
		if err != nil {
			t.Fatalf("follow-up: %v", err)
		}
		if got, want := multiset(m, final.Instances), multiset(m, desired.Instances); got != want {
			t.Errorf("final %s, want %s", got, want)
		}
	})
	t.Run("two media profiles share the engines", func(t *testing.T) {
		m := pkBuiltin(t, "a30")
		cur := pkObserve(t, m, pkLayout(t, m, "1g.6gb+me@0"), 0)
		desired := pkLayout(t, m, "2g.12gb", "2g.12gb+me")
		ops, err := Diff(m, cur, desired)
		if err != nil {
			t.Fatal(err)
		}
		run, _ := HoldBack(ops)
		if _, err := Simulate(m, cur, run); err != nil {
			t.Fatalf("held-back plan does not apply: %v\nrun:\n%s", err, FormatOps(run))
		}
		two, _ := m.ProfileByName("2g.12gb+me")
		if _, err := Simulate(m, cur, []Op{{Kind: OpCreateInstance, GPU: cur.Index, Instance: Instance{Profile: two.ID, Placement: Placement{Start: 2, Size: 2}}}}); err == nil {
			t.Errorf("Simulate allowed a second +me instance on %s", m.Name)
		}
	})
	t.Run("idle destroys free the count", func(t *testing.T) {
		m := pkA100()
		// Two 1g.5gb busy where the 4g goes, two idle elsewhere: the
		// plan replaces the busy ones with new 1g.5gb at 4..7; as many
		// of those may run as leave the count within 7.
		cur := pkObserve(t, m, pkLayout(t, m, "1g.5gb@0", "1g.5gb@1", "1g.5gb@4", "1g.5gb@5", "1g.5gb@6"), 0, 1)
		desired := pkLayout(t, m, "4g.20gb", "1g.5gb", "1g.5gb", "1g.5gb")
		ops, err := Diff(m, cur, desired)
		if err != nil {
			t.Fatal(err)
		}
		run, held := HoldBack(ops)
		if _, err := Simulate(m, cur, run); err != nil {
			t.Fatalf("held-back plan does not apply: %v\nrun:\n%sheld:\n%s", err, FormatOps(run), FormatOps(held))
		}
	})
}

// TestSimulateEnforcesLimits checks that Simulate refuses what NVML
// refuses: more instances of a profile than its maximum, a second +me
// instance, more compute slices than the GPU has.
func TestSimulateEnforcesLimits(t *testing.T) {
	m := pkA100()
	g := GPUState{Index: 0, UUID: "GPU-0", Mig: MigMode{Current: true, Pending: true}}
	create := func(name string, start int) Op {
		p, _ := m.ProfileByName(name)
		return Op{Kind: OpCreateInstance, GPU: 0, ProfileName: name, Instance: Instance{Profile: p.ID, Placement: Placement{Start: start, Size: p.MemorySlices}}}
	}
	if _, err := Simulate(m, g, []Op{create("1g.5gb+me", 0), create("1g.5gb+me", 3)}); err == nil || !strings.Contains(err.Error(), "maximum of 1") {
		t.Errorf("two 1g.5gb+me: err = %v", err)
	}
	m.Profiles[1].MaxCount = 2 // 2g.10gb
	if _, err := Simulate(m, g, []Op{create("2g.10gb", 0), create("2g.10gb", 2), create("2g.10gb", 4)}); err == nil || !strings.Contains(err.Error(), "maximum of 2") {
		t.Errorf("three 2g.10gb with a maximum of 2: err = %v", err)
	}
	if _, err := Simulate(m, g, []Op{create("2g.10gb", 0), create("2g.10gb", 2), create("3g.20gb", 4)}); err != nil {
		t.Errorf("a valid layout: %v", err)
	}
}

// TestMaxCountFollowsPlacements checks the premise of HoldBack's count
// rule: on every built-in model a profile other than +me admits at least
// as many instances as it has placements that fit side by side, so only
// overlaps and the +me limit can stop a create.
func TestMaxCountFollowsPlacements(t *testing.T) {
	for _, m := range Builtin().Models() {
		for _, p := range m.Profiles {
			if p.HasMediaExtensions() {
				continue
			}
			// Placements of one profile have one size: taking them
			// greedily by start finds the most that fit side by side.
			var used uint16
			fit := 0
			for _, pl := range p.Placements {
				if used&pl.Mask() == 0 {
					used |= pl.Mask()
					fit++
				}
			}
			if p.MaxCount < fit {
				t.Errorf("%s %s: MaxCount %d, but %d placements fit side by side; HoldBack must learn counts", m.Key, p.Name, p.MaxCount, fit)
			}
		}
	}
}
