package gpu

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// probedLib is a simulated node whose event sets check, on every Wait,
// whether the Node's lock is free.
type probedLib struct {
	*sim.Node
	node          atomic.Pointer[Node]
	free, held    atomic.Int32
	waitsReturned atomic.Int32
}

func (l *probedLib) EventSetCreate() (nvml.EventSet, nvml.Return) {
	set, r := l.Node.EventSetCreate()
	if r != nvml.SUCCESS {
		return nil, r
	}
	return probedSet{EventSet: set, lib: l}, r
}

// DeviceGetHandleByIndex returns a wrapper of the GPU's handle that hands
// the simulated set to RegisterEvents. Events still name the simulated
// handle, so WatchXids must identify their GPU by UUID.
func (l *probedLib) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	d, r := l.Node.DeviceGetHandleByIndex(i)
	if r != nvml.SUCCESS {
		return nil, r
	}
	return &probedDevice{Device: d}, r
}

type probedDevice struct{ nvml.Device }

func (d *probedDevice) RegisterEvents(types uint64, set nvml.EventSet) nvml.Return {
	if p, ok := set.(probedSet); ok {
		set = p.EventSet
	}
	return d.Device.RegisterEvents(types, set)
}

type probedSet struct {
	nvml.EventSet
	lib *probedLib
}

func (s probedSet) Wait(timeoutms uint32) (nvml.EventData, nvml.Return) {
	if n := s.lib.node.Load(); n != nil {
		if n.mu.TryLock() {
			n.mu.Unlock()
			s.lib.free.Add(1)
		} else {
			s.lib.held.Add(1)
		}
	}
	defer s.lib.waitsReturned.Add(1)
	return s.EventSet.Wait(timeoutms)
}

// TestWatchXidsWaitsWithoutTheLock checks that the Node's NVML lock is not
// held while WatchXids waits for events, so that Snapshot, Apply and the
// rest are not blocked for the wait's duration.
func TestWatchXidsWaitsWithoutTheLock(t *testing.T) {
	s, err := sim.NewFromSpec(migconfig.Builtin(), "a100-40gb:1")
	if err != nil {
		t.Fatal(err)
	}
	lib := &probedLib{Node: s}
	n, err := Open(context.Background(), lib, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	lib.node.Store(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	events := make(chan XidEvent, 1)
	go func() { done <- n.WatchXids(ctx, events) }()
	deadline := time.Now().Add(10 * time.Second)
	for lib.free.Load()+lib.held.Load() < 2 {
		select {
		case err := <-done:
			t.Fatalf("WatchXids returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("WatchXids did not wait twice")
		}
		time.Sleep(time.Millisecond)
	}
	// An event whose handle is not the registered one is identified by
	// the GPU's UUID.
	if err := s.InjectXid(0, 79, 1, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		uuid, _ := s.DeviceGetHandleByIndex(0)
		want, _ := uuid.GetUUID()
		if ev.GPUIndex != 0 || ev.GPUUUID != want || ev.Xid != 79 || ev.GPUInstanceID != 1 || ev.ComputeInstanceID != -1 {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if free, held := lib.free.Load(), lib.held.Load(); held != 0 || free < 2 {
		t.Fatalf("Node lock held during %d waits, free during %d", held, free)
	}
	if s.LiveEventSets() != 0 {
		t.Fatal("event set not freed")
	}
}
