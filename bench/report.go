package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// TesseraPlanner is the name of Tessera's own planner in the benchmark.
const TesseraPlanner = "tessera"

// WholeGPUPlanner names the whole-GPU baseline, the reference of
// Result.SavedVsWholeGPU.
const WholeGPUPlanner = "whole-gpu"

// staticPlanners are the static-layout baselines; the best of them that
// meets the demand is the reference of Result.SavedVsBestStatic.
var staticPlanners = [...]string{"all-1g", "all-2g", "all-3g", "all-balanced"}

// Result is one row of the benchmark: one planner on one scenario, or on
// one step of the dynamic scenario. Fractions are in [0, 1] (savings may
// be negative: more GPUs than the reference).
type Result struct {
	Scenario string `json:"scenario"`
	Planner  string `json:"planner"`
	// Step names the demand step of a dynamic scenario this row re-plans;
	// empty for the initial plan and for static scenarios.
	Step string `json:"step,omitempty"`
	// GPUs counts the GPUs the plan uses.
	GPUs int `json:"gpus"`
	// LB3 is scheduler.LowerBound's LB3 for the scenario (or step), and
	// RatioLB3 = GPUs / LB3.
	LB3      int     `json:"lb3"`
	RatioLB3 float64 `json:"ratio_lb3"`
	// SavedVsWholeGPU is 1 − GPUs / (GPUs of the whole-gpu baseline).
	SavedVsWholeGPU float64 `json:"saved_vs_whole_gpu"`
	// SavedVsBestStatic is 1 − GPUs / (GPUs of BestStatic); absent when no
	// static baseline meets the demand.
	SavedVsBestStatic *float64 `json:"saved_vs_best_static,omitempty"`
	// BestStatic names the static-layout baseline (all-1g, all-2g, all-3g,
	// all-balanced) that meets all demand with the fewest GPUs, and
	// BestStaticGPUs is its GPU count.
	BestStatic     string `json:"best_static,omitempty"`
	BestStaticGPUs int    `json:"best_static_gpus,omitempty"`
	// SliceUtilisation and MemorySliceUtilisation are the allocated
	// compute and memory slices over those of the GPUs used.
	SliceUtilisation       float64 `json:"slice_utilisation"`
	MemorySliceUtilisation float64 `json:"memory_slice_utilisation"`
	// DemandMet is Σ min(demand, capacity) / Σ demand.
	DemandMet float64 `json:"demand_met"`
	// StrandedSlices counts compute slices of used GPUs that no instance
	// covers; FreeSlices counts instances without a replica.
	StrandedSlices int `json:"stranded_slices"`
	FreeSlices     int `json:"free_slices"`
	// PlanSeconds is the median wall time of one plan over Runs runs;
	// PlanSecondsP99 the 99th percentile (nearest rank: the slowest run
	// when Runs < 100).
	PlanSeconds    float64 `json:"plan_seconds"`
	PlanSecondsP99 float64 `json:"plan_seconds_p99"`
	Runs           int     `json:"runs"`
	// AllocMiB is the memory allocated during one plan (the growth of
	// runtime.MemStats.TotalAlloc), in MiB.
	AllocMiB float64 `json:"alloc_mib"`
	// PeakRSSMiB is, for Tessera's rows when RunOptions.PeakRSS is set,
	// the peak resident memory of the same plan made by a separate
	// `tessera plan` process, while it plans; BaseRSSMiB is that
	// process's resident memory when planning starts (the program and
	// its inputs), so PeakRSSMiB − BaseRSSMiB is what planning adds;
	// InputRSSMiB is its peak while reading the input files. See RSS.
	PeakRSSMiB  *float64 `json:"peak_rss_mib,omitempty"`
	BaseRSSMiB  *float64 `json:"base_rss_mib,omitempty"`
	InputRSSMiB *float64 `json:"input_rss_mib,omitempty"`
	// Exact is, on the rows of a scenario's initial plan, the proven
	// fewest GPUs that serve its workload (RunOptions.ExactBudget): found
	// by scheduler.ExactMinGPUs, or, when its search refuted every count
	// below Tessera's GPUs but ran out of budget before finding its own
	// plan, Tessera's count (ExactWitness says which). ExactLower is the
	// search's proven lower bound (Exact when decided), ExactSliceBound
	// the whole-replica slice bound it started from, ExactSeconds and
	// ExactNodes what the search took. All are absent when the search
	// did not run.
	Exact           *int     `json:"exact,omitempty"`
	ExactWitness    string   `json:"exact_witness,omitempty"`
	ExactLower      *int     `json:"exact_lower,omitempty"`
	ExactSliceBound *int     `json:"exact_slice_bound,omitempty"`
	ExactSeconds    *float64 `json:"exact_seconds,omitempty"`
	ExactNodes      *int     `json:"exact_nodes,omitempty"`
	// Sweep summarises, on Tessera's rows of a seeded scenario (Seeded),
	// the same plan (or re-plan step) over RunOptions.Seeds seeds; the
	// row's other figures are those of the scenario's own seed.
	Sweep *SeedSweep `json:"seed_sweep,omitempty"`
	// ChangedGPUs counts, for a re-plan, the GPUs in use before and after
	// whose layout changes (Tessera: Plan.ChangedGPUs; baselines, which
	// re-plan fresh: the same count against the previous step's plan).
	// AddedGPUs were empty and get a layout; ReleasedGPUs end up empty.
	// ChangedFraction is ChangedGPUs / GPUs. All are absent outside
	// re-plans.
	ChangedGPUs     *int     `json:"changed_gpus,omitempty"`
	AddedGPUs       *int     `json:"added_gpus,omitempty"`
	ReleasedGPUs    *int     `json:"released_gpus,omitempty"`
	ChangedFraction *float64 `json:"changed_fraction,omitempty"`
	// CapacityDip is, for an incremental re-plan, Plan.CapacityDip: the
	// lowest fraction of demand served during the transition relative to
	// before and after (1: no dip). Absent for baselines, which do not
	// plan a transition.
	CapacityDip *float64 `json:"capacity_dip,omitempty"`
	// FreshGPUs is, for an incremental re-plan, the GPUs a fresh plan of
	// the same planner uses for the same step.
	FreshGPUs *int `json:"fresh_gpus,omitempty"`
	// Legal reports that the plan passed Evaluate and scheduler.Check.
	Legal bool `json:"legal"`
	// Error says why the planner failed or the plan is not legal.
	Error string `json:"error,omitempty"`
}

// Planners returns Tessera's planner, which plans fresh, followed by the
// baselines. In the dynamic scenario Run re-plans Tessera incrementally
// (see Replanners).
func Planners() []Planner {
	tessera := Planner{Name: TesseraPlanner, Plan: func(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (scheduler.Plan, error) {
		return scheduler.NewPlanner(cat).Plan(c, w, scheduler.Options{Fresh: true})
	}}
	return append([]Planner{tessera}, Baselines()...)
}

// PlannerNames lists the names of Planners, in order.
func PlannerNames() []string {
	var names []string
	for _, p := range Planners() {
		names = append(names, p.Name)
	}
	return names
}

// SelectPlanners returns the planners of Planners with the given names, in
// the order given; no names means all of them.
func SelectPlanners(names ...string) ([]Planner, error) {
	all := Planners()
	if len(names) == 0 {
		return all, nil
	}
	out := make([]Planner, 0, len(names))
	for _, name := range names {
		i := slices.IndexFunc(all, func(p Planner) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("bench: unknown planner %q; valid planners: %s", name, strings.Join(PlannerNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// Replanner re-plans from a running cluster (one whose GPUs carry the
// previous plan's layouts and replicas). Options are those the plan is
// checked with (scheduler.Check).
type Replanner struct {
	Options scheduler.Options
	Plan    func(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (scheduler.Plan, error)
}

// Replanners returns the planners that re-plan incrementally in the
// dynamic scenario, by planner name: Tessera, with Options{Migrate: true}
// (Fresh false: running replicas stay where the demand still needs them;
// Migrate: replicas may move, make-before-break, to drain GPUs when
// keeping them all would cost noticeably more GPUs than a fresh plan;
// MaxChangedGPUs 0: the default change budget, within which the drain
// re-lays out GPUs in use). Every other planner re-plans fresh.
func Replanners() map[string]Replanner {
	opts := scheduler.Options{Migrate: true}
	return map[string]Replanner{
		TesseraPlanner: {Options: opts, Plan: func(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (scheduler.Plan, error) {
			return scheduler.NewPlanner(cat).Plan(c, w, opts)
		}},
	}
}

// RunOptions tune Run.
type RunOptions struct {
	// Runs is how many times each plan is timed; 0 means 5, or 3 once one
	// plan of the (scenario, planner) has taken more than a second.
	Runs int
	// Progress, when set, gets one line per (scenario, planner) with the
	// GPUs used and the time taken.
	Progress io.Writer
	// Catalog resolves GPU models; nil means migconfig.Builtin().
	Catalog *migconfig.Catalog
	// Replan maps planner names to their incremental re-planner for the
	// dynamic scenario; nil means Replanners().
	Replan map[string]Replanner
	// ExactBudget is the search budget (search nodes) of
	// scheduler.ExactMinGPUs on each scenario's initial workload; 0 means
	// DefaultExactBudget, a negative value skips the exact search.
	ExactBudget int
	// Seeds is how many seeds Tessera's plans of each seeded scenario
	// are swept over (Result.Sweep): the scenario's own seed and the
	// Seeds−1 after it, each also searched exactly within ExactBudget.
	// 0 or 1 skips the sweep.
	Seeds int
	// PeakRSS, when set, measures each of Tessera's plans again in a
	// separate process and returns its peak resident memory
	// (Result.PeakRSSMiB). c, w and opts are the plan's inputs.
	PeakRSS func(ctx context.Context, c scheduler.Cluster, w scheduler.Workload, opts scheduler.Options) (RSS, error)
}

// RSS is the resident memory of one plan made in a separate process.
type RSS struct {
	// PeakMiB is the peak resident set while planning: the process has
	// read its inputs, collected their garbage, returned free memory to
	// the OS and reset its high-water mark before it plans.
	PeakMiB float64
	// BaseMiB is the resident set when planning starts, after that
	// reset: the program (code and data pages touched, runtime) and the
	// inputs.
	BaseMiB float64
	// InputMiB is the peak resident set while reading the input files,
	// before planning.
	InputMiB float64
}

// DefaultExactBudget is RunOptions.ExactBudget's default: at most about
// a second per workload on the benchmark machine.
const DefaultExactBudget = 2_000_000

// Default timing repeats.
const (
	defaultRuns = 5
	slowRuns    = 3
	slowPlan    = time.Second
)

// Run plans every scenario with every planner and measures the plans. For
// a scenario with steps (dynamic), each planner's initial plan is applied
// to the cluster and every step is re-planned from the cluster as the
// previous plan left it: incrementally by planners in opts.Replan, fresh
// by the others. Then, unless disabled in opts, it runs the exact search
// on each scenario's initial workload (Result.Exact), sweeps Tessera over
// seeds on the seeded scenarios (Result.Sweep) and measures Tessera's
// peak memory in separate processes (Result.PeakRSSMiB). Planner failures
// and illegal plans are reported in Result.Error, not as an error; Run
// fails only when ctx is done or the reference computations (lower bound,
// reference baselines, exact search, memory measurement) fail.
func Run(ctx context.Context, scenarios []Scenario, planners []Planner, opts RunOptions) ([]Result, error) {
	cat := opts.Catalog
	if cat == nil {
		cat = migconfig.Builtin()
	}
	replan := opts.Replan
	if replan == nil {
		replan = Replanners()
	}
	rc := runContext{cat: cat, replan: replan, runs: opts.Runs, rss: opts.PeakRSS}
	var out []Result
	for _, s := range scenarios {
		refs := make([]reference, 1+len(s.Steps))
		var err error
		if refs[0], err = newReference(cat, s.Cluster, s.Workload); err != nil {
			return out, fmt.Errorf("bench: scenario %s: %w", s.Name, err)
		}
		for i, st := range s.Steps {
			if refs[i+1], err = newReference(cat, s.Cluster, st.Workload); err != nil {
				return out, fmt.Errorf("bench: scenario %s step %s: %w", s.Name, st.Name, err)
			}
		}
		first := len(out)
		var tessera *scheduler.Plan
		for _, p := range planners {
			start := time.Now()
			rs, initial, err := rc.runPlanner(ctx, s, p, refs)
			out = append(out, rs...)
			if err != nil {
				return out, err
			}
			if p.Name == TesseraPlanner && len(rs) > 0 && rs[0].Error == "" {
				tessera = &initial
			}
			if opts.Progress != nil && len(rs) > 0 {
				r := rs[0]
				status := fmt.Sprintf("%d GPUs (LB3 %d), plan %s", r.GPUs, r.LB3, seconds(r.PlanSeconds))
				if r.PeakRSSMiB != nil {
					status += fmt.Sprintf(", peak RSS %.1f MiB", *r.PeakRSSMiB)
				}
				if len(rs) > 1 {
					status += fmt.Sprintf(", %d re-plans", len(rs)-1)
				}
				for _, r := range rs {
					if r.Error != "" {
						status += "; error: " + r.Error
						break
					}
				}
				fmt.Fprintf(opts.Progress, "bench: %s/%s: %s [%.1fs]\n", s.Name, p.Name, status, time.Since(start).Seconds())
			}
		}
		if opts.ExactBudget >= 0 {
			start := time.Now()
			ex, err := exactOptimum(cat, s.Cluster, s.Workload, tessera, opts.ExactBudget)
			if err != nil {
				return out, fmt.Errorf("bench: scenario %s: %w", s.Name, err)
			}
			for i := first; i < len(out); i++ {
				if out[i].Step == "" {
					ex.fill(&out[i])
				}
			}
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "bench: %s/exact: %s [%.1fs]\n", s.Name, ex.describe(), time.Since(start).Seconds())
			}
		}
		if opts.Seeds > 1 && Seeded(s.Name) {
			i := slices.IndexFunc(planners, func(p Planner) bool { return p.Name == TesseraPlanner })
			if i >= 0 {
				start := time.Now()
				sweeps, err := rc.sweep(ctx, s, planners[i], opts.Seeds, opts.ExactBudget)
				if err != nil {
					return out, err
				}
				for j := first; j < len(out); j++ {
					if out[j].Planner == TesseraPlanner && sweeps[out[j].Step] != nil {
						out[j].Sweep = sweeps[out[j].Step]
					}
				}
				if opts.Progress != nil {
					fmt.Fprintf(opts.Progress, "bench: %s/tessera over %d seeds [%.1fs]\n", s.Name, opts.Seeds, time.Since(start).Seconds())
				}
			}
		}
	}
	return out, nil
}

// runContext is what every planner's run shares.
type runContext struct {
	cat    *migconfig.Catalog
	replan map[string]Replanner
	runs   int
	rss    func(ctx context.Context, c scheduler.Cluster, w scheduler.Workload, opts scheduler.Options) (RSS, error)
}

// exactResult is the exact search's answer for one workload.
type exactResult struct {
	res     scheduler.ExactResult
	exact   int // the proven optimum, 0 when undecided
	witness string
	seconds float64
}

// exactOptimum runs scheduler.ExactMinGPUs on w with the benchmark's GPU
// model. When the search refutes every count below the GPUs of tessera
// (Tessera's plan of w on c, nil if none) but runs out of budget at that
// count, tessera's plan, if it is legal and serves all demand, is the
// witness that the count is the optimum.
func exactOptimum(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload, tessera *scheduler.Plan, budget int) (exactResult, error) {
	if budget == 0 {
		budget = DefaultExactBudget
	}
	start := time.Now()
	res, err := scheduler.ExactMinGPUs(cat, GPUModel, w, budget)
	out := exactResult{res: res, seconds: time.Since(start).Seconds()}
	if err != nil {
		return out, fmt.Errorf("exact search: %w", err)
	}
	switch {
	case res.Optimal:
		out.exact, out.witness = res.GPUs, "search"
	case tessera != nil && res.Lower > 0 && tessera.GPUsUsed == res.Lower:
		m, err := Evaluate(cat, c, w, *tessera)
		if err == nil && m.ServicesShort == 0 && m.ReplicasShort == 0 && m.GPUs == res.Lower &&
			scheduler.Check(cat, c, w, *tessera, scheduler.Options{Fresh: true}) == nil {
			out.exact, out.witness = res.Lower, TesseraPlanner
		}
	}
	return out, nil
}

func (e exactResult) fill(r *Result) {
	if e.exact > 0 || e.res.Optimal {
		r.Exact, r.ExactWitness = ptr(e.exact), e.witness
	}
	r.ExactLower, r.ExactSliceBound = ptr(e.res.Lower), ptr(e.res.SliceBound)
	r.ExactSeconds, r.ExactNodes = ptr(e.seconds), ptr(e.res.Nodes)
}

func (e exactResult) describe() string {
	if e.exact > 0 || e.res.Optimal {
		return fmt.Sprintf("optimum %d GPUs (witness: %s; slice bound %d, %d nodes)", e.exact, e.witness, e.res.SliceBound, e.res.Nodes)
	}
	if e.res.Lower == 0 {
		return fmt.Sprintf("undecided: the budget of %d nodes ran out while enumerating the replica mixes", e.res.Nodes-1)
	}
	return fmt.Sprintf("undecided: ≥ %d GPUs proven (slice bound %d), budget of %d nodes spent", e.res.Lower, e.res.SliceBound, e.res.Nodes-1)
}

// reference holds what every planner's result on one workload is
// compared with.
type reference struct {
	lb3        int
	wholeGPU   int
	bestStatic string
	bestGPUs   int
}

func newReference(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (reference, error) {
	b, err := scheduler.LowerBound(cat, c, w)
	if err != nil {
		return reference{}, fmt.Errorf("lower bound: %w", err)
	}
	ref := reference{lb3: b.LB3}
	for _, p := range Baselines() {
		if p.Name != WholeGPUPlanner && !slices.Contains(staticPlanners[:], p.Name) {
			continue
		}
		plan, err := p.Plan(cat, c, w)
		if err != nil {
			return reference{}, fmt.Errorf("%s: %w", p.Name, err)
		}
		m, err := Evaluate(cat, c, w, plan)
		if err != nil {
			return reference{}, fmt.Errorf("%s: %w", p.Name, err)
		}
		if p.Name == WholeGPUPlanner {
			ref.wholeGPU = m.GPUs
			continue
		}
		if m.ServicesShort == 0 && m.ReplicasShort == 0 && (ref.bestStatic == "" || m.GPUs < ref.bestGPUs) {
			ref.bestStatic, ref.bestGPUs = p.Name, m.GPUs
		}
	}
	return ref, nil
}

// runPlanner runs one planner on one scenario: the initial plan, then, for
// a dynamic scenario, one re-plan per step. It returns the results and
// the initial plan.
func (rc runContext) runPlanner(ctx context.Context, s Scenario, p Planner, refs []reference) ([]Result, scheduler.Plan, error) {
	cat := rc.cat
	plan, r, err := measure(ctx, rc.runs, func() (scheduler.Plan, error) { return p.Plan(cat, s.Cluster, s.Workload) })
	if err != nil {
		return nil, plan, err
	}
	initial := plan
	r.Scenario, r.Planner = s.Name, p.Name
	opts := scheduler.Options{Fresh: true}
	fillResult(cat, &r, s.Cluster, s.Workload, plan, opts, refs[0])
	if err := rc.peakRSS(ctx, &r, s.Cluster, s.Workload, opts); err != nil {
		return []Result{r}, initial, err
	}
	out := []Result{r}
	if r.Error != "" {
		return out, initial, nil
	}
	current := plan.Applied(s.Cluster)
	rp, incremental := rc.replan[p.Name]
	for i, st := range s.Steps {
		prev := current
		do := func() (scheduler.Plan, error) { return p.Plan(cat, prev, st.Workload) }
		if incremental {
			do = func() (scheduler.Plan, error) { return rp.Plan(cat, prev, st.Workload) }
			opts = rp.Options
		}
		plan, r, err := measure(ctx, rc.runs, do)
		if err != nil {
			return out, initial, err
		}
		r.Scenario, r.Planner, r.Step = s.Name, p.Name, st.Name
		fillResult(cat, &r, prev, st.Workload, plan, opts, refs[i+1])
		if r.Error == "" {
			changed, added, released := scheduler.LayoutChanges(prev, plan)
			if incremental {
				changed = plan.ChangedGPUs
				r.CapacityDip = ptr(plan.CapacityDip)
				fresh, err := p.Plan(cat, prev, st.Workload)
				if err != nil {
					r.Error = fmt.Sprintf("fresh plan: %v", err)
				} else {
					r.FreshGPUs = ptr(fresh.GPUsUsed)
				}
			}
			r.ChangedGPUs, r.AddedGPUs, r.ReleasedGPUs = ptr(changed), ptr(added), ptr(released)
			r.ChangedFraction = ptr(ratio(float64(changed), float64(r.GPUs), 0))
		}
		if err := rc.peakRSS(ctx, &r, prev, st.Workload, opts); err != nil {
			return append(out, r), initial, err
		}
		out = append(out, r)
		if r.Error != "" {
			break
		}
		current = plan.Applied(prev)
	}
	return out, initial, nil
}

// peakRSS measures Tessera's plan of w on c in a separate process (see
// RunOptions.PeakRSS) and records it in r; other planners' rows, failed
// plans and runs without a PeakRSS function are left alone.
func (rc runContext) peakRSS(ctx context.Context, r *Result, c scheduler.Cluster, w scheduler.Workload, opts scheduler.Options) error {
	if rc.rss == nil || r.Planner != TesseraPlanner || r.Error != "" {
		return nil
	}
	m, err := rc.rss(ctx, c, w, opts)
	if err != nil {
		where := r.Scenario
		if r.Step != "" {
			where += " step " + r.Step
		}
		return fmt.Errorf("bench: scenario %s: peak RSS: %w", where, err)
	}
	r.PeakRSSMiB, r.BaseRSSMiB, r.InputRSSMiB = ptr(m.PeakMiB), ptr(m.BaseMiB), ptr(m.InputMiB)
	return nil
}

// measure runs plan runs times (see RunOptions.Runs) and returns the last
// plan with the timing fields of a Result set. A planner error ends the
// runs and is reported in Result.Error; the error returned is ctx's.
func measure(ctx context.Context, runs int, plan func() (scheduler.Plan, error)) (scheduler.Plan, Result, error) {
	var (
		r     Result
		p     scheduler.Plan
		times []float64
	)
	auto := runs <= 0
	if auto {
		runs = defaultRuns
	}
	var ms runtime.MemStats
	for i := 0; i < runs; i++ {
		if err := ctx.Err(); err != nil {
			return p, r, err
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		start := time.Now()
		var err error
		p, err = plan()
		elapsed := time.Since(start)
		runtime.ReadMemStats(&ms)
		r.AllocMiB = float64(ms.TotalAlloc-before) / (1 << 20)
		times = append(times, elapsed.Seconds())
		if err != nil {
			r.Error = err.Error()
			break
		}
		if auto && i == 0 && elapsed > slowPlan {
			runs = slowRuns
		}
	}
	slices.Sort(times)
	r.Runs = len(times)
	r.PlanSeconds = quantile(times, 0.5)
	r.PlanSecondsP99 = quantile(times, 0.99)
	return p, r, nil
}

// quantile returns the q-quantile of sorted by nearest rank.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// fillResult evaluates and checks plan and fills the result's metrics.
func fillResult(cat *migconfig.Catalog, r *Result, c scheduler.Cluster, w scheduler.Workload, plan scheduler.Plan, opts scheduler.Options, ref reference) {
	r.LB3 = ref.lb3
	if r.Error != "" {
		return
	}
	m, err := Evaluate(cat, c, w, plan)
	if err != nil {
		r.Error = fmt.Sprintf("evaluate: %v", err)
		return
	}
	r.GPUs = m.GPUs
	r.RatioLB3 = ratio(float64(m.GPUs), float64(ref.lb3), 0)
	r.SavedVsWholeGPU = saved(m.GPUs, ref.wholeGPU)
	if ref.bestStatic != "" {
		r.BestStatic, r.BestStaticGPUs = ref.bestStatic, ref.bestGPUs
		r.SavedVsBestStatic = ptr(saved(m.GPUs, ref.bestGPUs))
	}
	r.SliceUtilisation = m.SliceUtilisation
	r.MemorySliceUtilisation = m.MemorySliceUtilisation
	r.DemandMet = m.DemandMet
	r.StrandedSlices = m.StrandedComputeSlices
	r.FreeSlices = m.FreeSlices
	if err := scheduler.Check(cat, c, w, plan, opts); err != nil {
		r.Error = fmt.Sprintf("check: %v", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	r.Legal = true
}

func saved(gpus, ref int) float64 {
	if ref == 0 {
		return 0
	}
	return 1 - float64(gpus)/float64(ref)
}

func ptr[T any](v T) *T { return &v }

// WriteJSONLines writes one JSON object per result, one per line.
func WriteJSONLines(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("bench: write results: %w", err)
		}
	}
	return nil
}

// ReadJSONLines reads what WriteJSONLines writes.
func ReadJSONLines(rd io.Reader) ([]Result, error) {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	var out []Result
	for {
		var r Result
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("bench: read results: line %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
}

// ReportInfo says how a report was produced, for its header.
type ReportInfo struct {
	// Command is the command line that produced the results.
	Command string
	// Date is when (the caller's clock; Markdown reads none).
	Date string
	// CPUs and GoVersion describe the machine; zero values mean
	// runtime.NumCPU() and runtime.Version().
	CPUs      int
	GoVersion string
	// Load is the machine's load average while the results were taken
	// (other work on it slows the plans down); empty when unknown.
	Load string
}

// Scenario groups of the report, in order.
var reportGroups = [...]struct {
	title string
	names []string
}{
	{"Static scenarios (ParvaGPU SLO scenarios 2–6)", []string{"s2", "s3", "s4", "s5", "s6"}},
	{"Scale-ups (scenario 6 demand ×6, ×63, ×630)", []string{"s6x6", "s6x63", "s6x630"}},
	{"Long tails (Zipf(1.1) demand shares)", []string{"zipf200", "zipf2000", "zipf20000"}},
}

// Markdown renders results as bench/RESULTS.md: how they were produced,
// the data's attribution, a headline table, one table per scenario group
// and the targets, each checked against the results and marked
// PASS or FAIL.
func Markdown(results []Result, info ReportInfo) string {
	if info.CPUs == 0 {
		info.CPUs = runtime.NumCPU()
	}
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Tessera scheduler benchmark\n\n")
	p("Generated by `%s`", cmp.Or(info.Command, "tessera bench -o markdown"))
	if info.Date != "" {
		p(" on %s", info.Date)
	}
	p("; machine: %d CPU cores (%s/%s), %s", info.CPUs, runtime.GOOS, runtime.GOARCH, info.GoVersion)
	if info.Load != "" {
		p("; load average %s", info.Load)
	}
	p(". Do not edit by hand.\n\n")
	p("Throughput per replica is derived from the ParvaGPU profiles, [%s](https://github.com/%s) at commit `%s` (%s), ", ParvaGPURepo, ParvaGPURepo, ParvaGPUCommit, ParvaGPULicense)
	p("on %s, one process per slice, latency within the scheduling reference's §6.2 rule (NoMPS). ", GPUModel)
	p("Clusters are empty 8-GPU nodes; `tessera bench --export DIR` writes every instance as the files `tessera plan` reads.\n\n")
	p("Columns: **GPUs** used; **LB3** the configuration-LP lower bound (`scheduler.LowerBound`) and **ratio** GPUs/LB3; ")
	p("**saved** the GPUs saved against the whole-GPU baseline and against the best static layout (all-1g/2g/3g/balanced) that meets all demand; ")
	p("**util** allocated compute / memory slices of the GPUs used; **met** the fraction of demand served; **stranded** compute slices no instance covers; ")
	p("**plan** wall time of one plan, median and p99 (nearest rank) over the runs; **alloc** MiB allocated by one plan; ")
	p("**peak RSS** the peak resident memory, in MiB, of a separate `tessera plan` process making Tessera's same plan, while it plans (its input files already read; see below); ")
	p("**exact** the proven fewest GPUs (`scheduler.ExactMinGPUs`, see below; `≥ n` where the search ran out of budget but proved more than LB3, `–` where it proved no more). ")
	p("A `✗` marks a plan that failed `bench.Evaluate` or `scheduler.Check`.\n\n")

	byScenario := map[string][]Result{}
	var order []string
	for _, r := range results {
		if _, ok := byScenario[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
	}

	p("## Headlines\n\n")
	p("| scenario | LB3 | exact | tessera GPUs | ratio | best static | whole-GPU | saved vs whole-GPU | saved vs best static | plan p50 | peak RSS MiB |\n")
	p("|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|\n")
	for _, name := range order {
		for _, r := range byScenario[name] {
			if r.Planner != TesseraPlanner || r.Step != "" {
				continue
			}
			whole := "–"
			if ref := findResult(byScenario[name], WholeGPUPlanner, ""); ref != nil {
				whole = fmt.Sprint(ref.GPUs)
			}
			p("| %s | %d | %s | %s | %.3f | %s | %s | %s | %s | %s | %s |\n", name, r.LB3, exactCell(r), gpusCell(r), r.RatioLB3, bestStaticCell(r), whole,
				percent(r.SavedVsWholeGPU), percentPtr(r.SavedVsBestStatic), seconds(r.PlanSeconds), mibPtr(r.PeakRSSMiB))
		}
	}
	p("\n")

	grouped := map[string]bool{}
	for _, g := range reportGroups {
		var rs []Result
		for _, name := range g.names {
			rs = append(rs, byScenario[name]...)
			grouped[name] = true
		}
		if len(rs) == 0 {
			continue
		}
		p("## %s\n\n", g.title)
		staticTable(&b, rs)
	}
	var other, dynamic []Result
	for _, name := range order {
		if grouped[name] {
			continue
		}
		for _, r := range byScenario[name] {
			if hasSteps(byScenario[name]) {
				dynamic = append(dynamic, r)
			} else {
				other = append(other, r)
			}
		}
	}
	if len(other) > 0 {
		p("## Other scenarios\n\n")
		staticTable(&b, other)
	}
	if len(dynamic) > 0 {
		p("## Dynamic replay (demand steps of ±10%% and ±50%%)\n\n")
		p("Each planner's initial plan runs on the cluster; every step then re-plans from the cluster as the previous step left it. ")
		p("Tessera re-plans incrementally (`scheduler.Options{Migrate: true}`: running replicas stay where the demand still needs them; ")
		p("when the re-plan would use more than 2%% more GPUs than a fresh plan, it empties GPUs, moving their replicas make-before-break ")
		p("to free slices and to a few GPUs it re-lays out, within the default change budget of 2%% of the GPUs it uses, at least one); ")
		p("the baselines re-plan fresh. **changed** counts GPUs in use before and after whose layout changes (and its share of the GPUs used), ")
		p("**added**/**released** GPUs that gain a layout or are emptied; **fresh** is the GPUs of Tessera's fresh plan for the same step; ")
		p("**dip** the lowest fraction of demand served during Tessera's make-before-break transition (1 = none; not computed for the baselines).\n\n")
		dynamicTable(&b, dynamic)
	}

	exactSection(&b, results)
	seedSection(&b, results)
	memorySection(&b, results)

	p("## Targets\n\n")
	checks := targetChecks(byScenario, order)
	counts := map[string]int{}
	for _, c := range checks {
		counts[c.verdict()]++
	}
	p("%d of %d checks pass", counts[verdictPass], len(checks))
	if n := counts[verdictUnreachable]; n > 0 {
		p("; %d cannot pass on these instances, proven (**UNREACHABLE**: the exact optimum or LB3 shows that no plan passes)", n)
	}
	p("; %d fail.\n\n", counts[verdictFail])
	for _, c := range checks {
		p("- **%s** %s\n", c.verdict(), c.text)
	}
	return b.String()
}

// exactSection writes the exact search's results per scenario.
func exactSection(b *strings.Builder, results []Result) {
	var rows []Result
	for _, r := range results {
		if r.Planner == TesseraPlanner && r.Step == "" && r.ExactLower != nil {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "## Exact optimum\n\n")
	fmt.Fprintf(b, "`scheduler.ExactMinGPUs` searches exactly for the fewest %s GPUs that serve a workload in the planner's model: ", GPUModel)
	fmt.Fprintf(b, "one replica per slice, any slice of a profile serves any service that fits it, so only the slice counts per profile matter. ")
	fmt.Fprintf(b, "It tries k = its slice bound, k+1, …: per k, a depth-first search over each service's Pareto-minimal replica mixes, ")
	fmt.Fprintf(b, "pruned by an exact cover of the counts by k maximal layouts (`migconfig.MaximalLayouts`) and by slice counts. ")
	fmt.Fprintf(b, "The **slice bound** counts whole replicas: the compute slices, memory slices and replicas the services need at least, over one GPU's; ")
	fmt.Fprintf(b, "unlike LB3 (an LP, fractional replicas) it is the optimum whenever a plan reaches it. ")
	fmt.Fprintf(b, "**witness** is `search` when the search found a plan with that many GPUs (checked with `scheduler.Check`), `tessera` when it refuted every smaller count ")
	fmt.Fprintf(b, "and ran out of budget before finding its own plan, so Tessera's legal plan proves the optimum. Budget: %d search nodes per scenario (`tessera bench --exact-budget`).\n\n", DefaultExactBudget)
	fmt.Fprintf(b, "| scenario | LB3 | slice bound | exact | tessera GPUs | tessera = exact | best static | witness | search nodes | search time |\n")
	fmt.Fprintf(b, "|---|--:|--:|--:|--:|---|--:|---|--:|--:|\n")
	for _, r := range rows {
		same := "–"
		if r.Exact != nil {
			same = "no"
			if r.GPUs == *r.Exact {
				same = "yes"
			}
		}
		best := "–"
		if r.BestStatic != "" {
			best = fmt.Sprintf("%d (%s)", r.BestStaticGPUs, r.BestStatic)
		}
		slice := "–"
		if r.ExactSliceBound != nil && *r.ExactSliceBound > 0 {
			slice = fmt.Sprint(*r.ExactSliceBound)
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.LB3, slice, exactCell(r), gpusCell(r), same, best,
			cmp.Or(r.ExactWitness, "–"), intPtr(r.ExactNodes), secondsPtr(r.ExactSeconds))
	}
	fmt.Fprintf(b, "\n")
}

// seedSection writes the seed sweeps of Tessera's plans.
func seedSection(b *strings.Builder, results []Result) {
	var rows []Result
	for _, r := range results {
		if r.Sweep != nil {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "## Over seeds\n\n")
	fmt.Fprintf(b, "The seeded scenarios planned by Tessera with %d seeds each: the scenario's own (the figures above) and the ones after it ", rows[0].Sweep.Seeds)
	fmt.Fprintf(b, "(zipf: the services' models; dynamic: which services each step changes; its initial workload has no seed). ")
	fmt.Fprintf(b, "One timed plan per seed; **plan p50 / p99** are over the seeds (p99 by nearest rank: the slowest seed below 100 seeds). ")
	fmt.Fprintf(b, "GPUs, LB3 and ratio are min / median / max over the seeds; **= exact** counts the seeds where Tessera's GPUs equal the exact optimum, of those the exact search decided ")
	fmt.Fprintf(b, "(same budget as above, per seed); **changed** (share of GPUs whose layout changes) and **÷ fresh** (GPUs over a fresh plan's) are the largest over the seeds. ")
	fmt.Fprintf(b, "The JSON lines (`tessera bench -o json`) have every seed's figures.\n\n")
	fmt.Fprintf(b, "| scenario | step | seeds | GPUs | LB3 | ratio | met (min) | = exact | changed (max) | ÷ fresh (max) | plan p50 / p99 | failed |\n")
	fmt.Fprintf(b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		sw := r.Sweep
		exact := "–"
		if sw.ExactDecided != nil {
			exact = fmt.Sprintf("%d of %d", *sw.ExactEqual, *sw.ExactDecided)
		}
		changed, fresh := "–", "–"
		if sw.ChangedFraction != nil {
			changed = percent(sw.ChangedFraction.Max)
			fresh = fmt.Sprintf("%.3f", sw.FreshRatio.Max)
		}
		failed := fmt.Sprint(sw.Illegal)
		if sw.Error != "" {
			failed += ": " + sw.Error
		}
		fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %.3f / %.3f / %.3f | %s | %s | %s | %s | %s / %s | %s |\n", r.Scenario, cmp.Or(r.Step, "–"), sw.Seeds,
			spreadInts(sw.GPUs), spreadInts(sw.LB3), sw.RatioLB3.Min, sw.RatioLB3.Median, sw.RatioLB3.Max, percent(sw.DemandMet.Min),
			exact, changed, fresh, seconds(sw.PlanSeconds), seconds(sw.PlanSecondsP99), failed)
	}
	fmt.Fprintf(b, "\n")
}

// memorySection explains how peak memory was measured, when it was.
func memorySection(b *strings.Builder, results []Result) {
	if !slices.ContainsFunc(results, func(r Result) bool { return r.PeakRSSMiB != nil }) {
		return
	}
	fmt.Fprintf(b, "## Peak memory\n\n")
	fmt.Fprintf(b, "**peak RSS**: `tessera bench` writes each of Tessera's plan inputs (the scenario's workload and cluster, or a step's workload and the running cluster) ")
	fmt.Fprintf(b, "to files and runs `tessera plan` on them in a child process with the same options. The child reads the files, collects their garbage, returns free memory to the OS, ")
	fmt.Fprintf(b, "resets its resident high-water mark (`/proc/self/clear_refs`), plans, and reports its `VmHWM`: the peak resident memory of planning with the inputs in memory, Go runtime included. ")
	fmt.Fprintf(b, "**base** is the child's resident memory right after that reset, when planning starts: the program's touched code and data pages, the Go runtime and the inputs; ")
	fmt.Fprintf(b, "**planning adds** is peak − base. **input** is the child's peak while reading the YAML files, before the reset. ")
	fmt.Fprintf(b, "(The child's `ru_maxrss` is not used: on Linux it starts at the peak of the spawning process, here the benchmark itself.) ")
	fmt.Fprintf(b, "**alloc** is what one plan allocates in the benchmark process (`runtime.MemStats.TotalAlloc`), most of it garbage collected during the plan.\n\n")
	fmt.Fprintf(b, "| scenario | step | GPUs | peak RSS MiB | base MiB | planning adds MiB | input MiB | alloc MiB |\n")
	fmt.Fprintf(b, "|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		if r.PeakRSSMiB == nil {
			continue
		}
		adds := "–"
		if r.BaseRSSMiB != nil {
			adds = fmt.Sprintf("%.1f", *r.PeakRSSMiB-*r.BaseRSSMiB)
		}
		fmt.Fprintf(b, "| %s | %s | %d | %.1f | %s | %s | %s | %.2f |\n", r.Scenario, cmp.Or(r.Step, "initial"), r.GPUs, *r.PeakRSSMiB,
			mibPtr(r.BaseRSSMiB), adds, mibPtr(r.InputRSSMiB), r.AllocMiB)
	}
	fmt.Fprintf(b, "\n")
}

func exactCell(r Result) string {
	switch {
	case r.Exact != nil:
		return fmt.Sprint(*r.Exact)
	case r.ExactLower != nil && *r.ExactLower > r.LB3:
		return fmt.Sprintf("≥ %d", *r.ExactLower)
	}
	return "–"
}

func spreadInts(s Spread) string {
	return fmt.Sprintf("%.0f / %.0f / %.0f", s.Min, s.Median, s.Max)
}

func mibPtr(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f", *v)
}

func secondsPtr(v *float64) string {
	if v == nil {
		return "–"
	}
	return seconds(*v)
}

func hasSteps(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return r.Step != "" })
}

func findResult(rs []Result, planner, step string) *Result {
	for i := range rs {
		if rs[i].Planner == planner && rs[i].Step == step {
			return &rs[i]
		}
	}
	return nil
}

func staticTable(b *strings.Builder, rs []Result) {
	fmt.Fprintf(b, "| scenario | planner | GPUs | LB3 | ratio | saved vs whole-GPU | saved vs best static | util (compute / memory) | met | stranded | free | plan p50 / p99 | alloc MiB | peak RSS MiB |\n")
	fmt.Fprintf(b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		if r.Step != "" {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %.3f | %s | %s | %s / %s | %s | %d | %d | %s / %s | %.2f | %s |\n",
			r.Scenario, plannerCell(r), gpusCell(r), r.LB3, r.RatioLB3, percent(r.SavedVsWholeGPU), percentPtr(r.SavedVsBestStatic),
			percent(r.SliceUtilisation), percent(r.MemorySliceUtilisation), percent(r.DemandMet), r.StrandedSlices, r.FreeSlices,
			seconds(r.PlanSeconds), seconds(r.PlanSecondsP99), r.AllocMiB, mibPtr(r.PeakRSSMiB))
	}
	fmt.Fprintf(b, "\n")
}

func dynamicTable(b *strings.Builder, rs []Result) {
	fmt.Fprintf(b, "| scenario | step | planner | GPUs | fresh | LB3 | ratio | saved vs best static | changed | added | released | dip | met | plan p50 / p99 | peak RSS MiB |\n")
	fmt.Fprintf(b, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	steps := []string{}
	for _, r := range rs {
		if !slices.Contains(steps, r.Step) {
			steps = append(steps, r.Step)
		}
	}
	// Rows by step, planners in their order within a step.
	for _, st := range steps {
		for _, r := range rs {
			if r.Step != st {
				continue
			}
			step := cmp.Or(r.Step, "initial")
			changed := "–"
			if r.ChangedGPUs != nil {
				changed = fmt.Sprintf("%d (%s)", *r.ChangedGPUs, percentPtr(r.ChangedFraction))
			}
			dip := "–"
			if r.CapacityDip != nil {
				dip = fmt.Sprintf("%.3f", *r.CapacityDip)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d | %.3f | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n",
				r.Scenario, step, plannerCell(r), gpusCell(r), intPtr(r.FreshGPUs), r.LB3, r.RatioLB3, percentPtr(r.SavedVsBestStatic),
				changed, intPtr(r.AddedGPUs), intPtr(r.ReleasedGPUs), dip, percent(r.DemandMet), seconds(r.PlanSeconds), seconds(r.PlanSecondsP99), mibPtr(r.PeakRSSMiB))
		}
	}
	fmt.Fprintf(b, "\n")
}

func plannerCell(r Result) string {
	if r.Planner == TesseraPlanner {
		return "**tessera**"
	}
	return r.Planner
}

func gpusCell(r Result) string {
	if !r.Legal {
		return fmt.Sprintf("%d ✗", r.GPUs)
	}
	return fmt.Sprint(r.GPUs)
}

func bestStaticCell(r Result) string {
	if r.BestStatic == "" {
		return "none meets the demand"
	}
	return fmt.Sprintf("%d (%s)", r.BestStaticGPUs, r.BestStatic)
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func percentPtr(f *float64) string {
	if f == nil {
		return "–"
	}
	return percent(*f)
}

func intPtr(v *int) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprint(*v)
}

// seconds formats a duration in seconds with a readable unit.
func seconds(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.1f ms", s*1e3)
	default:
		return fmt.Sprintf("%.0f µs", s*1e6)
	}
}

// check is one target checked against the results.
type check struct {
	pass bool
	// unreachable marks a failed check that no plan can pass on this
	// instance, proven (by the exact optimum or by LB3).
	unreachable bool
	text        string
}

// Verdicts of a check.
const (
	verdictPass        = "PASS"
	verdictFail        = "FAIL"
	verdictUnreachable = "UNREACHABLE"
)

func (c check) verdict() string {
	switch {
	case c.pass:
		return verdictPass
	case c.unreachable:
		return verdictUnreachable
	}
	return verdictFail
}

// Plan-time targets, by scenario: the issue's ≤ 0.1 s at ~100 GPUs, ≤ 1 s
// at ~1,000 and ≤ 10 s at ~10,000 GPUs or 20,000 services.
var planTimeTargets = [...]struct {
	scenario string
	limit    float64
	what     string
}{
	{"s6x6", 0.1, "~100 GPUs"},
	{"s6x63", 1, "~1,000 GPUs"},
	{"zipf2000", 1, "2,000 services (~300 GPUs)"},
	{"s6x630", 10, "~10,000 GPUs"},
	{"zipf20000", 10, "20,000 services"},
}

// Re-plan targets after a ±10% demand step.
const (
	maxChangedFraction = 0.02
	maxFreshRatio      = 1.03
	zipfMaxRatio       = 1.08
)

// targetChecks checks the targets on Tessera's results, in
// scenario order. A target whose scenario was not run is left out.
func targetChecks(byScenario map[string][]Result, order []string) []check {
	var out []check
	add := func(pass bool, format string, args ...any) {
		out = append(out, check{pass: pass, text: fmt.Sprintf(format, args...)})
	}
	for _, name := range order {
		for _, r := range byScenario[name] {
			if r.Planner != TesseraPlanner {
				continue
			}
			where := name
			if r.Step != "" {
				where += " " + r.Step
			}
			if !r.Legal {
				add(false, "%s: the plan is legal (Evaluate and Check): %s", where, r.Error)
				continue
			}
			if r.Step == "" {
				switch {
				case strings.HasPrefix(name, "zipf"):
					limit := zipfMaxRatio * float64(r.LB3)
					out = append(out, boundCheck(r.GPUs, limit, r.Exact,
						fmt.Sprintf("%s: GPUs ≤ 1.08 × LB3: %d ≤ %.2f (ratio %.3f%s)", where, r.GPUs, limit, r.RatioLB3, exactNote(r))))
					if sw := r.Sweep; sw != nil {
						out = append(out, sweepRatioCheck(where, sw))
						add(sw.DemandMet.Min >= 1-1e-9 && sw.Illegal == 0, "%s over %d seeds: all demand met on every seed: least %s%s",
							where, sw.Seeds, percent(sw.DemandMet.Min), sweepFailures(sw))
					}
				case isStaticOrScaleUp(name):
					out = append(out, boundCheck(r.GPUs, float64(r.LB3+1), r.Exact,
						fmt.Sprintf("%s: GPUs ≤ LB3 + 1: %d ≤ %d%s", where, r.GPUs, r.LB3+1, exactNote(r))))
				}
			}
			add(r.DemandMet >= 1-1e-9, "%s: all demand met: %s", where, percent(r.DemandMet))
			if r.BestStatic != "" {
				text := fmt.Sprintf("%s: strictly fewer GPUs than the best static baseline: %d < %d (%s)", where, r.GPUs, r.BestStaticGPUs, r.BestStatic)
				c := check{pass: r.GPUs < r.BestStaticGPUs, text: text}
				switch {
				case c.pass:
				case r.Exact != nil && *r.Exact >= r.BestStaticGPUs:
					c.unreachable = true
					c.text += fmt.Sprintf("; unreachable: exact optimum = best static = %d GPUs (witness: %s, %s)", *r.Exact, r.ExactWitness, secondsPtr(r.ExactSeconds))
				case r.BestStaticGPUs <= r.LB3:
					c.unreachable = true
					c.text += fmt.Sprintf("; unreachable: the baseline already meets LB3 = %d", r.LB3)
				}
				out = append(out, c)
			} else {
				add(true, "%s: strictly fewer GPUs than the best static baseline: %d GPUs, and no static baseline meets the demand", where, r.GPUs)
			}
			if r.Step != "" && strings.HasSuffix(r.Step, "-10") && r.ChangedGPUs != nil {
				limit := maxChangedFraction * float64(r.GPUs)
				add(float64(*r.ChangedGPUs) <= limit, "%s (±10%% step): layouts of ≤ 2%% of GPUs change: %d ≤ %.2f (%s; also %s added, %s released)",
					where, *r.ChangedGPUs, limit, percentPtr(r.ChangedFraction), intPtr(r.AddedGPUs), intPtr(r.ReleasedGPUs))
				if r.FreshGPUs != nil {
					limit := maxFreshRatio * float64(*r.FreshGPUs)
					add(float64(r.GPUs) <= limit, "%s (±10%% step): GPUs ≤ 1.03 × a fresh plan's: %d ≤ %.2f (fresh %d)", where, r.GPUs, limit, *r.FreshGPUs)
				}
				if sw := r.Sweep; sw != nil && sw.ChangedFraction != nil {
					var changed, fresh []string
					for _, run := range sw.PerSeed {
						if run.Error != "" || run.ChangedGPUs == nil || run.FreshGPUs == nil {
							continue
						}
						if float64(*run.ChangedGPUs) > maxChangedFraction*float64(run.GPUs) {
							changed = append(changed, fmt.Sprintf("seed %d: %d of %d", run.Seed, *run.ChangedGPUs, run.GPUs))
						}
						if float64(run.GPUs) > maxFreshRatio*float64(*run.FreshGPUs) {
							fresh = append(fresh, fmt.Sprintf("seed %d: %d GPUs, fresh %d", run.Seed, run.GPUs, *run.FreshGPUs))
						}
					}
					add(len(changed) == 0 && sw.Illegal == 0, "%s (±10%% step) over %d seeds: layouts of ≤ 2%% of GPUs change on every seed: at most %s%s%s",
						where, sw.Seeds, percent(sw.ChangedFraction.Max), sweepFailures(sw), listed("above it", changed))
					add(len(fresh) == 0 && sw.Illegal == 0, "%s (±10%% step) over %d seeds: GPUs ≤ 1.03 × a fresh plan's on every seed: at most %.3f×%s%s",
						where, sw.Seeds, sw.FreshRatio.Max, sweepFailures(sw), listed("above it", fresh))
				}
			}
		}
	}
	for _, t := range planTimeTargets {
		rs, ok := byScenario[t.scenario]
		if !ok {
			continue
		}
		r := findResult(rs, TesseraPlanner, "")
		switch {
		case r == nil:
		case r.Sweep != nil:
			sw := r.Sweep
			p99 := max(sw.PlanSecondsP99, r.PlanSecondsP99)
			add(p99 <= t.limit, "%s: plan time at %s ≤ %g s: p99 over %d seeds %s (p50 %s); own seed p99 %s (p50 %s, %d runs)", t.scenario, t.what, t.limit,
				sw.Seeds, seconds(sw.PlanSecondsP99), seconds(sw.PlanSeconds), seconds(r.PlanSecondsP99), seconds(r.PlanSeconds), r.Runs)
		default:
			add(r.PlanSecondsP99 <= t.limit, "%s: plan time at %s ≤ %g s: p99 %s (p50 %s, %d runs)", t.scenario, t.what, t.limit, seconds(r.PlanSecondsP99), seconds(r.PlanSeconds), r.Runs)
		}
	}
	return out
}

// boundCheck checks GPUs ≤ limit; when it fails and the exact optimum is
// above the limit too, no plan can pass: the check is unreachable.
func boundCheck(gpus int, limit float64, exact *int, text string) check {
	c := check{pass: float64(gpus) <= limit, text: text}
	if !c.pass && exact != nil && float64(*exact) > limit {
		c.unreachable = true
		c.text += fmt.Sprintf("; unreachable: the exact optimum %d is above %.2f", *exact, limit)
	}
	return c
}

// sweepRatioCheck checks GPUs ≤ 1.08 × LB3 on every seed of a sweep. Seeds
// whose exact optimum is itself above the limit cannot pass: when they are
// the only ones above it, the check is unreachable.
func sweepRatioCheck(where string, sw *SeedSweep) check {
	var over, proven []string
	for _, run := range sw.PerSeed {
		limit := zipfMaxRatio * float64(run.LB3)
		if run.Error != "" || float64(run.GPUs) <= limit {
			continue
		}
		desc := fmt.Sprintf("seed %d: %d GPUs, LB3 %d, ratio %.3f", run.Seed, run.GPUs, run.LB3, ratio(float64(run.GPUs), float64(run.LB3), 0))
		if run.Exact != nil && float64(*run.Exact) > limit {
			proven = append(proven, fmt.Sprintf("%s, exact optimum %d", desc, *run.Exact))
		} else {
			over = append(over, desc)
		}
	}
	c := check{text: fmt.Sprintf("%s over %d seeds: GPUs ≤ 1.08 × LB3 on every seed: largest ratio %.3f%s", where, sw.Seeds, sw.RatioLB3.Max, sweepFailures(sw))}
	ok := sw.Illegal == 0 && len(over) == 0
	c.pass = ok && len(proven) == 0
	c.unreachable = ok && len(proven) > 0
	c.text += listed("above it", over)
	if len(proven) > 0 {
		c.text += "; unreachable on " + strings.Join(proven, "; ") + " (the optimum itself is above 1.08 × LB3)"
	}
	return c
}

// listed appends "; what: a; b" when items is not empty.
func listed(what string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return fmt.Sprintf("; %s: %s", what, strings.Join(items, "; "))
}

// exactNote mentions the exact optimum in a check's text, when known.
func exactNote(r Result) string {
	if r.Exact == nil {
		return ""
	}
	return fmt.Sprintf("; exact optimum %d", *r.Exact)
}

// sweepFailures mentions a sweep's failed seeds in a check's text.
func sweepFailures(sw *SeedSweep) string {
	if sw.Illegal == 0 {
		return ""
	}
	return fmt.Sprintf("; %d seeds failed: %s", sw.Illegal, sw.Error)
}

func isStaticOrScaleUp(name string) bool {
	for _, g := range reportGroups[:2] {
		if slices.Contains(g.names, name) {
			return true
		}
	}
	return false
}
