package scheduler

import (
	"errors"
	"fmt"
	"math"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Planner chooses MIG layouts and replica placements. It holds only
// read-only data and is safe for concurrent use.
type Planner struct {
	// Catalog resolves GPU models and profiles.
	Catalog *migconfig.Catalog
	// ImproveSteps bounds the improvement pass (mix alternatives tried);
	// 0 means DefaultImproveSteps.
	ImproveSteps int
}

// DefaultImproveSteps is the improvement pass's budget when the Planner
// sets none.
const DefaultImproveSteps = 400

// NewPlanner returns a planner over the catalog.
func NewPlanner(cat *migconfig.Catalog) *Planner { return &Planner{Catalog: cat} }

// Plan serves the workload on the cluster with the fewest GPUs. Among
// plans with as many GPUs it prefers fewer allocated compute slices. With
// opts.Fresh false and replicas already running, it re-plans
// incrementally: running replicas stay where the demand still needs them,
// new replicas go to free slices first, then to new instances in free
// memory slices of GPUs in use, and only then to empty GPUs, so few GPUs
// change layout. Demand that cannot be served is reported per service in
// Plan.Services, not as an error; errors are for invalid input.
func (pl *Planner) Plan(c Cluster, w Workload, opts Options) (Plan, error) {
	if pl.Catalog == nil {
		return Plan{}, errors.New("scheduler: planner has no catalog")
	}
	p, err := newProblem(pl.Catalog, c, w)
	if err != nil {
		return Plan{}, fmt.Errorf("scheduler: %w", err)
	}
	bound, err := LowerBound(pl.Catalog, c, w)
	if err != nil {
		return Plan{}, fmt.Errorf("scheduler: lower bound: %w", err)
	}
	prices := p.defaultPrices()
	for i, r := range p.res {
		if v, ok := bound.Prices[r.Resource]; ok {
			// The LP's prices, nudged so that no slice is free.
			prices[i] = v + 1e-3*prices[i]
		}
	}
	st := newState(p, c, opts.Fresh)
	if st.running() {
		pl.planIncremental(st, prices, opts)
	} else {
		pl.planFresh(st, prices)
	}
	plan := st.result(c)
	plan.LowerBound = bound.LB3
	return plan, nil
}

// planFresh chooses every service's replica mix, covers the instances
// with the fewest layouts per GPU model, improves the mixes locally and
// assigns replicas to slices.
func (pl *Planner) planFresh(st *state, prices []float64) {
	p := st.p
	mixes := make([]mix, len(p.services))
	for i := range p.services {
		m, ok := p.chooseMix(&p.services[i], prices)
		if !ok {
			st.unmet[i] = "no GPU model in the cluster has a slice this service fits"
			continue
		}
		mixes[i] = m
	}
	if len(p.services) <= maxSplitServices {
		// Follow the LP's split of each service across kinds of slice when
		// it packs into fewer GPUs than the per-service pricing.
		if split, ok := p.splitMixes(prices); ok {
			for i := range split {
				if split[i] == nil {
					split[i] = mixes[i]
				}
			}
			if p.score(split).less(p.score(mixes)) {
				mixes = split
			}
		}
	}
	mixes = pl.improve(p, mixes, prices)
	need := p.needs(mixes)
	for g := range p.models {
		x := p.cover(g, need[g])
		st.buildFresh(g, x, need[g])
	}
	st.assign(mixes)
	st.spill(prices)
}

// spill serves what is still missing after a GPU model ran out of GPUs on
// the models that have empty GPUs left: the exhausted models are priced
// out and the shortfall is planned again, until nothing more can be
// placed.
func (st *state) spill(prices []float64) {
	p := st.p
	for range p.models {
		exhausted := map[int]bool{}
		for g := range p.models {
			exhausted[g] = len(st.emptyGPUs(g)) == 0
		}
		priced := append([]float64(nil), prices...)
		for r := range p.res {
			if exhausted[p.res[r].model] {
				priced[r] = math.Inf(1)
			}
		}
		capa, reps := st.capacity()
		extra := make([]mix, len(p.services))
		found := false
		for i := range p.services {
			s := &p.services[i]
			deficit, missing := s.demand*(1-demandSlack)-capa[i], s.min-reps[i]
			if deficit <= 0 && missing <= 0 {
				continue
			}
			rest := serviceInfo{Service: s.Service, index: s.index, rate: s.rate, demand: max(deficit, 0), min: max(missing, 0)}
			if m, ok := p.chooseMix(&rest, priced); ok && len(m) > 0 {
				extra[i], found = m, true
				delete(st.unmet, i)
			}
		}
		if !found {
			return
		}
		need := p.needs(extra)
		for g := range p.models {
			if !exhausted[g] {
				st.buildFresh(g, p.cover(g, need[g]), need[g])
			}
		}
		st.assign(extra)
	}
}

// needs sums the mixes into instance counts per model and resource.
func (p *problem) needs(mixes []mix) [][]int {
	need := make([][]int, len(p.models))
	for g := range need {
		need[g] = make([]int, len(p.res))
	}
	for _, m := range mixes {
		for r, n := range m {
			need[p.res[r].model][r] += n
		}
	}
	return need
}

// score rates a set of mixes: integer GPUs, then fractional GPUs (the
// cover LP), then compute slices.
type score struct {
	gpus    int
	frac    float64
	compute int
}

func (a score) less(b score) bool {
	if a.gpus != b.gpus {
		return a.gpus < b.gpus
	}
	if math.Abs(a.frac-b.frac) > 1e-9 {
		return a.frac < b.frac
	}
	return a.compute < b.compute
}

func (p *problem) score(mixes []mix) score {
	var s score
	need := p.needs(mixes)
	for g := range p.models {
		s.gpus += sum(p.cover(g, need[g]))
		if frac, ok := p.coverLP(g, need[g]); ok {
			for _, v := range frac {
				s.frac += v
			}
		}
	}
	for _, m := range mixes {
		for r, n := range m {
			s.compute += n * p.res[r].profile.ComputeSlices
		}
	}
	return s
}

// improve tries, service by service, the alternative mixes that move a
// replica to another kind of slice, keeping any change that lowers the
// score, until a pass changes nothing or the budget is spent.
func (pl *Planner) improve(p *problem, mixes []mix, prices []float64) []mix {
	budget := pl.ImproveSteps
	if budget == 0 {
		budget = DefaultImproveSteps
	}
	if len(p.services) > budget {
		return mixes // one pass would not fit the budget; keep the priced mixes
	}
	best := p.score(mixes)
	for changed := true; changed && budget > 0; {
		changed = false
		for i := range p.services {
			if mixes[i] == nil {
				continue
			}
			for _, alt := range p.alternatives(&p.services[i], prices, mixes[i]) {
				if budget == 0 {
					return mixes
				}
				budget--
				old := mixes[i]
				mixes[i] = alt
				if s := p.score(mixes); s.less(best) {
					best, changed = s, true
					break
				}
				mixes[i] = old
			}
		}
	}
	return mixes
}
