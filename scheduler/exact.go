package scheduler

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// DefaultExactBudget is ExactMinGPUs' search budget, in search nodes, when
// the caller gives none. One node is one step of the replica search or of
// the layout-cover search; a node takes well under a microsecond.
const DefaultExactBudget = 20_000_000

// exactMaxRes is the most kinds of slice (profiles some service fits) the
// exact search handles; every catalog model has fewer profiles.
const exactMaxRes = 16

// ExactResult is what ExactMinGPUs found.
type ExactResult struct {
	// Model is the catalog key of the GPU model searched.
	Model string `json:"model"`
	// Optimal reports that GPUs is the proven minimum: no plan on fewer
	// GPUs of the model serves all demand. When false the budget ran out
	// first: every count below Lower is refuted, Lower itself and above
	// were not decided.
	Optimal bool `json:"optimal"`
	// GPUs is the minimum when Optimal, 0 otherwise.
	GPUs int `json:"gpus"`
	// Lower is a proven lower bound on the GPUs of any plan that serves
	// all demand: GPUs when Optimal, else the smallest count the search
	// did not refute (0 when the budget ran out before the search began).
	Lower int `json:"lower"`
	// SliceBound is where the search starts: the compute slices, memory
	// slices and replicas the services need at least (each service on its
	// cheapest mix in that respect, in whole replicas), over what one GPU
	// holds. Unlike LB3 it counts whole replicas, so it can be higher.
	SliceBound int `json:"sliceBound"`
	// Witness is, when Optimal, a plan on Cluster (GPUs GPUs of the model)
	// that serves all demand and passes Check.
	Witness Plan    `json:"witness"`
	Cluster Cluster `json:"cluster"`
	// Nodes is the number of search nodes used.
	Nodes int `json:"nodes"`
}

// ExactMinGPUs returns the fewest GPUs of one GPU model on which the
// workload's demand can be served in the planner's model: every service
// with demand gets at least max(1, MinReplicas) replicas and replicas whose
// summed throughput is at least its demand, each replica alone on a MIG
// slice it fits (a positive rate, enough memory). It is an exact search for
// small instances (a few dozen GPUs and services), not a planner.
//
// Because every replica has its own slice and any slice of a profile can
// serve any service that fits it, a plan on k GPUs exists exactly when
// some choice of replica counts per service and profile (a "mix") sums to
// per-profile counts that k maximal layouts of the model
// (migconfig.MaximalLayouts over the profiles used) can hold. The search
// tries k = a simple slice bound, k+1, … and, for each k, chooses the
// services' Pareto-minimal mixes one service at a time by depth-first
// search, pruning a partial choice when its per-profile counts cannot be
// held by k layouts (an exact cover search, memoised) or when the slices
// the remaining services need at least exceed what k GPUs have; failed
// (service, counts) states are memoised. It does not use LowerBound's
// LB3 to skip counts, so its answer checks the bound rather than trusting
// it; it uses the LP's prices only to order the search.
//
// budget bounds the search nodes over all k (0: DefaultExactBudget). When
// it runs out the result is not Optimal and Lower says how far the search
// got. An error means bad input: an unknown GPU model, invalid demands, or
// a service with demand that fits no slice of the model (no number of GPUs
// serves it).
func ExactMinGPUs(cat *migconfig.Catalog, model string, w Workload, budget int) (ExactResult, error) {
	if cat == nil {
		return ExactResult{}, errors.New("scheduler: exact: no catalog")
	}
	m, ok := cat.ByKey(model)
	if !ok {
		return ExactResult{}, fmt.Errorf("scheduler: exact: unknown GPU model %q", model)
	}
	if budget <= 0 {
		budget = DefaultExactBudget
	}
	res := ExactResult{Model: m.Key}
	p, err := newProblem(cat, exactCluster(m.Key, 1), w)
	if err != nil {
		return res, fmt.Errorf("scheduler: exact: %w", err)
	}
	if len(p.res) > exactMaxRes {
		return res, fmt.Errorf("scheduler: exact: %d kinds of slice; the search handles at most %d", len(p.res), exactMaxRes)
	}
	e := &exactSearch{p: p, budget: budget, coverFail: map[exactVec]int{}, coverOK: map[exactVec]int{}}
	if err := e.prepare(cat, w); err != nil {
		return res, fmt.Errorf("scheduler: exact: %w", err)
	}
	if e.out {
		res.Nodes = e.nodes
		return res, nil
	}
	if len(e.order) == 0 {
		res.Optimal = true
		res.Witness, res.Cluster = e.witness(cat, w, 0, nil)
		return res, nil
	}
	res.SliceBound = e.startK()
	for k := res.SliceBound; ; k++ {
		res.Lower = k
		found := e.feasible(k)
		res.Nodes = e.nodes
		if e.out {
			return res, nil
		}
		if !found {
			continue
		}
		res.Optimal, res.GPUs = true, k
		res.Witness, res.Cluster = e.witness(cat, w, k, e.choice)
		if err := checkWitness(cat, res.Cluster, w, res.Witness, k); err != nil {
			return res, fmt.Errorf("scheduler: exact: witness for %d GPUs: %w", k, err)
		}
		return res, nil
	}
}

// exactCluster is n GPUs of model on one node.
func exactCluster(model string, n int) Cluster {
	node := Node{Name: "exact"}
	for i := 0; i < n; i++ {
		node.GPUs = append(node.GPUs, GPU{Index: i, Model: model})
	}
	return Cluster{Nodes: []Node{node}}
}

// checkWitness verifies a witness plan: legal (Check), every service's
// demand and replica minimum met, k GPUs used.
func checkWitness(cat *migconfig.Catalog, c Cluster, w Workload, plan Plan, k int) error {
	if err := Check(cat, c, w, plan, Options{Fresh: true}); err != nil {
		return err
	}
	var errs []error
	for _, s := range plan.Services {
		if s.Unmet != "" {
			errs = append(errs, fmt.Errorf("service %q: %s", s.Name, s.Unmet))
		}
	}
	if plan.GPUsUsed != k {
		errs = append(errs, fmt.Errorf("uses %d GPUs", plan.GPUsUsed))
	}
	return errors.Join(errs...)
}

// exactVec is a count per resource (kind of slice).
type exactVec [exactMaxRes]int32

type exactSearch struct {
	p      *problem
	budget int
	nodes  int
	out    bool // budget spent
	// order lists the served services in search order; mixes[i] are the
	// Pareto-minimal mixes of service order[i], cheapest first.
	order []int
	mixes [][]exactVec
	// suffix[i] is what services order[i:] need at least: compute and
	// memory slices, and replicas.
	sufCompute, sufMemory, sufReplicas []int
	// Per GPU at most: compute and memory slices, instances.
	gpuCompute, gpuMemory, gpuSlices int
	// maxPer[r] is the most instances of r one layout holds.
	maxPer [exactMaxRes]int
	// counts[c] is layout c's instances per resource.
	counts []exactVec
	// coverFail[v] is the most layouts known not to cover v; coverOK[v]
	// the fewest known to cover it.
	coverFail, coverOK map[exactVec]int
	// failed memoises (position, counts) states of the replica search that
	// have no completion at the current k.
	failed map[exactState]bool
	choice []exactVec // per position of order, the mix chosen
}

type exactState struct {
	pos int
	v   exactVec
}

func (e *exactSearch) tick() bool {
	e.nodes++
	if e.nodes > e.budget {
		e.out = true
	}
	return !e.out
}

// prepare enumerates each served service's minimal mixes and orders the
// services and mixes.
func (e *exactSearch) prepare(cat *migconfig.Catalog, w Workload) error {
	p := e.p
	for _, cfg := range p.configs[0] {
		var v exactVec
		compute, memory, slices := 0, 0, 0
		for r, n := range cfg.count {
			v[r] = int32(n)
			e.maxPer[r] = max(e.maxPer[r], n)
			compute += n * p.res[r].profile.ComputeSlices
			memory += n * p.res[r].profile.MemorySlices
			slices += n
		}
		e.counts = append(e.counts, v)
		e.gpuCompute = max(e.gpuCompute, compute)
		e.gpuMemory = max(e.gpuMemory, memory)
		e.gpuSlices = max(e.gpuSlices, slices)
	}
	prices := p.defaultPrices()
	if b, err := LowerBound(cat, exactCluster(p.models[0].Key, 1), w); err == nil {
		for i, r := range p.res {
			if v, ok := b.Prices[r.Resource]; ok {
				prices[i] = v + 1e-3*prices[i]
			}
		}
	}
	type entry struct {
		service int
		mixes   []exactVec
		weight  float64
	}
	var entries []entry
	for i := range p.services {
		s := &p.services[i]
		if s.demand <= 0 && s.min == 0 {
			continue
		}
		mixes := e.minimalMixes(s)
		if e.out {
			return nil // the caller reports the spent budget
		}
		if len(mixes) == 0 {
			return fmt.Errorf("service %q fits no slice of %s: no number of GPUs serves it", s.Name, p.models[0].Key)
		}
		cost := func(v exactVec) float64 {
			c := 0.0
			for r := range p.res {
				c += float64(v[r]) * prices[r]
			}
			return c
		}
		sort.SliceStable(mixes, func(a, b int) bool { return cost(mixes[a]) < cost(mixes[b]) })
		entries = append(entries, entry{i, mixes, cost(mixes[0])})
	}
	// Services that take the most of a GPU first; ties in workload order.
	sort.SliceStable(entries, func(a, b int) bool { return entries[a].weight > entries[b].weight })
	n := len(entries)
	e.sufCompute, e.sufMemory, e.sufReplicas = make([]int, n+1), make([]int, n+1), make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		c, m, k := math.MaxInt32, math.MaxInt32, math.MaxInt32
		for _, v := range entries[i].mixes {
			c = min(c, e.compute(v))
			m = min(m, e.memory(v))
			k = min(k, e.replicas(v))
		}
		e.sufCompute[i] = e.sufCompute[i+1] + c
		e.sufMemory[i] = e.sufMemory[i+1] + m
		e.sufReplicas[i] = e.sufReplicas[i+1] + k
	}
	for _, en := range entries {
		e.order = append(e.order, en.service)
		e.mixes = append(e.mixes, en.mixes)
	}
	return nil
}

func (e *exactSearch) compute(v exactVec) int {
	s := 0
	for r := range e.p.res {
		s += int(v[r]) * e.p.res[r].profile.ComputeSlices
	}
	return s
}

func (e *exactSearch) memory(v exactVec) int {
	s := 0
	for r := range e.p.res {
		s += int(v[r]) * e.p.res[r].profile.MemorySlices
	}
	return s
}

func (e *exactSearch) replicas(v exactVec) int {
	s := 0
	for r := range e.p.res {
		s += int(v[r])
	}
	return s
}

// minimalMixes returns the Pareto-minimal replica counts per resource that
// serve s: capacity ≥ demand (within demandSlack) and at least s.min
// replicas, such that no replica can be dropped.
func (e *exactSearch) minimalMixes(s *serviceInfo) []exactVec {
	need := s.demand * (1 - demandSlack)
	nr := len(e.p.res)
	var out []exactVec
	var v exactVec
	var rec func(r int, capa float64, reps int)
	rec = func(r int, capa float64, reps int) {
		if !e.tick() {
			return
		}
		if capa >= need && reps >= s.min {
			for q := 0; q < nr; q++ {
				if v[q] > 0 && capa-s.rate[q] >= need && reps-1 >= s.min {
					return // a replica on q is not needed
				}
			}
			out = append(out, v)
			return
		}
		if r == nr {
			return
		}
		rec(r+1, capa, reps) // none on r
		if s.rate[r] <= 0 || e.maxPer[r] == 0 {
			return
		}
		// Up to the count that alone reaches demand and minimum: more is
		// never minimal.
		upto := max(s.min-reps, 0)
		if capa < need {
			upto = max(upto, int(math.Ceil((need-capa)/s.rate[r])))
		}
		for n := 1; n <= upto && !e.out; n++ {
			v[r] = int32(n)
			rec(r+1, capa+float64(n)*s.rate[r], reps+n)
		}
		v[r] = 0
	}
	rec(0, 0, 0)
	return out
}

// startK is the simple bound the search starts from: the compute slices,
// memory slices and replicas the services need at least, over what one
// GPU holds.
func (e *exactSearch) startK() int {
	ceil := func(a, b int) int {
		if b <= 0 {
			return 0
		}
		return (a + b - 1) / b
	}
	return max(1, ceil(e.sufCompute[0], e.gpuCompute), ceil(e.sufMemory[0], e.gpuMemory), ceil(e.sufReplicas[0], e.gpuSlices))
}

// feasible reports whether the services fit on k GPUs; on success
// e.choice holds the mixes. It returns false also when the budget runs
// out (e.out).
func (e *exactSearch) feasible(k int) bool {
	e.failed = map[exactState]bool{}
	e.choice = make([]exactVec, len(e.order))
	return e.dfs(0, exactVec{}, k)
}

func (e *exactSearch) dfs(pos int, u exactVec, k int) bool {
	if pos == len(e.order) {
		return true
	}
	if !e.tick() {
		return false
	}
	st := exactState{pos, u}
	if e.failed[st] {
		return false
	}
	compute, memory, reps := e.compute(u), e.memory(u), e.replicas(u)
	for _, mx := range e.mixes[pos] {
		var next exactVec
		for r := range e.p.res {
			next[r] = u[r] + mx[r]
		}
		if compute+e.compute(mx)+e.sufCompute[pos+1] > k*e.gpuCompute ||
			memory+e.memory(mx)+e.sufMemory[pos+1] > k*e.gpuMemory ||
			reps+e.replicas(mx)+e.sufReplicas[pos+1] > k*e.gpuSlices {
			continue
		}
		if !e.coverable(next, k) {
			if e.out {
				return false
			}
			continue
		}
		e.choice[pos] = mx
		if e.dfs(pos+1, next, k) {
			return true
		}
		if e.out {
			return false
		}
	}
	e.failed[st] = true
	return false
}

// coverLower is a lower bound on the layouts covering v: per resource, by
// compute and by memory slices.
func (e *exactSearch) coverLower(v exactVec) int {
	lb := 0
	for r := range e.p.res {
		if v[r] == 0 {
			continue
		}
		if e.maxPer[r] == 0 {
			return math.MaxInt32
		}
		lb = max(lb, (int(v[r])+e.maxPer[r]-1)/e.maxPer[r])
	}
	lb = max(lb, (e.compute(v)+e.gpuCompute-1)/e.gpuCompute)
	return max(lb, (e.memory(v)+e.gpuMemory-1)/e.gpuMemory)
}

// coverable reports whether k layouts hold v (exact: branch on the resource
// with the fewest covering layouts, memoised in coverFail/coverOK).
func (e *exactSearch) coverable(v exactVec, k int) bool {
	return e.coverWith(v, k, nil)
}

// coverWith decides whether at most k layouts hold v; when x is not nil
// and they do, it adds the layouts used to x (per layout index).
func (e *exactSearch) coverWith(v exactVec, k int, x []int) bool {
	if v == (exactVec{}) {
		return true
	}
	if k <= 0 || !e.tick() {
		return false
	}
	if x == nil {
		if f, ok := e.coverFail[v]; ok && k <= f {
			return false
		}
		if ok, seen := e.coverOK[v]; seen && k >= ok {
			return true
		}
	}
	if e.coverLower(v) > k {
		e.noteFail(v, k)
		return false
	}
	pick, options := -1, math.MaxInt32
	for r := range e.p.res {
		if v[r] == 0 {
			continue
		}
		n := 0
		for _, c := range e.counts {
			if c[r] > 0 {
				n++
			}
		}
		if n < options {
			pick, options = r, n
		}
	}
	for c, cnt := range e.counts {
		if cnt[pick] == 0 {
			continue
		}
		var next exactVec
		for r := range e.p.res {
			next[r] = max(v[r]-cnt[r], 0)
		}
		if e.coverWith(next, k-1, x) {
			if x != nil {
				x[c]++
			}
			if old, ok := e.coverOK[v]; !ok || k < old {
				e.coverOK[v] = k
			}
			return true
		}
		if e.out {
			return false
		}
	}
	e.noteFail(v, k)
	return false
}

func (e *exactSearch) noteFail(v exactVec, k int) {
	if e.out {
		return
	}
	if f, ok := e.coverFail[v]; !ok || k > f {
		e.coverFail[v] = k
	}
}

// witness builds the plan for the chosen mixes on k GPUs: the layouts of
// an exact cover of their sum, replicas assigned GPU by GPU.
func (e *exactSearch) witness(cat *migconfig.Catalog, w Workload, k int, choice []exactVec) (Plan, Cluster) {
	p := e.p
	c := exactCluster(p.models[0].Key, k)
	st := newState(p, c, true)
	mixes := make([]mix, len(p.services))
	var u exactVec
	for pos, v := range choice {
		mx := mix{}
		for r := range p.res {
			if v[r] > 0 {
				mx[r] = int(v[r])
				u[r] += v[r]
			}
		}
		mixes[e.order[pos]] = mx
	}
	x := make([]int, len(e.counts))
	e.out, e.budget = false, math.MaxInt // the cover is known to exist
	e.coverWith(u, k, x)
	need := make([]int, len(p.res))
	for r := range p.res {
		need[r] = int(u[r])
	}
	st.buildFresh(0, x, need)
	st.assign(mixes)
	plan := st.result(c)
	if b, err := LowerBound(cat, c, w); err == nil {
		plan.LowerBound = b.LB3
	}
	return plan, c
}
