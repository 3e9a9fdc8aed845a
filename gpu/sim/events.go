package sim

import (
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// supportedEvents is the event mask every simulated GPU reports through
// GetSupportedEventTypes: only Xid critical errors are simulated.
const supportedEvents uint64 = nvml.EventTypeXidCriticalError

// eventSet is a simulated NVML event set. Its queue and registrations are
// guarded by the node's lock; wake is poked (never closed) whenever an
// event is queued or the set is freed, so a Wait sleeping without the lock
// looks again.
type eventSet struct {
	*mock.EventSet
	node *Node
	// regs is the event mask registered per GPU.
	regs  map[*gpu]uint64
	queue []nvml.EventData
	freed bool
	wake  chan struct{}
}

var _ nvml.EventSet = (*eventSet)(nil)

func (s *eventSet) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// EventSetCreate returns a new, empty event set.
func (n *Node) EventSetCreate() (nvml.EventSet, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "EventSetCreate", -1); r != nvml.SUCCESS {
		return nil, r
	}
	s := &eventSet{EventSet: &mock.EventSet{}, node: n, regs: map[*gpu]uint64{}, wake: make(chan struct{}, 1)}
	installStubs(s.EventSet, n, kindLibrary, "EventSet", func() int { return -1 })
	n.eventSets = append(n.eventSets, s)
	return s, nvml.SUCCESS
}

// EventSetWait is set.Wait(timeoutms); ERROR_INVALID_ARGUMENT for a set
// this node did not create.
func (n *Node) EventSetWait(set nvml.EventSet, timeoutms uint32) (nvml.EventData, nvml.Return) {
	s, ok := set.(*eventSet)
	if !ok || s == nil || s.node != n {
		n.mu.Lock()
		r := n.enter(kindLibrary, "EventSetWait", -1)
		n.mu.Unlock()
		if r == nvml.SUCCESS {
			r = nvml.ERROR_INVALID_ARGUMENT
		}
		return nvml.EventData{}, r
	}
	return s.Wait(timeoutms)
}

// EventSetFree is set.Free(); ERROR_INVALID_ARGUMENT for a set this node
// did not create.
func (n *Node) EventSetFree(set nvml.EventSet) nvml.Return {
	s, ok := set.(*eventSet)
	if !ok || s == nil || s.node != n {
		n.mu.Lock()
		r := n.enter(kindLibrary, "EventSetFree", -1)
		n.mu.Unlock()
		if r == nvml.SUCCESS {
			r = nvml.ERROR_INVALID_ARGUMENT
		}
		return r
	}
	return s.Free()
}

// Wait returns the oldest queued event, at once when there is one;
// otherwise it sleeps, without holding the node's lock, until an event
// arrives or timeoutms milliseconds have passed, and then returns
// ERROR_TIMEOUT. It is counted and matched by faults as "EventSetWait".
// A freed set gives ERROR_INVALID_ARGUMENT, and a Wait that outlives the
// last Shutdown gives ERROR_UNINITIALIZED.
func (s *eventSet) Wait(timeoutms uint32) (nvml.EventData, nvml.Return) {
	n := s.node
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "EventSetWait", -1); r != nvml.SUCCESS {
		return nvml.EventData{}, r
	}
	deadline := time.Now().Add(time.Duration(timeoutms) * time.Millisecond)
	for {
		switch {
		case n.inits == 0:
			return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
		case s.freed:
			return nvml.EventData{}, nvml.ERROR_INVALID_ARGUMENT
		case len(s.queue) > 0:
			e := s.queue[0]
			s.queue[0] = nvml.EventData{}
			s.queue = s.queue[1:]
			return e, nvml.SUCCESS
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
		n.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
		n.mu.Lock()
	}
}

// Free releases the set: its registrations end, queued events are dropped
// and a Wait in progress returns. Freeing a set twice is
// ERROR_INVALID_ARGUMENT. It is counted and matched by faults as
// "EventSetFree".
func (s *eventSet) Free() nvml.Return {
	n := s.node
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "EventSetFree", -1); r != nvml.SUCCESS {
		return r
	}
	if s.freed {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	n.dropEventSet(s)
	return nvml.SUCCESS
}

// dropEventSet marks s freed and forgets it. n.mu must be held.
func (n *Node) dropEventSet(s *eventSet) {
	s.freed = true
	s.queue = nil
	s.regs = nil
	for i, other := range n.eventSets {
		if other == s {
			n.eventSets = append(n.eventSets[:i:i], n.eventSets[i+1:]...)
			break
		}
	}
	s.poke()
}

// dropAllEventSets frees every event set, as the last Shutdown does in
// NVML. n.mu must be held.
func (n *Node) dropAllEventSets() {
	for len(n.eventSets) > 0 {
		n.dropEventSet(n.eventSets[0])
	}
}

// GetSupportedEventTypes returns the events the GPU can report:
// EventTypeXidCriticalError, the only kind simulated. (MIG device handles
// return ERROR_NOT_SUPPORTED: NVML does not report events per MIG device
// handle.)
func (d *device) GetSupportedEventTypes() (uint64, nvml.Return) {
	defer d.unlock()
	if r := d.lock("GetSupportedEventTypes"); r != nvml.SUCCESS {
		return 0, r
	}
	return supportedEvents, nvml.SUCCESS
}

// RegisterEvents adds the GPU's events of the given types to set, as
// nvmlDeviceRegisterEvents does: ERROR_INVALID_ARGUMENT for a mask that is
// empty or has bits outside EventTypeAll, or for a set that is not a live
// set of this node; ERROR_NOT_SUPPORTED, registering none of them, when the
// mask asks for a type the GPU does not support (every type but
// EventTypeXidCriticalError here). Registering again adds to the mask.
// Only events raised after registration are delivered.
func (d *device) RegisterEvents(types uint64, set nvml.EventSet) nvml.Return {
	defer d.unlock()
	if r := d.lock("RegisterEvents"); r != nvml.SUCCESS {
		return r
	}
	s, ok := set.(*eventSet)
	if !ok || s == nil || s.node != d.g.node || s.freed {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	if types == 0 || types&^uint64(nvml.EventTypeAll) != 0 {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	if types&^supportedEvents != 0 {
		return nvml.ERROR_NOT_SUPPORTED
	}
	s.regs[d.g] |= types
	return nvml.SUCCESS
}

// InjectXid raises an Xid critical error on GPU gpuIndex: every event set
// with Xid events registered on that GPU queues an event whose Device is
// the GPU's handle, EventType EventTypeXidCriticalError, EventData xid, and
// GpuInstanceId/ComputeInstanceId the given IDs, -1 meaning "not tied to
// a MIG instance" (NVML's 0xFFFFFFFF). The IDs are not checked against the
// GPU's instances, so a test can model an event about an instance that has
// since been destroyed; a compute instance needs a GPU instance. Sets that
// did not register the GPU do not see the event, nor do sets registered
// later. InjectXid is a test control: it is not counted and faults do not
// apply.
func (n *Node) InjectXid(gpuIndex int, xid uint64, gpuInstanceID, computeInstanceID int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gpuIndex < 0 || gpuIndex >= len(n.gpus) {
		return fmt.Errorf("sim: inject Xid %d: no GPU %d", xid, gpuIndex)
	}
	if gpuInstanceID < -1 || computeInstanceID < -1 || gpuInstanceID >= noID || computeInstanceID >= noID {
		return fmt.Errorf("sim: inject Xid %d on GPU %d: instance IDs %d/%d must be -1 or from 0 to %d", xid, gpuIndex, gpuInstanceID, computeInstanceID, noID-1)
	}
	if gpuInstanceID == -1 && computeInstanceID != -1 {
		return fmt.Errorf("sim: inject Xid %d on GPU %d: compute instance %d needs a GPU instance", xid, gpuIndex, computeInstanceID)
	}
	g := n.gpus[gpuIndex]
	e := nvml.EventData{
		Device:            g.handle,
		EventType:         nvml.EventTypeXidCriticalError,
		EventData:         xid,
		GpuInstanceId:     eventID(gpuInstanceID),
		ComputeInstanceId: eventID(computeInstanceID),
	}
	for _, s := range n.eventSets {
		if s.regs[g]&nvml.EventTypeXidCriticalError != 0 {
			s.queue = append(s.queue, e)
			s.poke()
		}
	}
	return nil
}

// eventID converts an instance ID of InjectXid to NVML's form.
func eventID(id int) uint32 {
	if id < 0 {
		return noID
	}
	return uint32(id)
}

// LiveEventSets returns how many event sets exist that were created and
// not freed (the last Shutdown frees them all), so tests can check that
// event sets do not leak. It is a test control: it is not counted.
func (n *Node) LiveEventSets() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.eventSets)
}
