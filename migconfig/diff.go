package migconfig

import (
	"fmt"
	"sort"
	"strings"
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
// that HoldBack or the caller's policy can spare them. A MIG mode change is
// marked Busy too when processes run on the GPU outside MIG devices
// (current.Processes) or, for a disable, on any of its instances: NVML
// refuses such a change with ERROR_IN_USE. Cancelling a pending disable
// (MIG on, pending off) is never busy, since it activates nothing.
//
// An instance whose compute instances do not match any layout (for example
// left half-built by an interrupted apply or a destroy refused part-way)
// is never reused, so the next pass repairs it.
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

	gpuBusy := len(current.Processes) > 0 || current.Allocated
	if !desired.MigEnabled {
		busy := gpuBusy
		if current.Mig.Current {
			for _, in := range sortedCopy(current.Instances) {
				destroy(in)
				busy = busy || in.Busy
			}
		}
		if current.Mig.Current || current.Mig.Pending {
			op(Op{Kind: OpSetMigMode, Enable: false, Busy: busy})
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
		op(Op{Kind: OpSetMigMode, Enable: true, Busy: gpuBusy})
		for _, in := range packed.Instances {
			op(Op{Kind: OpCreateInstance, Instance: stripObservation(in)})
		}
		return ops, nil
	}
	if !current.Mig.Pending {
		// MIG is on but a disable is pending (Ampere): cancel it. The
		// cancel activates nothing, so processes do not make it busy.
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
// because of processes. The order of ops is preserved. Held back are:
//
//   - every Busy op: a destroy of an instance with processes, and a MIG
//     mode change on a GPU with processes (see Diff);
//   - every op of a GPU that follows a held mode change on that GPU;
//   - a mode change on a GPU with held destroys;
//   - a create that overlaps an instance whose destroy is held;
//   - a +me create while a held destroy of a +me instance keeps it: a
//     GPU has media engines for one +me instance (every +me profile has a
//     MaxCount of 1, and a GPU's +me profiles share the engines), so of
//     the +me creates of a GPU the first k run, k being the larger of the
//     +me destroys that run and the +me creates less the held +me
//     destroys, and the rest are held. Either bound keeps the count
//     within the limit, since the observed state and the desired layout
//     both respect it. An op is +me when its ProfileName contains "+me",
//     so the rule needs ops that carry ProfileName, as Diff's do.
//
// Other profiles need no such rule: on every catalog model a profile's
// MaxCount is at least the number of its placements that fit side by
// side, so a create that does not overlap a held instance cannot exceed it
// (the package's tests check this of the built-in catalog). Should a GPU's
// own table differ, gpu.Node.Apply holds back a create that NVML refuses
// for lack of resources while busy instances are held.
func HoldBack(ops []Op) (run, held []Op) {
	media := func(o Op) bool { return strings.Contains(o.ProfileName, "+me") }
	blocked := map[int]uint16{}
	// Per GPU: +me destroys held and run, +me creates.
	mediaHeld, mediaRun, mediaCreates := map[int]int{}, map[int]int{}, map[int]int{}
	for _, o := range ops {
		switch {
		case o.Kind == OpDestroyInstance && o.Busy:
			blocked[o.GPU] |= o.Instance.Placement.Mask()
			if media(o) {
				mediaHeld[o.GPU]++
			}
		case o.Kind == OpDestroyInstance && media(o):
			mediaRun[o.GPU]++
		case o.Kind == OpCreateInstance && media(o):
			mediaCreates[o.GPU]++
		}
	}
	// mediaAllowed counts, per GPU with a held +me destroy, the +me
	// creates that may still run.
	mediaAllowed := map[int]int{}
	for gpu, n := range mediaHeld {
		mediaAllowed[gpu] = max(mediaRun[gpu], mediaCreates[gpu]-n)
	}
	modeHeld := map[int]bool{}
	for _, o := range ops {
		mask, hit := blocked[o.GPU]
		var hold bool
		switch {
		case modeHeld[o.GPU] || o.Busy:
			hold = true
		case o.Kind == OpSetMigMode:
			hold = hit
		case o.Kind == OpCreateInstance:
			hold = hit && o.Instance.Placement.Mask()&mask != 0
			if n, limited := mediaAllowed[o.GPU]; limited && media(o) {
				if n <= 0 {
					hold = true
				} else if !hold {
					mediaAllowed[o.GPU]--
				}
			}
		}
		if hold && o.Kind == OpSetMigMode {
			modeHeld[o.GPU] = true
		}
		if hold {
			held = append(held, o)
		} else {
			run = append(run, o)
		}
	}
	return run, held
}

// Simulate applies ops to a GPU state by NVML's rules (placements must be
// valid and free; a profile's MaxCount, the one +me instance that models
// with several +me profiles allow, and the GPU's compute slices cannot be
// exceeded; busy instances cannot be destroyed; instances need MIG on) and
// returns the resulting state. It is the model Diff is tested
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
			if err := checkRoom(m, out.Instances, p); err != nil {
				return fail("%v", err)
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

// checkRoom reports whether one more instance of profile p fits next to
// instances by the limits that do not depend on placement, as NVML answers
// ERROR_INSUFFICIENT_RESOURCES: p's MaxCount, one +me instance in all when
// the model has several +me profiles (they share the media engines, see
// checkInstances), and the GPU's compute slices.
func checkRoom(m *GPUModel, instances []Instance, p *Profile) error {
	same, media, compute := 0, 0, p.ComputeSlices
	for _, in := range instances {
		q, ok := m.ProfileByID(in.Profile)
		if !ok {
			continue
		}
		if q.ID == p.ID {
			same++
		}
		if q.HasMediaExtensions() {
			media++
		}
		compute += q.ComputeSlices
	}
	if same+1 > p.MaxCount {
		return fmt.Errorf("%d× %s would exceed the maximum of %d on %s", same+1, p.Name, p.MaxCount, m.Name)
	}
	if p.HasMediaExtensions() && media >= 1 && countMediaProfiles(m) > 1 {
		return fmt.Errorf("a +me instance exists; %s has media engines for one", m.Name)
	}
	if compute > m.ComputeSlices {
		return fmt.Errorf("%d compute slices needed; %s has %d", compute, m.Name, m.ComputeSlices)
	}
	return nil
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
