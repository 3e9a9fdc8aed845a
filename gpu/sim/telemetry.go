package sim

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Telemetry is what a simulated GPU reports through NVML's monitoring
// calls. Tests set it with SetTelemetry; a new GPU starts with
// IdleTelemetry.
type Telemetry struct {
	// UtilizationPercent and MemoryUtilizationPercent are what
	// GetUtilizationRates returns while MIG is disabled. With MIG enabled
	// the call answers ERROR_NOT_SUPPORTED, as on real GPUs: NVML does not
	// measure utilisation per MIG instance.
	UtilizationPercent, MemoryUtilizationPercent uint32
	// PowerMilliwatts is GetPowerUsage's answer.
	PowerMilliwatts uint32
	// TemperatureC is GetTemperature(TEMPERATURE_GPU)'s answer.
	TemperatureC uint32
	// SMClockMHz is GetClockInfo(CLOCK_SM)'s answer.
	SMClockMHz uint32
	// ECCCorrected and ECCUncorrected are GetTotalEccErrors' volatile
	// counts; with ECCDisabled the call answers ERROR_NOT_SUPPORTED.
	ECCCorrected, ECCUncorrected uint64
	ECCDisabled                  bool
}

// IdleTelemetry returns what an idle simulated GPU reports.
func IdleTelemetry() Telemetry {
	return Telemetry{PowerMilliwatts: 72_000, TemperatureC: 31, SMClockMHz: 345}
}

// SetTelemetry sets what GPU gpuIndex reports through NVML's monitoring
// calls. It is a test control: it is not counted and faults do not apply.
func (n *Node) SetTelemetry(gpuIndex int, t Telemetry) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gpuIndex < 0 || gpuIndex >= len(n.gpus) {
		return fmt.Errorf("sim: set telemetry: no GPU %d", gpuIndex)
	}
	n.gpus[gpuIndex].telemetry = t
	return nil
}

// GetUtilizationRates returns the set utilisation; ERROR_NOT_SUPPORTED
// while MIG is enabled.
func (d *device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetUtilizationRates"); r != nvml.SUCCESS {
		return nvml.Utilization{}, r
	}
	if d.g.migCurrent {
		return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED
	}
	t := d.g.telemetry
	return nvml.Utilization{Gpu: t.UtilizationPercent, Memory: t.MemoryUtilizationPercent}, nvml.SUCCESS
}

// GetPowerUsage returns the set power draw in milliwatts.
func (d *device) GetPowerUsage() (uint32, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetPowerUsage"); r != nvml.SUCCESS {
		return 0, r
	}
	return d.g.telemetry.PowerMilliwatts, nvml.SUCCESS
}

// GetTemperature returns the set GPU temperature; other sensors are not
// supported.
func (d *device) GetTemperature(sensor nvml.TemperatureSensors) (uint32, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetTemperature"); r != nvml.SUCCESS {
		return 0, r
	}
	if sensor != nvml.TEMPERATURE_GPU {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return d.g.telemetry.TemperatureC, nvml.SUCCESS
}

// GetClockInfo returns the set SM clock; other clocks are not supported.
func (d *device) GetClockInfo(clock nvml.ClockType) (uint32, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetClockInfo"); r != nvml.SUCCESS {
		return 0, r
	}
	if clock != nvml.CLOCK_SM {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	return d.g.telemetry.SMClockMHz, nvml.SUCCESS
}

// GetTotalEccErrors returns the set volatile ECC counts.
func (d *device) GetTotalEccErrors(kind nvml.MemoryErrorType, counter nvml.EccCounterType) (uint64, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetTotalEccErrors"); r != nvml.SUCCESS {
		return 0, r
	}
	t := d.g.telemetry
	switch {
	case t.ECCDisabled:
		return 0, nvml.ERROR_NOT_SUPPORTED
	case counter != nvml.VOLATILE_ECC:
		return 0, nvml.ERROR_NOT_SUPPORTED
	case kind == nvml.MEMORY_ERROR_TYPE_CORRECTED:
		return t.ECCCorrected, nvml.SUCCESS
	case kind == nvml.MEMORY_ERROR_TYPE_UNCORRECTED:
		return t.ECCUncorrected, nvml.SUCCESS
	}
	return 0, nvml.ERROR_INVALID_ARGUMENT
}
