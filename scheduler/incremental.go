package scheduler

import (
	"math"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// planIncremental re-plans from the running cluster. Every GPU keeps its
// layout and replicas unless the demand says otherwise:
//   - a service with more capacity than it needs stops the replicas it can
//     spare, on the emptiest GPUs first;
//   - a service short of capacity first takes free slices that exist, then
//     new instances created in free memory slices of GPUs already in use
//     (no running replica is touched), then layouts on empty GPUs;
//   - a GPU left without replicas is cleared, so it counts as unused;
//   - with Migrate, when the re-plan uses more than FreshSlack more GPUs
//     than a fresh plan, GPUs are drained.
//
// With a change budget (opts.MaxChangedGPUs not NoRepack) the short
// services are served together (growAll) and the drain is a bounded
// repack (repack): GPUs in use may be re-laid out, as long as the GPUs
// whose layout changes stay within the budget. Without one (NoRepack) the
// re-plan is the one before the budget existed: services grow one by one
// (grow) and drained replicas move to free slices only (consolidate).
func (pl *Planner) planIncremental(st *state, prices []float64, opts Options) {
	p := st.p
	st.budget = newBudget(opts.MaxChangedGPUs)
	index := map[string]int{}
	for i, s := range p.services {
		index[s.Name] = i
	}
	for _, gs := range st.gpus {
		for _, s := range gs.current {
			sl := slot{res: -1, profile: s.Profile, placement: s.Placement, service: -1}
			if gs.model >= 0 {
				sl.res = p.resourceByName(gs.modelKey, s.Profile)
			}
			if i, ok := index[s.Service]; ok && sl.res >= 0 && p.services[i].rate[sl.res] > 0 {
				sl.service = i
			}
			gs.slices = append(gs.slices, sl)
		}
	}
	st.release()
	if st.budget.off {
		for i := range p.services {
			st.grow(i, prices)
		}
	} else {
		pl.growAll(st, prices)
	}
	st.spill(prices)
	st.clearIdle()
	if !opts.Migrate {
		return
	}
	// Against a fresh plan of the same demand, drain the emptiest GPUs
	// until the re-plan uses at most FreshSlack more GPUs.
	fresh := newState(p, Cluster{}, true)
	fresh.gpus = make([]*gpuState, len(st.gpus))
	for i, gs := range st.gpus {
		fresh.gpus[i] = &gpuState{node: gs.node, index: gs.index, modelKey: gs.modelKey, model: gs.model, cordoned: gs.cordoned}
	}
	pl.planFresh(fresh, prices)
	limit := int(math.Floor(float64(fresh.used()) * (1 + FreshSlack)))
	if st.budget.off {
		st.consolidate(limit)
		return
	}
	st.repack(limit, prices, true)
	st.clearIdle()
}

// FreshSlack is how many more GPUs, as a fraction of a fresh plan's, an
// incremental re-plan may use before it drains GPUs to consolidate.
const FreshSlack = 0.02

// clearIdle clears the layout of every GPU that runs no replica.
func (st *state) clearIdle() {
	for _, gs := range st.gpus {
		busy := false
		for _, sl := range gs.slices {
			busy = busy || sl.service >= 0
		}
		if !busy {
			gs.slices = nil
		}
	}
}

// used counts the GPUs with a planned layout.
func (st *state) used() int {
	n := 0
	for _, gs := range st.gpus {
		if len(gs.slices) > 0 {
			n++
		}
	}
	return n
}

// consolidate drains GPUs, emptiest first, while more than limit are in
// use: every replica of a drained GPU moves to a free slice elsewhere that
// serves it at least as fast, or to a new instance of its kind in free
// memory of another GPU in use. A GPU that cannot be drained whole is left
// as it was.
func (st *state) consolidate(limit int) {
	tried := map[int]bool{}
	for st.used() > limit {
		load := st.replicasPerGPU()
		cand := -1
		for gi, gs := range st.gpus {
			if tried[gi] || len(gs.slices) == 0 || gs.cordoned {
				continue
			}
			if cand < 0 || load[gi] < load[cand] {
				cand = gi
			}
		}
		if cand < 0 {
			return
		}
		tried[cand] = true
		saved := st.snapshot()
		if st.drain(cand) {
			st.gpus[cand].slices = nil
			if !st.withinBudget() {
				st.restore(saved)
			}
		} else {
			st.restore(saved)
		}
	}
}

func (st *state) snapshot() [][]slot {
	out := make([][]slot, len(st.gpus))
	for i, gs := range st.gpus {
		out[i] = append([]slot(nil), gs.slices...)
	}
	return out
}

func (st *state) restore(saved [][]slot) {
	for i, gs := range st.gpus {
		gs.slices = saved[i]
	}
}

// drain moves every replica off GPU gi; it reports false as soon as one
// cannot move.
func (st *state) drain(gi int) bool {
	p := st.p
	for si := range st.gpus[gi].slices {
		sl := st.gpus[gi].slices[si]
		if sl.service < 0 {
			continue
		}
		s := &p.services[sl.service]
		moved := false
		for gj, gs := range st.gpus {
			if gj == gi || gs.cordoned || len(gs.slices) == 0 {
				continue
			}
			for sj := range gs.slices {
				t := &gs.slices[sj]
				if t.service < 0 && t.res >= 0 && s.rate[t.res] >= s.rate[sl.res] {
					t.service = sl.service
					moved = true
					break
				}
			}
			if moved {
				break
			}
		}
		if !moved && !st.addToUsedGPUExcept(sl.res, sl.service, gi) {
			return false
		}
	}
	return true
}

// replicasPerGPU counts the planned replicas on each GPU.
func (st *state) replicasPerGPU() []int {
	out := make([]int, len(st.gpus))
	for gi, gs := range st.gpus {
		for _, sl := range gs.slices {
			if sl.service >= 0 {
				out[gi]++
			}
		}
	}
	return out
}

// release stops the replicas services can spare. First whole GPUs, the
// emptiest first: when every service on a GPU keeps its demand and minimum
// without its replicas there, they all stop and the GPU frees up. Then,
// per service, while it can spare a replica, the one on the GPU with the
// fewest replicas goes.
func (st *state) release() {
	p := st.p
	capa, reps := st.capacity()
	load := st.replicasPerGPU()
	order := make([]int, len(st.gpus))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return load[order[a]] < load[order[b]] })
	for _, gi := range order {
		gs := st.gpus[gi]
		if load[gi] == 0 {
			continue
		}
		lose := map[int]float64{}
		count := map[int]int{}
		for _, sl := range gs.slices {
			if sl.service >= 0 {
				lose[sl.service] += p.services[sl.service].rate[sl.res]
				count[sl.service]++
			}
		}
		spare := true
		for i, r := range lose {
			s := &p.services[i]
			if capa[i]-r < s.demand*(1-demandSlack) || reps[i]-count[i] < s.min {
				spare = false
				break
			}
		}
		if !spare {
			continue
		}
		for si := range gs.slices {
			if i := gs.slices[si].service; i >= 0 {
				capa[i] -= p.services[i].rate[gs.slices[si].res]
				reps[i]--
				gs.slices[si].service = -1
			}
		}
	}
	// Each service's replicas in cluster order, and the load as the
	// replicas stop.
	type ref struct{ g, s int }
	where := make([][]ref, len(p.services))
	for gi, gs := range st.gpus {
		for si, sl := range gs.slices {
			if sl.service >= 0 {
				where[sl.service] = append(where[sl.service], ref{gi, si})
			}
		}
	}
	load = st.replicasPerGPU()
	for i := range p.services {
		s := &p.services[i]
		for {
			best := -1
			for k, at := range where[i] {
				sl := st.gpus[at.g].slices[at.s]
				if sl.service != i {
					continue
				}
				if capa[i]-s.rate[sl.res] < s.demand*(1-demandSlack) || reps[i]-1 < s.min {
					continue
				}
				if best < 0 || load[at.g] < load[where[i][best].g] {
					best = k
				}
			}
			if best < 0 {
				break
			}
			at := where[i][best]
			sl := &st.gpus[at.g].slices[at.s]
			capa[i] -= s.rate[sl.res]
			reps[i]--
			sl.service = -1
			load[at.g]--
		}
	}
}

// grow gives service i the capacity it lacks: free slices first, then new
// instances in free memory of GPUs in use, then new layouts on empty GPUs.
func (st *state) grow(i int, prices []float64) {
	p := st.p
	s := &p.services[i]
	capa, reps := st.capacity()
	deficit := s.demand*(1-demandSlack) - capa[i]
	missing := s.min - reps[i]
	if deficit <= 0 && missing <= 0 {
		return
	}
	// Free slices, busiest GPUs first; a covering slice at the lowest
	// price, else the fastest per price.
	load := st.replicasPerGPU()
	for deficit > 0 || missing > 0 {
		bestG, bestS := -1, -1
		better := func(gi, si int) bool {
			if bestG < 0 {
				return true
			}
			a, b := st.gpus[gi].slices[si].res, st.gpus[bestG].slices[bestS].res
			ca, cb := s.rate[a] >= deficit, s.rate[b] >= deficit
			switch {
			case ca && !cb:
				return true
			case cb && !ca:
				return false
			case ca && cb:
				if prices[a] != prices[b] {
					return prices[a] < prices[b]
				}
			default:
				if ra, rb := s.rate[a]/prices[a], s.rate[b]/prices[b]; ra != rb {
					return ra > rb
				}
			}
			return load[gi] > load[bestG]
		}
		for gi, gs := range st.gpus {
			if gs.cordoned {
				continue
			}
			for si, sl := range gs.slices {
				if sl.service < 0 && sl.res >= 0 && s.rate[sl.res] > 0 && better(gi, si) {
					bestG, bestS = gi, si
				}
			}
		}
		if bestG < 0 {
			break
		}
		sl := &st.gpus[bestG].slices[bestS]
		sl.service = i
		deficit -= s.rate[sl.res]
		missing--
		load[bestG]++
	}
	if deficit <= 0 && missing <= 0 {
		return
	}
	// New instances for the rest.
	rest := serviceInfo{Service: s.Service, index: s.index, rate: s.rate, demand: max(deficit, 0), min: max(missing, 0)}
	m, ok := p.chooseMix(&rest, prices)
	if !ok {
		st.unmet[i] = "no GPU model in the cluster has a slice this service fits"
		return
	}
	need := make([][]int, len(p.models))
	for g := range need {
		need[g] = make([]int, len(p.res))
	}
	rs := make([]int, 0, len(m))
	for r := range m {
		rs = append(rs, r)
	}
	// Larger instances first: they are the hardest to fit.
	sort.Slice(rs, func(a, b int) bool {
		pa, pb := p.res[rs[a]].profile, p.res[rs[b]].profile
		if pa.MemorySlices != pb.MemorySlices {
			return pa.MemorySlices > pb.MemorySlices
		}
		return rs[a] < rs[b]
	})
	for _, r := range rs {
		for k := 0; k < m[r]; k++ {
			if !st.addToUsedGPU(r, i) {
				need[p.res[r].model][r]++
			}
		}
	}
	for g := range p.models {
		if sum(need[g]) == 0 {
			continue
		}
		before := len(st.emptyGPUs(g))
		x := p.cover(g, need[g])
		st.buildFresh(g, x, need[g])
		if sum(x) > before {
			st.unmet[i] = st.shortage(rs[0])
		}
		mixes := make([]mix, len(p.services))
		mixes[i] = mix{}
		for r, n := range need[g] {
			if n > 0 {
				mixes[i][r] = n
			}
		}
		st.assign(mixes)
	}
}

// addToUsedGPU creates an instance of resource r for service i in the free
// memory slices of a GPU that already has a layout, without moving any
// instance; the GPU with the most replicas is tried first.
func (st *state) addToUsedGPU(r, i int) bool { return st.addToUsedGPUExcept(r, i, -1) }

// addToUsedGPUExcept is addToUsedGPU avoiding GPU except.
func (st *state) addToUsedGPUExcept(r, i, except int) bool {
	p := st.p
	prof := p.res[r].profile
	m := p.models[p.res[r].model]
	load := st.replicasPerGPU()
	order := make([]int, 0, len(st.gpus))
	for gi, gs := range st.gpus {
		if gi != except && gs.model == p.res[r].model && !gs.cordoned && len(gs.slices) > 0 {
			order = append(order, gi)
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return load[order[a]] > load[order[b]] })
	for _, gi := range order {
		gs := st.gpus[gi]
		layout := migconfig.GPULayout{MigEnabled: true}
		memory := 0
		for _, sl := range gs.slices {
			if q, ok := m.ProfileByName(sl.profile); ok {
				layout.Instances = append(layout.Instances, migconfig.Instance{Profile: q.ID, Placement: sl.placement})
				memory += sl.placement.Size
			}
		}
		if memory+prof.MemorySlices > m.MemorySlices {
			continue // no placement can be free
		}
		for _, pl := range prof.Placements {
			try := migconfig.GPULayout{MigEnabled: true, Instances: append(append([]migconfig.Instance(nil), layout.Instances...),
				migconfig.Instance{Profile: prof.ID, Placement: pl})}
			if migconfig.ValidateLayout(m, try) == nil {
				n := len(gs.slices)
				gs.slices = append(gs.slices, slot{res: r, profile: prof.Name, placement: pl, service: i})
				if st.withinBudget() {
					return true
				}
				// Over the change budget: try the next GPU.
				gs.slices = gs.slices[:n]
				break
			}
		}
	}
	return false
}
