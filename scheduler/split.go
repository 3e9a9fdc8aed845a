package scheduler

import (
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

// maxSplitServices is the most services for which the planner solves the
// configuration LP's primal to split each service's demand across kinds of
// slice; above it, each service is priced on its own (the LP would be too
// large, and with many services rounding dominates anyway).
const maxSplitServices = 64

// splitMixes solves the configuration LP (the scheduling reference's LB3:
// layouts x_c, instances y_{m,r} of service m on resource r, demand and
// minimum-replica rows) and rounds its split: each service keeps the whole
// replicas of y_{m,·} and covers what is left at the given prices. It
// returns false when the LP cannot be solved.
func (p *problem) splitMixes(prices []float64) ([]mix, bool) {
	type pair struct{ m, r int }
	var cfgs []config
	for _, list := range p.configs {
		cfgs = append(cfgs, list...)
	}
	var pairs []pair
	var served []int
	for i := range p.services {
		s := &p.services[i]
		if s.demand <= 0 && s.min == 0 {
			continue
		}
		has := false
		for r, rate := range s.rate {
			if rate > 0 {
				pairs = append(pairs, pair{i, r})
				has = true
			}
		}
		if has {
			served = append(served, i)
		}
	}
	if len(cfgs) == 0 || len(served) == 0 {
		return nil, false
	}
	nr, ns := len(p.res), len(served)
	rows := nr + 2*ns
	cols := len(cfgs) + len(pairs) + nr + 2*ns
	a := mat.NewDense(rows, cols, nil)
	b := make([]float64, rows)
	c := make([]float64, cols)
	for j, cfg := range cfgs {
		c[j] = 1
		for r, n := range cfg.count {
			a.Set(r, j, -float64(n))
		}
	}
	row := map[int]int{}
	for k, i := range served {
		row[i] = k
	}
	for j, pr := range pairs {
		col := len(cfgs) + j
		s := &p.services[pr.m]
		a.Set(pr.r, col, 1)
		if s.demand > 0 {
			a.Set(nr+row[pr.m], col, s.rate[pr.r]/s.demand)
		}
		a.Set(nr+ns+row[pr.m], col, 1)
	}
	for r := 0; r < nr; r++ {
		a.Set(r, len(cfgs)+len(pairs)+r, 1) // slack: used ≤ offered
	}
	for k, i := range served {
		s := &p.services[i]
		base := len(cfgs) + len(pairs) + nr
		a.Set(nr+k, base+k, -1) // surplus: served ≥ demand
		if s.demand > 0 {
			b[nr+k] = 1
		}
		a.Set(nr+ns+k, base+ns+k, -1) // surplus: replicas ≥ minimum
		b[nr+ns+k] = float64(max(s.min, 1))
		if s.demand <= 0 {
			b[nr+ns+k] = float64(s.min)
		}
	}
	_, x, err := lp.Simplex(c, a, b, 1e-10, nil)
	if err != nil {
		return nil, false
	}
	mixes := make([]mix, len(p.services))
	for i := range p.services {
		s := &p.services[i]
		m := mix{}
		for j, pr := range pairs {
			if pr.m != i {
				continue
			}
			if n := int(math.Floor(x[len(cfgs)+j] + 1e-9)); n > 0 {
				m[pr.r] = n
			}
		}
		rest := serviceInfo{Service: s.Service, index: s.index, rate: s.rate,
			demand: math.Max(s.demand-m.capacity(s), 0), min: max(s.min-m.replicas(), 0)}
		if rest.demand > s.demand*demandSlack || rest.min > 0 {
			extra, ok := p.chooseMix(&rest, prices)
			if !ok {
				mixes[i] = nil
				continue
			}
			for r, n := range extra {
				m[r] += n
			}
		}
		if len(m) > 0 {
			mixes[i] = m
		}
	}
	return mixes, true
}
