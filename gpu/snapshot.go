package gpu

import (
	"context"
	"fmt"
	"slices"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Snapshot reads every GPU of the node: identity, memory, catalog model,
// MIG capability and mode, GPU instances with their real profile IDs and
// placements, their compute instances, the MIG devices' UUIDs and memory,
// and the processes on every MIG device and GPU. Instances come in
// placement order; an instance is Busy when any of its compute instances
// has a process.
func (n *Node) Snapshot(ctx context.Context) (migconfig.NodeState, error) {
	if err := n.lock(); err != nil {
		return migconfig.NodeState{}, err
	}
	defer n.mu.Unlock()
	count, err := n.deviceCount()
	if err != nil {
		return migconfig.NodeState{}, fmt.Errorf("gpu: snapshot: %w", err)
	}
	state := migconfig.NodeState{GPUs: make([]migconfig.GPUState, 0, count)}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return migconfig.NodeState{}, fmt.Errorf("gpu: snapshot: %w", err)
		}
		g, err := n.device(i)
		if err != nil {
			return migconfig.NodeState{}, fmt.Errorf("gpu: snapshot: %w", err)
		}
		gs, err := n.readGPU(g, nil)
		if err != nil {
			return migconfig.NodeState{}, fmt.Errorf("gpu: snapshot: %w", err)
		}
		state.GPUs = append(state.GPUs, gs)
	}
	return state, nil
}

// readGPU reads one GPU's state. When migMemory is not nil, each MIG
// device's memory is added to it by UUID.
func (n *Node) readGPU(g *gpuDevice, migMemory map[string]MemoryUse) (migconfig.GPUState, error) {
	gs := migconfig.GPUState{
		Index:       g.index,
		UUID:        g.uuid,
		Name:        g.name,
		PCIBusID:    busID(g.pci),
		DeviceID:    g.pci.PciDeviceId,
		SubsystemID: g.pci.PciSubSystemId,
		MemoryMiB:   g.memoryMiB(),
	}
	if g.model != nil {
		gs.Model = g.model.Key
	}
	current, pending, ret := g.dev.GetMigMode()
	switch ret {
	case nvml.SUCCESS:
		gs.MigCapable = true
		gs.Mig = migconfig.MigMode{Current: current == nvml.DEVICE_MIG_ENABLE, Pending: pending == nvml.DEVICE_MIG_ENABLE}
	case nvml.ERROR_NOT_SUPPORTED:
		gs.Model = "" // GPUState.Model is empty for GPUs without MIG
	default:
		return gs, fmt.Errorf("%s: %w", g.label(), callErr("GetMigMode", ret))
	}

	var migPIDs map[uint32]bool
	if gs.Mig.Current {
		instances, err := n.readInstances(g)
		if err != nil {
			return gs, err
		}
		devices, err := readMigDevices(g)
		if err != nil {
			return gs, err
		}
		migPIDs = map[uint32]bool{}
		for i := range instances {
			in := &instances[i]
			for j := range in.ComputeInstances {
				ci := &in.ComputeInstances[j]
				md, ok := devices[giCI{in.GPUInstanceID, ci.ID}]
				if !ok {
					continue
				}
				ci.UUID, ci.MemoryMiB, ci.Processes = md.uuid, int(md.mem.Total>>20), md.pids
				if migMemory != nil && md.memKnown {
					migMemory[md.uuid] = md.mem
				}
				for _, pid := range md.pids {
					migPIDs[pid] = true
				}
				if len(md.pids) > 0 {
					in.Busy = true
				}
			}
		}
		gs.Instances = instances
	}

	procs, ret := g.dev.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED {
		return gs, fmt.Errorf("%s: %w", g.label(), callErr("GetComputeRunningProcesses", ret))
	}
	for _, p := range procs {
		if !migPIDs[p.Pid] && !slices.Contains(gs.Processes, p.Pid) {
			gs.Processes = append(gs.Processes, p.Pid)
		}
	}
	slices.Sort(gs.Processes)
	return gs, nil
}

// readInstances lists the GPU's GPU instances and their compute instances,
// sorted by placement. Every profile index NVML supports is probed, so
// instances of profiles the catalog lacks are seen too.
func (n *Node) readInstances(g *gpuDevice) ([]migconfig.Instance, error) {
	var out []migconfig.Instance
	seen := map[uint32]bool{}
	for idx := range int(migconfig.ProfileIndexCount) {
		info, ret := g.dev.GetGpuInstanceProfileInfo(idx)
		if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: profile index %d: %w", g.label(), idx, callErr("GetGpuInstanceProfileInfo", ret))
		}
		if seen[info.Id] {
			continue
		}
		seen[info.Id] = true
		gis, ret := g.dev.GetGpuInstances(&info)
		if ret == nvml.ERROR_NOT_FOUND {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: profile ID %d: %w", g.label(), info.Id, callErr("GetGpuInstances", ret))
		}
		for _, gi := range gis {
			in, err := readInstance(g, gi, int(info.SliceCount))
			if err != nil {
				return nil, err
			}
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b migconfig.Instance) int {
		if a.Placement.Start != b.Placement.Start {
			return a.Placement.Start - b.Placement.Start
		}
		return a.GPUInstanceID - b.GPUInstanceID
	})
	return out, nil
}

// readInstance reads one GPU instance of g compute slices and its compute
// instances.
func readInstance(g *gpuDevice, gi nvml.GpuInstance, computeSlices int) (migconfig.Instance, error) {
	info, ret := gi.GetInfo()
	if ret != nvml.SUCCESS {
		return migconfig.Instance{}, fmt.Errorf("%s: %w", g.label(), callErr("GpuInstance.GetInfo", ret))
	}
	in := migconfig.Instance{
		Profile:       migconfig.ProfileID(info.ProfileId),
		Placement:     migconfig.Placement{Start: int(info.Placement.Start), Size: int(info.Placement.Size)},
		GPUInstanceID: int(info.Id),
	}
	cis, err := computeInstances(gi)
	if err != nil {
		return in, fmt.Errorf("%s: GI %d: %w", g.label(), info.Id, err)
	}
	for _, c := range cis {
		in.ComputeInstances = append(in.ComputeInstances, c.ComputeInstance)
	}
	slices.SortFunc(in.ComputeInstances, func(a, b migconfig.ComputeInstance) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return a.ID - b.ID
	})
	in.Compute = computeSpec(in.ComputeInstances, computeSlices)
	return in, nil
}

// observedCI is a compute instance with its handle.
type observedCI struct {
	migconfig.ComputeInstance
	handle nvml.ComputeInstance
}

// computeInstances lists a GPU instance's compute instances over every CI
// profile NVML supports for it.
func computeInstances(gi nvml.GpuInstance) ([]observedCI, error) {
	var out []observedCI
	seen := map[uint32]bool{}
	for idx := range nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
		pinfo, ret := gi.GetComputeInstanceProfileInfo(idx, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("CI profile index %d: %w", idx, callErr("GetComputeInstanceProfileInfo", ret))
		}
		if seen[pinfo.Id] {
			continue
		}
		seen[pinfo.Id] = true
		cis, ret := gi.GetComputeInstances(&pinfo)
		if ret == nvml.ERROR_NOT_FOUND {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("CI profile ID %d: %w", pinfo.Id, callErr("GetComputeInstances", ret))
		}
		for _, ci := range cis {
			cinfo, ret := ci.GetInfo()
			if ret != nvml.SUCCESS {
				return nil, fmt.Errorf("CI profile ID %d: %w", pinfo.Id, callErr("ComputeInstance.GetInfo", ret))
			}
			out = append(out, observedCI{
				ComputeInstance: migconfig.ComputeInstance{
					ID:     int(cinfo.Id),
					Slices: int(pinfo.SliceCount),
					Start:  int(cinfo.Placement.Start),
				},
				handle: ci,
			})
		}
	}
	return out, nil
}

// computeSpec summarizes observed compute instances as a Compute spec: the
// zero value for one CI spanning the GI (or none at all), Slices and Count
// when every CI has the same size, and Count alone (which no valid desired
// spec equals) for a mixed split.
func computeSpec(cis []migconfig.ComputeInstance, g int) migconfig.Compute {
	if len(cis) == 0 || (len(cis) == 1 && cis[0].Slices == g) {
		return migconfig.Compute{}
	}
	c := migconfig.Compute{Slices: cis[0].Slices, Count: len(cis)}
	for _, ci := range cis[1:] {
		if ci.Slices != c.Slices {
			return migconfig.Compute{Count: len(cis)}
		}
	}
	return c
}

// giCI identifies a MIG device on its GPU.
type giCI struct{ gi, ci int }

// migDevice is what a MIG device handle reports.
type migDevice struct {
	uuid string
	// mem is the MIG device's memory; memKnown is false when NVML does
	// not report it.
	mem      MemoryUse
	memKnown bool
	pids     []uint32
}

// readMigDevices walks the GPU's MIG device handles, skipping holes, and
// reads each one's UUID, memory and processes.
func readMigDevices(g *gpuDevice) (map[giCI]migDevice, error) {
	out := map[giCI]migDevice{}
	maxCount, ret := g.dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%s: %w", g.label(), callErr("GetMaxMigDeviceCount", ret))
	}
	for i := range maxCount {
		mig, ret := g.dev.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: MIG device %d: %w", g.label(), i, callErr("GetMigDeviceHandleByIndex", ret))
		}
		giID, ret := mig.GetGpuInstanceId()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: MIG device %d: %w", g.label(), i, callErr("GetGpuInstanceId", ret))
		}
		ciID, ret := mig.GetComputeInstanceId()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: MIG device %d: %w", g.label(), i, callErr("GetComputeInstanceId", ret))
		}
		var md migDevice
		if md.uuid, ret = mig.GetUUID(); ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: MIG device %d: %w", g.label(), i, callErr("GetUUID", ret))
		}
		mem, ret := mig.GetMemoryInfo()
		switch ret {
		case nvml.SUCCESS:
			md.mem, md.memKnown = MemoryUse{Total: mem.Total, Used: mem.Used}, true
		case nvml.ERROR_NOT_SUPPORTED:
		default:
			return nil, fmt.Errorf("%s: MIG device %s: %w", g.label(), md.uuid, callErr("GetMemoryInfo", ret))
		}
		// Processes decide whether an instance may be destroyed: an
		// unreadable list is an error, never "no processes".
		procs, ret := mig.GetComputeRunningProcesses()
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: MIG device %s: %w", g.label(), md.uuid, callErr("GetComputeRunningProcesses", ret))
		}
		for _, p := range procs {
			if !slices.Contains(md.pids, p.Pid) {
				md.pids = append(md.pids, p.Pid)
			}
		}
		slices.Sort(md.pids)
		out[giCI{giID, ciID}] = md
	}
	return out, nil
}
