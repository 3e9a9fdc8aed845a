package sim

import (
	"sort"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/tessera-gpu/tessera/migconfig"
)

// gpuInstance is a simulated GPU instance and its handle. Fields are
// guarded by the node's lock.
type gpuInstance struct {
	*mock.GpuInstance
	g         *gpu
	id        int
	profile   *migconfig.Profile
	placement migconfig.Placement
	cis       map[int]*computeInstance
	destroyed bool
}

var _ nvml.GpuInstance = (*gpuInstance)(nil)

func newGpuInstance(g *gpu, id int, p *migconfig.Profile, pl migconfig.Placement) *gpuInstance {
	gi := &gpuInstance{
		GpuInstance: &mock.GpuInstance{},
		g:           g,
		id:          id,
		profile:     p,
		placement:   pl,
		cis:         map[int]*computeInstance{},
	}
	installStubs(gi.GpuInstance, g.node, kindInstance, "GpuInstance", func() int { return g.index })
	return gi
}

// lock takes the node lock, records the call as "GpuInstance"+name and
// reports ERROR_INVALID_ARGUMENT for a destroyed instance's handle.
func (gi *gpuInstance) lock(name string) nvml.Return {
	gi.g.node.mu.Lock()
	if r := gi.g.node.enter(kindInstance, "GpuInstance"+name, gi.g.index); r != nvml.SUCCESS {
		return r
	}
	if gi.destroyed {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return nvml.SUCCESS
}

func (gi *gpuInstance) unlock() { gi.g.node.mu.Unlock() }

// GetInfo returns the instance's device, GI ID, real profile ID and
// placement.
func (gi *gpuInstance) GetInfo() (nvml.GpuInstanceInfo, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetInfo"); r != nvml.SUCCESS {
		return nvml.GpuInstanceInfo{}, r
	}
	return nvml.GpuInstanceInfo{
		Device:    gi.g.handle,
		Id:        uint32(gi.id),
		ProfileId: uint32(gi.profile.ID),
		Placement: nvml.GpuInstancePlacement{Start: uint32(gi.placement.Start), Size: uint32(gi.placement.Size)},
	}, nvml.SUCCESS
}

// ciSlices returns the compute slices of CI profile index idx
// (COMPUTE_INSTANCE_PROFILE_*), or 0 when the simulation does not know it.
func ciSlices(idx int) int {
	switch idx {
	case nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE:
		return 1
	case nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE:
		return 2
	case nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE:
		return 3
	case nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE:
		return 4
	case nvml.COMPUTE_INSTANCE_PROFILE_7_SLICE:
		return 7
	case nvml.COMPUTE_INSTANCE_PROFILE_8_SLICE:
		return 8
	case nvml.COMPUTE_INSTANCE_PROFILE_6_SLICE:
		return 6
	}
	return 0
}

// ciValid reports whether a C-slice compute instance exists in a G-slice
// GPU instance: C ≤ G and, when C < G, 2C ≤ G+1 (no 3c in a 4g, no 5c or
// 6c in a 7g), as migconfig assumes.
func ciValid(c, g int) bool {
	return c >= 1 && c <= g && (c == g || 2*c <= g+1)
}

// ciPlacements returns the compute-slice placements of a C-slice CI in a
// G-slice GI: starts aligned to the next power of two of C (3c in a 7g sits
// at 0 and 4).
func ciPlacements(c, g int) []migconfig.Placement {
	align := 1
	for align < c {
		align *= 2
	}
	var out []migconfig.Placement
	for s := 0; s+c <= g; s += align {
		out = append(out, migconfig.Placement{Start: s, Size: c})
	}
	return out
}

// ciProfile resolves a CI profile index for this GI: the slice count, or a
// return code.
func (gi *gpuInstance) ciProfile(idx int) (int, nvml.Return) {
	if idx < 0 || idx >= nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	c := ciSlices(idx)
	if c == 0 || !ciValid(c, gi.profile.ComputeSlices) {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return c, nvml.SUCCESS
}

// ciInfo builds NVML's CI profile info; CIs share the GI's engines.
func (gi *gpuInstance) ciInfo(idx, c int) nvml.ComputeInstanceProfileInfo {
	g := gi.profile.ComputeSlices
	p := gi.profile
	return nvml.ComputeInstanceProfileInfo{
		Id:                    uint32(idx),
		SliceCount:            uint32(c),
		InstanceCount:         uint32(g / c),
		MultiprocessorCount:   uint32(p.Multiprocessors * c / g),
		SharedCopyEngineCount: uint32(p.CopyEngines),
		SharedDecoderCount:    uint32(p.Decoders),
		SharedEncoderCount:    uint32(p.Encoders),
		SharedJpegCount:       uint32(p.JPEGs),
		SharedOfaCount:        uint32(p.OFAs),
	}
}

// GetComputeInstanceProfileInfo returns the CI profile with index
// ciProfile (COMPUTE_INSTANCE_PROFILE_*, whose ID equals the index) for
// engine profile COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED:
// ERROR_INVALID_ARGUMENT out of range, ERROR_NOT_SUPPORTED for a CI size
// the GI cannot hold.
func (gi *gpuInstance) GetComputeInstanceProfileInfo(ciProfile, engProfile int) (nvml.ComputeInstanceProfileInfo, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetComputeInstanceProfileInfo"); r != nvml.SUCCESS {
		return nvml.ComputeInstanceProfileInfo{}, r
	}
	if engProfile < 0 || engProfile >= nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT {
		return nvml.ComputeInstanceProfileInfo{}, nvml.ERROR_INVALID_ARGUMENT
	}
	c, r := gi.ciProfile(ciProfile)
	if r != nvml.SUCCESS {
		return nvml.ComputeInstanceProfileInfo{}, r
	}
	return gi.ciInfo(ciProfile, c), nvml.SUCCESS
}

// GetComputeInstanceProfileInfoV panics, for the reason given at the
// device's GetGpuInstanceProfileInfoV.
func (gi *gpuInstance) GetComputeInstanceProfileInfoV(ciProfile, engProfile int) nvml.ComputeInstanceProfileInfoHandler {
	gi.lock("GetComputeInstanceProfileInfoV")
	gi.unlock()
	panic("sim: GpuInstance.GetComputeInstanceProfileInfoV cannot be simulated: its handler calls libnvidia-ml directly; use GetComputeInstanceProfileInfo")
}

// ciByInfo resolves a CI profile info by its ID.
func (gi *gpuInstance) ciByInfo(info *nvml.ComputeInstanceProfileInfo) (int, int, nvml.Return) {
	if info == nil {
		return 0, 0, nvml.ERROR_INVALID_ARGUMENT
	}
	c, r := gi.ciProfile(int(info.Id))
	return int(info.Id), c, r
}

// GetComputeInstancePossiblePlacements returns the compute-slice placements
// of the CI profile with ID info.Id.
func (gi *gpuInstance) GetComputeInstancePossiblePlacements(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstancePlacement, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetComputeInstancePossiblePlacements"); r != nvml.SUCCESS {
		return nil, r
	}
	_, c, r := gi.ciByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	var out []nvml.ComputeInstancePlacement
	for _, pl := range ciPlacements(c, gi.profile.ComputeSlices) {
		out = append(out, nvml.ComputeInstancePlacement{Start: uint32(pl.Start), Size: uint32(pl.Size)})
	}
	return out, nvml.SUCCESS
}

func (gi *gpuInstance) usedCompute() uint16 {
	var m uint16
	for _, ci := range gi.cis {
		m |= ci.placement.Mask()
	}
	return m
}

func (gi *gpuInstance) countCI(idx int) int {
	n := 0
	for _, ci := range gi.cis {
		if ci.profileIdx == idx {
			n++
		}
	}
	return n
}

// ciRemaining returns how many more CIs of index idx and size c fit.
func (gi *gpuInstance) ciRemaining(idx, c int) int {
	g := gi.profile.ComputeSlices
	used := gi.usedCompute()
	fit := 0
	for _, pl := range ciPlacements(c, g) {
		if pl.Mask()&used == 0 {
			used |= pl.Mask()
			fit++
		}
	}
	return max(min(fit, g/c-gi.countCI(idx)), 0)
}

// GetComputeInstanceRemainingCapacity returns how many more CIs of the
// profile with ID info.Id fit in the GI.
func (gi *gpuInstance) GetComputeInstanceRemainingCapacity(info *nvml.ComputeInstanceProfileInfo) (int, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetComputeInstanceRemainingCapacity"); r != nvml.SUCCESS {
		return 0, r
	}
	idx, c, r := gi.ciByInfo(info)
	if r != nvml.SUCCESS {
		return 0, r
	}
	return gi.ciRemaining(idx, c), nvml.SUCCESS
}

// CreateComputeInstance creates a CI of the profile with ID info.Id at the
// lowest free compute slice: ERROR_INSUFFICIENT_RESOURCES when none fits.
func (gi *gpuInstance) CreateComputeInstance(info *nvml.ComputeInstanceProfileInfo) (nvml.ComputeInstance, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("CreateComputeInstance"); r != nvml.SUCCESS {
		return nil, r
	}
	idx, c, r := gi.ciByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	if gi.ciRemaining(idx, c) == 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	used := gi.usedCompute()
	for _, pl := range ciPlacements(c, gi.profile.ComputeSlices) {
		if pl.Mask()&used == 0 {
			return gi.createCI(idx, pl)
		}
	}
	return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
}

// CreateComputeInstanceWithPlacement creates a CI of the profile with ID
// info.Id at a compute-slice placement: ERROR_INVALID_ARGUMENT for a
// placement the profile does not have, ERROR_INSUFFICIENT_RESOURCES on
// overlap or when the profile's count is reached.
func (gi *gpuInstance) CreateComputeInstanceWithPlacement(info *nvml.ComputeInstanceProfileInfo, placement *nvml.ComputeInstancePlacement) (nvml.ComputeInstance, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("CreateComputeInstanceWithPlacement"); r != nvml.SUCCESS {
		return nil, r
	}
	if placement == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	idx, c, r := gi.ciByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	pl := migconfig.Placement{Start: int(placement.Start), Size: int(placement.Size)}
	valid := false
	for _, q := range ciPlacements(c, gi.profile.ComputeSlices) {
		valid = valid || q == pl
	}
	if !valid {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	if pl.Mask()&gi.usedCompute() != 0 || gi.countCI(idx) >= gi.profile.ComputeSlices/c {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	return gi.createCI(idx, pl)
}

// createCI adds a compute instance with the lowest free CI ID and a new
// MIG device with a new UUID.
func (gi *gpuInstance) createCI(idx int, pl migconfig.Placement) (nvml.ComputeInstance, nvml.Return) {
	g := gi.g
	slot := g.freeMigSlot()
	if slot < 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	id := 0
	for gi.cis[id] != nil {
		id++
	}
	g.node.migSerial++
	ci := newComputeInstance(gi, id, idx, pl, migUUID(g.node.opts.seed, g.index, g.node.migSerial), slot)
	gi.cis[id] = ci
	g.migSlots[slot] = ci
	return ci, nvml.SUCCESS
}

func (gi *gpuInstance) sortedCIs() []*computeInstance {
	out := make([]*computeInstance, 0, len(gi.cis))
	for _, ci := range gi.cis {
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// GetComputeInstances returns the CIs of the profile with ID info.Id, by
// CI ID.
func (gi *gpuInstance) GetComputeInstances(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstance, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetComputeInstances"); r != nvml.SUCCESS {
		return nil, r
	}
	idx, _, r := gi.ciByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	out := []nvml.ComputeInstance{}
	for _, ci := range gi.sortedCIs() {
		if ci.profileIdx == idx {
			out = append(out, ci)
		}
	}
	return out, nvml.SUCCESS
}

// GetComputeInstanceById returns the CI with the given CI ID:
// ERROR_NOT_FOUND when there is none.
func (gi *gpuInstance) GetComputeInstanceById(id int) (nvml.ComputeInstance, nvml.Return) {
	defer gi.unlock()
	if r := gi.lock("GetComputeInstanceById"); r != nvml.SUCCESS {
		return nil, r
	}
	ci, ok := gi.cis[id]
	if !ok {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return ci, nvml.SUCCESS
}

// Destroy destroys the GPU instance: ERROR_IN_USE while it has compute
// instances (or processes, which run on them); ERROR_INVALID_ARGUMENT for
// a handle already destroyed.
func (gi *gpuInstance) Destroy() nvml.Return {
	defer gi.unlock()
	if r := gi.lock("Destroy"); r != nvml.SUCCESS {
		return r
	}
	if len(gi.cis) > 0 {
		return nvml.ERROR_IN_USE
	}
	delete(gi.g.gis, gi.id)
	gi.destroyed = true
	gi.g.node.destroyed++
	return nvml.SUCCESS
}

// computeInstance is a simulated compute instance, its handle and its MIG
// device.
type computeInstance struct {
	*mock.ComputeInstance
	gi         *gpuInstance
	id         int
	profileIdx int
	placement  migconfig.Placement
	uuid       string
	slot       int
	destroyed  bool
	mig        *migDevice
}

var _ nvml.ComputeInstance = (*computeInstance)(nil)

func newComputeInstance(gi *gpuInstance, id, idx int, pl migconfig.Placement, uuid string, slot int) *computeInstance {
	ci := &computeInstance{
		ComputeInstance: &mock.ComputeInstance{},
		gi:              gi,
		id:              id,
		profileIdx:      idx,
		placement:       pl,
		uuid:            uuid,
		slot:            slot,
	}
	n := gi.g.node
	installStubs(ci.ComputeInstance, n, kindInstance, "ComputeInstance", func() int { return gi.g.index })
	ci.mig = &migDevice{Device: &mock.Device{}, ci: ci}
	installStubs(ci.mig.Device, n, kindDevice, "", func() int { return gi.g.index })
	return ci
}

func (ci *computeInstance) lock(name string) nvml.Return {
	n := ci.gi.g.node
	n.mu.Lock()
	if r := n.enter(kindInstance, "ComputeInstance"+name, ci.gi.g.index); r != nvml.SUCCESS {
		return r
	}
	if ci.destroyed {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return nvml.SUCCESS
}

func (ci *computeInstance) unlock() { ci.gi.g.node.mu.Unlock() }

// GetInfo returns the CI's device, GPU instance, CI ID, profile ID (the CI
// profile index) and compute-slice placement.
func (ci *computeInstance) GetInfo() (nvml.ComputeInstanceInfo, nvml.Return) {
	defer ci.unlock()
	if r := ci.lock("GetInfo"); r != nvml.SUCCESS {
		return nvml.ComputeInstanceInfo{}, r
	}
	return nvml.ComputeInstanceInfo{
		Device:      ci.gi.g.handle,
		GpuInstance: ci.gi,
		Id:          uint32(ci.id),
		ProfileId:   uint32(ci.profileIdx),
		Placement:   nvml.ComputeInstancePlacement{Start: uint32(ci.placement.Start), Size: uint32(ci.placement.Size)},
	}, nvml.SUCCESS
}

// Destroy destroys the compute instance and its MIG device: ERROR_IN_USE
// while processes run on it.
func (ci *computeInstance) Destroy() nvml.Return {
	defer ci.unlock()
	if r := ci.lock("Destroy"); r != nvml.SUCCESS {
		return r
	}
	if len(ci.processes()) > 0 {
		return nvml.ERROR_IN_USE
	}
	delete(ci.gi.cis, ci.id)
	ci.gi.g.migSlots[ci.slot] = nil
	ci.destroyed = true
	return nvml.SUCCESS
}

func (ci *computeInstance) processes() []*process {
	var out []*process
	for _, p := range ci.gi.g.node.procs {
		if p.ci == ci {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// name returns the MIG device's profile name: "3g.20gb", or "1c.3g.20gb"
// for a CI smaller than its GI.
func (ci *computeInstance) name() string {
	p := ci.gi.profile
	if ci.placement.Size == p.ComputeSlices {
		return p.Name
	}
	return strconv.Itoa(ci.placement.Size) + "c." + p.Name
}
