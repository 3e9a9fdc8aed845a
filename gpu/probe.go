package gpu

import (
	"context"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ProbeDevice asks NVML whether the GPU or MIG device with the given UUID
// answers: it looks the device up by UUID and reads its memory. It returns
// nil when both succeed, and the NVML error otherwise (ERROR_GPU_IS_LOST
// for a GPU that fell off the bus, ERROR_NOT_FOUND for a device that no
// longer exists). The device plugin uses it to decide that a slice hit by
// an Xid is healthy again.
func (n *Node) ProbeDevice(ctx context.Context, uuid string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := n.lock(); err != nil {
		return err
	}
	defer n.mu.Unlock()
	dev, ret := n.lib.DeviceGetHandleByUUID(uuid)
	if ret != nvml.SUCCESS {
		return fmt.Errorf("probe %s: %w", uuid, callErr("DeviceGetHandleByUUID", ret))
	}
	if _, ret := dev.GetMemoryInfo(); ret != nvml.SUCCESS {
		return fmt.Errorf("probe %s: %w", uuid, callErr("GetMemoryInfo", ret))
	}
	return nil
}
