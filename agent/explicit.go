package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tessera-gpu/tessera/migconfig"
)

// LayoutAnnotation is the node annotation holding explicit per-GPU layouts,
// which win over the named config of nvidia.com/mig.config for the GPUs they
// select.
const LayoutAnnotation = "tessera.dev/mig-layout"

// The annotation's value is a JSON list of config entries in mig-parted's
// format, usually one per GPU with explicit placements:
//
//	[{"devices":[0],"mig-enabled":true,"mig-devices":{"3g.40gb":1,"1g.10gb":4},
//	  "placements":{"3g.40gb":[4],"1g.10gb":[0,1,2,3]}}]
//
// It is parsed as the entries of one config of a layout file, so every rule
// and error message of layout files applies.
const explicitPrefix = `{"version":"v1","mig-configs":{"` + ExplicitConfig + `":`

// ParseExplicit parses explicit per-GPU layouts (the value of the
// tessera.dev/mig-layout annotation); name says where the value came from in
// errors. Errors are positioned in the value itself.
func ParseExplicit(name string, value string) (*migconfig.File, error) {
	if strings.TrimSpace(value) == "" {
		return nil, fmt.Errorf("%s: empty; want a JSON list of mig-parted config entries", name)
	}
	if !strings.HasPrefix(strings.TrimSpace(value), "[") {
		return nil, fmt.Errorf(`%s: want a JSON list of mig-parted config entries, like [{"devices":[0],"mig-enabled":true,"mig-devices":{"7g.80gb":1}}]`, name)
	}
	f, err := migconfig.ParseFile(name, []byte(explicitPrefix+value+"}}"))
	if err != nil {
		return nil, ExplicitError(err)
	}
	return f, nil
}

// ExplicitError rewrites the positions and field paths of errors about
// explicit layouts (from ParseExplicit, or from resolving the file it
// returned) to point into the annotation's value rather than into the
// layout file it is wrapped in. Other errors are returned unchanged.
func ExplicitError(err error) error {
	var list migconfig.ErrorList
	if !errors.As(err, &list) {
		return err
	}
	out := make(migconfig.ErrorList, len(list))
	for i, e := range list {
		c := *e
		if c.Line == 1 && c.Column > len(explicitPrefix) {
			c.Column -= len(explicitPrefix)
		}
		c.Field = strings.TrimPrefix(strings.TrimPrefix(c.Field, "mig-configs."+ExplicitConfig), ".")
		c.Msg = strings.ReplaceAll(c.Msg, fmt.Sprintf("config %q", ExplicitConfig), "the explicit layout")
		out[i] = &c
	}
	return out
}

// FormatExplicit writes per-GPU layouts (keyed by NVML index) as the value
// of the tessera.dev/mig-layout annotation: one entry per GPU with every
// instance's placement. Instances split into compute instances are not
// expressible there and are an error.
func FormatExplicit(cat *migconfig.Catalog, node migconfig.NodeState, layouts map[int]migconfig.GPULayout) (string, error) {
	type entry struct {
		Devices    []int            `json:"devices"`
		MigEnabled bool             `json:"mig-enabled"`
		MigDevices map[string]int   `json:"mig-devices,omitempty"`
		Placements map[string][]int `json:"placements,omitempty"`
	}
	var entries []entry
	for _, i := range sortedKeys(layouts) {
		l := layouts[i]
		e := entry{Devices: []int{i}, MigEnabled: l.MigEnabled}
		if l.MigEnabled && len(l.Instances) > 0 {
			g, ok := node.GPU(i)
			if !ok {
				return "", fmt.Errorf("gpu %d: not on the node", i)
			}
			m, ok := cat.Lookup(g)
			if !ok {
				return "", fmt.Errorf("gpu %d (%s): model not in the catalog", i, g.Name)
			}
			e.MigDevices, e.Placements = map[string]int{}, map[string][]int{}
			in := append([]migconfig.Instance(nil), l.Instances...)
			sort.SliceStable(in, func(a, b int) bool { return in[a].Placement.Start < in[b].Placement.Start })
			for _, x := range in {
				p, ok := m.ProfileByID(x.Profile)
				if !ok {
					return "", fmt.Errorf("gpu %d: profile ID %d is not a profile of %s", i, x.Profile, m.Name)
				}
				if x.Compute != (migconfig.Compute{}) && x.Compute.Normalize(p.ComputeSlices) != (migconfig.Compute{}).Normalize(p.ComputeSlices) {
					return "", fmt.Errorf("gpu %d: %s is split into compute instances; explicit layouts hold whole instances", i, p.Name)
				}
				e.MigDevices[p.Name]++
				if x.Placement.IsSet() {
					e.Placements[p.Name] = append(e.Placements[p.Name], x.Placement.Start)
				}
			}
			for name, starts := range e.Placements {
				if len(starts) != e.MigDevices[name] {
					delete(e.Placements, name) // partly placed: let the agent choose
				}
			}
			if len(e.Placements) == 0 {
				e.Placements = nil
			}
		}
		entries = append(entries, e)
	}
	out, err := json.Marshal(entries)
	if err != nil {
		return "", fmt.Errorf("encode explicit layout: %w", err)
	}
	return string(out), nil
}
