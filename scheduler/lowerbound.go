package scheduler

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Bound holds lower bounds on the GPUs any plan needs to serve a workload
// on a cluster's GPU models (the configuration LP of the scheduling
// reference, §8).
//
// The bounds count GPUs, not GPUs of a given model, and ignore how many
// GPUs of each model the cluster has: they answer "how many GPUs must a
// plan use at least", not "does the cluster suffice".
type Bound struct {
	// LB1 is the slice bound: ⌈Σ_m d_m / max_r(T_{m,r}/g_r) / G⌉, with g_r
	// the compute slices of resource r and G the most compute slices of
	// any GPU model in the LP (all are 7 on 8-slice GPUs; in a mixed fleet
	// the largest keeps the bound valid for every GPU).
	LB1 int
	// LB2 is ⌈LP2⌉, the configuration LP's bound.
	LB2 int
	// LB3 is ⌈LP3⌉, the configuration LP with at least max(1,
	// MinReplicas) instances per served service. LB1 ≤ LB2 ≤ LB3.
	LB3 int
	// LP2 and LP3 are the LP optima before rounding up: within a relative
	// 1e-7 below the optimum, and never above it beyond rounding error.
	// Should the cutting planes stop early (an iteration cap, a master LP
	// the solver cannot solve), they are less tight but still valid.
	LP2, LP3 float64
	// Prices are optimal dual prices of LB3's profile-capacity rows, in
	// GPUs per instance of the resource (≥ 0), for every resource of the
	// LP: the share of a GPU one instance of that kind of slice costs at
	// the optimum. The planner uses them to price replicas.
	Prices map[Resource]float64
	// Unservable names, in workload order, the services with demand that
	// no resource of the cluster's GPU models can serve (no positive rate,
	// or not enough memory). They are left out of every bound; the planner
	// reports their unmet demand.
	Unservable []string
}

// Tuning of the cutting-plane method and of rounding.
const (
	// lbRelGap stops Kelley's method once the master's bound and the best
	// dual value differ by less than this, relative to the value.
	lbRelGap = 1e-7
	// lbMaxIter caps the cutting-plane iterations; the best dual value
	// found so far is still a valid bound when the cap is hit.
	lbMaxIter = 500
	// lbRoundTol absorbs floating-point error before rounding an LP
	// optimum up to whole GPUs.
	lbRoundTol = 1e-6
	// lbCutSlack is the largest perturbation of a master cut, relative
	// to the dual value; it is far below lbRelGap.
	lbCutSlack = 1e-10
	// lbExcessCost prices the excess columns of directLP; anything above
	// 1 leaves the optimum unchanged.
	lbExcessCost = 2
	// lbSimplexTol is the reduced-cost tolerance passed to lp.Simplex.
	lbSimplexTol = 1e-10
)

// lbService is one served service as the LP sees it.
type lbService struct {
	demand float64
	// minInst is max(1, MinReplicas): LB3's instance floor.
	minInst float64
	// res and rate list the usable resources (indices into
	// lbProblem.resources) and the service's positive rate on each.
	res  []int
	rate []float64
	// pairs lists the resource pairs (positions in res, higher rate
	// first) whose two-resource vertex is feasible for LB3: rate[lo] ·
	// minInst < demand < rate[hi] · minInst. Prices do not change it.
	pairs [][2]int
}

// lbProblem is the configuration LP: resources, configurations and
// services.
type lbProblem struct {
	resources []Resource
	// compute is g_r, the compute slices of each resource.
	compute []int
	// model is the index of each resource's GPU model in models.
	model  []int
	models []*migconfig.GPUModel
	// configs holds n_{c,r}: one dense row over resources per maximal
	// layout, for every GPU model.
	configs    [][]float64
	services   []lbService
	unservable []string
}

// LowerBound computes LB1, LB2 and LB3 for serving w on the non-cordoned
// GPUs of c, whose models cat describes.
//
// Resources are the (GPU model, profile) pairs of the cluster's models on
// which some service has a positive rate and fits in memory; the
// configurations are migconfig.MaximalLayouts of each model over its
// resources' profiles. Services with zero demand are ignored; services with
// demand but no usable resource are listed in Bound.Unservable and left
// out.
//
// LB2 and LB3 come from the Lagrangian dual of the LP's profile-capacity
// rows, maximised with Kelley's cutting-plane method: for prices π ≥ 0 with
// n_c·π ≤ 1 for every configuration c, F(π) = Σ_m min{π·y : Σ_r T_{m,r}
// y_r ≥ d_m, Σ_r y_r ≥ k_m, y ≥ 0} is a lower bound on the LP optimum, and
// its maximum equals it. Each service's minimum is a two-row LP solved in
// closed form, so the cost grows linearly with the number of services.
//
// It fails on a nil catalog, a GPU or rate whose model or profile the
// catalog does not know, or a non-finite or negative demand or rate.
func LowerBound(cat *migconfig.Catalog, c Cluster, w Workload) (Bound, error) {
	p, err := newLBProblem(cat, c, w)
	if err != nil {
		return Bound{}, fmt.Errorf("lower bound: %w", err)
	}
	b := Bound{
		LB1:        p.slicesBound(),
		Prices:     make(map[Resource]float64, len(p.resources)),
		Unservable: p.unservable,
	}
	for _, r := range p.resources {
		b.Prices[r] = 0
	}
	if len(p.services) == 0 {
		return b, nil
	}
	lp2, _, _ := p.maximizeDual(false)
	lp3, prices, _ := p.maximizeDual(true)
	b.LP2, b.LP3 = lp2, lp3
	b.LB2, b.LB3 = roundUpGPUs(lp2), roundUpGPUs(lp3)
	// LB3's LP contains LB2's, so LP3 ≥ LP2 exactly; the cutting-plane
	// values may differ by the tolerance, which must not break the order.
	if b.LB3 < b.LB2 {
		b.LB3 = b.LB2
	}
	if b.LB2 < b.LB1 {
		b.LB2 = b.LB1
	}
	if b.LB3 < b.LB2 {
		b.LB3 = b.LB2
	}
	for i, r := range p.resources {
		b.Prices[r] = prices[i]
	}
	return b, nil
}

// roundUpGPUs rounds an LP optimum up to whole GPUs, forgiving rounding
// error.
func roundUpGPUs(v float64) int {
	n := math.Ceil(v - lbRoundTol)
	if n < 0 {
		return 0
	}
	return int(n)
}

// newLBProblem collects the resources, configurations and services of the
// configuration LP.
func newLBProblem(cat *migconfig.Catalog, c Cluster, w Workload) (*lbProblem, error) {
	if cat == nil {
		return nil, errors.New("no GPU catalog")
	}
	p := &lbProblem{}
	modelIdx := map[string]int{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			if g.Cordoned {
				continue
			}
			m, ok := cat.ByKey(g.Model)
			if !ok {
				return nil, fmt.Errorf("node %s GPU %d: unknown GPU model %q", n.Name, g.Index, g.Model)
			}
			if _, seen := modelIdx[m.Key]; !seen {
				modelIdx[m.Key] = len(p.models)
				p.models = append(p.models, m)
			}
		}
	}

	// usable[s] maps each usable (model, profile index in the catalog) to
	// the service's rate; a service's first entry for a resource decides,
	// as Service.RateOn does.
	type use struct {
		model, profile int
		rate           float64
	}
	usable := make([][]use, len(w.Services))
	used := make([][]bool, len(p.models))
	for i, m := range p.models {
		used[i] = make([]bool, len(m.Profiles))
	}
	for si, s := range w.Services {
		if math.IsNaN(s.Demand) || math.IsInf(s.Demand, 0) || s.Demand < 0 {
			return nil, fmt.Errorf("service %q: demand %v is not a finite non-negative rate", s.Name, s.Demand)
		}
		if s.Demand == 0 {
			continue
		}
		seen := map[[2]int]bool{}
		for _, t := range s.Throughput {
			mi, ok := modelIdx[lbModelKey(cat, t.GPUModel)]
			if !ok {
				continue // not a model of the cluster
			}
			m := p.models[mi]
			pi := lbProfileIndex(m, t.Profile)
			if pi < 0 {
				return nil, fmt.Errorf("service %q: GPU model %s has no MIG profile %q", s.Name, m.Key, t.Profile)
			}
			if math.IsNaN(t.RPS) || math.IsInf(t.RPS, 0) || t.RPS < 0 {
				return nil, fmt.Errorf("service %q: rate %v on %s/%s is not a finite non-negative rate", s.Name, t.RPS, m.Key, t.Profile)
			}
			key := [2]int{mi, pi}
			if seen[key] {
				continue
			}
			seen[key] = true
			prof := &m.Profiles[pi]
			if t.RPS == 0 || prof.ComputeSlices <= 0 || s.MemoryMiB > prof.MemoryMiB {
				continue
			}
			usable[si] = append(usable[si], use{mi, pi, t.RPS})
			used[mi][pi] = true
		}
	}

	// Resources in model order, then catalog profile order.
	resIdx := make([][]int, len(p.models))
	ids := make([][]migconfig.ProfileID, len(p.models))
	for mi, m := range p.models {
		resIdx[mi] = make([]int, len(m.Profiles))
		for pi := range m.Profiles {
			resIdx[mi][pi] = -1
			if !used[mi][pi] {
				continue
			}
			resIdx[mi][pi] = len(p.resources)
			p.resources = append(p.resources, Resource{GPUModel: m.Key, Profile: m.Profiles[pi].Name})
			p.compute = append(p.compute, m.Profiles[pi].ComputeSlices)
			p.model = append(p.model, mi)
			ids[mi] = append(ids[mi], m.Profiles[pi].ID)
		}
	}
	// Configurations: each model's undominated maximal layouts over its
	// resources' profiles.
	for mi, m := range p.models {
		if len(ids[mi]) == 0 {
			continue // MaximalLayouts would take every profile
		}
		for _, l := range migconfig.MaximalLayouts(m, ids[mi]) {
			row := make([]float64, len(p.resources))
			for _, in := range l.Instances {
				pi := lbProfileIndexByID(m, in.Profile)
				if pi < 0 || resIdx[mi][pi] < 0 {
					return nil, fmt.Errorf("GPU model %s: maximal layout holds unexpected profile ID %d", m.Key, in.Profile)
				}
				row[resIdx[mi][pi]]++
			}
			p.configs = append(p.configs, row)
		}
	}

	for si, s := range w.Services {
		if s.Demand == 0 {
			continue
		}
		if len(usable[si]) == 0 {
			p.unservable = append(p.unservable, s.Name)
			continue
		}
		ls := lbService{demand: s.Demand, minInst: float64(max(1, s.MinReplicas))}
		for _, u := range usable[si] {
			ls.res = append(ls.res, resIdx[u.model][u.profile])
			ls.rate = append(ls.rate, u.rate)
		}
		for i := range ls.res {
			for j := range ls.res {
				hi, lo := ls.rate[i], ls.rate[j]
				if hi > lo && lo*ls.minInst < ls.demand && ls.demand < hi*ls.minInst {
					ls.pairs = append(ls.pairs, [2]int{i, j})
				}
			}
		}
		p.services = append(p.services, ls)
	}
	return p, nil
}

// lbModelKey returns the catalog key of a GPU model named by key, or the
// name itself when the catalog does not know it.
func lbModelKey(cat *migconfig.Catalog, name string) string {
	if m, ok := cat.ByKey(name); ok {
		return m.Key
	}
	return name
}

// lbProfileIndex returns the position of the named profile in m.Profiles,
// or -1.
func lbProfileIndex(m *migconfig.GPUModel, name string) int {
	for i := range m.Profiles {
		if m.Profiles[i].Name == name {
			return i
		}
	}
	return -1
}

// lbProfileIndexByID returns the position of profile id in m.Profiles, or -1.
func lbProfileIndexByID(m *migconfig.GPUModel, id migconfig.ProfileID) int {
	for i := range m.Profiles {
		if m.Profiles[i].ID == id {
			return i
		}
	}
	return -1
}

// slicesBound is LB1: total demand over the best rate per compute slice,
// over the most compute slices of any GPU model with a resource.
func (p *lbProblem) slicesBound() int {
	gpuSlices := 0
	for _, mi := range p.model {
		gpuSlices = max(gpuSlices, p.models[mi].ComputeSlices)
	}
	if gpuSlices == 0 {
		return 0
	}
	slices := 0.0
	for _, s := range p.services {
		best := 0.0
		for i, r := range s.res {
			best = math.Max(best, s.rate[i]/float64(p.compute[r]))
		}
		slices += s.demand / best
	}
	return roundUpGPUs(slices / float64(gpuSlices))
}

// serviceMin solves one service's Lagrangian subproblem
//
//	min Σ_r π_r y_r  s.t.  Σ_r T_r y_r ≥ d,  Σ_r y_r ≥ k,  y ≥ 0
//
// with k = minInst when floor is set and 0 otherwise. An optimal vertex
// uses one resource (y = max(d/T, k)) or two with both rows tight, so
// enumerating single resources and the precomputed feasible pairs is
// exact. It adds the optimal y to the resources' totals in y and returns
// the minimum.
func (s *lbService) serviceMin(pi []float64, floor bool, y []float64) float64 {
	k := 0.0
	if floor {
		k = s.minInst
	}
	best, bi := math.Inf(1), -1
	var bestPair [2]int
	var bestY [2]float64
	for i, r := range s.res {
		v := math.Max(s.demand/s.rate[i], k)
		if cost := pi[r] * v; cost < best {
			best, bi, bestY[0] = cost, i, v
		}
	}
	if floor {
		for _, pr := range s.pairs {
			hi, lo := pr[0], pr[1]
			th, tl := s.rate[hi], s.rate[lo]
			yh := (s.demand - tl*k) / (th - tl)
			yl := k - yh
			if cost := pi[s.res[hi]]*yh + pi[s.res[lo]]*yl; cost < best {
				best, bi, bestPair, bestY = cost, -1, pr, [2]float64{yh, yl}
			}
		}
	}
	if bi >= 0 {
		y[s.res[bi]] += bestY[0]
	} else {
		y[s.res[bestPair[0]]] += bestY[0]
		y[s.res[bestPair[1]]] += bestY[1]
	}
	return best
}

// dualValue returns F(π) = Σ_m f_m(π) and its supergradient Y (the sum of
// the subproblems' optimal y).
func (p *lbProblem) dualValue(pi []float64, floor bool) (float64, []float64) {
	y := make([]float64, len(p.resources))
	f := 0.0
	for i := range p.services {
		f += p.services[i].serviceMin(pi, floor, y)
	}
	return f, y
}

// feasiblePrices clamps π to ≥ 0 and scales it down until n_c·π ≤ 1 for
// every configuration, so F(π) is a valid bound despite solver rounding.
func (p *lbProblem) feasiblePrices(pi []float64) {
	for r, v := range pi {
		if v < 0 || math.IsNaN(v) {
			pi[r] = 0
		}
	}
	worst := 1.0
	for _, n := range p.configs {
		dot := 0.0
		for r, v := range n {
			dot += v * pi[r]
		}
		worst = math.Max(worst, dot)
	}
	if worst > 1 {
		for r := range pi {
			pi[r] /= worst
		}
	}
}

// maximizeDual maximises F over the feasible prices with Kelley's cutting
// planes and returns the best F found (LP2 without the instance floor,
// LP3 with it), the prices that reach it and the number of master LPs
// solved. It stops when the master's optimum, an upper bound on max F, is
// within lbRelGap of the best F, after lbMaxIter master LPs, or when
// lp.Simplex cannot solve a master; the best F is a valid lower bound on
// the LP optimum in every case.
//
// The master LP is
//
//	max θ  s.t.  θ ≤ π·Y^k for every cut k,  n_c·π ≤ 1 for every c,  π, θ ≥ 0
//
// in standard form over (π, φ = θ/S, cut slacks, configuration slacks),
// with S = F(π⁰) so φ is of order 1. The slack basis is feasible, so each
// solve starts from it without a phase 1. π is bounded because every
// resource lies in some configuration, hence the master is bounded once
// it has one cut.
func (p *lbProblem) maximizeDual(floor bool) (value float64, prices []float64, iterations int) {
	nr := len(p.resources)
	// π⁰ charges each resource its share of the GPU's compute slices: the
	// slice bound, and feasible since no layout uses more compute slices
	// than its model's fullest layout.
	fullest := make([]float64, len(p.models))
	for _, n := range p.configs {
		g := 0.0
		mi := -1
		for r, v := range n {
			if v > 0 {
				g += v * float64(p.compute[r])
				mi = p.model[r]
			}
		}
		if mi >= 0 {
			fullest[mi] = math.Max(fullest[mi], g)
		}
	}
	pi0 := make([]float64, nr)
	for r := range pi0 {
		pi0[r] = float64(p.compute[r]) / fullest[p.model[r]]
	}
	p.feasiblePrices(pi0)
	best, y := p.dualValue(pi0, floor)
	bestPi := pi0
	scale := best
	if !(scale > 0) {
		scale = 1
	}
	cuts := [][]float64{y}
	iter := 0
	for iter < lbMaxIter {
		iter++
		theta, pi, err := p.solveMasterRetry(cuts, scale)
		if err != nil {
			// best is still a valid bound, only a less tight one.
			break
		}
		if theta-best <= lbRelGap*math.Max(1, math.Abs(best)) {
			break
		}
		p.feasiblePrices(pi)
		f, y := p.dualValue(pi, floor)
		if f > best {
			best, bestPi = f, pi
		}
		if slices.ContainsFunc(cuts, func(c []float64) bool { return slices.Equal(c, y) }) {
			// The master already knew this cut, so the gap is solver
			// rounding: nothing more to learn.
			break
		}
		cuts = append(cuts, y)
	}
	return best, bestPi, iter
}

// solveMasterRetry solves the master LP, retrying with the cuts in
// reverse order and with other scales of θ when lp.Simplex fails: its
// pivoting has no safeguard against ill-conditioned bases on such
// degenerate problems, and an equivalent formulation takes another path.
func (p *lbProblem) solveMasterRetry(cuts [][]float64, scale float64) (float64, []float64, error) {
	theta, pi, err := p.solveMaster(cuts, scale)
	if err == nil {
		return theta, pi, nil
	}
	rev := slices.Clone(cuts)
	slices.Reverse(rev)
	for _, try := range []struct {
		cuts  [][]float64
		scale float64
	}{{rev, scale}, {cuts, scale * 3}, {rev, scale / 3}, {cuts, scale * 10}} {
		if theta, pi, err2 := p.solveMaster(try.cuts, try.scale); err2 == nil {
			return theta, pi, nil
		}
	}
	return 0, nil, err
}

// solveMaster solves Kelley's master LP over the given cuts and returns
// its optimum θ (an upper bound on max F) and the prices reaching it.
func (p *lbProblem) solveMaster(cuts [][]float64, scale float64) (float64, []float64, error) {
	nr, nk, nc := len(p.resources), len(cuts), len(p.configs)
	rows, cols := nk+nc, nr+1+nk+nc
	a := mat.NewDense(rows, cols, nil)
	b := make([]float64, rows)
	cost := make([]float64, cols)
	phi := nr
	cost[phi] = -1
	basic := make([]int, rows)
	for k, y := range cuts {
		// φ − (Y^k/S)·π + s_k = 0, divided by its largest coefficient so
		// every cut row has entries in [−1, 1].
		norm := 1.0
		for _, v := range y {
			norm = math.Max(norm, v/scale)
		}
		a.Set(k, phi, 1/norm)
		for r, v := range y {
			if v != 0 {
				a.Set(k, r, -v/scale/norm)
			}
		}
		a.Set(k, nr+1+k, 1)
		// A tiny distinct right-hand side keeps the slack basis from
		// being degenerate; it raises θ by at most lbCutSlack·S.
		b[k] = lbCutSlack * (1 + float64(k%7)/7) / norm
		basic[k] = nr + 1 + k
	}
	for c, n := range p.configs {
		// n_c·π + t_c = 1
		row := nk + c
		for r, v := range n {
			if v != 0 {
				a.Set(row, r, v)
			}
		}
		a.Set(row, nr+1+nk+c, 1)
		b[row] = 1
		basic[row] = nr + 1 + nk + c
	}
	opt, x, err := lp.Simplex(cost, a, b, lbSimplexTol, basic)
	if err != nil {
		return 0, nil, err
	}
	pi := append([]float64(nil), x[:nr]...)
	return -opt * scale, pi, nil
}

// directLP solves the configuration LP of the scheduling reference, §8,
// as one standard-form LP with lp.Simplex: LP2 without the instance floor,
// LP3 with it. Its size grows with services × resources, so it serves
// small inputs and as a check on the cutting-plane method.
//
// Columns: x_c per configuration, y_{m,r} per usable (service, resource),
// a slack s_r and an excess a_r per capacity row, a surplus t_m per demand
// row and, with floor, a surplus u_m per instance row. Rows: Σ_m y_{m,r} −
// Σ_c n_{c,r} x_c + s_r − a_r = 0; Σ_r (T_{m,r}/d_m) y_{m,r} − t_m = 1;
// Σ_r y_{m,r}/k_m − u_m = 1. The objective is Σ_c x_c + lbExcessCost ·
// Σ_r a_r.
//
// The excess columns give lp.Simplex a feasible starting basis (every
// service on its fastest resource, capacity left in excess), which spares
// it a phase 1 that fails on these degenerate problems. They do not change
// the optimum: a_r only relaxes the dual price π_r ≤ lbExcessCost, and
// every feasible π already has π_r ≤ 1, since r lies in a configuration c
// with n_c·π ≤ 1.
func (p *lbProblem) directLP(floor bool) (float64, error) {
	nr, nc, nm := len(p.resources), len(p.configs), len(p.services)
	if nm == 0 {
		return 0, nil
	}
	ny := 0
	for _, s := range p.services {
		ny += len(s.res)
	}
	rows := nr + nm
	cols := nc + ny + 2*nr + nm
	if floor {
		rows += nm
		cols += nm
	}
	a := mat.NewDense(rows, cols, nil)
	b := make([]float64, rows)
	cost := make([]float64, cols)
	var basic []int
	for c, n := range p.configs {
		cost[c] = 1
		for r, v := range n {
			if v != 0 {
				a.Set(r, c, -v)
			}
		}
	}
	// yCol[m] is the column of service m's fastest resource.
	yCol := make([]int, nm)
	col := nc
	for m, s := range p.services {
		fastest := 0
		for i, r := range s.res {
			a.Set(r, col, 1)
			a.Set(nr+m, col, s.rate[i]/s.demand)
			if floor {
				a.Set(nr+nm+m, col, 1/s.minInst)
			}
			if s.rate[i] > s.rate[fastest] {
				fastest = i
			}
			col++
		}
		yCol[m] = col - len(s.res) + fastest
		basic = append(basic, yCol[m])
	}
	for r := 0; r < nr; r++ {
		a.Set(r, col, 1) // s_r
		a.Set(r, col+nr, -1)
		cost[col+nr] = lbExcessCost
		basic = append(basic, col+nr) // a_r
		col++
	}
	col += nr
	tCol := col
	for m := 0; m < nm; m++ {
		a.Set(nr+m, col, -1)
		b[nr+m] = 1
		col++
	}
	if floor {
		for m, s := range p.services {
			a.Set(nr+nm+m, col, -1)
			b[nr+nm+m] = 1
			// The fastest resource alone meets the demand with y =
			// max(d/T, k): the row that is not tight keeps its surplus
			// in the basis.
			if s.demand/slices.Max(s.rate) >= s.minInst {
				basic = append(basic, col) // u_m = y/k − 1 ≥ 0
			} else {
				basic = append(basic, tCol+m) // t_m = T·k/d − 1 > 0
			}
			col++
		}
	}
	opt, _, err := lp.Simplex(cost, a, b, lbSimplexTol, basic)
	if err != nil {
		return 0, fmt.Errorf("configuration LP: %w", err)
	}
	return opt, nil
}
