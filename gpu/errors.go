package gpu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// ErrNodeChanged reports that the node no longer matches the state an op
// was planned against: the GPU instance to destroy is gone or has another
// profile or placement. Snapshot again and re-plan.
var ErrNodeChanged = errors.New("the node changed since planning")

// ErrWrongGPU reports that an op's GPU UUID does not match the GPU at its
// index, or that the op names no UUID at all.
var ErrWrongGPU = errors.New("op does not match the GPU at its index")

// returnNames returns the names of the NVML return codes. It is built on
// each call so the package keeps no global mutable state; callers use it
// only to format errors.
func returnNames() map[nvml.Return]string {
	return map[nvml.Return]string{
		nvml.SUCCESS:                         "SUCCESS",
		nvml.ERROR_UNINITIALIZED:             "ERROR_UNINITIALIZED",
		nvml.ERROR_INVALID_ARGUMENT:          "ERROR_INVALID_ARGUMENT",
		nvml.ERROR_NOT_SUPPORTED:             "ERROR_NOT_SUPPORTED",
		nvml.ERROR_NO_PERMISSION:             "ERROR_NO_PERMISSION",
		nvml.ERROR_ALREADY_INITIALIZED:       "ERROR_ALREADY_INITIALIZED",
		nvml.ERROR_NOT_FOUND:                 "ERROR_NOT_FOUND",
		nvml.ERROR_INSUFFICIENT_SIZE:         "ERROR_INSUFFICIENT_SIZE",
		nvml.ERROR_INSUFFICIENT_POWER:        "ERROR_INSUFFICIENT_POWER",
		nvml.ERROR_DRIVER_NOT_LOADED:         "ERROR_DRIVER_NOT_LOADED",
		nvml.ERROR_TIMEOUT:                   "ERROR_TIMEOUT",
		nvml.ERROR_IRQ_ISSUE:                 "ERROR_IRQ_ISSUE",
		nvml.ERROR_LIBRARY_NOT_FOUND:         "ERROR_LIBRARY_NOT_FOUND",
		nvml.ERROR_FUNCTION_NOT_FOUND:        "ERROR_FUNCTION_NOT_FOUND",
		nvml.ERROR_CORRUPTED_INFOROM:         "ERROR_CORRUPTED_INFOROM",
		nvml.ERROR_GPU_IS_LOST:               "ERROR_GPU_IS_LOST",
		nvml.ERROR_RESET_REQUIRED:            "ERROR_RESET_REQUIRED",
		nvml.ERROR_OPERATING_SYSTEM:          "ERROR_OPERATING_SYSTEM",
		nvml.ERROR_LIB_RM_VERSION_MISMATCH:   "ERROR_LIB_RM_VERSION_MISMATCH",
		nvml.ERROR_IN_USE:                    "ERROR_IN_USE",
		nvml.ERROR_MEMORY:                    "ERROR_MEMORY",
		nvml.ERROR_NO_DATA:                   "ERROR_NO_DATA",
		nvml.ERROR_VGPU_ECC_NOT_SUPPORTED:    "ERROR_VGPU_ECC_NOT_SUPPORTED",
		nvml.ERROR_INSUFFICIENT_RESOURCES:    "ERROR_INSUFFICIENT_RESOURCES",
		nvml.ERROR_FREQ_NOT_SUPPORTED:        "ERROR_FREQ_NOT_SUPPORTED",
		nvml.ERROR_ARGUMENT_VERSION_MISMATCH: "ERROR_ARGUMENT_VERSION_MISMATCH",
		nvml.ERROR_DEPRECATED:                "ERROR_DEPRECATED",
		nvml.ERROR_NOT_READY:                 "ERROR_NOT_READY",
		nvml.ERROR_GPU_NOT_FOUND:             "ERROR_GPU_NOT_FOUND",
		nvml.ERROR_INVALID_STATE:             "ERROR_INVALID_STATE",
		nvml.ERROR_RESET_TYPE_NOT_SUPPORTED:  "ERROR_RESET_TYPE_NOT_SUPPORTED",
		nvml.ERROR_UNKNOWN:                   "ERROR_UNKNOWN",
	}
}

// ReturnName names an NVML return code as nvml.h does, followed by its
// number: "ERROR_IN_USE (19)". Unlike nvml.Return.Error it never calls
// into libnvidia-ml, so it is safe before Init, after Shutdown and with a
// simulated library.
func ReturnName(r nvml.Return) string {
	name, ok := returnNames()[r]
	if !ok {
		name = "NVML_RETURN"
	}
	return fmt.Sprintf("%s (%d)", name, int32(r))
}

// nvmlError is a failed NVML call: the call's name and its return code.
// It unwraps to the nvml.Return, so errors.Is(err, nvml.ERROR_IN_USE)
// works without formatting the code through libnvidia-ml.
type nvmlError struct {
	call string
	ret  nvml.Return
}

func (e *nvmlError) Error() string { return e.call + ": " + ReturnName(e.ret) }

func (e *nvmlError) Unwrap() error { return e.ret }

// callErr wraps a non-SUCCESS return of an NVML call.
func callErr(call string, ret nvml.Return) error {
	return &nvmlError{call: call, ret: ret}
}

// OpError is the error Apply returns when an op fails: it names the GPU
// (index and UUID), the op, and either the NVML call and its return code or
// the reason the op was refused.
type OpError struct {
	// Op is the op that failed.
	Op migconfig.Op
	// GPUUUID is the UUID of the GPU the op acted on, as NVML reported it
	// (the op's own UUID when the device could not be read).
	GPUUUID string
	// Call is the NVML call that failed; empty when the op was refused
	// before any mutating call.
	Call string
	// Return is the NVML return code of Call; SUCCESS when Call is empty.
	Return nvml.Return
	// Err is the cause when the op was refused without a failing NVML call
	// (ErrNodeChanged, ErrWrongGPU, ...); nil otherwise.
	Err error
}

// Error formats the error as
// "gpu 3 (GPU-…): create 3g.20gb at 4:4: CreateGpuInstanceWithPlacement: ERROR_INSUFFICIENT_RESOURCES (23)".
func (e *OpError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gpu %d", e.Op.GPU)
	if e.GPUUUID != "" {
		fmt.Fprintf(&b, " (%s)", e.GPUUUID)
	}
	b.WriteString(": ")
	b.WriteString(opLabel(e.Op))
	if e.Call != "" {
		fmt.Fprintf(&b, ": %s: %s", e.Call, ReturnName(e.Return))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %s", e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the NVML return code when an NVML call failed, and the
// cause otherwise, so both errors.Is(err, nvml.ERROR_INSUFFICIENT_RESOURCES)
// and errors.Is(err, ErrNodeChanged) work.
func (e *OpError) Unwrap() []error {
	var errs []error
	if e.Call != "" {
		errs = append(errs, e.Return)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// opLabel describes an op without its "gpu N: " prefix:
// "create 3g.20gb at 4:4".
func opLabel(op migconfig.Op) string {
	return strings.TrimPrefix(op.String(), fmt.Sprintf("gpu %d: ", op.GPU))
}
