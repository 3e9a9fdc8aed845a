package migconfig

import (
	"fmt"
	"sort"
	"strings"
)

// MaximalLayouts returns every layout of model m built from the given
// profiles (all of m's profiles when profiles is empty) to which no further
// instance of those profiles can be added, as distinct multisets, each
// with one legal placement. Layouts whose multiset is contained in another
// one's (3g at 0:4 with three 1g, which 3g at 4:4 with four 1g contains)
// are left out: every placeable multiset is a sub-multiset of a returned
// layout, which is what the configuration LP and the planner rely on.
// The order is deterministic: most compute slices first, then by profile
// counts.
func MaximalLayouts(m *GPUModel, profiles []ProfileID) []GPULayout {
	all := maximalMultisets(m, profiles)
	var out []GPULayout
	for i, a := range all {
		dominated := false
		for j, b := range all {
			if i != j && contains(b.counts, a.counts) && !equalCounts(a.counts, b.counts) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, a.layout)
		}
	}
	return out
}

type layoutMultiset struct {
	counts map[ProfileID]int
	layout GPULayout
}

// maximalMultisets enumerates the maximal placement sets and returns their
// distinct multisets, including those contained in others.
func maximalMultisets(m *GPUModel, profiles []ProfileID) []layoutMultiset {
	type cand struct {
		profile ProfileID
		pl      Placement
	}
	allowed := map[ProfileID]bool{}
	for _, id := range profiles {
		allowed[id] = true
	}
	var cands []cand
	for _, p := range m.Profiles {
		if len(profiles) > 0 && !allowed[p.ID] {
			continue
		}
		for _, pl := range p.Placements {
			cands = append(cands, cand{p.ID, pl})
		}
	}
	seen := map[string]bool{}
	var out []layoutMultiset
	var cur []Instance
	fits := func(in Instance) bool {
		next := GPULayout{MigEnabled: true, Instances: append(append([]Instance(nil), cur...), in)}
		return checkInstances(m, next) == nil
	}
	var dfs func(k int)
	dfs = func(k int) {
		if k == len(cands) {
			for _, c := range cands {
				if fits(Instance{Profile: c.profile, Placement: c.pl}) {
					return // not maximal
				}
			}
			if len(cur) == 0 {
				return
			}
			counts := map[ProfileID]int{}
			for _, in := range cur {
				counts[in.Profile]++
			}
			key := countsKey(counts)
			if seen[key] {
				return
			}
			seen[key] = true
			l := GPULayout{MigEnabled: true, Instances: append([]Instance(nil), cur...)}
			SortInstances(l.Instances)
			out = append(out, layoutMultiset{counts: counts, layout: l})
			return
		}
		c := cands[k]
		in := Instance{Profile: c.profile, Placement: c.pl}
		if fits(in) {
			cur = append(cur, in)
			dfs(k + 1)
			cur = cur[:len(cur)-1]
		}
		dfs(k + 1)
	}
	dfs(0)
	sort.SliceStable(out, func(i, j int) bool {
		ci, cj := layoutCompute(m, out[i].layout), layoutCompute(m, out[j].layout)
		if ci != cj {
			return ci > cj
		}
		return countsKey(out[i].counts) < countsKey(out[j].counts)
	})
	return out
}

func layoutCompute(m *GPUModel, l GPULayout) int {
	n := 0
	for _, in := range l.Instances {
		if p, ok := m.ProfileByID(in.Profile); ok {
			n += p.ComputeSlices
		}
	}
	return n
}

func countsKey(c map[ProfileID]int) string {
	ids := make([]int, 0, len(c))
	for id := range c {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d×%d", c[ProfileID(id)], id)
	}
	return strings.Join(parts, ",")
}

// contains reports whether multiset a contains multiset b.
func contains(a, b map[ProfileID]int) bool {
	for id, n := range b {
		if a[id] < n {
			return false
		}
	}
	return true
}

func equalCounts(a, b map[ProfileID]int) bool { return contains(a, b) && contains(b, a) }
