package sim

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrorString returns the description libnvidia-ml's nvmlErrorString gives
// for a return code ("Insufficient Resources", "In use by another client"),
// without calling into the library or into nvml.Return.Error. (Without the
// library loaded, go-nvml's Return.Error returns the constant's name,
// "ERROR_IN_USE"; once the real library is loaded it calls nvmlErrorString.)
func ErrorString(r nvml.Return) string {
	switch r {
	case nvml.SUCCESS:
		return "Success"
	case nvml.ERROR_UNINITIALIZED:
		return "Uninitialized"
	case nvml.ERROR_INVALID_ARGUMENT:
		return "Invalid Argument"
	case nvml.ERROR_NOT_SUPPORTED:
		return "Not Supported"
	case nvml.ERROR_NO_PERMISSION:
		return "Insufficient Permissions"
	case nvml.ERROR_ALREADY_INITIALIZED:
		return "Already Initialized"
	case nvml.ERROR_NOT_FOUND:
		return "Not Found"
	case nvml.ERROR_INSUFFICIENT_SIZE:
		return "Insufficient Size"
	case nvml.ERROR_INSUFFICIENT_POWER:
		return "Insufficient External Power"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "Driver Not Loaded"
	case nvml.ERROR_TIMEOUT:
		return "Timeout"
	case nvml.ERROR_IRQ_ISSUE:
		return "Interrupt Request Issue"
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "NVML Shared Library Not Found"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "Function Not Found"
	case nvml.ERROR_CORRUPTED_INFOROM:
		return "Corrupted infoROM"
	case nvml.ERROR_GPU_IS_LOST:
		return "GPU is lost"
	case nvml.ERROR_RESET_REQUIRED:
		return "GPU requires reset"
	case nvml.ERROR_OPERATING_SYSTEM:
		return "GPU access blocked by the operating system"
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "Driver/library version mismatch"
	case nvml.ERROR_IN_USE:
		return "In use by another client"
	case nvml.ERROR_MEMORY:
		return "Insufficient Memory"
	case nvml.ERROR_NO_DATA:
		return "No data"
	case nvml.ERROR_VGPU_ECC_NOT_SUPPORTED:
		return "Not supported when ECC is enabled"
	case nvml.ERROR_INSUFFICIENT_RESOURCES:
		return "Insufficient Resources"
	case nvml.ERROR_FREQ_NOT_SUPPORTED:
		return "Frequency not supported"
	case nvml.ERROR_ARGUMENT_VERSION_MISMATCH:
		return "Argument version mismatch"
	case nvml.ERROR_DEPRECATED:
		return "Deprecated"
	case nvml.ERROR_NOT_READY:
		return "Not ready"
	case nvml.ERROR_GPU_NOT_FOUND:
		return "GPU not found"
	case nvml.ERROR_INVALID_STATE:
		return "Invalid state"
	case nvml.ERROR_UNKNOWN:
		return "Unknown Error"
	}
	return fmt.Sprintf("Unknown Error (NVML return code %d)", int32(r))
}
