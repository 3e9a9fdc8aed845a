package gpu

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// XidEvent is one NVML Xid critical-error event.
type XidEvent struct {
	// GPUIndex is the NVML index of the GPU the event is about, and GPUUUID
	// its UUID. GPUIndex is -1 in the unexpected case that NVML names a
	// device that is not one of the watched GPUs; GPUUUID is then the
	// device's UUID, or empty when even that cannot be read (NVIDIA's
	// device plugin treats such an event as one about every device).
	GPUIndex int
	GPUUUID  string
	// Xid is the Xid number (NVML's EventData; 999 when the driver does
	// not know the Xid).
	Xid uint64
	// GPUInstanceID and ComputeInstanceID are the MIG GPU instance and
	// compute instance the event is attributable to, or -1 when the event
	// is not tied to a MIG instance (NVML reports 0xFFFFFFFF). A GPU
	// instance with ComputeInstanceID -1 means the whole GPU instance.
	GPUInstanceID, ComputeInstanceID int
	// Time is when Tessera received the event.
	Time time.Time
}

// ErrNoXidGPU reports that WatchXids could register Xid events on none of
// the node's GPUs (none supports them, or registration failed on each).
var ErrNoXidGPU = errors.New("no GPU can report Xid events")

// xidWaitTimeout bounds each EventSetWait, so that WatchXids notices a done
// context or a closing node within about this time.
const xidWaitTimeout = 500 * time.Millisecond

// noInstance is NVML's GPU- and compute-instance ID of an event that is not
// tied to a MIG instance.
const noInstance = 0xFFFFFFFF

// watchedGPU is a GPU whose Xid events are registered.
type watchedGPU struct {
	index int
	uuid  string
	dev   nvml.Device
}

// WatchXids registers for Xid critical errors on every GPU that supports
// them and sends each event to out until ctx is done (then returns nil).
// GPUs that do not support the events are logged once and skipped, as are
// GPUs whose handle, UUID, supported event types or registration cannot be
// read or done (registration failing with ERROR_UNKNOWN excepted: NVML then
// leaves the event set undefined).
//
// It returns an error only when it cannot watch at all: out is nil, the
// node is closed, creating the event set or counting the GPUs fails, registration
// fails with ERROR_UNKNOWN, or no GPU could be registered (ErrNoXidGPU);
// or, later, when NVML stops delivering events (EventSetWait fails with
// anything but a timeout, such as ERROR_GPU_IS_LOST) or the node is
// closed. The caller may call WatchXids again; events raised in between
// are lost, as NVML records only events after registration.
//
// The node's other methods are not blocked while WatchXids waits for
// events: it waits in steps of 500 ms without the node's lock. Several
// WatchXids may run at once, each with its own event set, which is freed
// on return. Close stops every WatchXids of the node before NVML shuts
// down. Sends to out block; a slow reader delays later events but loses
// none until ctx is done.
func (n *Node) WatchXids(ctx context.Context, out chan<- XidEvent) error {
	if out == nil {
		return fmt.Errorf("gpu: watch xids: nil channel")
	}
	if err := ctx.Err(); err != nil {
		return nil
	}
	set, gpus, err := n.registerXids()
	if err != nil {
		return fmt.Errorf("gpu: watch xids: %w", err)
	}
	defer n.watchers.Done()
	defer func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if ret := set.Free(); ret != nvml.SUCCESS {
			n.log.Warn("freeing the Xid event set failed", "call", "EventSetFree", "return", ReturnName(ret))
		}
	}()
	timeout := uint32(xidWaitTimeout / time.Millisecond)
	closedErr := fmt.Errorf("gpu: watch xids: node is closed")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.closing:
			return closedErr
		default:
		}
		data, ret := set.Wait(timeout)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			select {
			case <-ctx.Done():
				return nil
			case <-n.closing:
				return closedErr
			default:
			}
			return fmt.Errorf("gpu: watch xids: %w", callErr("EventSetWait", ret))
		}
		if data.EventType&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		ev := n.xidEvent(data, gpus)
		n.log.Debug("Xid event", "gpu", ev.GPUIndex, "uuid", ev.GPUUUID, "xid", ev.Xid, "gi", ev.GPUInstanceID, "ci", ev.ComputeInstanceID)
		select {
		case out <- ev:
		case <-ctx.Done():
			return nil
		case <-n.closing:
			return closedErr
		}
	}
}

// registerXids creates an event set and registers Xid critical errors on
// every GPU that supports them. On success the caller owns the set and
// must call n.watchers.Done when it has freed it.
func (n *Node) registerXids() (nvml.EventSet, []watchedGPU, error) {
	if err := n.lock(); err != nil {
		return nil, nil, err
	}
	defer n.mu.Unlock()
	count, err := n.deviceCount()
	if err != nil {
		return nil, nil, err
	}
	set, ret := n.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return nil, nil, callErr("EventSetCreate", ret)
	}
	free := func() {
		if ret := set.Free(); ret != nvml.SUCCESS {
			n.log.Warn("freeing the Xid event set failed", "call", "EventSetFree", "return", ReturnName(ret))
		}
	}
	var gpus []watchedGPU
	var skipped []string
	for i := range count {
		g, reason, fatal := n.registerXid(i, set)
		if fatal != nil {
			free()
			return nil, nil, fatal
		}
		if reason != "" {
			skipped = append(skipped, reason)
			continue
		}
		gpus = append(gpus, g)
	}
	if len(gpus) == 0 {
		free()
		if count == 0 {
			return nil, nil, fmt.Errorf("%w: the node has no GPUs", ErrNoXidGPU)
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrNoXidGPU, strings.Join(skipped, "; "))
	}
	n.watchers.Add(1)
	return set, gpus, nil
}

// registerXid registers Xid events of GPU index on set. It returns the
// GPU, or the reason it is skipped (logged here), or an error that ends
// the watch. n.mu must be held.
func (n *Node) registerXid(index int, set nvml.EventSet) (watchedGPU, string, error) {
	skip := func(label string, err error, unsupported bool) (watchedGPU, string, error) {
		if unsupported {
			n.log.Info("GPU does not support Xid events; not watching it", "gpu", index, "error", err.Error())
		} else {
			n.log.Warn("cannot watch the GPU's Xid events; not watching it", "gpu", index, "error", err.Error())
		}
		return watchedGPU{}, fmt.Sprintf("%s: %s", label, err), nil
	}
	label := fmt.Sprintf("gpu %d", index)
	dev, ret := n.lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return skip(label, callErr("DeviceGetHandleByIndex", ret), false)
	}
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		return skip(label, callErr("GetUUID", ret), false)
	}
	label = fmt.Sprintf("gpu %d (%s)", index, uuid)
	types, ret := dev.GetSupportedEventTypes()
	switch {
	case ret == nvml.ERROR_NOT_SUPPORTED:
		return skip(label, callErr("GetSupportedEventTypes", ret), true)
	case ret != nvml.SUCCESS:
		return skip(label, callErr("GetSupportedEventTypes", ret), false)
	case types&nvml.EventTypeXidCriticalError == 0:
		return skip(label, fmt.Errorf("GetSupportedEventTypes: %#x lacks Xid critical errors", types), true)
	}
	switch ret := dev.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret {
	case nvml.SUCCESS:
		return watchedGPU{index: index, uuid: uuid, dev: dev}, "", nil
	case nvml.ERROR_NOT_SUPPORTED:
		return skip(label, callErr("RegisterEvents", ret), true)
	case nvml.ERROR_UNKNOWN:
		// NVML: "If function reports NVML_ERROR_UNKNOWN, event set is in
		// undefined state and should be freed."
		return watchedGPU{}, "", fmt.Errorf("%s: %w", label, callErr("RegisterEvents", ret))
	default:
		return skip(label, callErr("RegisterEvents", ret), false)
	}
}

// xidEvent converts NVML's event data.
func (n *Node) xidEvent(data nvml.EventData, gpus []watchedGPU) XidEvent {
	ev := XidEvent{
		GPUIndex:          -1,
		Xid:               data.EventData,
		GPUInstanceID:     instanceID(data.GpuInstanceId),
		ComputeInstanceID: instanceID(data.ComputeInstanceId),
		Time:              time.Now(),
	}
	for _, g := range gpus {
		if sameHandle(data.Device, g.dev) {
			ev.GPUIndex, ev.GPUUUID = g.index, g.uuid
			return ev
		}
	}
	if data.Device == nil {
		return ev
	}
	// Not the handle we registered: identify the device by its UUID. Close
	// waits for this watch to end, so NVML is still initialized.
	n.mu.Lock()
	uuid, ret := data.Device.GetUUID()
	n.mu.Unlock()
	if ret != nvml.SUCCESS {
		n.log.Warn("cannot identify the GPU of an Xid event", "xid", ev.Xid, "call", "GetUUID", "return", ReturnName(ret))
		return ev
	}
	ev.GPUUUID = uuid
	for _, g := range gpus {
		if g.uuid == uuid {
			ev.GPUIndex = g.index
		}
	}
	return ev
}

// instanceID converts NVML's GI or CI ID of an event.
func instanceID(id uint32) int {
	if id == noInstance {
		return -1
	}
	return int(id)
}

// sameHandle reports whether a and b are the same device handle. It
// compares only pointers and go-nvml's own handles, whose comparison
// cannot panic.
func sameHandle(a, b nvml.Device) bool {
	if a == nil || b == nil {
		return false
	}
	t := reflect.TypeOf(a)
	if t != reflect.TypeOf(b) {
		return false
	}
	if t.Kind() != reflect.Pointer && !isRealDevice(a) {
		return false
	}
	return a == b
}
