package scheduler

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// DefaultChangedFraction is the change budget of an incremental re-plan
// when Options.MaxChangedGPUs is 0: at most this fraction of the GPUs the
// plan uses (at least one GPU) are GPUs in use before and after whose
// layout changes.
const DefaultChangedFraction = 0.02

// NoRepack, as Options.MaxChangedGPUs, turns the change budget and the
// repack off: an incremental re-plan then adds instances to free memory of
// GPUs in use without bound and, with Migrate, drains GPUs onto free
// slices only, as before the repack existed.
const NoRepack = -1

// budget is an incremental re-plan's bound on Plan.ChangedGPUs.
type budget struct {
	off bool // NoRepack: no bound, no repack
	max int  // > 0: a fixed number of GPUs; 0: DefaultChangedFraction
}

func newBudget(maxChanged int) budget {
	return budget{off: maxChanged < 0, max: max(maxChanged, 0)}
}

// allows reports whether changed GPUs are within the budget of a plan
// that uses used GPUs.
func (b budget) allows(changed, used int) bool {
	if b.off {
		return true
	}
	if b.max > 0 {
		return changed <= b.max
	}
	return changed <= max(1, int(math.Floor(DefaultChangedFraction*float64(used)+1e-9)))
}

// layoutChanged reports whether the GPU counts as changed in
// Plan.ChangedGPUs: it had a layout, keeps one (it runs a replica; a GPU
// without replicas is cleared) and its instances differ.
func (gs *gpuState) layoutChanged() bool {
	if len(gs.current) == 0 || !gs.busy() {
		return false
	}
	if len(gs.current) != len(gs.slices) {
		return true
	}
	for _, c := range gs.current {
		n := 0
		for _, x := range gs.current {
			if x.Profile == c.Profile && x.Placement == c.Placement {
				n++
			}
		}
		for _, sl := range gs.slices {
			if sl.profile == c.Profile && sl.placement == c.Placement {
				n--
			}
		}
		if n != 0 {
			return true
		}
	}
	return false
}

// busy reports whether the GPU runs a replica.
func (gs *gpuState) busy() bool {
	for _, sl := range gs.slices {
		if sl.service >= 0 {
			return true
		}
	}
	return false
}

// withinBudget reports whether the plan as it stands keeps its changed
// GPUs within the budget, counting the GPUs that run a replica as used.
func (st *state) withinBudget() bool {
	if st.budget.off {
		return true
	}
	changed, used := 0, 0
	for _, gs := range st.gpus {
		if gs.busy() {
			used++
		}
		if gs.layoutChanged() {
			changed++
		}
	}
	return st.budget.allows(changed, used)
}

// busyGPUs counts the GPUs that run a replica.
func (st *state) busyGPUs() int {
	n := 0
	for _, gs := range st.gpus {
		if gs.busy() {
			n++
		}
	}
	return n
}

// repacker frees whole GPUs of an incremental re-plan within its change
// budget (see repack).
type repacker struct {
	st     *state
	prices []float64
	// migrate lets a re-laid-out GPU's running replicas move too.
	migrate bool
	// perReq and perRep are each service's cheapest price (GPUs at the LP
	// prices) of one request per second and of one replica.
	perReq, perRep []float64
	// need is, during an evacuation, what the services it disturbed
	// lack.
	need needs
	// scratch is fillLayout's working copy of need.
	scratch needs
	// capa and reps are every service's capacity and replicas in the
	// plan as it stands.
	capa []float64
	reps []int
}

// needs is what some services lack: per service (in increasing order) the
// demand in requests per second and the replicas.
type needs struct {
	svc     []int
	deficit []float64
	missing []int
}

// at returns the position of service i in n, adding it with what it
// lacks in the current plan when absent.
func (rp *repacker) at(n *needs, i int) int {
	k := sort.SearchInts(n.svc, i)
	if k < len(n.svc) && n.svc[k] == i {
		return k
	}
	n.svc = append(n.svc, 0)
	n.deficit = append(n.deficit, 0)
	n.missing = append(n.missing, 0)
	copy(n.svc[k+1:], n.svc[k:])
	copy(n.deficit[k+1:], n.deficit[k:])
	copy(n.missing[k+1:], n.missing[k:])
	s := &rp.st.p.services[i]
	n.svc[k], n.deficit[k], n.missing[k] = i, s.demand*(1-demandSlack)-rp.capa[i], s.min-rp.reps[i]
	return k
}

// add changes what service i lacks in n by one replica on resource r:
// sign +1 when it stops, -1 when it starts.
func (rp *repacker) add(n *needs, i, r int, sign float64) {
	k := rp.at(n, i)
	n.deficit[k] += sign * rp.st.p.services[i].rate[r]
	n.missing[k] += int(sign)
}

// move records in the plan's capacity, and in need, that a replica of
// service i on resource r stops (sign +1) or starts (sign -1).
func (rp *repacker) move(i, r int, sign float64) {
	rp.add(&rp.need, i, r, sign)
	rp.capa[i] -= sign * rp.st.p.services[i].rate[r]
	rp.reps[i] -= int(sign)
}

func (n *needs) copyFrom(o *needs) {
	n.svc = append(n.svc[:0], o.svc...)
	n.deficit = append(n.deficit[:0], o.deficit...)
	n.missing = append(n.missing[:0], o.missing...)
}

func newRepacker(st *state, prices []float64, migrate bool) *repacker {
	n := len(st.p.services)
	rp := &repacker{st: st, prices: prices, migrate: migrate, perReq: make([]float64, n), perRep: make([]float64, n)}
	for i := range st.p.services {
		rp.perReq[i], rp.perRep[i] = math.Inf(1), math.Inf(1)
		for r, rate := range st.p.services[i].rate {
			if rate > 0 {
				rp.perReq[i] = math.Min(rp.perReq[i], prices[r]/rate)
				rp.perRep[i] = math.Min(rp.perRep[i], prices[r])
			}
		}
	}
	return rp
}

// repack frees whole GPUs while more than limit run replicas. It takes
// the GPU with the least compute running replicas and serves what they
// served elsewhere: on free slices of the other GPUs in use first, then by
// re-laying out other GPUs in use, one at a time, within the change
// budget. A re-laid-out GPU keeps its running replicas on their slices
// and gets new instances in the rest of its memory; with migrate its
// replicas may move as well, to a layout that serves more. A GPU that
// cannot be emptied whole is left as it was. The candidates tried are
// bounded, so the cost stays linear in the cluster.
func (st *state) repack(limit int, prices []float64, migrate bool) {
	rp := newRepacker(st, prices, migrate)
	tried := map[int]bool{}
	for fails := 0; fails < repackTries && st.busyGPUs() > limit; {
		cand := st.emptiest(tried)
		if cand < 0 {
			return
		}
		tried[cand] = true
		saved := st.snapshot()
		if rp.evacuate(cand) && st.withinBudget() {
			fails = 0
		} else {
			st.restore(saved)
			fails++
		}
	}
}

// relayoutGPUs is how many GPUs one relayout weighs, the least worth
// first.
const relayoutGPUs = 32

// repackTries is how many GPUs in a row repack tries to empty, in vain,
// before it gives up.
const repackTries = 12

// emptiest returns the busy, uncordoned GPU not in skip with the fewest
// compute slices running replicas (then the fewest replicas, then the
// first in cluster order), or -1.
func (st *state) emptiest(skip map[int]bool) int {
	best, bestC, bestN := -1, 0, 0
	for gi, gs := range st.gpus {
		if skip[gi] || gs.cordoned || gs.model < 0 {
			continue
		}
		c, n := 0, 0
		for _, sl := range gs.slices {
			if sl.service >= 0 {
				c += st.p.res[sl.res].profile.ComputeSlices
				n++
			}
		}
		if n == 0 {
			continue
		}
		if best < 0 || c < bestC || (c == bestC && n < bestN) {
			best, bestC, bestN = gi, c, n
		}
	}
	return best
}

// value is what a slice of resource r is worth to service i while it is
// short, in GPUs at the LP prices: the capacity it adds, up to the
// deficit, at the service's cheapest price per request; a missing replica
// is worth at least the service's cheapest replica.
func (rp *repacker) value(i, r int, deficit float64, missing int) float64 {
	rate := rp.st.p.services[i].rate[r]
	if rate <= 0 {
		return 0
	}
	v := 0.0
	if deficit > 0 {
		v = math.Min(rate, deficit) * rp.perReq[i]
	}
	if missing > 0 {
		v = math.Max(v, rp.perRep[i])
	}
	return v
}

// shortfall is the demand and replicas n still lacks, in GPUs at the LP
// prices.
func (rp *repacker) shortfall(n *needs) float64 {
	total := 0.0
	for k, i := range n.svc {
		total += math.Max(math.Max(n.deficit[k], 0)*rp.perReq[i], float64(max(n.missing[k], 0))*rp.perRep[i])
	}
	return total
}

// evacuate clears GPU gi and serves what its replicas served elsewhere.
// It reports false when some service is left short; the caller restores
// the state.
func (rp *repacker) evacuate(gi int) bool {
	st, p := rp.st, rp.st.p
	var affected []int
	for _, sl := range st.gpus[gi].slices {
		if sl.service >= 0 && !containsInt(affected, sl.service) {
			affected = append(affected, sl.service)
		}
	}
	sort.Ints(affected)
	st.gpus[gi].slices = nil
	rp.capa, rp.reps = st.capacity()
	rp.need = needs{}
	for _, i := range affected {
		rp.at(&rp.need, i)
	}
	// Free slices of the other GPUs in use, by grow's rule.
	load := st.replicasPerGPU()
	type ref struct{ g, s int }
	var free []ref
	for g, gs := range st.gpus {
		if g == gi || gs.cordoned || load[g] == 0 {
			continue
		}
		for x, sl := range gs.slices {
			if sl.service < 0 && sl.res >= 0 {
				free = append(free, ref{g, x})
			}
		}
	}
	for k, i := range rp.need.svc {
		s := &p.services[i]
		for rp.need.deficit[k] > 0 || rp.need.missing[k] > 0 {
			pick := -1
			for f, at := range free {
				r := st.gpus[at.g].slices[at.s].res
				if s.rate[r] > 0 && (pick < 0 ||
					betterSlot(s, rp.prices, rp.need.deficit[k], r, st.gpus[free[pick].g].slices[free[pick].s].res, load[at.g], load[free[pick].g])) {
					pick = f
				}
			}
			if pick < 0 {
				break
			}
			at := free[pick]
			free = append(free[:pick], free[pick+1:]...)
			st.gpus[at.g].slices[at.s].service = i
			rp.move(i, st.gpus[at.g].slices[at.s].res, -1)
			load[at.g]++
		}
	}
	// Re-laid-out GPUs for the rest, one at a time, each leaving less
	// short.
	for {
		left := rp.shortfall(&rp.need)
		if left <= 0 {
			return true
		}
		if !rp.relayout(gi, left) {
			return false
		}
	}
}

// option is one way to re-lay out one GPU.
type option struct {
	gpu, cfg int
	left     float64 // shortfall left, in GPUs at the LP prices
	cost     int     // 1 when the GPU's layout starts to differ from the current one
	moves    int     // running replicas of the GPU that leave their slice
	compute  int     // compute slices running replicas
	assign   []int   // per layout instance: the service, or -1 for a free slice
}

func (o *option) better(b *option) bool {
	if b == nil {
		return true
	}
	if math.Abs(o.left-b.left) > 1e-9 {
		return o.left < b.left
	}
	if o.cost != b.cost {
		return o.cost < b.cost
	}
	if o.moves != b.moves {
		return o.moves < b.moves
	}
	return o.compute < b.compute
}

// relayout re-lays out one GPU in use other than except to serve what
// the services lack: one of its model's maximal layouts that keeps its
// running replicas on their slices (with migrate: any layout, its
// replicas served anew with the rest), the new slices given by value
// (fillLayout). It applies the option that leaves the least short, then
// costs no budget, then moves the fewest replicas, then uses the least
// compute; GPUs that look the same are tried once. It reports false when
// no option leaves less short than left, or every option would take the
// changed GPUs over the budget.
func (rp *repacker) relayout(except int, left float64) bool {
	st, p := rp.st, rp.st.p
	changed, used := 0, 0
	for _, gs := range st.gpus {
		if gs.busy() {
			used++
		}
		if gs.layoutChanged() {
			changed++
		}
	}
	affordable := st.budget.allows(changed+1, used)
	// The GPUs whose replicas are worth the least at the LP prices (free
	// slices are worth nothing) have the most to gain; only the first
	// relayoutGPUs that look different are tried.
	type candidate struct {
		gpu   int
		worth float64
		free  bool // changing its layout costs no budget
	}
	var cands []candidate
	seen := map[string]bool{}
	for gj, gs := range st.gpus {
		if gj == except || gs.cordoned || gs.model < 0 || !gs.busy() {
			continue
		}
		free := len(gs.current) == 0 || gs.layoutChanged()
		if !free && !affordable && !rp.migrate {
			continue // only its free slices could change, and evacuate used them
		}
		key := gpuKey(gs, free)
		if seen[key] {
			continue
		}
		seen[key] = true
		worth := 0.0
		for _, sl := range gs.slices {
			if sl.service >= 0 {
				worth += p.services[sl.service].rate[sl.res] * rp.perReq[sl.service]
			}
		}
		cands = append(cands, candidate{gj, worth, free})
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].worth < cands[b].worth })
	if len(cands) > relayoutGPUs {
		cands = cands[:relayoutGPUs]
	}
	var best *option
	for _, cd := range cands {
		gs := st.gpus[cd.gpu]
		for c, cfg := range p.configs[gs.model] {
			o, ok := rp.fillLayout(gs, cfg)
			if !ok || o.left >= left-1e-9 {
				continue
			}
			if !cd.free && !sameAsCurrent(p, gs, cfg) {
				o.cost = 1
			}
			if o.cost > 0 && !affordable {
				continue
			}
			o.gpu, o.cfg = cd.gpu, c
			if o.better(best) {
				best = o
			}
		}
	}
	if best == nil {
		return false
	}
	gs := st.gpus[best.gpu]
	cfg := p.configs[gs.model][best.cfg]
	for _, sl := range gs.slices {
		if sl.service >= 0 {
			rp.move(sl.service, sl.res, 1)
		}
	}
	slices := make([]slot, 0, len(cfg.slots))
	for k, in := range cfg.layout.Instances {
		r := cfg.slots[k]
		sl := slot{res: r, profile: p.res[r].Profile, placement: in.Placement, service: best.assign[k]}
		if i := sl.service; i >= 0 {
			rp.move(i, r, -1)
		}
		slices = append(slices, sl)
	}
	gs.slices = slices
	return true
}

// fillLayout serves, on GPU gs re-laid out as layout cfg, what the
// services lack plus, with migrate, what the GPU's own replicas serve:
// each time the (instance, service) pair worth the most (see value),
// keeping a replica on its own slice on a tie, then the cheaper slice.
// Without migrate every running replica must keep its slice, which cfg
// must contain. It returns the option with the shortfall left, the
// replicas moved and the compute used; false when cfg does not keep the
// running replicas it must.
func (rp *repacker) fillLayout(gs *gpuState, cfg config) (*option, bool) {
	p := rp.st.p
	assign := make([]int, len(cfg.slots))
	var ownBuf [8]int
	own := ownBuf[:0] // the replica now on the same slice, or -1
	for k := range assign {
		assign[k] = -1
		own = append(own, -1)
	}
	n := &rp.scratch
	n.copyFrom(&rp.need)
	running := 0
	for _, sl := range gs.slices {
		if sl.service < 0 {
			continue
		}
		running++
		at := -1
		for k, in := range cfg.layout.Instances {
			if own[k] < 0 && cfg.slots[k] == sl.res && in.Placement == sl.placement {
				at = k
				break
			}
		}
		switch {
		case at >= 0:
			own[at] = sl.service
		case !rp.migrate:
			return nil, false
		}
		if !rp.migrate {
			assign[at] = sl.service
			continue
		}
		rp.add(n, sl.service, sl.res, 1)
	}
	o := &option{}
	for {
		bk, bj, bv := -1, -1, 0.0
		for k, r := range cfg.slots {
			if assign[k] >= 0 {
				continue
			}
			for j, i := range n.svc {
				v := rp.value(i, r, n.deficit[j], n.missing[j])
				if v <= 0 {
					continue
				}
				better := bk < 0 || v > bv*(1+1e-12)
				if !better && v >= bv*(1-1e-12) {
					// A tie: keep a replica where it runs, else the
					// cheaper slice.
					switch ko, kb := own[k] == i, own[bk] == n.svc[bj]; {
					case ko != kb:
						better = ko
					default:
						better = rp.prices[r] < rp.prices[cfg.slots[bk]]
					}
				}
				if better {
					bk, bj, bv = k, j, v
				}
			}
		}
		if bk < 0 {
			break
		}
		i := n.svc[bj]
		assign[bk] = i
		n.deficit[bj] -= p.services[i].rate[cfg.slots[bk]]
		n.missing[bj]--
	}
	kept := 0
	for k, i := range assign {
		if i >= 0 {
			o.compute += p.res[cfg.slots[k]].profile.ComputeSlices
			if own[k] == i {
				kept++
			}
		}
	}
	o.assign, o.moves, o.left = assign, running-kept, rp.shortfall(n)
	return o, true
}

// sameAsCurrent reports whether layout cfg has the GPU's current
// instances.
func sameAsCurrent(p *problem, gs *gpuState, cfg config) bool {
	if len(gs.current) != len(cfg.slots) {
		return false
	}
	for k, in := range cfg.layout.Instances {
		found := false
		for _, c := range gs.current {
			if c.Placement == in.Placement && c.Profile == p.res[cfg.slots[k]].Profile {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// gpuKey identifies a GPU by what a relayout depends on: its model, its
// running replicas and their slices, and whether changing its layout
// is free.
func gpuKey(gs *gpuState, free bool) string {
	var parts []string
	for _, sl := range gs.slices {
		if sl.service >= 0 {
			parts = append(parts, sl.profile+"@"+sl.placement.String()+"="+strconv.Itoa(sl.service))
		}
	}
	sort.Strings(parts)
	return strconv.Itoa(gs.model) + "|" + strconv.FormatBool(free) + "|" + strings.Join(parts, ",")
}

// betterSlot reports whether a free slice of resource a (on a GPU with
// loadA replicas) serves s's deficit better than one of resource b: one
// that covers the deficit at the lowest price, else the most requests per
// price, then the busier GPU (grow's rule).
func betterSlot(s *serviceInfo, prices []float64, deficit float64, a, b, loadA, loadB int) bool {
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
	return loadA > loadB
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
