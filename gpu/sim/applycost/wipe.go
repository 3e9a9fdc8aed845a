// Package applycost measures how layouts are applied: Tessera's incremental
// Diff against the full wipe that NVIDIA's mig-parted performs, counted in
// NVML mutating calls and destroyed instances on simulated GPUs.
package applycost

import (
	"fmt"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// FullWipe returns the ops mig-parted's apply amounts to (see
// ../shared/reference/mig.md §7.3): a GPU whose layout differs, compared as
// a multiset of profiles, has every instance destroyed and the whole
// layout created again; a GPU that matches is skipped. The creates use the
// same placements as Pack, which favours mig-parted: its permutation search
// can take several wipes before one order fits.
func FullWipe(cat *migconfig.Catalog, node migconfig.NodeState, desired map[int]migconfig.GPULayout) ([]migconfig.Op, error) {
	indexes := make([]int, 0, len(desired))
	for i := range desired {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)
	var ops []migconfig.Op
	for _, i := range indexes {
		g, ok := node.GPU(i)
		if !ok {
			return nil, fmt.Errorf("gpu %d: no such GPU", i)
		}
		m, ok := cat.Lookup(g)
		if !ok {
			return nil, fmt.Errorf("gpu %d: unknown model %s", i, g.Name)
		}
		want := desired[i]
		if g.Mig.Current == want.MigEnabled && sameMultiset(m, g.Instances, want.Instances) {
			continue
		}
		// Wipe: diff against an empty desired layout, then build from an
		// empty GPU.
		wipe, err := migconfig.Diff(m, g, migconfig.GPULayout{MigEnabled: g.Mig.Current})
		if err != nil {
			return nil, err
		}
		empty := g
		empty.Instances = nil
		build, err := migconfig.Diff(m, empty, want)
		if err != nil {
			return nil, err
		}
		for k := range wipe {
			wipe[k].Busy = false // mig-parted does not look
		}
		ops = append(ops, wipe...)
		ops = append(ops, build...)
	}
	return ops, nil
}

func sameMultiset(m *migconfig.GPUModel, have, want []migconfig.Instance) bool {
	count := map[string]int{}
	key := func(in migconfig.Instance) string {
		p, _ := m.ProfileByID(in.Profile)
		c := in.Compute.Normalize(p.ComputeSlices)
		return fmt.Sprintf("%d/%d/%d", in.Profile, c.Slices, c.Count)
	}
	for _, in := range have {
		c, ok := migconfig.ObservedCompute(m, in)
		if !ok {
			return false
		}
		in.Compute = c
		count[key(in)]++
	}
	for _, in := range want {
		count[key(in)]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}
