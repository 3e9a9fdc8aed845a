package scheduler

import (
	"fmt"
	"math"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// state is the plan being built: every GPU's planned slices and who runs
// on them.
type state struct {
	p     *problem
	gpus  []*gpuState
	unmet map[int]string // service index → why its demand is not met
	fresh bool
	// budget bounds the GPUs whose layout an incremental re-plan
	// changes.
	budget budget
}

type gpuState struct {
	node     string
	index    int
	modelKey string
	model    int // problem model index; -1 when the model offers no resource
	cordoned bool
	current  []Slice
	slices   []slot
}

// slot is one planned MIG instance.
type slot struct {
	res       int // resource index; -1 for a profile no service uses
	profile   string
	placement migconfig.Placement
	service   int // service index; -1 when free
}

func newState(p *problem, c Cluster, fresh bool) *state {
	st := &state{p: p, unmet: map[int]string{}, fresh: fresh}
	modelIndex := map[string]int{}
	for i, m := range p.models {
		modelIndex[m.Key] = i
	}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			gs := &gpuState{node: n.Name, index: g.Index, modelKey: g.Model, model: -1, cordoned: g.Cordoned, current: g.Slices}
			if mi, ok := modelIndex[g.Model]; ok && len(p.configs[mi]) > 0 {
				gs.model = mi
			}
			st.gpus = append(st.gpus, gs)
		}
	}
	return st
}

// running reports whether the cluster already has layouts or replicas to
// re-plan from.
func (st *state) running() bool {
	if st.fresh {
		return false
	}
	for _, g := range st.gpus {
		if len(g.current) > 0 {
			return true
		}
	}
	return false
}

// emptyGPUs returns the usable GPUs of model g that have no planned slice.
func (st *state) emptyGPUs(g int) []*gpuState {
	var out []*gpuState
	for _, gs := range st.gpus {
		if gs.model == g && !gs.cordoned && len(gs.slices) == 0 {
			out = append(out, gs)
		}
	}
	return out
}

// buildFresh puts x[c] GPUs of each layout of model g on empty GPUs, all
// slots free. When the model runs out of GPUs the layouts that do not fit
// are dropped and assign reports the shortfall.
func (st *state) buildFresh(g int, x []int, need []int) {
	free := st.emptyGPUs(g)
	for c, k := range x {
		cfg := st.p.configs[g][c]
		for ; k > 0; k-- {
			if len(free) == 0 {
				return
			}
			gs := free[0]
			free = free[1:]
			for i, in := range cfg.layout.Instances {
				r := cfg.slots[i]
				gs.slices = append(gs.slices, slot{res: r, profile: st.p.res[r].Profile, placement: in.Placement, service: -1})
			}
		}
	}
}

// assign gives each service's replicas free slots of the right resource,
// GPU by GPU in cluster order.
func (st *state) assign(mixes []mix) {
	type ref struct{ g, s int }
	freeByRes := map[int][]ref{}
	for gi, gs := range st.gpus {
		if gs.cordoned {
			continue // no new replicas there
		}
		for si, sl := range gs.slices {
			if sl.service < 0 && sl.res >= 0 {
				freeByRes[sl.res] = append(freeByRes[sl.res], ref{gi, si})
			}
		}
	}
	for i, m := range mixes {
		rs := make([]int, 0, len(m))
		for r := range m {
			rs = append(rs, r)
		}
		sort.Ints(rs)
		for _, r := range rs {
			for k := 0; k < m[r]; k++ {
				q := freeByRes[r]
				if len(q) == 0 {
					st.unmet[i] = st.shortage(r)
					break
				}
				st.gpus[q[0].g].slices[q[0].s].service = i
				freeByRes[r] = q[1:]
			}
		}
	}
}

func (st *state) shortage(r int) string {
	total := 0
	for _, gs := range st.gpus {
		if gs.model == st.p.res[r].model && !gs.cordoned {
			total++
		}
	}
	return fmt.Sprintf("not enough GPUs: all %d usable %s GPUs are planned and more %s slices are needed",
		total, st.p.res[r].GPUModel, st.p.res[r].Profile)
}

// capacity returns each service's planned capacity and replica count.
func (st *state) capacity() ([]float64, []int) {
	capa := make([]float64, len(st.p.services))
	reps := make([]int, len(st.p.services))
	for _, gs := range st.gpus {
		for _, sl := range gs.slices {
			if sl.service >= 0 && sl.res >= 0 {
				capa[sl.service] += st.p.services[sl.service].rate[sl.res]
				reps[sl.service]++
			}
		}
	}
	return capa, reps
}

// result turns the state into a Plan: per-GPU layouts, per-service
// capacity, changes and the capacity dip.
func (st *state) result(c Cluster) Plan {
	var plan Plan
	capa, reps := st.capacity()
	for _, gs := range st.gpus {
		gp := GPUPlan{Node: gs.node, Index: gs.index, Model: gs.modelKey}
		for _, sl := range gs.slices {
			s := Slice{Profile: sl.profile, Placement: sl.placement}
			if sl.service >= 0 {
				s.Service = st.p.services[sl.service].Name
			}
			gp.Slices = append(gp.Slices, s)
		}
		sort.SliceStable(gp.Slices, func(a, b int) bool { return gp.Slices[a].Placement.Start < gp.Slices[b].Placement.Start })
		gp.LayoutChanged = !SameLayout(gs.current, gp.Slices)
		if len(gp.Slices) > 0 {
			plan.GPUsUsed++
		}
		plan.GPUs = append(plan.GPUs, gp)
	}
	plan.ChangedGPUs, plan.AddedGPUs, plan.ReleasedGPUs = LayoutChanges(c, plan)
	for i, s := range st.p.services {
		sp := ServicePlan{Name: s.Name, Demand: s.demand, Capacity: capa[i], Replicas: reps[i]}
		switch {
		case st.unmet[i] != "":
			sp.Unmet = st.unmet[i]
		case capa[i] < s.demand*(1-demandSlack):
			sp.Unmet = fmt.Sprintf("capacity %.1f of %.1f req/s", capa[i], s.demand)
		case reps[i] < s.min:
			sp.Unmet = fmt.Sprintf("%d of %d replicas", reps[i], s.min)
		}
		if sp.Unmet != "" && st.unmet[i] == "" && capa[i] < s.demand*(1-demandSlack) {
			sp.Unmet = "not enough GPUs: " + sp.Unmet
		}
		plan.Services = append(plan.Services, sp)
	}
	plan.Changes, plan.CapacityDip = changes(st.p.services, c, plan)
	return plan
}

// changes lists the steps from the cluster to the plan, make-before-break:
// first every slice that can be created in free memory slices is created
// and its replica started; then replicas move on kept slices; then, GPU by
// GPU, replicas on slices that must go stop, the slices are destroyed and
// the new ones created and started. It returns the steps and the capacity
// dip: the lowest fraction of demand served at any moment of the
// transition, relative to the lower of the fractions served before and
// after it (1 when the transition never serves less than that).
func changes(services []serviceInfo, c Cluster, plan Plan) ([]Change, float64) {
	byName := make(map[string]*serviceInfo, len(services))
	for i := range services {
		byName[services[i].Name] = &services[i]
	}
	rate := func(service, model, profile string) float64 {
		if s, ok := byName[service]; ok {
			return s.RateOn(Resource{model, profile})
		}
		return 0
	}
	demand := map[string]float64{}
	total := 0.0
	for _, s := range services {
		demand[s.Name] = s.demand
		total += s.demand
	}
	capa := map[string]float64{}
	var current = map[string][]Slice{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			current[fmt.Sprintf("%s/%d", n.Name, g.Index)] = g.Slices
			for _, s := range g.Slices {
				if s.Service != "" {
					capa[s.Service] += rate(s.Service, g.Model, s.Profile)
				}
			}
		}
	}
	// met is Σ min(demand, capacity), kept up to date as capacity moves,
	// summed in service order so the result does not depend on map order.
	met := 0.0
	for _, s := range services {
		met += math.Min(demand[s.Name], capa[s.Name])
	}
	served := func() float64 {
		if total == 0 {
			return 1
		}
		return math.Max(0, math.Min(met/total, 1))
	}
	adjust := func(service string, delta float64) {
		d := demand[service]
		old := capa[service]
		capa[service] = old + delta
		met += math.Min(d, capa[service]) - math.Min(d, old)
	}
	var out []Change
	start := served()
	dip := start
	apply := func(ch Change, model string) {
		switch ch.Kind {
		case StartReplica:
			adjust(ch.Service, rate(ch.Service, model, ch.Profile))
		case StopReplica:
			adjust(ch.Service, -rate(ch.Service, model, ch.Profile))
		}
		out = append(out, ch)
		dip = math.Min(dip, served())
	}
	type phase3 struct {
		gp      GPUPlan
		stops   []Change
		destroy []Change
		create  []Slice
	}
	var later []phase3
	var moves [][2]Change
	for _, gp := range plan.GPUs {
		cur := current[fmt.Sprintf("%s/%d", gp.Node, gp.Index)]
		byPos := func(list []Slice, s Slice) (Slice, bool) {
			for _, x := range list {
				if x.Profile == s.Profile && x.Placement == s.Placement {
					return x, true
				}
			}
			return Slice{}, false
		}
		var gone []Slice
		for _, s := range cur {
			if _, ok := byPos(gp.Slices, s); !ok {
				gone = append(gone, s)
			}
		}
		ch := func(kind ChangeKind, s Slice, service string) Change {
			return Change{Kind: kind, Node: gp.Node, GPU: gp.Index, Profile: s.Profile, Placement: s.Placement, Service: service}
		}
		ph := phase3{gp: gp}
		for _, s := range gone {
			if s.Service != "" {
				ph.stops = append(ph.stops, ch(StopReplica, s, s.Service))
			}
			ph.destroy = append(ph.destroy, ch(DestroySlice, s, ""))
		}
		for _, s := range gp.Slices {
			old, kept := byPos(cur, s)
			if kept {
				if old.Service != s.Service {
					var stop, start Change
					if old.Service != "" {
						stop = ch(StopReplica, s, old.Service)
					}
					if s.Service != "" {
						start = ch(StartReplica, s, s.Service)
					}
					moves = append(moves, [2]Change{stop, start})
				}
				continue
			}
			overlaps := false
			for _, x := range gone {
				if x.Placement.Overlaps(s.Placement) {
					overlaps = true
				}
			}
			if overlaps {
				ph.create = append(ph.create, s)
				continue
			}
			apply(ch(CreateSlice, s, ""), gp.Model)
			if s.Service != "" {
				apply(ch(StartReplica, s, s.Service), gp.Model)
			}
		}
		if len(ph.destroy) > 0 || len(ph.create) > 0 {
			later = append(later, ph)
		}
	}
	models := map[string]string{}
	for _, gp := range plan.GPUs {
		models[fmt.Sprintf("%s/%d", gp.Node, gp.Index)] = gp.Model
	}
	for _, mv := range moves {
		for _, x := range mv {
			if x.Kind != "" {
				apply(x, models[fmt.Sprintf("%s/%d", x.Node, x.GPU)])
			}
		}
	}
	// GPUs re-laid out go before GPUs only torn down, so that replicas
	// moved to new slices start before the slices they leave elsewhere
	// stop; of those, the ones that stop no replica go first.
	group := func(ph phase3) int {
		switch {
		case len(ph.create) > 0 && len(ph.stops) == 0:
			return 0
		case len(ph.create) > 0:
			return 1
		}
		return 2
	}
	sort.SliceStable(later, func(a, b int) bool { return group(later[a]) < group(later[b]) })
	for _, ph := range later {
		for _, x := range ph.stops {
			apply(x, ph.gp.Model)
		}
		for _, x := range ph.destroy {
			apply(x, ph.gp.Model)
		}
		for _, s := range ph.create {
			apply(Change{Kind: CreateSlice, Node: ph.gp.Node, GPU: ph.gp.Index, Profile: s.Profile, Placement: s.Placement}, ph.gp.Model)
			if s.Service != "" {
				apply(Change{Kind: StartReplica, Node: ph.gp.Node, GPU: ph.gp.Index, Profile: s.Profile, Placement: s.Placement, Service: s.Service}, ph.gp.Model)
			}
		}
	}
	// The dip compares the worst moment with the better of before and
	// after: a transition that only adds capacity never dips, even when
	// the demand it answers was not met before it started.
	if base := math.Min(start, served()); base > 0 {
		return out, math.Min(dip/base, 1)
	}
	return out, 1
}
