package metrics

import "context"

// SliceRef names one MIG slice for a Profiler: its MIG device UUID, its
// parent GPU and NVML's GPU- and compute-instance IDs.
type SliceRef struct {
	UUID              string
	GPUIndex          int
	GPUUUID           string
	GPUInstanceID     int
	ComputeInstanceID int
}

// Profile is DCGM's profiling fields for one MIG instance, as ratios in
// [0, 1] over DCGM's last sampling interval. A field DCGM left blank is NaN
// and is not exported.
type Profile struct {
	// GraphicsEngineActive is DCGM_FI_PROF_GR_ENGINE_ACTIVE.
	GraphicsEngineActive float64
	// SMActive is DCGM_FI_PROF_SM_ACTIVE.
	SMActive float64
	// DRAMActive is DCGM_FI_PROF_DRAM_ACTIVE.
	DRAMActive float64
}

// Profiler reads per-MIG-instance profiling fields (DCGM's DCP fields,
// the ones that work per GPU instance, unlike NVML's utilisation). The
// metrics/dcgm package implements it when built with the dcgm tag.
type Profiler interface {
	// Profile returns the fields of the given slices, keyed by slice
	// UUID; slices it has no values for are left out.
	Profile(ctx context.Context, slices []SliceRef) (map[string]Profile, error)
	// Close releases the profiler.
	Close() error
}
