package sim

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// stateVersion is the version of the saved-state format.
const stateVersion = 1

// savedNode is the JSON form of a node's simulated state.
type savedNode struct {
	Version           int            `json:"version"`
	Seed              uint64         `json:"seed"`
	DriverVersion     string         `json:"driverVersion"`
	CudaDriverVersion int            `json:"cudaDriverVersion"`
	AmpereAutoReset   bool           `json:"ampereAutoReset,omitempty"`
	ProfilesNeedMig   bool           `json:"profilesNeedMig,omitempty"`
	NextPID           uint32         `json:"nextPID"`
	MigSerial         uint64         `json:"migSerial"`
	GPUs              []savedGPU     `json:"gpus"`
	Processes         []savedProcess `json:"processes,omitempty"`
}

type savedGPU struct {
	Index        int       `json:"index"`
	Model        string    `json:"model"`
	UUID         string    `json:"uuid"`
	MigCurrent   bool      `json:"migCurrent"`
	MigPending   bool      `json:"migPending"`
	GpuInstances []savedGI `json:"gpuInstances,omitempty"`
}

type savedGI struct {
	ID               int                 `json:"id"`
	Profile          migconfig.ProfileID `json:"profileID"`
	Placement        migconfig.Placement `json:"placement"`
	ComputeInstances []savedCI           `json:"computeInstances,omitempty"`
}

type savedCI struct {
	ID        int                 `json:"id"`
	Profile   int                 `json:"profileID"`
	Placement migconfig.Placement `json:"placement"`
	UUID      string              `json:"uuid"`
	MigIndex  int                 `json:"migIndex"`
}

type savedProcess struct {
	PID       uint32 `json:"pid"`
	UUID      string `json:"uuid"`
	MemoryMiB int    `json:"memoryMiB"`
}

// MarshalJSON saves the node's whole simulated state: options, GPUs (model
// key, UUID, MIG mode), GPU instances (ID, profile ID, placement), compute
// instances (ID, profile, placement, MIG UUID and index) and processes.
// Load restores it. Call counters, injected faults and the Init count are
// not saved.
func (n *Node) MarshalJSON() ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := savedNode{
		Version:           stateVersion,
		Seed:              n.opts.seed,
		DriverVersion:     n.opts.driverVersion,
		CudaDriverVersion: n.opts.cudaDriverVersion,
		AmpereAutoReset:   n.opts.ampereAutoReset,
		ProfilesNeedMig:   n.opts.profilesNeedMig,
		NextPID:           n.nextPID,
		MigSerial:         n.migSerial,
	}
	for _, g := range n.gpus {
		sg := savedGPU{Index: g.index, Model: g.model.Key, UUID: g.uuid, MigCurrent: g.migCurrent, MigPending: g.migPending}
		for _, gi := range g.sortedGIs() {
			sgi := savedGI{ID: gi.id, Profile: gi.profile.ID, Placement: gi.placement}
			for _, ci := range gi.sortedCIs() {
				sgi.ComputeInstances = append(sgi.ComputeInstances, savedCI{
					ID: ci.id, Profile: ci.profileIdx, Placement: ci.placement, UUID: ci.uuid, MigIndex: ci.slot,
				})
			}
			sg.GpuInstances = append(sg.GpuInstances, sgi)
		}
		s.GPUs = append(s.GPUs, sg)
	}
	pids := make([]uint32, 0, len(n.procs))
	for pid := range n.procs {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		p := n.procs[pid]
		uuid := p.gpu.uuid
		if p.ci != nil {
			uuid = p.ci.uuid
		}
		s.Processes = append(s.Processes, savedProcess{PID: pid, UUID: uuid, MemoryMiB: p.mib})
	}
	return json.MarshalIndent(s, "", "  ")
}

// Load rebuilds a node saved with MarshalJSON, resolving model keys in cat.
// UUIDs, GI and CI IDs, placements, MIG device indices and processes
// survive the round trip. The state is checked as the simulation would
// have built it (valid placements, no overlaps, limits respected); a file
// that breaks these rules is refused. Options given here apply after the
// saved ones and override them (the saved MIG modes win over
// WithMigEnabled). The node is not initialized: call Init as
// a new process would.
func Load(cat *migconfig.Catalog, data []byte, opts ...Option) (*Node, error) {
	if cat == nil {
		return nil, fmt.Errorf("sim: load: no catalog")
	}
	var s savedNode
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("sim: load: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("sim: load: state version %d, want %d", s.Version, stateVersion)
	}
	if len(s.GPUs) == 0 {
		return nil, fmt.Errorf("sim: load: no GPUs")
	}
	models := make([]*migconfig.GPUModel, len(s.GPUs))
	for i, sg := range s.GPUs {
		if sg.Index != i {
			return nil, fmt.Errorf("sim: load: GPU %d has index %d", i, sg.Index)
		}
		m, ok := cat.ByKey(sg.Model)
		if !ok {
			return nil, fmt.Errorf("sim: load: GPU %d: unknown model %q", i, sg.Model)
		}
		models[i] = m
	}
	saved := []Option{
		WithSeed(s.Seed),
		WithDriverVersion(s.DriverVersion),
		WithCudaDriverVersion(s.CudaDriverVersion),
	}
	if s.AmpereAutoReset {
		saved = append(saved, WithAmpereAutoReset())
	}
	if s.ProfilesNeedMig {
		saved = append(saved, WithProfilesNeedMig())
	}
	n := newNode(models, append(saved, opts...)...)
	n.nextPID = max(s.NextPID, firstPID)
	n.migSerial = s.MigSerial
	seen := map[string]bool{}
	for i, sg := range s.GPUs {
		g := n.gpus[i]
		if err := g.restore(sg, seen); err != nil {
			return nil, fmt.Errorf("sim: load: GPU %d: %w", i, err)
		}
	}
	for _, sp := range s.Processes {
		g, ci := n.findUUID(sp.UUID)
		switch {
		case g == nil:
			return nil, fmt.Errorf("sim: load: process %d: no device %q", sp.PID, sp.UUID)
		case ci == nil && g.migCurrent:
			return nil, fmt.Errorf("sim: load: process %d: GPU %q has MIG enabled", sp.PID, sp.UUID)
		case n.procs[sp.PID] != nil:
			return nil, fmt.Errorf("sim: load: duplicate process %d", sp.PID)
		}
		mib := sp.MemoryMiB
		if mib <= 0 {
			mib = ProcessMemoryMiB
		}
		n.procs[sp.PID] = &process{pid: sp.PID, gpu: g, ci: ci, mib: mib}
		if sp.PID >= n.nextPID {
			n.nextPID = sp.PID + 1
		}
	}
	return n, nil
}

// restore applies a saved GPU to a fresh one, checking every rule.
func (g *gpu) restore(sg savedGPU, seen map[string]bool) error {
	if sg.UUID == "" || seen[sg.UUID] {
		return fmt.Errorf("missing or duplicate UUID %q", sg.UUID)
	}
	seen[sg.UUID] = true
	g.uuid = sg.UUID
	if (sg.MigCurrent || sg.MigPending) && !g.migCapable() {
		return fmt.Errorf("model %s has no MIG", g.model.Key)
	}
	g.migCurrent, g.migPending = sg.MigCurrent, sg.MigPending
	if len(sg.GpuInstances) > 0 && !g.migCurrent {
		return fmt.Errorf("GPU instances with MIG disabled")
	}
	inPool := map[int]bool{}
	for _, id := range g.giPool {
		inPool[id] = true
	}
	for _, sgi := range sg.GpuInstances {
		p, ok := g.model.ProfileByID(sgi.Profile)
		switch {
		case !ok:
			return fmt.Errorf("GI %d: profile ID %d is not a profile of %s", sgi.ID, sgi.Profile, g.model.Key)
		case !inPool[sgi.ID] || g.gis[sgi.ID] != nil:
			return fmt.Errorf("GI %d: invalid or duplicate GI ID", sgi.ID)
		case !p.ValidPlacement(sgi.Placement):
			return fmt.Errorf("GI %d: %s cannot be placed at %s", sgi.ID, p.Name, sgi.Placement)
		case sgi.Placement.Mask()&g.occupied() != 0 || g.headroom(p) == 0:
			return fmt.Errorf("GI %d: %s at %s does not fit", sgi.ID, p.Name, sgi.Placement)
		}
		gi := newGpuInstance(g, sgi.ID, p, sgi.Placement)
		g.gis[sgi.ID] = gi
		for _, sci := range sgi.ComputeInstances {
			c, r := gi.ciProfile(sci.Profile)
			if r != 0 {
				return fmt.Errorf("GI %d CI %d: CI profile %d is not valid in %s", sgi.ID, sci.ID, sci.Profile, p.Name)
			}
			valid := false
			for _, q := range ciPlacements(c, p.ComputeSlices) {
				valid = valid || q == sci.Placement
			}
			switch {
			case !valid || sci.Placement.Mask()&gi.usedCompute() != 0 || gi.countCI(sci.Profile) >= p.ComputeSlices/c:
				return fmt.Errorf("GI %d CI %d: placement %s does not fit", sgi.ID, sci.ID, sci.Placement)
			case sci.ID < 0 || gi.cis[sci.ID] != nil:
				return fmt.Errorf("GI %d CI %d: invalid or duplicate CI ID", sgi.ID, sci.ID)
			case sci.MigIndex < 0 || sci.MigIndex >= len(g.migSlots) || g.migSlots[sci.MigIndex] != nil:
				return fmt.Errorf("GI %d CI %d: invalid or duplicate MIG index %d", sgi.ID, sci.ID, sci.MigIndex)
			case sci.UUID == "" || seen[sci.UUID]:
				return fmt.Errorf("GI %d CI %d: missing or duplicate UUID %q", sgi.ID, sci.ID, sci.UUID)
			}
			seen[sci.UUID] = true
			ci := newComputeInstance(gi, sci.ID, sci.Profile, sci.Placement, sci.UUID, sci.MigIndex)
			gi.cis[sci.ID] = ci
			g.migSlots[sci.MigIndex] = ci
		}
	}
	return nil
}
