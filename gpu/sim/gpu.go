package sim

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/tessera-gpu/tessera/migconfig"
)

// gpu is the simulated state of one physical GPU. Every field is guarded by
// node.mu.
type gpu struct {
	node  *Node
	index int
	model *migconfig.GPUModel
	uuid  string

	migCurrent, migPending bool

	// gis are the GPU instances by GI ID.
	gis map[int]*gpuInstance
	// giPool is the order in which GI IDs are handed out: the first free
	// one is taken. It is a deterministic shuffle, so IDs do not follow
	// placement order.
	giPool []int
	// migSlots holds the compute instance behind each MIG device index;
	// nil entries are holes.
	migSlots []*computeInstance

	handle *device

	// telemetry is what NVML's monitoring calls report (SetTelemetry).
	telemetry Telemetry
}

func newGPU(n *Node, index int, m *migconfig.GPUModel) *gpu {
	g := &gpu{
		node:  n,
		index: index,
		model: m,
		uuid:  gpuUUID(n.opts.seed, index),
		gis:   map[int]*gpuInstance{},

		telemetry: IdleTelemetry(),
	}
	poolSize := 2*m.MemorySlices - 1
	g.giPool = shuffledIDs(poolSize, mix(n.opts.seed, uint64(index), 0x6769))
	g.migSlots = make([]*computeInstance, max(m.ComputeSlices, 1))
	g.handle = &device{Device: &mock.Device{}, g: g}
	installStubs(g.handle.Device, n, kindDevice, "", func() int { return g.index })
	return g
}

func (g *gpu) migCapable() bool { return len(g.model.Profiles) > 0 }

// bus returns the GPU's PCI bus: those of the eight GPUs of a DGX A100
// first, then synthetic ones.
func (g *gpu) bus() uint32 {
	dgxBuses := [...]uint32{0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD}
	if g.index < len(dgxBuses) {
		return dgxBuses[g.index]
	}
	return uint32(0xC0 + g.index%0x3F)
}

// busID is NVML's PciInfo.BusId form, with an 8-digit domain.
func (g *gpu) busID() string { return fmt.Sprintf("%08X:%02X:00.0", 0, g.bus()) }

// busIDLegacy is NVML's PciInfo.BusIdLegacy form, with a 4-digit domain.
func (g *gpu) busIDLegacy() string { return fmt.Sprintf("%04X:%02X:00.0", 0, g.bus()) }

// subsystemID returns a PCI subsystem ID (0xSSSSVVVV) for the GPU's board.
// The values are those of common HGX/PCIe boards; other models get a
// synthetic one derived from the key.
func (g *gpu) subsystemID() uint32 {
	switch g.model.Key {
	case "a100-40gb":
		return 0x134F10DE
	case "a100-80gb":
		return 0x147F10DE
	case "h100-80gb":
		return 0x16C110DE
	case "h200":
		return 0x18BE10DE
	case "a30":
		return 0x153210DE
	}
	h := fnv.New32a()
	h.Write([]byte(g.model.Key))
	return (h.Sum32()&0xFFFF)<<16 | 0x10DE
}

// pids returns the processes running on the GPU or its MIG devices.
func (g *gpu) pids() []uint32 {
	var out []uint32
	for pid, p := range g.node.procs {
		if p.gpu == g {
			out = append(out, pid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (g *gpu) processes() []*process {
	var out []*process
	for _, p := range g.node.procs {
		if p.gpu == g {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// wipe destroys every GPU and compute instance without NVML calls, as a
// reset or reboot does; their handles become invalid.
func (g *gpu) wipe() {
	for _, gi := range g.gis {
		for _, ci := range gi.cis {
			ci.destroyed = true
		}
		gi.cis = map[int]*computeInstance{}
		gi.destroyed = true
	}
	g.gis = map[int]*gpuInstance{}
	for i := range g.migSlots {
		g.migSlots[i] = nil
	}
	for pid, p := range g.node.procs {
		if p.gpu == g && p.ci != nil {
			delete(g.node.procs, pid)
		}
	}
}

// sortedGIs returns the GPU instances ordered by GI ID.
func (g *gpu) sortedGIs() []*gpuInstance {
	out := make([]*gpuInstance, 0, len(g.gis))
	for _, gi := range g.gis {
		out = append(out, gi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (g *gpu) occupied() uint16 {
	var m uint16
	for _, gi := range g.gis {
		m |= gi.placement.Mask()
	}
	return m
}

func (g *gpu) countProfile(id migconfig.ProfileID) int {
	n := 0
	for _, gi := range g.gis {
		if gi.profile.ID == id {
			n++
		}
	}
	return n
}

func (g *gpu) usedCompute() int {
	n := 0
	for _, gi := range g.gis {
		n += gi.profile.ComputeSlices
	}
	return n
}

func (g *gpu) mediaInstances() int {
	n := 0
	for _, gi := range g.gis {
		if gi.profile.HasMediaExtensions() {
			n++
		}
	}
	return n
}

func (g *gpu) mediaProfiles() int {
	n := 0
	for _, p := range g.model.Profiles {
		if p.HasMediaExtensions() {
			n++
		}
	}
	return n
}

// headroom returns how many more instances of p the GPU admits by the
// limits that do not depend on placement: the profile's instance count,
// the shared media engines (when a model has several +me profiles they
// share one set: at most one +me instance in all, as migconfig assumes)
// and the compute slices.
func (g *gpu) headroom(p *migconfig.Profile) int {
	room := p.MaxCount - g.countProfile(p.ID)
	if p.HasMediaExtensions() && g.mediaProfiles() > 1 {
		room = min(room, 1-g.mediaInstances())
	}
	if p.ComputeSlices > 0 {
		room = min(room, (g.model.ComputeSlices-g.usedCompute())/p.ComputeSlices)
	}
	return max(room, 0)
}

// remaining returns how many more instances of p fit now: the "Free"
// column of nvidia-smi mig -lgip. Placements of one profile all have the
// same size, so taking free ones from the left is optimal.
func (g *gpu) remaining(p *migconfig.Profile) int {
	used := g.occupied()
	fit := 0
	for _, pl := range p.Placements {
		if pl.Mask()&used == 0 {
			used |= pl.Mask()
			fit++
		}
	}
	return min(fit, g.headroom(p))
}

// freeGIID returns the next GPU-instance ID to hand out, or -1.
func (g *gpu) freeGIID() int {
	for _, id := range g.giPool {
		if _, taken := g.gis[id]; !taken {
			return id
		}
	}
	return -1
}

// freeMigSlot returns the lowest free MIG device index, or -1.
func (g *gpu) freeMigSlot() int {
	for i, ci := range g.migSlots {
		if ci == nil {
			return i
		}
	}
	return -1
}
