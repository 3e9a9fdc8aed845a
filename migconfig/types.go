// Package migconfig is Tessera's pure model of MIG: the catalog of GPU models
// and their MIG profiles, the mig-parted-compatible layout file, layout
// validation and packing, and Diff, which turns a current and a desired GPU
// layout into the smallest ordered list of operations.
//
// Nothing in this package does I/O or reads a clock; every function takes
// values and returns values, so it can be embedded and tested with tables.
package migconfig

import (
	"fmt"
	"math/bits"
)

// ProfileID is NVML's GPU-instance profile ID (nvmlGpuInstanceProfileInfo_t.id):
// the value that CreateGpuInstanceWithPlacement and
// GetGpuInstancePossiblePlacements take. It is not the profile index.
type ProfileID int

// ProfileIndex is NVML's GPU_INSTANCE_PROFILE_* constant: the value that
// GetGpuInstanceProfileInfo takes. On 8-slice GPUs index 0 (1 slice) has ID 19.
type ProfileIndex int

// NVML GPU-instance profile indices (nvml.h GPU_INSTANCE_PROFILE_*).
const (
	ProfileIndex1Slice     ProfileIndex = 0x0
	ProfileIndex2Slice     ProfileIndex = 0x1
	ProfileIndex3Slice     ProfileIndex = 0x2
	ProfileIndex4Slice     ProfileIndex = 0x3
	ProfileIndex7Slice     ProfileIndex = 0x4
	ProfileIndex8Slice     ProfileIndex = 0x5
	ProfileIndex6Slice     ProfileIndex = 0x6
	ProfileIndex1SliceRev1 ProfileIndex = 0x7 // +me
	ProfileIndex2SliceRev1 ProfileIndex = 0x8 // +me
	ProfileIndex1SliceRev2 ProfileIndex = 0x9 // double memory
	// ProfileIndexCount is NVML's GPU_INSTANCE_PROFILE_COUNT: indices below it
	// are probed when the catalog is read from NVML.
	ProfileIndexCount ProfileIndex = 0x12
)

// Placement is a GPU instance's position on the memory-slice axis, as NVML's
// nvmlGpuInstancePlacement_t: Start and Size count memory slices (8 on
// A100/H100/H200/B200, 4 on A30). The zero value means "not placed yet".
type Placement struct {
	Start int `json:"start" yaml:"start"`
	Size  int `json:"size" yaml:"size"`
}

// IsSet reports whether the placement names a position (Size > 0).
func (p Placement) IsSet() bool { return p.Size > 0 }

// Mask returns the bitmask of the memory slices the placement covers
// (bit i = memory slice i).
func (p Placement) Mask() uint16 {
	if p.Size <= 0 || p.Start < 0 || p.Start+p.Size > 16 {
		return 0
	}
	return uint16(((1 << p.Size) - 1) << p.Start)
}

// Overlaps reports whether two placements share a memory slice.
func (p Placement) Overlaps(q Placement) bool { return p.Mask()&q.Mask() != 0 }

// String formats the placement as nvidia-smi does: "start:size".
func (p Placement) String() string { return fmt.Sprintf("%d:%d", p.Start, p.Size) }

// Profile is one MIG GPU-instance profile of a GPU model.
type Profile struct {
	// Name is the profile's name as mig-parted and nvidia-smi print it,
	// attributes included: "1g.10gb", "1g.10gb+me", "1g.20gb".
	Name string `json:"name"`
	// Index is NVML's GPU_INSTANCE_PROFILE_* constant.
	Index ProfileIndex `json:"index"`
	// ID is NVML's profile ID, what create and placement calls take.
	ID ProfileID `json:"id"`
	// ComputeSlices is G in "<G>g": the GPU's compute slices it takes.
	ComputeSlices int `json:"computeSlices"`
	// MemorySlices is the placement size: the memory slices it takes.
	MemorySlices int `json:"memorySlices"`
	// MemoryMiB is NVML's memorySizeMB for the profile.
	MemoryMiB int `json:"memoryMiB"`
	// Multiprocessors is the number of SMs of one instance.
	Multiprocessors int `json:"multiprocessors"`
	// CopyEngines, Decoders, Encoders, JPEGs and OFAs count the engines of
	// one instance.
	CopyEngines int `json:"copyEngines"`
	Decoders    int `json:"decoders"`
	Encoders    int `json:"encoders"`
	JPEGs       int `json:"jpegs"`
	OFAs        int `json:"ofas"`
	// MaxCount is NVML's instanceCount: at most this many at once.
	MaxCount int `json:"maxCount"`
	// Placements lists every valid placement, in ascending Start order.
	Placements []Placement `json:"placements"`
	// Uncertain marks figures the reference could not confirm on hardware;
	// they should be read from NVML at run time.
	Uncertain bool `json:"uncertain,omitempty"`
}

// HasMediaExtensions reports whether the profile is a "+me" profile.
func (p Profile) HasMediaExtensions() bool {
	return p.Index == ProfileIndex1SliceRev1 || p.Index == ProfileIndex2SliceRev1
}

// ValidPlacement reports whether pl is one of the profile's placements.
func (p Profile) ValidPlacement(pl Placement) bool {
	for _, q := range p.Placements {
		if q == pl {
			return true
		}
	}
	return false
}

// Architecture is a GPU generation; it decides how MIG mode changes behave.
type Architecture string

// Architectures with MIG.
const (
	// Ampere GPUs (A30, A100) need a GPU reset to change MIG mode; the mode
	// persists across reboots.
	Ampere Architecture = "ampere"
	// Hopper GPUs (H100, H200, GH200) change MIG mode without a reset; the
	// mode is lost on reboot or driver reload.
	Hopper Architecture = "hopper"
	// Blackwell GPUs (B200, GB200) behave as Hopper.
	Blackwell Architecture = "blackwell"
)

// ModeChangeNeedsReset reports whether enabling or disabling MIG requires a
// GPU reset on this architecture.
func (a Architecture) ModeChangeNeedsReset() bool { return a == Ampere }

// GPUModel is one MIG-capable GPU model and its profile table.
type GPUModel struct {
	// Key is Tessera's short name: "a30", "a100-40gb", "a100-80gb",
	// "h100-80gb", "h100-nvl", "h200", "gh200-144gb", "b200", ...
	Key string `json:"key"`
	// Name is the product name as mig-parted's messages use it,
	// for example "A100-SXM4-40GB".
	Name string `json:"name"`
	// ProductNames are the names NVML's GetName returns for the model,
	// for example "NVIDIA A100-SXM4-40GB" and "NVIDIA A100-PCIE-40GB".
	ProductNames []string `json:"productNames"`
	// DeviceIDs are the PCI IDs in mig-parted's device-filter form
	// 0xDDDDVVVV (device << 16 | vendor), as NVML's PciInfo.PciDeviceId.
	DeviceIDs []uint32 `json:"deviceIDs"`
	// Architecture decides MIG mode-change behaviour.
	Architecture Architecture `json:"architecture"`
	// MemorySlices is the width of the placement axis (8, or 4 on A30).
	MemorySlices int `json:"memorySlices"`
	// ComputeSlices is the number of compute slices (7, or 4 on A30).
	ComputeSlices int `json:"computeSlices"`
	// MemoryMiB is the GPU's total memory as NVML reports it.
	MemoryMiB int `json:"memoryMiB"`
	// Profiles lists the MIG profiles, in ascending Index order.
	Profiles []Profile `json:"profiles"`
}

// ProfileByName returns the profile with the given name, attributes
// included ("1g.10gb+me"). The CI-qualified form "1c.3g.20gb" is not a GPU
// instance profile: use ParseDeviceName for it.
func (m *GPUModel) ProfileByName(name string) (*Profile, bool) {
	for i := range m.Profiles {
		if m.Profiles[i].Name == name {
			return &m.Profiles[i], true
		}
	}
	return nil, false
}

// ProfileByID returns the profile with the given NVML profile ID.
func (m *GPUModel) ProfileByID(id ProfileID) (*Profile, bool) {
	for i := range m.Profiles {
		if m.Profiles[i].ID == id {
			return &m.Profiles[i], true
		}
	}
	return nil, false
}

// ProfileByIndex returns the profile with the given NVML profile index.
func (m *GPUModel) ProfileByIndex(index ProfileIndex) (*Profile, bool) {
	for i := range m.Profiles {
		if m.Profiles[i].Index == index {
			return &m.Profiles[i], true
		}
	}
	return nil, false
}

// FullMask is the mask of every memory slice of the model.
func (m *GPUModel) FullMask() uint16 { return uint16(1<<m.MemorySlices - 1) }

// Compute says how a GPU instance is split into compute instances. The
// zero value means one compute instance over the whole GPU instance, which
// is what mig-parted's standard configs and NVIDIA's device plugin use.
type Compute struct {
	// Slices is C in "<C>c.<G>g": the compute slices of each compute
	// instance. 0 means C = G.
	Slices int `json:"slices,omitempty" yaml:"slices,omitempty"`
	// Count is the number of compute instances. 0 means 1.
	Count int `json:"count,omitempty" yaml:"count,omitempty"`
}

// Normalize returns the compute spec with defaults filled in for a GPU
// instance of g compute slices.
func (c Compute) Normalize(g int) Compute {
	if c.Slices == 0 {
		c.Slices = g
	}
	if c.Count == 0 {
		c.Count = 1
	}
	return c
}

// Instance is one GPU instance in a layout: its profile, its placement and
// how it is split into compute instances. In a desired layout the placement
// may be unset (Pack or Diff chooses it); in an observed layout the
// observation fields are filled in.
type Instance struct {
	// Profile is the GPU-instance profile ID.
	Profile ProfileID `json:"profile"`
	// Placement is where the instance sits; unset in a desired layout
	// means "anywhere".
	Placement Placement `json:"placement"`
	// Compute is the compute-instance split; zero means one full CI.
	Compute Compute `json:"compute,omitempty"`

	// GPUInstanceID is NVML's GI ID of an observed instance.
	GPUInstanceID int `json:"gpuInstanceID,omitempty"`
	// ComputeInstances are the observed compute instances.
	ComputeInstances []ComputeInstance `json:"computeInstances,omitempty"`
	// Busy reports that an observed instance has processes running on it.
	Busy bool `json:"busy,omitempty"`
}

// ComputeInstance is one observed compute instance of a GPU instance; with
// its GPU instance it forms a MIG device.
type ComputeInstance struct {
	// ID is NVML's CI ID inside its GPU instance.
	ID int `json:"id"`
	// Slices is the number of compute slices of the CI (C).
	Slices int `json:"slices"`
	// Start is the CI's compute-slice offset inside the GI.
	Start int `json:"start"`
	// UUID is the MIG device UUID ("MIG-…").
	UUID string `json:"uuid,omitempty"`
	// MemoryMiB is the MIG device's total memory as NVML reports it.
	MemoryMiB int `json:"memoryMiB,omitempty"`
	// Processes are the PIDs of processes running on the MIG device.
	Processes []uint32 `json:"processes,omitempty"`
}

// GPULayout is the desired state of one GPU.
type GPULayout struct {
	// MigEnabled is the desired MIG mode.
	MigEnabled bool `json:"migEnabled"`
	// Instances are the desired GPU instances; must be empty when
	// MigEnabled is false.
	Instances []Instance `json:"instances"`
}

// MigMode is a GPU's MIG mode as NVML reports it.
type MigMode struct {
	// Current is the mode in effect.
	Current bool `json:"current"`
	// Pending is the mode after the next activation (reset or reboot).
	Pending bool `json:"pending"`
}

// GPUState is one GPU as observed on a node.
type GPUState struct {
	// Index is NVML's device index.
	Index int `json:"index"`
	// UUID is the GPU UUID ("GPU-…").
	UUID string `json:"uuid"`
	// Name is the product name as NVML's GetName returns it.
	Name string `json:"name"`
	// PCIBusID is the PCI bus ID ("0000:07:00.0").
	PCIBusID string `json:"pciBusID"`
	// DeviceID is NVML's PciInfo.PciDeviceId (0xDDDDVVVV).
	DeviceID uint32 `json:"deviceID"`
	// SubsystemID is NVML's PciInfo.PciSubSystemId (0xSSSSVVVV).
	SubsystemID uint32 `json:"subsystemID"`
	// MemoryMiB is the GPU's total memory.
	MemoryMiB int `json:"memoryMiB"`
	// Model is the catalog key of the GPU's model; empty if the GPU is not
	// MIG-capable or unknown to the catalog.
	Model string `json:"model,omitempty"`
	// MigCapable reports whether the GPU supports MIG at all.
	MigCapable bool `json:"migCapable"`
	// Mig is the current and pending MIG mode.
	Mig MigMode `json:"mig"`
	// Instances are the GPU instances that exist, in placement order.
	Instances []Instance `json:"instances"`
	// Processes are PIDs running on the whole GPU (outside MIG devices).
	Processes []uint32 `json:"processes,omitempty"`
	// Allocated reports that the whole GPU is allocated to a pod (the
	// kubelet's pod-resources API says so); Diff treats it like a GPU with
	// processes.
	Allocated bool `json:"allocated,omitempty"`
}

// NodeState is every GPU of a node, in NVML index order.
type NodeState struct {
	GPUs []GPUState `json:"gpus"`
}

// occupiedMask returns the OR of the placements of the instances.
func occupiedMask(instances []Instance) uint16 {
	var m uint16
	for _, in := range instances {
		m |= in.Placement.Mask()
	}
	return m
}

// popcount16 counts set bits.
func popcount16(x uint16) int { return bits.OnesCount16(x) }
