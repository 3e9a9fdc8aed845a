package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tessera-gpu/tessera/scheduler"
)

// DefaultSeeds is how many seeds `tessera bench` sweeps the seeded
// scenarios over unless told otherwise.
const DefaultSeeds = 20

// SeedSweep summarises Tessera's plans of one seeded scenario, or of one
// step of the dynamic scenario, over several seeds: FirstSeed (the
// scenario's own) and the Seeds−1 seeds after it. Each seed's scenario is
// planned once, timed, checked with Evaluate and scheduler.Check; medians
// and percentiles are by nearest rank.
type SeedSweep struct {
	Seeds     int    `json:"seeds"`
	FirstSeed uint64 `json:"first_seed"`
	// GPUs, LB3, RatioLB3 (GPUs / LB3) and DemandMet over the seeds.
	GPUs      Spread `json:"gpus"`
	LB3       Spread `json:"lb3"`
	RatioLB3  Spread `json:"ratio_lb3"`
	DemandMet Spread `json:"demand_met"`
	// PlanSeconds and PlanSecondsP99 are the median and the 99th
	// percentile of the seeds' plan times (with fewer than 100 seeds the
	// p99 is the slowest seed).
	PlanSeconds    float64 `json:"plan_seconds"`
	PlanSecondsP99 float64 `json:"plan_seconds_p99"`
	// ExactDecided counts the seeds whose optimum the exact search
	// decided within RunOptions.ExactBudget (its own plan, or every
	// smaller count refuted and Tessera's plan the witness); ExactEqual
	// those of them where Tessera's GPUs equal the optimum. Absent when
	// the search did not run (re-plan steps, or disabled).
	ExactDecided *int `json:"exact_decided,omitempty"`
	ExactEqual   *int `json:"exact_equal,omitempty"`
	// ChangedFraction (changed GPUs / GPUs) and FreshRatio (GPUs / a
	// fresh plan's GPUs) over the seeds, for re-plan steps only.
	ChangedFraction *Spread `json:"changed_fraction,omitempty"`
	FreshRatio      *Spread `json:"fresh_ratio,omitempty"`
	// Illegal counts the seeds whose plan failed (planner error,
	// Evaluate, Check); Error describes the first.
	Illegal int    `json:"illegal,omitempty"`
	Error   string `json:"error,omitempty"`
	// PerSeed has every seed's figures, in seed order.
	PerSeed []SeedRun `json:"per_seed"`
}

// SeedRun is one seed's plan in a SeedSweep.
type SeedRun struct {
	Seed        uint64  `json:"seed"`
	GPUs        int     `json:"gpus"`
	LB3         int     `json:"lb3"`
	DemandMet   float64 `json:"demand_met"`
	PlanSeconds float64 `json:"plan_seconds"`
	// Exact is the proven optimum when the exact search decided it.
	Exact *int `json:"exact,omitempty"`
	// ChangedGPUs and FreshGPUs: a re-plan's GPUs whose layout changes
	// and the GPUs of a fresh plan of the same step.
	ChangedGPUs *int `json:"changed_gpus,omitempty"`
	FreshGPUs   *int `json:"fresh_gpus,omitempty"`
	// Error says why the seed's plan failed; its figures are then empty.
	Error string `json:"error,omitempty"`
}

// Spread is the least, median (nearest rank) and largest of some values.
type Spread struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Spread{Min: s[0], Median: quantile(s, 0.5), Max: s[len(s)-1]}
}

// sweepAcc collects one row's seeds.
type sweepAcc struct {
	runs     []SeedRun
	exactRan bool
}

func (a *sweepAcc) fail(seed uint64, msg string) {
	a.runs = append(a.runs, SeedRun{Seed: seed, Error: msg})
}

func (a *sweepAcc) result(n int, first uint64) *SeedSweep {
	sw := &SeedSweep{Seeds: n, FirstSeed: first, PerSeed: a.runs}
	var gpus, lb3, ratios, met, times, changed, fresh []float64
	decided, equal := 0, 0
	for _, r := range a.runs {
		if r.Error != "" {
			sw.Illegal++
			if sw.Error == "" {
				sw.Error = fmt.Sprintf("seed %d: %s", r.Seed, r.Error)
			}
			continue
		}
		gpus = append(gpus, float64(r.GPUs))
		lb3 = append(lb3, float64(r.LB3))
		ratios = append(ratios, ratio(float64(r.GPUs), float64(r.LB3), 0))
		met = append(met, r.DemandMet)
		times = append(times, r.PlanSeconds)
		if r.Exact != nil {
			decided++
			if *r.Exact == r.GPUs {
				equal++
			}
		}
		if r.ChangedGPUs != nil && r.FreshGPUs != nil {
			changed = append(changed, ratio(float64(*r.ChangedGPUs), float64(r.GPUs), 0))
			fresh = append(fresh, ratio(float64(r.GPUs), float64(*r.FreshGPUs), 0))
		}
	}
	sw.GPUs, sw.LB3, sw.RatioLB3, sw.DemandMet = spreadOf(gpus), spreadOf(lb3), spreadOf(ratios), spreadOf(met)
	slices.Sort(times)
	sw.PlanSeconds, sw.PlanSecondsP99 = quantile(times, 0.5), quantile(times, 0.99)
	if a.exactRan {
		sw.ExactDecided, sw.ExactEqual = ptr(decided), ptr(equal)
	}
	if len(changed) > 0 {
		sw.ChangedFraction, sw.FreshRatio = ptr(spreadOf(changed)), ptr(spreadOf(fresh))
	}
	return sw
}

// sweep plans the seeded scenario s with Tessera's planner p for n seeds
// (s.Seed, s.Seed+1, …) and summarises each row: the initial plan of a
// zipf scenario; each re-plan step of the dynamic scenario, whose initial
// workload does not depend on the seed. It returns the summaries by step
// name ("" for the initial plan).
func (rc runContext) sweep(ctx context.Context, s Scenario, p Planner, n int, exactBudget int) (map[string]*SeedSweep, error) {
	cat := rc.cat
	accs := map[string]*sweepAcc{}
	acc := func(step string) *sweepAcc {
		if accs[step] == nil {
			accs[step] = &sweepAcc{}
		}
		return accs[step]
	}
	timed := func(plan func() (scheduler.Plan, error)) (scheduler.Plan, float64, error) {
		runtime.GC()
		start := time.Now()
		pl, err := plan()
		return pl, time.Since(start).Seconds(), err
	}
	// record checks one plan and adds its figures to a; it returns the
	// seed's entry, nil when the plan failed.
	record := func(a *sweepAcc, seed uint64, c scheduler.Cluster, w scheduler.Workload, plan scheduler.Plan, secs float64, opts scheduler.Options) *SeedRun {
		m, err := Evaluate(cat, c, w, plan)
		if err == nil {
			err = scheduler.Check(cat, c, w, plan, opts)
		}
		if err != nil {
			a.fail(seed, strings.ReplaceAll(err.Error(), "\n", "; "))
			return nil
		}
		b, err := scheduler.LowerBound(cat, c, w)
		if err != nil {
			a.fail(seed, fmt.Sprintf("lower bound: %v", err))
			return nil
		}
		a.runs = append(a.runs, SeedRun{Seed: seed, GPUs: m.GPUs, LB3: b.LB3, DemandMet: m.DemandMet, PlanSeconds: secs})
		return &a.runs[len(a.runs)-1]
	}
	rp, incremental := rc.replan[p.Name]
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seed := s.Seed + uint64(i)
		sc, err := ScenarioWithSeed(s.Name, seed)
		if err != nil {
			return nil, err
		}
		plan, secs, err := timed(func() (scheduler.Plan, error) { return p.Plan(cat, sc.Cluster, sc.Workload) })
		if len(sc.Steps) == 0 {
			a := acc("")
			if err != nil {
				a.fail(seed, err.Error())
				continue
			}
			run := record(a, seed, sc.Cluster, sc.Workload, plan, secs, scheduler.Options{Fresh: true})
			if run == nil || exactBudget < 0 {
				continue
			}
			a.exactRan = true
			ex, err := exactOptimum(cat, sc.Cluster, sc.Workload, &plan, exactBudget)
			if err != nil {
				return nil, fmt.Errorf("bench: scenario %s seed %d: %w", s.Name, seed, err)
			}
			if ex.exact > 0 {
				run.Exact = ptr(ex.exact)
			}
			continue
		}
		if err != nil {
			acc(sc.Steps[0].Name).fail(seed, fmt.Sprintf("initial plan: %v", err))
			continue
		}
		current := plan.Applied(sc.Cluster)
		for _, st := range sc.Steps {
			a := acc(st.Name)
			prev := current
			opts := scheduler.Options{Fresh: true}
			do := func() (scheduler.Plan, error) { return p.Plan(cat, prev, st.Workload) }
			if incremental {
				opts = rp.Options
				do = func() (scheduler.Plan, error) { return rp.Plan(cat, prev, st.Workload) }
			}
			plan, secs, err := timed(do)
			if err != nil {
				a.fail(seed, err.Error())
				break
			}
			fresh, err := p.Plan(cat, prev, st.Workload)
			if err != nil {
				a.fail(seed, fmt.Sprintf("fresh plan: %v", err))
				break
			}
			run := record(a, seed, prev, st.Workload, plan, secs, opts)
			if run == nil {
				break
			}
			changed, _, _ := scheduler.LayoutChanges(prev, plan)
			if incremental {
				changed = plan.ChangedGPUs
			}
			run.ChangedGPUs, run.FreshGPUs = ptr(changed), ptr(fresh.GPUsUsed)
			current = plan.Applied(prev)
		}
	}
	out := map[string]*SeedSweep{}
	for step, a := range accs {
		out[step] = a.result(n, s.Seed)
	}
	return out, nil
}
