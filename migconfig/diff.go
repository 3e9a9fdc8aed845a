package migconfig

import (
	"fmt"
	"sort"
)

// Diff returns the ordered ops that turn GPU current into desired on model
// m: a MIG mode change if needed, then destroys, then creates with explicit
// placements.
//
// Diff keeps every observed instance it can: among all placements of the
// desired instances it chooses the one that reuses the most busy
// instances, then the most instances, then leaves the most room free (see
// Pack). Only instances that the chosen placement does not reuse are
// destroyed, and destroys of instances with processes are marked Busy so
// that HoldBack or the caller's policy can spare them. An instance whose
// compute instances do not match any layout (for example left half-built
// by an interrupted apply) is never reused, so the next pass repairs it.
func Diff(m *GPUModel, current GPUState, desired GPULayout) ([]Op, error) {
	if err := checkInstances(m, desired); err != nil {
		return nil, fmt.Errorf("gpu %d (%s): %w", current.Index, m.Name, err)
	}
	var ops []Op
	op := func(o Op) {
		o.GPU, o.GPUUUID = current.Index, current.UUID
		if p, ok := m.ProfileByID(o.Instance.Profile); ok && o.Kind != OpSetMigMode {
			o.ProfileName = p.Name
		}
		ops = append(ops, o)
	}
	destroy := func(in Instance) {
		op(Op{Kind: OpDestroyInstance, Instance: in, Busy: in.Busy})
	}

	if !desired.MigEnabled {
		if current.Mig.Current {
			for _, in := range sortedCopy(current.Instances) {
				destroy(in)
			}
		}
		if current.Mig.Current || current.Mig.Pending {
			op(Op{Kind: OpSetMigMode, Enable: false})
		}
		return ops, nil
	}

	if !current.Mig.Current {
		// Nothing can exist yet: enable, then create everything. On
		// Ampere the creates wait for the reset the mode change needs.
		packed, err := Pack(m, desired)
		if err != nil {
			return nil, fmt.Errorf("gpu %d (%s): %w", current.Index, m.Name, err)
		}
		op(Op{Kind: OpSetMigMode, Enable: true})
		for _, in := range packed.Instances {
			op(Op{Kind: OpCreateInstance, Instance: stripObservation(in)})
		}
		return ops, nil
	}
	if !current.Mig.Pending {
		// MIG is on but a disable is pending (Ampere): cancel it.
		op(Op{Kind: OpSetMigMode, Enable: true})
	}

	s := newSearch(m, desired.Instances, current.Instances)
	best, ok := s.run()
	if !ok {
		return nil, fmt.Errorf("gpu %d (%s): no placement of %s fits", current.Index, m.Name, FormatInstances(m, desired.Instances))
	}
	keptCurrent := make([]bool, len(current.Instances))
	keptDesired := make([]bool, len(desired.Instances))
	for i, want := range desired.Instances {
		for j, have := range current.Instances {
			if !keptCurrent[j] && best.placements[i] == have.Placement && Reusable(m, have, want) {
				keptCurrent[j], keptDesired[i] = true, true
				break
			}
		}
	}
	var gone, made []Instance
	for j, have := range current.Instances {
		if !keptCurrent[j] {
			gone = append(gone, have)
		}
	}
	for i, want := range desired.Instances {
		if !keptDesired[i] {
			in := stripObservation(want)
			in.Placement = best.placements[i]
			made = append(made, in)
		}
	}
	SortInstances(gone)
	SortInstances(made)
	for _, in := range gone {
		destroy(in)
	}
	for _, in := range made {
		op(Op{Kind: OpCreateInstance, Instance: in})
	}
	return ops, nil
}

// DiffNode diffs every GPU that desired names (by NVML index), in index
// order, looking each GPU's model up in cat. GPUs absent from desired are
// left alone, as mig-parted does.
func DiffNode(cat *Catalog, node NodeState, desired map[int]GPULayout) ([]Op, error) {
	indexes := make([]int, 0, len(desired))
	for i := range desired {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)
	var ops []Op
	for _, i := range indexes {
		g, ok := node.GPU(i)
		if !ok {
			return nil, fmt.Errorf("gpu %d: no such GPU on this node (%d GPUs)", i, len(node.GPUs))
		}
		m, ok := cat.Lookup(g)
		if !ok {
			return nil, fmt.Errorf("gpu %d: %s (device ID %#08x) is not a known MIG-capable model", i, g.Name, g.DeviceID)
		}
		gops, err := Diff(m, g, desired[i])
		if err != nil {
			return nil, err
		}
		ops = append(ops, gops...)
	}
	return ops, nil
}

// GPU returns the GPU with NVML index i.
func (n NodeState) GPU(i int) (GPUState, bool) {
	for _, g := range n.GPUs {
		if g.Index == i {
			return g, true
		}
	}
	return GPUState{}, false
}

// HoldBack splits ops into those that can run now and those held back
// because they would destroy a busy instance: the busy destroys, every
// create on the same GPU that overlaps a held instance, and a mode change
// on a GPU with held destroys. The order of ops is preserved.
func HoldBack(ops []Op) (run, held []Op) {
	blocked := map[int]uint16{}
	for _, o := range ops {
		if o.Kind == OpDestroyInstance && o.Busy {
			blocked[o.GPU] |= o.Instance.Placement.Mask()
		}
	}
	for _, o := range ops {
		mask, hit := blocked[o.GPU]
		switch {
		case o.Kind == OpDestroyInstance && o.Busy,
			hit && o.Kind == OpCreateInstance && o.Instance.Placement.Mask()&mask != 0,
			hit && o.Kind == OpSetMigMode:
			held = append(held, o)
		default:
			run = append(run, o)
		}
	}
	return run, held
}

// Simulate applies ops to a GPU state by NVML's rules (placements must be
// valid and free, busy instances cannot be destroyed, instances need MIG
// on) and returns the resulting state. It is the model Diff is tested
// against and what `tessera mig plan` shows as the outcome. Mode changes
// take effect at once, as on Hopper.
func Simulate(m *GPUModel, g GPUState, ops []Op) (GPUState, error) {
	out := g
	out.Instances = sortedCopy(g.Instances)
	nextID := 1
	for _, in := range out.Instances {
		nextID = max(nextID, in.GPUInstanceID+1)
	}
	for n, o := range ops {
		if o.GPU != g.Index {
			continue
		}
		fail := func(format string, args ...any) (GPUState, error) {
			return GPUState{}, fmt.Errorf("op %d (%s): %s", n, o, fmt.Sprintf(format, args...))
		}
		switch o.Kind {
		case OpSetMigMode:
			if !o.Enable && len(out.Instances) > 0 {
				return fail("instances exist")
			}
			out.Mig = MigMode{Current: o.Enable, Pending: o.Enable}
		case OpDestroyInstance:
			idx := -1
			for i, in := range out.Instances {
				if in.GPUInstanceID == o.Instance.GPUInstanceID && in.Placement == o.Instance.Placement {
					idx = i
				}
			}
			if idx < 0 {
				return fail("no such instance")
			}
			if out.Instances[idx].Busy {
				return fail("instance is busy")
			}
			out.Instances = append(out.Instances[:idx], out.Instances[idx+1:]...)
		case OpCreateInstance:
			if !out.Mig.Current {
				return fail("MIG is disabled")
			}
			p, ok := m.ProfileByID(o.Instance.Profile)
			if !ok || !p.ValidPlacement(o.Instance.Placement) {
				return fail("invalid placement")
			}
			if occupiedMask(out.Instances)&o.Instance.Placement.Mask() != 0 {
				return fail("placement is occupied")
			}
			in := o.Instance
			in.GPUInstanceID = nextID
			nextID++
			c := in.Compute.Normalize(p.ComputeSlices)
			in.ComputeInstances = nil
			for k := 0; k < c.Count; k++ {
				in.ComputeInstances = append(in.ComputeInstances, ComputeInstance{ID: k, Slices: c.Slices, Start: k * c.Slices})
			}
			out.Instances = append(out.Instances, in)
		}
	}
	SortInstances(out.Instances)
	return out, nil
}

// stripObservation returns the layout part of an instance.
func stripObservation(in Instance) Instance {
	return Instance{Profile: in.Profile, Placement: in.Placement, Compute: in.Compute}
}

func sortedCopy(in []Instance) []Instance {
	out := make([]Instance, len(in))
	copy(out, in)
	SortInstances(out)
	return out
}
