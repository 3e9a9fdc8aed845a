package scheduler

import (
	"math"
	"sort"
)

// growAll gives every service short of capacity what it lacks, all of them
// together (grow serves them one by one, in workload order). Free slices
// go one at a time to the service for which they save the most: the GPUs
// it would otherwise pay, at the LP prices, for the capacity the slice
// gives it, so that a slice goes to the service that runs best on it.
// Then, within the change budget, GPUs in use may get new instances in
// place of free slices no service could use (relayout; running replicas
// keep their slices), when that leaves fewer GPUs to add. What is still
// missing is planned like a fresh plan of the shortfall: replica mixes
// chosen and improved together, instances added to free memory of GPUs
// in use within the change budget, the rest covered on empty GPUs with
// the fewest layouts.
func (pl *Planner) growAll(st *state, prices []float64) {
	p := st.p
	rp := newRepacker(st, prices, false)
	short := st.shortServices(rp)
	if len(short) == 0 {
		return
	}
	st.fillFree(rp, short)
	rest, added := pl.shortfallMixes(st, prices, rp)
	if added > 0 {
		saved := st.snapshot()
		rp.need = needs{}
		rp.capa, rp.reps = st.capacity()
		for _, i := range short {
			rp.at(&rp.need, i)
		}
		relaid := false
		for left := rp.shortfall(&rp.need); left > 0 && rp.relayout(-1, left); left = rp.shortfall(&rp.need) {
			relaid = true
		}
		if relaid {
			if r2, a2 := pl.shortfallMixes(st, prices, rp); a2 < added {
				rest = r2
			} else {
				st.restore(saved)
			}
		}
	}
	// New instances in free memory of GPUs in use, larger ones first.
	for _, i := range short {
		m := rest[i]
		rs := make([]int, 0, len(m))
		for r := range m {
			rs = append(rs, r)
		}
		sort.Slice(rs, func(a, b int) bool {
			pa, pb := p.res[rs[a]].profile, p.res[rs[b]].profile
			if pa.MemorySlices != pb.MemorySlices {
				return pa.MemorySlices > pb.MemorySlices
			}
			return rs[a] < rs[b]
		})
		for _, r := range rs {
			for m[r] > 0 && st.addToUsedGPU(r, i) {
				m[r]--
			}
			if m[r] == 0 {
				delete(m, r)
			}
		}
	}
	need := p.needs(rest)
	for g := range p.models {
		if sum(need[g]) > 0 {
			st.buildFresh(g, p.cover(g, need[g]), need[g])
		}
	}
	st.assign(rest)
}

// shortServices returns the services short of capacity or replicas that
// some slice fits, in workload order.
func (st *state) shortServices(rp *repacker) []int {
	capa, reps := st.capacity()
	var short []int
	for i := range st.p.services {
		s := &st.p.services[i]
		if (s.demand*(1-demandSlack) > capa[i] || s.min > reps[i]) && !math.IsInf(rp.perRep[i], 1) {
			short = append(short, i)
		}
	}
	return short
}

// shortfallMixes chooses the replica mixes that serve what every service
// still lacks, split and improved together as in a fresh plan, and returns them
// with the GPUs their cover adds. A service no slice fits is reported
// unmet.
func (pl *Planner) shortfallMixes(st *state, prices []float64, rp *repacker) ([]mix, int) {
	p := st.p
	capa, reps := st.capacity()
	resid := *p
	resid.services = append([]serviceInfo(nil), p.services...)
	rest := make([]mix, len(p.services))
	for i := range resid.services {
		s := &resid.services[i]
		s.demand, s.min = max(s.demand*(1-demandSlack)-capa[i], 0), max(s.min-reps[i], 0)
		if s.demand <= 0 && s.min <= 0 {
			continue
		}
		m, ok := resid.chooseMix(s, prices)
		if !ok {
			st.unmet[i] = "no GPU model in the cluster has a slice this service fits"
			s.demand, s.min = 0, 0
			continue
		}
		rest[i] = m
	}
	if len(p.services) <= maxSplitServices {
		// As planFresh: the LP's split of the shortfall across kinds of
		// slice when it packs into fewer GPUs.
		if split, ok := resid.splitMixes(prices); ok {
			for i := range split {
				if split[i] == nil {
					split[i] = rest[i]
				}
			}
			if resid.score(split).less(resid.score(rest)) {
				rest = split
			}
		}
	}
	rest = pl.improve(&resid, rest, prices)
	added := 0
	need := p.needs(rest)
	for g := range p.models {
		added += sum(p.cover(g, need[g]))
	}
	return rest, added
}

// fillFree hands the free slices of usable GPUs to the short services:
// each time the (service, kind of slice) pair worth the most (the GPUs
// the capacity it gives, up to the deficit, would cost the service at the
// LP prices; see repacker.value), the cheaper kind on a tie, on the
// busiest GPU with such a slice.
func (st *state) fillFree(rp *repacker, short []int) {
	p := st.p
	capa, reps := st.capacity()
	deficit := make([]float64, len(p.services))
	missing := make([]int, len(p.services))
	for _, i := range short {
		deficit[i] = p.services[i].demand*(1-demandSlack) - capa[i]
		missing[i] = p.services[i].min - reps[i]
	}
	load := st.replicasPerGPU()
	type ref struct{ g, s int }
	free := make([][]ref, len(p.res))
	for gi, gs := range st.gpus {
		if gs.cordoned {
			continue
		}
		for si, sl := range gs.slices {
			if sl.service < 0 && sl.res >= 0 {
				free[sl.res] = append(free[sl.res], ref{gi, si})
			}
		}
	}
	for r := range free {
		q := free[r]
		sort.SliceStable(q, func(a, b int) bool { return load[q[a].g] > load[q[b].g] })
	}
	// best[r] is the service a slice of r is worth most to; only the
	// service that gets a slice loses value, so only the kinds whose best
	// it was are looked at again.
	best := make([]int, len(p.res))
	bestOf := func(r int) int {
		bi, bv := -1, 0.0
		for _, i := range short {
			if v := rp.value(i, r, deficit[i], missing[i]); v > bv*(1+1e-12) {
				bi, bv = i, v
			}
		}
		return bi
	}
	for r := range free {
		best[r] = -1
		if len(free[r]) > 0 {
			best[r] = bestOf(r)
		}
	}
	for {
		br, bv := -1, 0.0
		for r := range free {
			if best[r] < 0 || len(free[r]) == 0 {
				continue
			}
			v := rp.value(best[r], r, deficit[best[r]], missing[best[r]])
			if br < 0 || v > bv*(1+1e-12) || (v >= bv*(1-1e-12) && rp.prices[r] < rp.prices[br]) {
				br, bv = r, v
			}
		}
		if br < 0 {
			return
		}
		i := best[br]
		at := free[br][0]
		free[br] = free[br][1:]
		st.gpus[at.g].slices[at.s].service = i
		deficit[i] -= p.services[i].rate[br]
		missing[i]--
		for r := range free {
			if best[r] == i || len(free[r]) == 0 {
				if len(free[r]) == 0 {
					best[r] = -1
				} else {
					best[r] = bestOf(r)
				}
			}
		}
	}
}
