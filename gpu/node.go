// Package gpu is the only package of Tessera that calls NVML. It reads a
// node's GPUs, their MIG mode, GPU and compute instances, MIG devices and
// processes into migconfig values (Snapshot, ReadModel, EffectiveCatalog),
// applies a list of migconfig ops with explicit placements (Apply),
// holding back anything that would touch an instance in use, and watches
// Xid critical errors per GPU and MIG instance (WatchXids).
//
// The package talks to NVML through go-nvml's nvml.Interface, so the same
// code runs against libnvidia-ml (NewNVML) and against the simulated nodes
// of gpu/sim. It never formats an nvml.Return through libnvidia-ml; see
// ReturnName.
package gpu

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Options configures a Node.
type Options struct {
	// Catalog maps GPUs to their MIG profile tables. Nil means an empty
	// catalog: every GPU is then reported with an empty Model and its
	// profiles are read from NVML when needed.
	Catalog *migconfig.Catalog
	// Logger receives one structured line per applied op and the catalog
	// differences. Nil discards logs.
	Logger *slog.Logger
}

// Node is one machine's GPUs as seen through NVML. Its methods are safe for
// concurrent use; NVML calls of one Node are serialized, except that
// WatchXids waits for events (EventSetWait) outside that serialization.
type Node struct {
	lib nvml.Interface
	cat *migconfig.Catalog
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	// closing is closed by Close to stop every WatchXids; watchers counts
	// the running ones, which Close waits for before NVML shuts down.
	closing  chan struct{}
	watchers sync.WaitGroup
}

// NewNVML returns go-nvml's binding to the system's libnvidia-ml. The
// library is opened (dlopen) only when Open calls Init, so programs built
// with it run, and report a clear error, on machines without the driver.
func NewNVML() nvml.Interface { return nvml.New() }

// Open initializes NVML through lib and returns a Node that uses it. Close
// shuts NVML down again.
func Open(ctx context.Context, lib nvml.Interface, opts Options) (*Node, error) {
	if lib == nil {
		return nil, fmt.Errorf("gpu: open: no NVML library given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gpu: open: %w", err)
	}
	cat := opts.Catalog
	if cat == nil {
		var err error
		if cat, err = migconfig.NewCatalog(); err != nil {
			return nil, fmt.Errorf("gpu: open: empty catalog: %w", err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: open: %w", callErr("Init", ret))
	}
	return &Node{lib: lib, cat: cat, log: log, closing: make(chan struct{})}, nil
}

// Close shuts NVML down. It first stops every WatchXids of the node and
// waits for them to free their event sets. Calling it more than once is
// harmless.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.closing)
	n.mu.Unlock()
	n.watchers.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	if ret := n.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: close: %w", callErr("Shutdown", ret))
	}
	return nil
}

// Catalog returns the catalog the node was opened with.
func (n *Node) Catalog() *migconfig.Catalog { return n.cat }

// lock takes the node's lock and refuses a closed node.
func (n *Node) lock() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("gpu: node is closed")
	}
	return nil
}

// gpuDevice is one GPU's handle and identity, read at the start of an
// operation.
type gpuDevice struct {
	index int
	dev   nvml.Device
	uuid  string
	name  string
	pci   nvml.PciInfo
	mem   nvml.Memory
	model *migconfig.GPUModel // nil if unknown to the catalog
}

// deviceCount returns NVML's device count.
func (n *Node) deviceCount() (int, error) {
	count, ret := n.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return 0, callErr("DeviceGetCount", ret)
	}
	return count, nil
}

// device reads GPU index's handle, UUID, name, PCI info and memory, and
// looks its model up in the catalog.
func (n *Node) device(index int) (*gpuDevice, error) {
	dev, ret := n.lib.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d: %w", index, callErr("DeviceGetHandleByIndex", ret))
	}
	g := &gpuDevice{index: index, dev: dev}
	if g.uuid, ret = dev.GetUUID(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d: %w", index, callErr("GetUUID", ret))
	}
	if g.name, ret = dev.GetName(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d (%s): %w", index, g.uuid, callErr("GetName", ret))
	}
	if g.pci, ret = dev.GetPciInfo(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d (%s): %w", index, g.uuid, callErr("GetPciInfo", ret))
	}
	if g.mem, ret = dev.GetMemoryInfo(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu %d (%s): %w", index, g.uuid, callErr("GetMemoryInfo", ret))
	}
	if m, ok := n.cat.Lookup(migconfig.GPUState{DeviceID: g.pci.PciDeviceId, Name: g.name}); ok {
		g.model = m
	}
	return g, nil
}

// label names the GPU in errors: "gpu 3 (GPU-…)".
func (g *gpuDevice) label() string { return fmt.Sprintf("gpu %d (%s)", g.index, g.uuid) }

// memoryMiB is the GPU's total memory in MiB.
func (g *gpuDevice) memoryMiB() int { return int(g.mem.Total >> 20) }

// busID formats the PCI bus ID as NVML reports it, falling back to the
// domain, bus and device numbers when the string is empty.
func busID(pci nvml.PciInfo) string {
	if s := cString(pci.BusId[:]); s != "" {
		return s
	}
	if s := cString(pci.BusIdLegacy[:]); s != "" {
		return s
	}
	return fmt.Sprintf("%08x:%02x:%02x.0", pci.Domain, pci.Bus, pci.Device)
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// isRealDevice reports whether dev is a handle of go-nvml's own cgo
// binding. The *V (versioned-struct) calls of go-nvml return handler
// structs that always call into libnvidia-ml, whatever implements the
// interface, so they may only be used with real handles.
func isRealDevice(dev nvml.Device) bool {
	t := reflect.TypeOf(dev)
	if t == nil {
		return false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == "github.com/NVIDIA/go-nvml/pkg/nvml" && t.Name() == "nvmlDevice"
}
