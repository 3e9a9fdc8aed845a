package deviceplugin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Strategy is how slices become Kubernetes resources, as NVIDIA's device
// plugin names them (its --mig-strategy).
type Strategy string

// The strategies.
const (
	// StrategyMixed advertises one resource per MIG profile,
	// nvidia.com/mig-<profile> ("+me" becomes ".me"), and GPUs without
	// MIG as nvidia.com/gpu.
	StrategyMixed Strategy = "mixed"
	// StrategySingle advertises every slice as nvidia.com/gpu; it needs
	// every GPU to have MIG enabled with slices of one profile (or no GPU
	// with MIG enabled).
	StrategySingle Strategy = "single"
	// StrategyNone advertises whole GPUs as nvidia.com/gpu and ignores MIG.
	StrategyNone Strategy = "none"
)

// ParseStrategy parses "mixed", "single" or "none".
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case StrategyMixed, StrategySingle, StrategyNone:
		return st, nil
	}
	return "", fmt.Errorf("unknown MIG strategy %q: want mixed, single or none", s)
}

// ResourcePrefix is the domain of every resource the plugin advertises.
const ResourcePrefix = "nvidia.com/"

// GPUResource is the resource of whole GPUs (and of slices under the
// single strategy).
const GPUResource = ResourcePrefix + "gpu"

// Device is one device of a resource: a MIG slice or a whole GPU.
type Device struct {
	// ID is what the kubelet sees: the MIG device UUID, or the GPU UUID.
	ID string
	// GPUIndex and GPUUUID name the (parent) GPU.
	GPUIndex int
	GPUUUID  string
	// Placement orders slices within their GPU; zero for a whole GPU.
	Placement migconfig.Placement
	// Healthy is false when a critical error made the device unfit.
	Healthy bool
	// Reason says why the device is unhealthy.
	Reason string
}

// Resources maps the node's Inventory to the resources and devices the
// plugin advertises under strategy. health lists unhealthy device IDs with
// the reason; slices the Inventory marks unhealthy are unhealthy too.
// Devices come in GPU and placement order. The single strategy returns an
// error naming the GPUs that break its rule.
func Resources(strategy Strategy, inv agent.Inventory, health map[string]string) (map[string][]Device, error) {
	out := map[string][]Device{}
	add := func(resource string, d Device) {
		if reason, bad := health[d.ID]; bad {
			d.Healthy, d.Reason = false, reason
		}
		out[resource] = append(out[resource], d)
	}
	wholeGPU := func(g agent.GPU) Device {
		return Device{ID: g.UUID, GPUIndex: g.Index, GPUUUID: g.UUID, Healthy: true}
	}
	slice := func(s agent.Slice) Device {
		d := Device{ID: s.UUID, GPUIndex: s.GPUIndex, GPUUUID: s.GPUUUID, Placement: s.Placement, Healthy: s.Healthy}
		if !s.Healthy {
			d.Reason = "unhealthy in the node's inventory"
		}
		return d
	}
	switch strategy {
	case StrategyNone:
		for _, g := range inv.GPUs {
			add(GPUResource, wholeGPU(g))
		}
	case StrategyMixed:
		for _, g := range inv.GPUs {
			if !g.MigEnabled {
				add(GPUResource, wholeGPU(g))
				continue
			}
			for _, s := range g.Slices {
				add(ResourcePrefix+migconfig.ResourceName(s.Profile), slice(s))
			}
		}
	case StrategySingle:
		profiles := map[string][]int{}
		var migOff []int
		for _, g := range inv.GPUs {
			if !g.MigEnabled {
				migOff = append(migOff, g.Index)
				continue
			}
			for _, s := range g.Slices {
				if n := len(profiles[s.Profile]); n == 0 || profiles[s.Profile][n-1] != g.Index {
					profiles[s.Profile] = append(profiles[s.Profile], g.Index)
				}
			}
		}
		switch {
		case len(profiles) == 0 && len(migOff) == len(inv.GPUs):
			for _, g := range inv.GPUs {
				add(GPUResource, wholeGPU(g))
			}
		case len(migOff) > 0:
			return nil, fmt.Errorf("MIG strategy single: GPUs %s have MIG disabled while others have it enabled; enable MIG on every GPU or use the mixed strategy", joinInts(migOff))
		case len(profiles) > 1:
			return nil, fmt.Errorf("MIG strategy single needs one MIG profile on every GPU, the node has %s; use the mixed strategy", describeProfiles(profiles))
		default:
			for _, g := range inv.GPUs {
				for _, s := range g.Slices {
					add(GPUResource, slice(s))
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown MIG strategy %q", strategy)
	}
	return out, nil
}

func describeProfiles(profiles map[string][]int) string {
	names := make([]string, 0, len(profiles))
	for p := range profiles {
		names = append(names, p)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, p := range names {
		parts[i] = fmt.Sprintf("%s on GPUs %s", p, joinInts(profiles[p]))
	}
	return strings.Join(parts, ", ")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// socketName is the file name of a resource's plugin socket in the
// kubelet's device-plugin folder: "tessera-mig-1g.10gb.sock".
func socketName(resource string) string {
	name := strings.TrimPrefix(resource, ResourcePrefix)
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
	return "tessera-" + name + ".sock"
}
