package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// demandSlack is the relative shortfall below which demand counts as met,
// so that rates summed in floating point do not ask for an extra replica.
const demandSlack = 1e-9

// mix is how many replicas a service gets on each resource.
type mix map[int]int

func (m mix) capacity(s *serviceInfo) float64 {
	c := 0.0
	for r, n := range m {
		c += float64(n) * s.rate[r]
	}
	return c
}

func (m mix) replicas() int {
	n := 0
	for _, k := range m {
		n += k
	}
	return n
}

// chooseMix returns the cheapest integer replica counts for s at the given
// prices (GPUs per instance) that serve its demand with at least its
// minimum replicas: as many replicas as fit on the resource with the
// lowest price per request, and the remainder on the cheapest one or two
// instances that cover it. It returns false when no resource fits s.
func (p *problem) chooseMix(s *serviceInfo, prices []float64) (mix, bool) {
	order := p.sortedByCost(s, prices)
	if len(order) == 0 {
		return nil, s.demand <= 0 && s.min == 0
	}
	need := s.demand * (1 - demandSlack)
	best := order[0]
	t := s.rate[best]
	base := int(math.Floor(need / t))

	type cand struct {
		m    mix
		cost float64
		g    int // compute slices, for ties
	}
	var winner *cand
	consider := func(m mix) {
		m = p.padToMin(s, m, prices, order)
		c := cand{m: m}
		for r, n := range m {
			c.cost += float64(n) * prices[r]
			c.g += n * p.res[r].profile.ComputeSlices
		}
		if winner == nil || c.cost < winner.cost-1e-12 ||
			(math.Abs(c.cost-winner.cost) <= 1e-12 && (c.g < winner.g || (c.g == winner.g && c.m.replicas() < winner.m.replicas()))) {
			winner = &c
		}
	}
	for b := base; b >= max(base-1, 0); b-- {
		rem := need - float64(b)*t
		with := func(extra ...int) mix {
			m := mix{}
			if b > 0 {
				m[best] = b
			}
			for _, r := range extra {
				m[r]++
			}
			return m
		}
		if rem <= 0 {
			consider(with())
			continue
		}
		for i, r1 := range order {
			if s.rate[r1] >= rem {
				consider(with(r1))
			}
			for _, r2 := range order[i:] {
				if s.rate[r1]+s.rate[r2] >= rem {
					consider(with(r1, r2))
				}
			}
		}
	}
	return winner.m, true
}

// padToMin adds the cheapest replicas until s has its minimum count.
func (p *problem) padToMin(s *serviceInfo, m mix, prices []float64, order []int) mix {
	missing := s.min - m.replicas()
	if missing <= 0 {
		return m
	}
	cheapest := order[0]
	for _, r := range order {
		if prices[r] < prices[cheapest] {
			cheapest = r
		}
	}
	out := mix{}
	for r, n := range m {
		out[r] = n
	}
	out[cheapest] += missing
	return out
}

// alternatives returns other reasonable mixes for s, cheapest first,
// for the planner's improvement pass: the remainder moved to each other
// resource that covers it.
func (p *problem) alternatives(s *serviceInfo, prices []float64, current mix) []mix {
	order := p.sortedByCost(s, prices)
	if len(order) == 0 {
		return nil
	}
	var out []mix
	seen := map[string]bool{mixKey(current): true}
	add := func(m mix) {
		m = p.padToMin(s, m, prices, order)
		if m.capacity(s) < s.demand*(1-demandSlack) {
			return
		}
		k := mixKey(m)
		if !seen[k] {
			seen[k] = true
			out = append(out, m)
		}
	}
	// Drop one replica of each kind and cover the gap with one instance of
	// any kind.
	for r := range current {
		for _, r2 := range order {
			m := mix{}
			for k, n := range current {
				m[k] = n
			}
			m[r]--
			if m[r] == 0 {
				delete(m, r)
			}
			m[r2]++
			add(m)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return mixCost(out[a], prices) < mixCost(out[b], prices) })
	return out
}

func mixCost(m mix, prices []float64) float64 {
	c := 0.0
	for r, n := range m {
		c += float64(n) * prices[r]
	}
	return c
}

func mixKey(m mix) string {
	keys := make([]int, 0, len(m))
	for r := range m {
		keys = append(keys, r)
	}
	sort.Ints(keys)
	var b strings.Builder
	for _, r := range keys {
		fmt.Fprintf(&b, "%d:%d,", r, m[r])
	}
	return b.String()
}
