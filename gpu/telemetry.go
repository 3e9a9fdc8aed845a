package gpu

import (
	"context"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Telemetry is one reading of a node for monitoring: the same state as
// Snapshot, plus what NVML reports about each GPU's load and each MIG
// device's memory use. It is read in one pass under the node's lock, so
// the values of one reading belong together.
type Telemetry struct {
	// State is what Snapshot returns.
	State migconfig.NodeState
	// GPUs holds one entry per GPU of State, in the same order.
	GPUs []GPUTelemetry
	// MigDevices holds each MIG device's memory, keyed by MIG UUID.
	MigDevices map[string]MemoryUse
}

// MemoryUse is a device's memory in bytes.
type MemoryUse struct {
	Total, Used uint64
}

// GPUTelemetry is what NVML reports about one GPU's load. A nil field is
// one NVML does not give for the GPU (ERROR_NOT_SUPPORTED, no permission,
// or an error listed in Unreadable): utilisation while MIG is enabled, ECC
// counts while ECC is off.
type GPUTelemetry struct {
	// Memory is the whole GPU's memory.
	Memory MemoryUse
	// Utilization and MemoryUtilization are ratios in [0, 1] over NVML's
	// last sample period (GetUtilizationRates).
	Utilization, MemoryUtilization *float64
	// PowerWatts is the power draw (GetPowerUsage).
	PowerWatts *float64
	// TemperatureCelsius is the GPU core temperature.
	TemperatureCelsius *float64
	// SMClockHertz is the current SM clock.
	SMClockHertz *float64
	// ECCCorrected and ECCUncorrected are the volatile ECC error counts
	// (since the driver loaded).
	ECCCorrected, ECCUncorrected *uint64
	// Unreadable lists the monitoring calls that failed with an error
	// other than "not supported" or "no permission", as "Call: ERROR".
	Unreadable []string
}

// Telemetry reads the node's state (as Snapshot) and its monitoring
// values in one pass. Identity, MIG state and MIG devices must be
// readable, as for Snapshot; a monitoring value that cannot be read is
// left nil.
func (n *Node) Telemetry(ctx context.Context) (Telemetry, error) {
	if err := n.lock(); err != nil {
		return Telemetry{}, err
	}
	defer n.mu.Unlock()
	count, err := n.deviceCount()
	if err != nil {
		return Telemetry{}, fmt.Errorf("gpu: telemetry: %w", err)
	}
	t := Telemetry{
		State:      migconfig.NodeState{GPUs: make([]migconfig.GPUState, 0, count)},
		GPUs:       make([]GPUTelemetry, 0, count),
		MigDevices: map[string]MemoryUse{},
	}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return Telemetry{}, fmt.Errorf("gpu: telemetry: %w", err)
		}
		g, err := n.device(i)
		if err != nil {
			return Telemetry{}, fmt.Errorf("gpu: telemetry: %w", err)
		}
		gs, err := n.readGPU(g, t.MigDevices)
		if err != nil {
			return Telemetry{}, fmt.Errorf("gpu: telemetry: %w", err)
		}
		t.State.GPUs = append(t.State.GPUs, gs)
		t.GPUs = append(t.GPUs, readGPUTelemetry(g))
	}
	return t, nil
}

// readGPUTelemetry reads one GPU's monitoring values.
func readGPUTelemetry(g *gpuDevice) GPUTelemetry {
	gt := GPUTelemetry{Memory: MemoryUse{Total: g.mem.Total, Used: g.mem.Used}}
	if u, ret := g.dev.GetUtilizationRates(); gt.ok("GetUtilizationRates", ret) {
		gt.Utilization = ptr(float64(u.Gpu) / 100)
		gt.MemoryUtilization = ptr(float64(u.Memory) / 100)
	}
	if mw, ret := g.dev.GetPowerUsage(); gt.ok("GetPowerUsage", ret) {
		gt.PowerWatts = ptr(float64(mw) / 1000)
	}
	if c, ret := g.dev.GetTemperature(nvml.TEMPERATURE_GPU); gt.ok("GetTemperature", ret) {
		gt.TemperatureCelsius = ptr(float64(c))
	}
	if mhz, ret := g.dev.GetClockInfo(nvml.CLOCK_SM); gt.ok("GetClockInfo", ret) {
		gt.SMClockHertz = ptr(float64(mhz) * 1e6)
	}
	if v, ret := g.dev.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC); gt.ok("GetTotalEccErrors", ret) {
		gt.ECCCorrected = ptr(v)
	}
	if v, ret := g.dev.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); gt.ok("GetTotalEccErrors", ret) {
		gt.ECCUncorrected = ptr(v)
	}
	return gt
}

// ok reports whether ret is SUCCESS and records unexpected failures.
func (gt *GPUTelemetry) ok(call string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NO_PERMISSION, nvml.ERROR_NO_DATA:
		return false
	}
	gt.Unreadable = append(gt.Unreadable, call+": "+ReturnName(ret))
	return false
}

func ptr[T any](v T) *T { return &v }
