package sim

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// migDevice is the device handle of a MIG device: one (GI, CI) pair. Once
// its compute instance is destroyed every call returns
// ERROR_INVALID_ARGUMENT.
type migDevice struct {
	*mock.Device
	ci *computeInstance
}

var _ nvml.Device = (*migDevice)(nil)

func (m *migDevice) lock(name string) nvml.Return {
	g := m.ci.gi.g
	g.node.mu.Lock()
	if r := g.node.enter(kindDevice, name, g.index); r != nvml.SUCCESS {
		return r
	}
	if m.ci.destroyed {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	return nvml.SUCCESS
}

func (m *migDevice) unlock() { m.ci.gi.g.node.mu.Unlock() }

// IsMigDeviceHandle returns true.
func (m *migDevice) IsMigDeviceHandle() (bool, nvml.Return) {
	defer m.unlock()
	if r := m.lock("IsMigDeviceHandle"); r != nvml.SUCCESS {
		return false, r
	}
	return true, nvml.SUCCESS
}

// GetDeviceHandleFromMigDeviceHandle returns the parent GPU.
func (m *migDevice) GetDeviceHandleFromMigDeviceHandle() (nvml.Device, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetDeviceHandleFromMigDeviceHandle"); r != nvml.SUCCESS {
		return nil, r
	}
	return m.ci.gi.g.handle, nvml.SUCCESS
}

// GetGpuInstanceId returns the GI ID of the MIG device.
func (m *migDevice) GetGpuInstanceId() (int, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetGpuInstanceId"); r != nvml.SUCCESS {
		return 0, r
	}
	return m.ci.gi.id, nvml.SUCCESS
}

// GetComputeInstanceId returns the CI ID of the MIG device.
func (m *migDevice) GetComputeInstanceId() (int, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetComputeInstanceId"); r != nvml.SUCCESS {
		return 0, r
	}
	return m.ci.id, nvml.SUCCESS
}

// GetUUID returns "MIG-<uuid>": stable while the compute instance lives,
// new when it is re-created.
func (m *migDevice) GetUUID() (string, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetUUID"); r != nvml.SUCCESS {
		return "", r
	}
	return m.ci.uuid, nvml.SUCCESS
}

// GetName returns "<product> MIG <profile>", as R470+ drivers do:
// "NVIDIA A100-SXM4-40GB MIG 1g.5gb", "... MIG 1c.3g.20gb".
func (m *migDevice) GetName() (string, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetName"); r != nvml.SUCCESS {
		return "", r
	}
	return productName(m.ci.gi.g.model) + " MIG " + m.ci.name(), nvml.SUCCESS
}

// GetIndex returns the MIG device's index on its parent
// (GetMigDeviceHandleByIndex).
func (m *migDevice) GetIndex() (int, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetIndex"); r != nvml.SUCCESS {
		return 0, r
	}
	return m.ci.slot, nvml.SUCCESS
}

// GetMemoryInfo returns the GPU instance's memory (shared by its compute
// instances) and what the GI's processes use.
func (m *migDevice) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetMemoryInfo"); r != nvml.SUCCESS {
		return nvml.Memory{}, r
	}
	total, used := m.memory()
	return nvml.Memory{Total: total, Used: used, Free: total - used}, nvml.SUCCESS
}

// GetMemoryInfo_v2 is GetMemoryInfo with a zero Reserved field.
func (m *migDevice) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetMemoryInfo_v2"); r != nvml.SUCCESS {
		return nvml.Memory_v2{}, r
	}
	total, used := m.memory()
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: total, Used: used, Free: total - used}, nvml.SUCCESS
}

func (m *migDevice) memory() (total, used uint64) {
	gi := m.ci.gi
	total = uint64(gi.profile.MemoryMiB) << 20
	for _, ci := range gi.cis {
		for _, p := range ci.processes() {
			used += uint64(p.mib) << 20
		}
	}
	return total, min(used, total)
}

// GetComputeRunningProcesses returns the processes on this MIG device.
func (m *migDevice) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetComputeRunningProcesses"); r != nvml.SUCCESS {
		return nil, r
	}
	return processInfos(m.ci.processes()), nvml.SUCCESS
}

// GetGraphicsRunningProcesses returns no processes.
func (m *migDevice) GetGraphicsRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetGraphicsRunningProcesses"); r != nvml.SUCCESS {
		return nil, r
	}
	return []nvml.ProcessInfo{}, nvml.SUCCESS
}

// GetArchitecture returns the parent's architecture.
func (m *migDevice) GetArchitecture() (nvml.DeviceArchitecture, nvml.Return) {
	defer m.unlock()
	if r := m.lock("GetArchitecture"); r != nvml.SUCCESS {
		return 0, r
	}
	return m.ci.gi.g.arch(), nvml.SUCCESS
}
