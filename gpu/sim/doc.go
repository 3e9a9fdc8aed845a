// Package sim provides simulated GPU nodes that behave like NVML, so that
// Tessera's NVML code (package gpu), the agent and the CLI can be tested and
// demonstrated without GPUs.
//
// A *Node implements go-nvml's nvml.Interface. Its device, GPU-instance and
// compute-instance handles implement nvml.Device, nvml.GpuInstance and
// nvml.ComputeInstance; they are built on go-nvml's moq-generated mock
// structs, so every method of those interfaces exists. The methods that MIG
// management uses are simulated faithfully from the GPU model's profile
// table (migconfig.GPUModel):
//
//   - profile indices and real profile IDs differ (index 0 is ID 19 on
//     8-slice GPUs, 14 on A30), and calls that take a profile info look the
//     profile up by its ID, as the driver does;
//   - placements count memory slices; a start that is not one of the
//     profile's placements is ERROR_INVALID_ARGUMENT, an overlap or a full
//     profile is ERROR_INSUFFICIENT_RESOURCES, and creating anything while
//     MIG is not enabled is ERROR_NOT_SUPPORTED;
//   - GPU-instance IDs do not follow placement order;
//   - Ampere GPUs change MIG mode only after ResetGPU (or Reboot); Hopper
//     and later change it at once;
//   - destroying a GPU instance that still has compute instances, or a
//     compute instance with processes, is ERROR_IN_USE;
//   - handles of destroyed instances fail afterwards;
//   - Xid critical errors raised with Node.InjectXid reach the event sets
//     registered for them on that GPU (EventSetCreate, RegisterEvents,
//     EventSet.Wait with a timeout, Free), with NVML's GI/CI IDs.
//
// Methods that MIG management does not need return ERROR_NOT_SUPPORTED
// instead of panicking as the bare mocks would. Test helpers on *Node start
// and stop processes, reset or reboot GPUs, raise Xid events, inject
// faults, count calls and save and load the whole simulated state.
package sim
