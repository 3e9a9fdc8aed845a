package scheduler

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

// exactCoverLimit is the residual size (in instances) below which the
// cover is searched exactly without an LP first.
const exactCoverLimit = 48

// searchBudget bounds the branch-and-bound nodes of one exact cover.
const searchBudget = 200000

// cover returns how many GPUs of each of model g's layouts host the
// instance counts need (indexed by resource) with the fewest GPUs: the LP
// relaxation rounded down, then an exact search for what is left. The
// result is exact for small needs and within a GPU or two of the optimum
// for large ones.
func (p *problem) cover(g int, need []int) []int {
	cfgs := p.configs[g]
	x := make([]int, len(cfgs))
	total := 0
	for _, n := range need {
		total += n
	}
	if total == 0 || len(cfgs) == 0 {
		return x
	}
	residual := append([]int(nil), need...)
	if total > exactCoverLimit {
		if frac, ok := p.coverLP(g, need); ok {
			for c, v := range frac {
				x[c] = int(math.Floor(v + 1e-9))
			}
			residual = subtractCover(cfgs, x, need)
		}
	}
	rest := p.coverExact(g, residual)
	for c := range x {
		x[c] += rest[c]
	}
	return x
}

// subtractCover returns need minus what the layouts x provide, floored at 0.
func subtractCover(cfgs []config, x []int, need []int) []int {
	out := append([]int(nil), need...)
	for c, k := range x {
		if k == 0 {
			continue
		}
		for r, n := range cfgs[c].count {
			out[r] -= k * n
		}
	}
	for r := range out {
		out[r] = max(out[r], 0)
	}
	return out
}

// coverLP solves min Σx s.t. Σ_c n_c x_c ≥ need, x ≥ 0 over model g's
// layouts, in standard form with a surplus column per resource.
func (p *problem) coverLP(g int, need []int) ([]float64, bool) {
	cfgs := p.configs[g]
	var rows []int // resources of model g with need > 0
	for r, n := range need {
		if n > 0 {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 || len(cfgs) == 0 {
		return make([]float64, len(cfgs)), true
	}
	nc := len(cfgs) + len(rows)
	a := mat.NewDense(len(rows), nc, nil)
	b := make([]float64, len(rows))
	c := make([]float64, nc)
	for j := range cfgs {
		c[j] = 1
	}
	for i, r := range rows {
		b[i] = float64(need[r])
		for j, cfg := range cfgs {
			a.Set(i, j, float64(cfg.count[r]))
		}
		a.Set(i, len(cfgs)+i, -1)
	}
	_, x, err := lp.Simplex(c, a, b, 1e-10, nil)
	if err != nil {
		return nil, false
	}
	return x[:len(cfgs)], true
}

// coverExact finds the fewest layouts of model g covering need by
// branch and bound: branch on the resource with the fewest covering
// layouts, bound with slice and per-resource counts, memoise residuals.
// It falls back to the best cover found when the budget runs out.
func (p *problem) coverExact(g int, need []int) []int {
	cfgs := p.configs[g]
	best := p.coverGreedy(g, need)
	bestN := sum(best)
	if bestN <= 1 {
		return best
	}
	m := p.models[g]
	maxPer := make([]int, len(need)) // most instances of r one layout holds
	for _, cfg := range cfgs {
		for r, n := range cfg.count {
			maxPer[r] = max(maxPer[r], n)
		}
	}
	// Each GPU holds at most ComputeSlices compute and MemorySlices memory
	// slices, and at most maxPer[r] instances of r.
	lower := func(res []int) int {
		lb, compute, memory := 0, 0, 0
		for r, n := range res {
			if n == 0 {
				continue
			}
			if maxPer[r] == 0 {
				return math.MaxInt32
			}
			lb = max(lb, (n+maxPer[r]-1)/maxPer[r])
			compute += n * p.res[r].profile.ComputeSlices
			memory += n * p.res[r].profile.MemorySlices
		}
		lb = max(lb, (compute+m.ComputeSlices-1)/m.ComputeSlices)
		return max(lb, (memory+m.MemorySlices-1)/m.MemorySlices)
	}
	cur := make([]int, len(cfgs))
	seen := map[string]int{}
	nodes := 0
	var dfs func(res []int, used int)
	dfs = func(res []int, used int) {
		nodes++
		if nodes > searchBudget {
			return
		}
		pick := -1
		options := math.MaxInt32
		for r, n := range res {
			if n == 0 {
				continue
			}
			k := 0
			for _, cfg := range cfgs {
				if cfg.count[r] > 0 {
					k++
				}
			}
			if k < options {
				pick, options = r, k
			}
		}
		if pick < 0 {
			if used < bestN {
				bestN = used
				copy(best, cur)
			}
			return
		}
		if used+lower(res) >= bestN {
			return
		}
		key := residualKey(res)
		if prev, ok := seen[key]; ok && prev <= used {
			return
		}
		seen[key] = used
		order := make([]int, 0, len(cfgs))
		for c, cfg := range cfgs {
			if cfg.count[pick] > 0 {
				order = append(order, c)
			}
		}
		gain := func(c int) int {
			s := 0
			for r, n := range cfgs[c].count {
				s += min(n, res[r]) * max(p.res[r].profile.ComputeSlices, 1)
			}
			return s
		}
		sort.SliceStable(order, func(a, b int) bool { return gain(order[a]) > gain(order[b]) })
		next := make([]int, len(res))
		for _, c := range order {
			for r := range res {
				next[r] = max(res[r]-cfgs[c].count[r], 0)
			}
			cur[c]++
			dfs(append([]int(nil), next...), used+1)
			cur[c]--
		}
	}
	dfs(append([]int(nil), need...), 0)
	return best
}

// coverGreedy covers need by repeatedly taking the layout that covers the
// most outstanding compute slices.
func (p *problem) coverGreedy(g int, need []int) []int {
	cfgs := p.configs[g]
	x := make([]int, len(cfgs))
	res := append([]int(nil), need...)
	for {
		bestC, bestGain := -1, 0
		for c, cfg := range cfgs {
			gain := 0
			for r, n := range cfg.count {
				gain += min(n, res[r]) * (p.res[r].profile.ComputeSlices*8 + p.res[r].profile.MemorySlices)
			}
			if gain > bestGain {
				bestC, bestGain = c, gain
			}
		}
		if bestC < 0 {
			return x
		}
		x[bestC]++
		for r, n := range cfgs[bestC].count {
			res[r] = max(res[r]-n, 0)
		}
	}
}

func residualKey(res []int) string {
	var b strings.Builder
	for _, n := range res {
		b.WriteString(strconv.Itoa(n))
		b.WriteByte(',')
	}
	return b.String()
}

func sum(x []int) int {
	s := 0
	for _, v := range x {
		s += v
	}
	return s
}
