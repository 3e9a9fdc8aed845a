// Package dcgm implements metrics.Profiler with NVIDIA DCGM's profiling
// (DCP) fields, the utilisation figures that work per MIG GPU instance:
// DCGM_FI_PROF_GR_ENGINE_ACTIVE, DCGM_FI_PROF_SM_ACTIVE and
// DCGM_FI_PROF_DRAM_ACTIVE, read for DCGM's FE_GPU_I entities.
//
// The DCGM binding (github.com/NVIDIA/go-dcgm) needs cgo and loads
// libdcgm.so.4 at run time, so the real implementation is compiled only
// with the dcgm build tag and cgo enabled:
//
//	go build -tags dcgm ./cmd/tessera
//
// Without them Open returns ErrNotBuilt. With them, Open returns
// ErrUnavailable when libdcgm.so.4, the host engine or profiling support
// is missing. Either way the caller goes on without DCGM.
//
// Everything that does not need the binding — matching slices to DCGM
// entities, DCGM's blank values, when to rebuild the watched entity group
// — lives in untagged files and is tested in the default build.
package dcgm
