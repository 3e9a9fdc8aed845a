package sim

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/tessera-gpu/tessera/migconfig"
)

// device is the handle of a physical GPU.
type device struct {
	*mock.Device
	g *gpu
}

var _ nvml.Device = (*device)(nil)

// lock takes the node lock and records the call; the caller must unlock
// with d.g.node.mu.Unlock even when the returned code is not SUCCESS.
func (d *device) lock(name string) nvml.Return {
	d.g.node.mu.Lock()
	return d.g.node.enter(kindDevice, name, d.g.index)
}

func (d *device) unlock() { d.g.node.mu.Unlock() }

// GetIndex returns the GPU's NVML index.
func (d *device) GetIndex() (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetIndex"); r != nvml.SUCCESS {
		return 0, r
	}
	return d.g.index, nvml.SUCCESS
}

// GetMinorNumber returns the /dev/nvidia<minor> number, the index here.
func (d *device) GetMinorNumber() (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMinorNumber"); r != nvml.SUCCESS {
		return 0, r
	}
	return d.g.index, nvml.SUCCESS
}

// GetUUID returns "GPU-<uuid>".
func (d *device) GetUUID() (string, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetUUID"); r != nvml.SUCCESS {
		return "", r
	}
	return d.g.uuid, nvml.SUCCESS
}

// GetName returns the model's first product name.
func (d *device) GetName() (string, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetName"); r != nvml.SUCCESS {
		return "", r
	}
	return productName(d.g.model), nvml.SUCCESS
}

func productName(m *migconfig.GPUModel) string {
	if len(m.ProductNames) > 0 {
		return m.ProductNames[0]
	}
	return "NVIDIA " + m.Name
}

// GetBrand returns BRAND_NVIDIA.
func (d *device) GetBrand() (nvml.BrandType, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetBrand"); r != nvml.SUCCESS {
		return 0, r
	}
	return nvml.BRAND_NVIDIA, nvml.SUCCESS
}

// GetPciInfo returns the GPU's PCI location and IDs.
func (d *device) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetPciInfo"); r != nvml.SUCCESS {
		return nvml.PciInfo{}, r
	}
	g := d.g
	info := nvml.PciInfo{
		Domain:         0,
		Bus:            g.bus(),
		Device:         0,
		PciSubSystemId: g.subsystemID(),
	}
	if len(g.model.DeviceIDs) > 0 {
		info.PciDeviceId = g.model.DeviceIDs[0]
	}
	copyCString(info.BusId[:], g.busID())
	copyCString(info.BusIdLegacy[:], g.busIDLegacy())
	return info, nvml.SUCCESS
}

func copyCString(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

// GetMemoryInfo returns the GPU's memory; each process uses ProcessMemoryMiB.
func (d *device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMemoryInfo"); r != nvml.SUCCESS {
		return nvml.Memory{}, r
	}
	total, used := d.g.memory()
	return nvml.Memory{Total: total, Used: used, Free: total - used}, nvml.SUCCESS
}

// GetMemoryInfo_v2 is GetMemoryInfo with a zero Reserved field.
func (d *device) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMemoryInfo_v2"); r != nvml.SUCCESS {
		return nvml.Memory_v2{}, r
	}
	total, used := d.g.memory()
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: total, Used: used, Free: total - used}, nvml.SUCCESS
}

func (g *gpu) memory() (total, used uint64) {
	total = uint64(g.model.MemoryMiB) << 20
	for _, p := range g.processes() {
		used += uint64(p.mib) << 20
	}
	return total, min(used, total)
}

// GetArchitecture returns the model's architecture as NVML's constant.
func (d *device) GetArchitecture() (nvml.DeviceArchitecture, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetArchitecture"); r != nvml.SUCCESS {
		return 0, r
	}
	return d.g.arch(), nvml.SUCCESS
}

func (g *gpu) arch() nvml.DeviceArchitecture {
	switch g.model.Architecture {
	case migconfig.Ampere:
		return nvml.DEVICE_ARCH_AMPERE
	case migconfig.Hopper:
		return nvml.DEVICE_ARCH_HOPPER
	case migconfig.Blackwell:
		return nvml.DEVICE_ARCH_BLACKWELL
	}
	return nvml.DEVICE_ARCH_UNKNOWN
}

// GetCudaComputeCapability returns 8.0 (Ampere), 9.0 (Hopper) or 10.0
// (Blackwell).
func (d *device) GetCudaComputeCapability() (int, int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetCudaComputeCapability"); r != nvml.SUCCESS {
		return 0, 0, r
	}
	switch d.g.model.Architecture {
	case migconfig.Hopper:
		return 9, 0, nvml.SUCCESS
	case migconfig.Blackwell:
		return 10, 0, nvml.SUCCESS
	}
	return 8, 0, nvml.SUCCESS
}

// GetMigMode returns the current and pending MIG mode
// (DEVICE_MIG_ENABLE/DISABLE); ERROR_NOT_SUPPORTED on a GPU without MIG.
func (d *device) GetMigMode() (int, int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMigMode"); r != nvml.SUCCESS {
		return 0, 0, r
	}
	if !d.g.migCapable() {
		return 0, 0, nvml.ERROR_NOT_SUPPORTED
	}
	return migInt(d.g.migCurrent), migInt(d.g.migPending), nvml.SUCCESS
}

func migInt(on bool) int {
	if on {
		return nvml.DEVICE_MIG_ENABLE
	}
	return nvml.DEVICE_MIG_DISABLE
}

// SetMigMode requests a MIG mode and returns (activationStatus, ret) as
// go-nvml does. ret is the outcome of the request: ERROR_IN_USE when
// disabling with GPU instances present, or on Hopper+ when processes run;
// when ret is not SUCCESS, activationStatus is SUCCESS because NVML never
// wrote it. On Ampere a successful request only sets the pending mode and
// activationStatus tells what happened to the activation:
// ERROR_RESET_REQUIRED (the GPU must be reset, see Node.ResetGPU),
// ERROR_IN_USE (processes hold the GPU), or SUCCESS when
// WithAmpereAutoReset reset an idle GPU at once. On Hopper and later the
// mode changes at once.
func (d *device) SetMigMode(mode int) (nvml.Return, nvml.Return) {
	defer d.unlock()
	if r := d.lock("SetMigMode"); r != nvml.SUCCESS {
		return nvml.SUCCESS, r
	}
	g := d.g
	if !g.migCapable() {
		return nvml.SUCCESS, nvml.ERROR_NOT_SUPPORTED
	}
	if mode != nvml.DEVICE_MIG_ENABLE && mode != nvml.DEVICE_MIG_DISABLE {
		return nvml.SUCCESS, nvml.ERROR_INVALID_ARGUMENT
	}
	want := mode == nvml.DEVICE_MIG_ENABLE
	if !want && len(g.gis) > 0 {
		return nvml.SUCCESS, nvml.ERROR_IN_USE
	}
	if want == g.migCurrent && want == g.migPending {
		return nvml.SUCCESS, nvml.SUCCESS
	}
	busy := len(g.pids()) > 0
	if !g.model.Architecture.ModeChangeNeedsReset() {
		if busy {
			return nvml.SUCCESS, nvml.ERROR_IN_USE
		}
		g.migCurrent, g.migPending = want, want
		return nvml.SUCCESS, nvml.SUCCESS
	}
	g.migPending = want
	switch {
	case want == g.migCurrent:
		// Cancelled a pending change; nothing to activate.
		return nvml.SUCCESS, nvml.SUCCESS
	case busy:
		return nvml.ERROR_IN_USE, nvml.SUCCESS
	case g.node.opts.ampereAutoReset:
		g.wipe()
		g.migCurrent = want
		return nvml.SUCCESS, nvml.SUCCESS
	}
	return nvml.ERROR_RESET_REQUIRED, nvml.SUCCESS
}

// profileInfo converts a catalog profile to NVML's struct.
func profileInfo(p *migconfig.Profile) nvml.GpuInstanceProfileInfo {
	return nvml.GpuInstanceProfileInfo{
		Id:                  uint32(p.ID),
		SliceCount:          uint32(p.ComputeSlices),
		InstanceCount:       uint32(p.MaxCount),
		MultiprocessorCount: uint32(p.Multiprocessors),
		CopyEngineCount:     uint32(p.CopyEngines),
		DecoderCount:        uint32(p.Decoders),
		EncoderCount:        uint32(p.Encoders),
		JpegCount:           uint32(p.JPEGs),
		OfaCount:            uint32(p.OFAs),
		MemorySizeMB:        uint64(p.MemoryMiB),
	}
}

// GetGpuInstanceProfileInfo returns the profile with NVML profile index
// (GPU_INSTANCE_PROFILE_*): ERROR_INVALID_ARGUMENT outside
// 0..GPU_INSTANCE_PROFILE_COUNT-1, ERROR_NOT_SUPPORTED for an index the
// model lacks (or, with WithProfilesNeedMig, while MIG is disabled).
func (d *device) GetGpuInstanceProfileInfo(index int) (nvml.GpuInstanceProfileInfo, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstanceProfileInfo"); r != nvml.SUCCESS {
		return nvml.GpuInstanceProfileInfo{}, r
	}
	if index < 0 || index >= nvml.GPU_INSTANCE_PROFILE_COUNT {
		return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_INVALID_ARGUMENT
	}
	if !d.g.migCapable() || (d.g.node.opts.profilesNeedMig && !d.g.migCurrent) {
		return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
	}
	p, ok := d.g.model.ProfileByIndex(migconfig.ProfileIndex(index))
	if !ok {
		return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
	}
	return profileInfo(p), nvml.SUCCESS
}

// GetGpuInstanceProfileInfoV panics: go-nvml's GpuInstanceProfileInfoHandler
// has unexported fields and its V1/V2/V3 methods call libnvidia-ml
// directly, so no simulation can serve it (calling it would crash the
// process without the library). Use GetGpuInstanceProfileInfo; names come
// from the catalog. Extensions().LookupSymbol reports the symbol missing.
func (d *device) GetGpuInstanceProfileInfoV(index int) nvml.GpuInstanceProfileInfoHandler {
	d.lock("GetGpuInstanceProfileInfoV")
	d.unlock()
	panic("sim: Device.GetGpuInstanceProfileInfoV cannot be simulated: its handler calls libnvidia-ml directly; use GetGpuInstanceProfileInfo")
}

// GetGpuInstanceProfileInfoByIdV panics, for the reason given at
// GetGpuInstanceProfileInfoV.
func (d *device) GetGpuInstanceProfileInfoByIdV(id int) nvml.GpuInstanceProfileInfoByIdHandler {
	d.lock("GetGpuInstanceProfileInfoByIdV")
	d.unlock()
	panic("sim: Device.GetGpuInstanceProfileInfoByIdV cannot be simulated: its handler calls libnvidia-ml directly; use GetGpuInstanceProfileInfo")
}

// profileByInfo looks a profile up by info.Id, as the driver does (go-nvml
// passes info.Id, never an index).
func (g *gpu) profileByInfo(info *nvml.GpuInstanceProfileInfo) (*migconfig.Profile, nvml.Return) {
	if info == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	p, ok := g.model.ProfileByID(migconfig.ProfileID(info.Id))
	if !ok {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	return p, nvml.SUCCESS
}

// GetGpuInstancePossiblePlacements returns every placement of the profile
// with ID info.Id, whatever the MIG mode (as the _v2 call go-nvml binds).
func (d *device) GetGpuInstancePossiblePlacements(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstancePlacement, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstancePossiblePlacements"); r != nvml.SUCCESS {
		return nil, r
	}
	p, r := d.g.profileByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	out := make([]nvml.GpuInstancePlacement, len(p.Placements))
	for i, pl := range p.Placements {
		out[i] = nvml.GpuInstancePlacement{Start: uint32(pl.Start), Size: uint32(pl.Size)}
	}
	return out, nvml.SUCCESS
}

// GetGpuInstanceRemainingCapacity returns how many more instances of the
// profile with ID info.Id fit now; ERROR_NOT_SUPPORTED with MIG disabled.
func (d *device) GetGpuInstanceRemainingCapacity(info *nvml.GpuInstanceProfileInfo) (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstanceRemainingCapacity"); r != nvml.SUCCESS {
		return 0, r
	}
	p, r := d.g.profileByInfo(info)
	if r != nvml.SUCCESS {
		return 0, r
	}
	if !d.g.migCurrent {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return d.g.remaining(p), nvml.SUCCESS
}

// CreateGpuInstance creates an instance of the profile with ID info.Id
// where the driver's placer would: at the highest free start. The placer is
// order-dependent, as the real one: 1g,1g,2g,3g fails where 3g,1g,2g,1g
// fits.
func (d *device) CreateGpuInstance(info *nvml.GpuInstanceProfileInfo) (nvml.GpuInstance, nvml.Return) {
	defer d.unlock()
	if r := d.lock("CreateGpuInstance"); r != nvml.SUCCESS {
		return nil, r
	}
	g := d.g
	if info == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	if !g.migCurrent {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	p, r := g.profileByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	if g.headroom(p) == 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	used := g.occupied()
	for i := len(p.Placements) - 1; i >= 0; i-- {
		if pl := p.Placements[i]; pl.Mask()&used == 0 {
			return g.createGI(p, pl)
		}
	}
	return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
}

// CreateGpuInstanceWithPlacement creates an instance of the profile with ID
// info.Id at the given placement: ERROR_NOT_SUPPORTED with MIG not
// currently enabled, ERROR_INVALID_ARGUMENT for a placement that is not one
// of the profile's, ERROR_INSUFFICIENT_RESOURCES on overlap or when the
// profile's count or the GPU's engines are exhausted.
func (d *device) CreateGpuInstanceWithPlacement(info *nvml.GpuInstanceProfileInfo, placement *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
	defer d.unlock()
	if r := d.lock("CreateGpuInstanceWithPlacement"); r != nvml.SUCCESS {
		return nil, r
	}
	g := d.g
	if info == nil || placement == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	if !g.migCurrent {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	p, r := g.profileByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	pl := migconfig.Placement{Start: int(placement.Start), Size: int(placement.Size)}
	if !p.ValidPlacement(pl) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	if pl.Mask()&g.occupied() != 0 || g.headroom(p) == 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	return g.createGI(p, pl)
}

// createGI adds a GPU instance; the caller has checked that it fits.
func (g *gpu) createGI(p *migconfig.Profile, pl migconfig.Placement) (nvml.GpuInstance, nvml.Return) {
	id := g.freeGIID()
	if id < 0 {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	gi := newGpuInstance(g, id, p, pl)
	g.gis[id] = gi
	return gi, nvml.SUCCESS
}

// GetGpuInstances returns the instances of the profile with ID info.Id, by
// GI ID; ERROR_NOT_SUPPORTED with MIG disabled.
func (d *device) GetGpuInstances(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstance, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstances"); r != nvml.SUCCESS {
		return nil, r
	}
	p, r := d.g.profileByInfo(info)
	if r != nvml.SUCCESS {
		return nil, r
	}
	if !d.g.migCurrent {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	out := []nvml.GpuInstance{}
	for _, gi := range d.g.sortedGIs() {
		if gi.profile.ID == p.ID {
			out = append(out, gi)
		}
	}
	return out, nvml.SUCCESS
}

// GetGpuInstanceById returns the GPU instance with NVML GI ID id:
// ERROR_NOT_FOUND when there is none.
func (d *device) GetGpuInstanceById(id int) (nvml.GpuInstance, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstanceById"); r != nvml.SUCCESS {
		return nil, r
	}
	if !d.g.migCurrent {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	gi, ok := d.g.gis[id]
	if !ok {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return gi, nvml.SUCCESS
}

// GetMaxMigDeviceCount returns 0 with MIG disabled, else the GPU's compute
// slices (7, or 4 on A30).
func (d *device) GetMaxMigDeviceCount() (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMaxMigDeviceCount"); r != nvml.SUCCESS {
		return 0, r
	}
	if !d.g.migCapable() {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	if !d.g.migCurrent {
		return 0, nvml.SUCCESS
	}
	return len(d.g.migSlots), nvml.SUCCESS
}

// GetMigDeviceHandleByIndex returns the MIG device at index i:
// ERROR_INVALID_ARGUMENT outside 0..GetMaxMigDeviceCount-1 and
// ERROR_NOT_FOUND at a hole (indices keep their device while others are
// destroyed).
func (d *device) GetMigDeviceHandleByIndex(i int) (nvml.Device, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMigDeviceHandleByIndex"); r != nvml.SUCCESS {
		return nil, r
	}
	if !d.g.migCapable() || !d.g.migCurrent {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	if i < 0 || i >= len(d.g.migSlots) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	ci := d.g.migSlots[i]
	if ci == nil {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return ci.mig, nvml.SUCCESS
}

// GetComputeRunningProcesses returns the processes on the GPU: with MIG
// enabled, those of every MIG device, with their GI and CI IDs; otherwise
// those on the whole GPU, whose GI and CI IDs are 0xFFFFFFFF as in NVML.
func (d *device) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetComputeRunningProcesses"); r != nvml.SUCCESS {
		return nil, r
	}
	return processInfos(d.g.processes()), nvml.SUCCESS
}

func processInfos(ps []*process) []nvml.ProcessInfo {
	out := make([]nvml.ProcessInfo, 0, len(ps))
	for _, p := range ps {
		info := nvml.ProcessInfo{Pid: p.pid, UsedGpuMemory: uint64(p.mib) << 20, GpuInstanceId: noID, ComputeInstanceId: noID}
		if p.ci != nil {
			info.GpuInstanceId = uint32(p.ci.gi.id)
			info.ComputeInstanceId = uint32(p.ci.id)
		}
		out = append(out, info)
	}
	return out
}

// noID is what NVML reports as the GI and CI ID of a process outside MIG.
const noID = 0xFFFFFFFF

// GetGraphicsRunningProcesses returns no processes: the simulation runs
// compute processes only.
func (d *device) GetGraphicsRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGraphicsRunningProcesses"); r != nvml.SUCCESS {
		return nil, r
	}
	return []nvml.ProcessInfo{}, nvml.SUCCESS
}

// GetMPSComputeRunningProcesses returns no processes.
func (d *device) GetMPSComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetMPSComputeRunningProcesses"); r != nvml.SUCCESS {
		return nil, r
	}
	return []nvml.ProcessInfo{}, nvml.SUCCESS
}

// IsMigDeviceHandle returns false: this is a physical GPU.
func (d *device) IsMigDeviceHandle() (bool, nvml.Return) {
	defer d.unlock()
	if r := d.lock("IsMigDeviceHandle"); r != nvml.SUCCESS {
		return false, r
	}
	return false, nvml.SUCCESS
}

// GetDeviceHandleFromMigDeviceHandle fails: this is not a MIG device.
func (d *device) GetDeviceHandleFromMigDeviceHandle() (nvml.Device, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetDeviceHandleFromMigDeviceHandle"); r != nvml.SUCCESS {
		return nil, r
	}
	return nil, nvml.ERROR_INVALID_ARGUMENT
}

// GetGpuInstanceId fails: this is not a MIG device.
func (d *device) GetGpuInstanceId() (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetGpuInstanceId"); r != nvml.SUCCESS {
		return 0, r
	}
	return 0, nvml.ERROR_INVALID_ARGUMENT
}

// GetComputeInstanceId fails: this is not a MIG device.
func (d *device) GetComputeInstanceId() (int, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetComputeInstanceId"); r != nvml.SUCCESS {
		return 0, r
	}
	return 0, nvml.ERROR_INVALID_ARGUMENT
}
