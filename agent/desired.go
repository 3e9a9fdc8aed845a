package agent

import (
	"context"
	"fmt"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Desired is the layout the node should have, as a source reports it: a
// named config of a layout file in mig-parted's format, explicit per-GPU
// layouts that win over it for the GPUs they select, or both. A Desired
// with Err set reports that the source could not produce a valid desired
// state (a malformed file, an unknown config name); the agent then changes
// nothing and reports the error.
type Desired struct {
	// Source says where the desired state came from, for status and logs.
	Source string
	// Revision identifies the content (a hash of file, label and
	// annotation); sources send a new Desired only when it changes.
	Revision string
	// File is the layout file holding Config; nil when Config is empty.
	File *migconfig.File
	// Config is the selected named config of File; empty for none.
	Config string
	// Explicit holds explicit per-GPU layouts as one config named
	// ExplicitConfig (the tessera.dev/mig-layout annotation, or the
	// scheduler's plan); nil for none.
	Explicit *migconfig.File
	// Err is why the source has no valid desired state; nil otherwise.
	Err error
}

// ExplicitConfig is the config name under which explicit per-GPU layouts
// are kept in Desired.Explicit.
const ExplicitConfig = "tessera.dev/mig-layout"

// Source produces the desired state. Run sends the current desired state
// as soon as it is known and then a new value on every change, until ctx is
// done; it returns nil then, and an error only when it cannot go on. A
// source with nothing to say (no label on the node) sends a zero Desired.
type Source interface {
	Run(ctx context.Context, out chan<- Desired) error
}

// Reporter is implemented by sources that write the agent's state back to
// where the desired state came from (the node label
// nvidia.com/mig.config.state). The agent calls Report with every new
// Inventory version, from one goroutine, latest version first.
type Reporter interface {
	Report(ctx context.Context, inv Inventory) error
}

// empty reports that the desired state selects nothing.
func (d Desired) empty() bool {
	return d.Err == nil && d.Config == "" && d.Explicit == nil
}

// summary describes d for an Inventory.
func (d Desired) summary(explicit []int) *DesiredSummary {
	return &DesiredSummary{Source: d.Source, Config: d.Config, Explicit: explicit, Revision: d.Revision}
}

// resolve turns d into per-GPU layouts for the observed node: the named
// config first, then the explicit layouts over it. Every layout is
// validated against the GPU's model; nothing here touches the GPUs. It
// returns the GPUs that have explicit layouts too.
func (d Desired) resolve(cat *migconfig.Catalog, node migconfig.NodeState) (map[int]migconfig.GPULayout, []int, []string, error) {
	layouts := map[int]migconfig.GPULayout{}
	var notes []string
	if d.Config != "" {
		if d.File == nil {
			return nil, nil, nil, fmt.Errorf("config %q: no layout file", d.Config)
		}
		res, err := d.File.ResolveDetail(cat, d.Config, node)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, o := range res.Overrides {
			notes = append(notes, "config "+d.Config+": "+o.String())
		}
		layouts = res.Layouts
	}
	var explicit []int
	if d.Explicit != nil {
		res, err := d.Explicit.ResolveDetail(cat, ExplicitConfig, node)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("explicit layout: %w", ExplicitError(err))
		}
		explicit = sortedKeys(res.Layouts)
		for i, l := range res.Layouts {
			layouts[i] = l
		}
	}
	return layouts, explicit, notes, nil
}
