package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// ReadModel reads GPU gpuIndex's MIG profile table from NVML: every
// GPU-instance profile index the driver supports, with its ID, sizes,
// engines, instance count and possible placements. Identity fields (Key,
// Name, ProductNames, DeviceIDs, Architecture) come from the catalog when
// the GPU is known to it, and are derived from NVML otherwise. Profile
// names are the driver's own when the driver reports them, and derived
// from the profile's memory as nvidia-smi and mig-parted do otherwise.
func (n *Node) ReadModel(ctx context.Context, gpuIndex int) (migconfig.GPUModel, error) {
	if err := ctx.Err(); err != nil {
		return migconfig.GPUModel{}, fmt.Errorf("gpu: read model: %w", err)
	}
	if err := n.lock(); err != nil {
		return migconfig.GPUModel{}, err
	}
	defer n.mu.Unlock()
	g, err := n.device(gpuIndex)
	if err != nil {
		return migconfig.GPUModel{}, fmt.Errorf("gpu: read model: %w", err)
	}
	m, err := n.readModel(g)
	if err != nil {
		return migconfig.GPUModel{}, fmt.Errorf("gpu: read model: %w", err)
	}
	return m, nil
}

// readModel builds the GPU's model from NVML.
func (n *Node) readModel(g *gpuDevice) (migconfig.GPUModel, error) {
	m := migconfig.GPUModel{MemoryMiB: g.memoryMiB()}
	if g.model != nil {
		m.Key = g.model.Key
		m.Name = g.model.Name
		m.ProductNames = slices.Clone(g.model.ProductNames)
		m.DeviceIDs = slices.Clone(g.model.DeviceIDs)
		m.Architecture = g.model.Architecture
	} else {
		short := strings.TrimSpace(g.name)
		short = strings.TrimPrefix(short, "NVIDIA ")
		m.Key = strings.ToLower(strings.ReplaceAll(short, " ", "-"))
		m.Name = short
		m.ProductNames = []string{g.name}
		m.DeviceIDs = []uint32{g.pci.PciDeviceId}
		m.Architecture = architectureFromName(short)
	}
	profiles, err := n.readProfiles(g)
	if err != nil {
		return migconfig.GPUModel{}, err
	}
	if len(profiles) == 0 {
		return migconfig.GPUModel{}, fmt.Errorf("%s: no MIG profiles discovered (not MIG-capable, or a driver that lists profiles only with MIG enabled)", g.label())
	}
	for _, p := range profiles {
		m.ComputeSlices = max(m.ComputeSlices, p.ComputeSlices)
		for _, pl := range p.Placements {
			m.MemorySlices = max(m.MemorySlices, pl.Start+pl.Size)
		}
	}
	m.Profiles = profiles
	return m, nil
}

// readProfiles probes every GPU-instance profile index of the GPU.
func (n *Node) readProfiles(g *gpuDevice) ([]migconfig.Profile, error) {
	var (
		profiles []migconfig.Profile
		infos    []nvml.GpuInstanceProfileInfo
	)
	for idx := range int(migconfig.ProfileIndexCount) {
		info, ret := g.dev.GetGpuInstanceProfileInfo(idx)
		if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: profile index %d: %w", g.label(), idx, callErr("GetGpuInstanceProfileInfo", ret))
		}
		p := migconfig.Profile{
			Index:           migconfig.ProfileIndex(idx),
			ID:              migconfig.ProfileID(info.Id),
			ComputeSlices:   int(info.SliceCount),
			MemoryMiB:       int(info.MemorySizeMB),
			Multiprocessors: int(info.MultiprocessorCount),
			CopyEngines:     int(info.CopyEngineCount),
			Decoders:        int(info.DecoderCount),
			Encoders:        int(info.EncoderCount),
			JPEGs:           int(info.JpegCount),
			OFAs:            int(info.OfaCount),
			MaxCount:        int(info.InstanceCount),
		}
		placements, ret := g.dev.GetGpuInstancePossiblePlacements(&info)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("%s: profile ID %d: %w", g.label(), info.Id, callErr("GetGpuInstancePossiblePlacements", ret))
		}
		for _, pl := range placements {
			p.Placements = append(p.Placements, migconfig.Placement{Start: int(pl.Start), Size: int(pl.Size)})
		}
		slices.SortFunc(p.Placements, func(a, b migconfig.Placement) int { return a.Start - b.Start })
		if len(p.Placements) > 0 {
			p.MemorySlices = p.Placements[0].Size
		}
		profiles = append(profiles, p)
		infos = append(infos, info)
	}
	// Names are derived from the GPU's total memory; should NVML report
	// none, the largest profile (the whole GPU) stands in for it.
	total := g.mem.Total
	if total == 0 {
		for _, info := range infos {
			total = max(total, info.MemorySizeMB<<20)
		}
	}
	for i := range profiles {
		profiles[i].Name = n.profileName(g, int(profiles[i].Index), infos[i], total)
	}
	return profiles, nil
}

// profileName returns the driver's name for the profile when go-nvml can
// ask for it (real libnvidia-ml with nvmlDeviceGetGpuInstanceProfileInfoV),
// and the derived name otherwise.
func (n *Node) profileName(g *gpuDevice, idx int, info nvml.GpuInstanceProfileInfo, totalBytes uint64) string {
	if isRealDevice(g.dev) && n.lib.Extensions().LookupSymbol("nvmlDeviceGetGpuInstanceProfileInfoV") == nil {
		v2, ret := g.dev.GetGpuInstanceProfileInfoV(idx).V2()
		if ret == nvml.SUCCESS && v2.Id == info.Id {
			name := strings.TrimSpace(strings.TrimPrefix(cString(v2.Name[:]), "MIG "))
			if name != "" {
				return name
			}
		}
	}
	return DeriveProfileName(int(info.SliceCount), int(info.SliceCount), info.MemorySizeMB, totalBytes, migconfig.ProfileIndex(idx))
}

// DeriveProfileName computes a MIG device name from NVML figures the way
// go-nvlib, mig-parted and the driver do: the profile's share of the GPU's
// memory rounded up to eighths, times the GPU's memory in whole GiB rounded
// up, rounded to whole GB; "<G>g.<GB>gb" when the compute instance spans
// the GPU instance (c == g), "<C>c.<G>g.<GB>gb" otherwise, plus the
// attribute suffix of the profile index ("+me", "+me.all", "+gfx", "-me").
func DeriveProfileName(c, g int, profileMemoryMiB, deviceMemoryBytes uint64, index migconfig.ProfileIndex) string {
	const (
		mib = 1 << 20
		gib = 1 << 30
	)
	gb := uint64(0)
	if deviceMemoryBytes > 0 {
		frac := float64(profileMemoryMiB) * mib / float64(deviceMemoryBytes)
		frac = math.Ceil(frac*8) / 8
		totalGiB := float64((deviceMemoryBytes + gib - 1) / gib)
		gb = uint64(math.Round(frac * totalGiB))
	}
	name := fmt.Sprintf("%dg.%dgb", g, gb)
	if c != g {
		name = fmt.Sprintf("%dc.%s", c, name)
	}
	return name + profileAttributes(index)
}

// profileAttributes returns the name suffix of a GPU-instance profile
// index (nvml.h GPU_INSTANCE_PROFILE_*).
func profileAttributes(index migconfig.ProfileIndex) string {
	switch index {
	case migconfig.ProfileIndex1SliceRev1, migconfig.ProfileIndex2SliceRev1:
		return "+me"
	case 0x0A, 0x0B, 0x0C, 0x11: // *_GFX
		return "+gfx"
	case 0x0D, 0x0E: // *_NO_ME
		return "-me"
	case 0x0F, 0x10: // *_ALL_ME
		return "+me.all"
	default:
		return ""
	}
}

// architectureFromName guesses the architecture of a GPU the catalog does
// not know from its product name; it only matters for MIG mode changes,
// which Apply verifies by reading the mode back anyway.
func architectureFromName(name string) migconfig.Architecture {
	n := strings.ToUpper(name)
	switch {
	case strings.HasPrefix(n, "A"):
		return migconfig.Ampere
	case strings.HasPrefix(n, "H"), strings.HasPrefix(n, "GH"):
		return migconfig.Hopper
	default:
		return migconfig.Blackwell
	}
}

// profileInfo returns NVML's profile info for GPU-instance profile id,
// using the catalog's index when it is right and probing every index
// otherwise.
func (n *Node) profileInfo(g *gpuDevice, id migconfig.ProfileID) (nvml.GpuInstanceProfileInfo, migconfig.ProfileIndex, error) {
	if g.model != nil {
		if p, ok := g.model.ProfileByID(id); ok {
			info, ret := g.dev.GetGpuInstanceProfileInfo(int(p.Index))
			if ret == nvml.SUCCESS && migconfig.ProfileID(info.Id) == id {
				return info, p.Index, nil
			}
			if ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED && ret != nvml.ERROR_INVALID_ARGUMENT {
				return info, 0, callErr("GetGpuInstanceProfileInfo", ret)
			}
			n.log.Warn("catalog profile index does not match NVML; probing",
				slog.Int("gpu", g.index), slog.String("model", g.model.Key),
				slog.Int("profileID", int(id)), slog.Int("catalogIndex", int(p.Index)))
		}
	}
	for idx := range int(migconfig.ProfileIndexCount) {
		info, ret := g.dev.GetGpuInstanceProfileInfo(idx)
		if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue
		}
		if ret != nvml.SUCCESS {
			return info, 0, callErr("GetGpuInstanceProfileInfo", ret)
		}
		if migconfig.ProfileID(info.Id) == id {
			return info, migconfig.ProfileIndex(idx), nil
		}
	}
	return nvml.GpuInstanceProfileInfo{}, 0, fmt.Errorf("GPU-instance profile ID %d is not supported by this GPU", id)
}

// ciProfileIndex maps a compute instance's compute slices to NVML's
// COMPUTE_INSTANCE_PROFILE_* index.
func ciProfileIndex(slices int) (int, bool) {
	switch slices {
	case 1:
		return nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, true
	case 2:
		return nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE, true
	case 3:
		return nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, true
	case 4:
		return nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE, true
	case 7:
		return nvml.COMPUTE_INSTANCE_PROFILE_7_SLICE, true
	case 8:
		return nvml.COMPUTE_INSTANCE_PROFILE_8_SLICE, true
	case 6:
		return nvml.COMPUTE_INSTANCE_PROFILE_6_SLICE, true
	default:
		return 0, false
	}
}
