package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/scheduler"
)

func TestPlannersNames(t *testing.T) {
	want := []string{"tessera", "whole-gpu", "all-1g", "all-2g", "all-3g", "all-balanced", "greedy"}
	if got := PlannerNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("PlannerNames() = %v, want %v", got, want)
	}
	ps, err := SelectPlanners("greedy", "tessera")
	if err != nil || len(ps) != 2 || ps[0].Name != "greedy" || ps[1].Name != "tessera" {
		t.Fatalf("SelectPlanners: %v, %v", ps, err)
	}
	if _, err := SelectPlanners("nope"); err == nil || !strings.Contains(err.Error(), `unknown planner "nope"`) {
		t.Fatalf("SelectPlanners(nope): %v", err)
	}
}

// runReport runs s2 and the dynamic replay with every planner once.
func runReport(t *testing.T) []Result {
	t.Helper()
	ss, err := Scenarios("s2", "dynamic")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rs, err := Run(context.Background(), ss, Planners(), RunOptions{Runs: 2, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s2/tessera", "s2/greedy", "dynamic/tessera", "dynamic/whole-gpu"} {
		if !strings.Contains(progress.String(), "bench: "+name+": ") {
			t.Errorf("progress lacks %s:\n%s", name, progress.String())
		}
	}
	return rs
}

func TestRun(t *testing.T) {
	rs := runReport(t)
	steps := len(DynamicSteps(scheduler.Workload{}, DynamicSeed))
	if want := len(Planners()) * (1 + 1 + steps); len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	for _, r := range rs {
		name := r.Scenario + "/" + r.Planner + "/" + r.Step
		if !r.Legal || r.Error != "" {
			t.Errorf("%s: not legal: %s", name, r.Error)
		}
		if r.GPUs <= 0 || r.LB3 <= 0 || r.GPUs < r.LB3 {
			t.Errorf("%s: %d GPUs, LB3 %d", name, r.GPUs, r.LB3)
		}
		if r.RatioLB3 != float64(r.GPUs)/float64(r.LB3) {
			t.Errorf("%s: ratio %v", name, r.RatioLB3)
		}
		if r.Runs != 2 || r.PlanSeconds <= 0 || r.PlanSecondsP99 < r.PlanSeconds || r.AllocMiB < 0 {
			t.Errorf("%s: timing %d runs, p50 %v, p99 %v, alloc %v", name, r.Runs, r.PlanSeconds, r.PlanSecondsP99, r.AllocMiB)
		}
		if r.DemandMet < 1-1e-9 && r.Planner == TesseraPlanner {
			t.Errorf("%s: demand met %v", name, r.DemandMet)
		}
		if r.SliceUtilisation <= 0 || r.SliceUtilisation > 1 || r.MemorySliceUtilisation <= 0 || r.MemorySliceUtilisation > 1 {
			t.Errorf("%s: utilisation %v / %v", name, r.SliceUtilisation, r.MemorySliceUtilisation)
		}
		if r.BestStatic == "" || r.SavedVsBestStatic == nil {
			t.Errorf("%s: no best static baseline", name)
		} else if got := 1 - float64(r.GPUs)/float64(r.BestStaticGPUs); *r.SavedVsBestStatic != got {
			t.Errorf("%s: saved vs best static %v, want %v", name, *r.SavedVsBestStatic, got)
		}
		if r.Planner == WholeGPUPlanner && r.SavedVsWholeGPU != 0 {
			t.Errorf("%s: saved %v against itself", name, r.SavedVsWholeGPU)
		}
		replan := r.Step != ""
		if (r.ChangedGPUs != nil) != replan || (r.ChangedFraction != nil) != replan || (r.AddedGPUs != nil) != replan || (r.ReleasedGPUs != nil) != replan {
			t.Errorf("%s: change counts set on a re-plan only", name)
		}
		incremental := replan && r.Planner == TesseraPlanner
		if (r.CapacityDip != nil) != incremental || (r.FreshGPUs != nil) != incremental {
			t.Errorf("%s: capacity dip and fresh GPUs set on Tessera's re-plans only", name)
		}
		// The exact search runs on every scenario's initial workload; s2
		// is decided (3 GPUs: all-1g's), dynamic (s6x6) is not within the
		// budget. No memory measurement or seed sweep was asked for.
		if (r.ExactLower != nil) == replan || (r.ExactSeconds != nil) == replan || (r.ExactNodes != nil) == replan {
			t.Errorf("%s: exact search figures on initial plans only", name)
		}
		if r.Scenario == "s2" && (r.Exact == nil || *r.Exact != 3 || r.ExactWitness != "search" || *r.ExactLower != 3 || *r.ExactSliceBound != 3) {
			t.Errorf("%s: exact %v (%s), lower %v", name, r.Exact, r.ExactWitness, r.ExactLower)
		}
		if r.Scenario == "dynamic" && (r.Exact != nil || r.ExactWitness != "") {
			t.Errorf("%s: s6x6 decided within the default budget: %d (%s)", name, *r.Exact, r.ExactWitness)
		}
		if r.PeakRSSMiB != nil || r.BaseRSSMiB != nil || r.InputRSSMiB != nil || r.Sweep != nil {
			t.Errorf("%s: peak RSS or seed sweep without being asked", name)
		}
		if incremental && (*r.CapacityDip < 0 || *r.CapacityDip > 1 || *r.FreshGPUs <= 0) {
			t.Errorf("%s: dip %v, fresh %d", name, *r.CapacityDip, *r.FreshGPUs)
		}
	}
	// Savings are relative to the baselines' own results in the run.
	var whole, tessera Result
	for _, r := range rs {
		if r.Scenario == "s2" && r.Planner == WholeGPUPlanner {
			whole = r
		}
		if r.Scenario == "s2" && r.Planner == TesseraPlanner {
			tessera = r
		}
	}
	if want := 1 - float64(tessera.GPUs)/float64(whole.GPUs); tessera.SavedVsWholeGPU != want {
		t.Errorf("s2 tessera saved vs whole-GPU %v, want %v", tessera.SavedVsWholeGPU, want)
	}

	var b bytes.Buffer
	if err := WriteJSONLines(&b, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(rs) {
		t.Fatalf("%d JSON lines for %d results", len(lines), len(rs))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, k := range []string{"scenario", "planner", "gpus", "lb3", "ratio_lb3", "saved_vs_whole_gpu", "slice_utilisation",
			"memory_slice_utilisation", "demand_met", "stranded_slices", "free_slices", "plan_seconds", "plan_seconds_p99", "runs", "alloc_mib", "legal"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i+1, k, l)
			}
		}
		if rs[i].Step != "" {
			for _, k := range []string{"step", "changed_gpus", "changed_fraction"} {
				if _, ok := m[k]; !ok {
					t.Errorf("line %d (re-plan) lacks %q: %s", i+1, k, l)
				}
			}
		} else if _, ok := m["changed_gpus"]; ok {
			t.Errorf("line %d (not a re-plan) has changed_gpus: %s", i+1, l)
		}
	}
	back, err := ReadJSONLines(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rs) {
		t.Error("results do not round-trip through JSON lines")
	}

	md := Markdown(rs, ReportInfo{Command: "make bench", Date: "2026-01-02", Load: "1.50 1.20 0.90 at the start"})
	for _, want := range []string{
		"Generated by `make bench` on 2026-01-02",
		"; load average 1.50 1.20 0.90 at the start.",
		"ParvaGPU_SC24", "MIT",
		"## Static scenarios", "## Dynamic replay", "## Targets",
		"s2: GPUs ≤ LB3 + 1: ",
		"dynamic grow-10 (±10% step): layouts of ≤ 2% of GPUs change",
		"dynamic grow-10 (±10% step): GPUs ≤ 1.03 × a fresh plan's",
		"| dynamic | shrink-10 | **tessera** |",
		"## Exact optimum",
		"| s2 | 3 | 3 | 3 | 3 | yes | 3 (all-1g) | search |",
		"**UNREACHABLE** s2: strictly fewer GPUs than the best static baseline: 3 < 3 (all-1g); unreachable: exact optimum = best static = 3 GPUs (witness: search, ",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	for _, absent := range []string{"## Over seeds", "## Peak memory"} {
		if strings.Contains(md, absent) {
			t.Errorf("Markdown has %q without seed sweeps or memory figures", absent)
		}
	}
	if strings.Count(md, "**PASS**")+strings.Count(md, "**FAIL**") < 10 {
		t.Errorf("Markdown has too few target checks:\n%s", md)
	}
}

func TestTargetChecks(t *testing.T) {
	best := ptr(0.1)
	rs := []Result{
		{Scenario: "s6", Planner: "tessera", GPUs: 17, LB3: 16, Legal: true, DemandMet: 1, BestStatic: "all-1g", BestStaticGPUs: 19, SavedVsBestStatic: best},
		{Scenario: "s6x6", Planner: "tessera", GPUs: 99, LB3: 96, Legal: true, DemandMet: 1, PlanSeconds: 0.05, PlanSecondsP99: 0.2, Runs: 5},
		{Scenario: "zipf200", Planner: "tessera", GPUs: 42, LB3: 39, Legal: true, DemandMet: 0.5},
		{Scenario: "dynamic", Planner: "tessera", Step: "grow-10", GPUs: 100, LB3: 90, Legal: true, DemandMet: 1,
			ChangedGPUs: ptr(3), ChangedFraction: ptr(0.03), AddedGPUs: ptr(0), ReleasedGPUs: ptr(0), FreshGPUs: ptr(97)},
		{Scenario: "dynamic", Planner: "tessera", Step: "shift-50", GPUs: 100, LB3: 90, Legal: false, Error: "check: boom"},
		{Scenario: "dynamic", Planner: "tessera", Step: "settle-10", GPUs: 100, LB3: 90, Legal: true, DemandMet: 1,
			ChangedGPUs: ptr(0), ChangedFraction: ptr(0.0), AddedGPUs: ptr(0), ReleasedGPUs: ptr(0), FreshGPUs: ptr(100),
			Sweep: &SeedSweep{Seeds: 3, ChangedFraction: &Spread{0, 0, 0.03}, FreshRatio: &Spread{1, 1, 1.04}, DemandMet: Spread{1, 1, 1},
				PerSeed: []SeedRun{
					{Seed: 7, GPUs: 100, LB3: 90, ChangedGPUs: ptr(0), FreshGPUs: ptr(100)},
					{Seed: 8, GPUs: 104, LB3: 90, ChangedGPUs: ptr(0), FreshGPUs: ptr(100)},
					{Seed: 9, GPUs: 100, LB3: 90, ChangedGPUs: ptr(3), FreshGPUs: ptr(99)},
				}}},
		{Scenario: "s6", Planner: "greedy", GPUs: 1, LB3: 16, Legal: true, DemandMet: 1},
		{Scenario: "s3", Planner: "tessera", GPUs: 5, LB3: 4, Legal: true, DemandMet: 1, BestStatic: "all-1g", BestStaticGPUs: 5, SavedVsBestStatic: ptr(0.0),
			Exact: ptr(5), ExactWitness: "search", ExactLower: ptr(5), ExactSeconds: ptr(0.01)},
		{Scenario: "s4", Planner: "tessera", GPUs: 7, LB3: 6, Legal: true, DemandMet: 1, BestStatic: "all-1g", BestStaticGPUs: 7, SavedVsBestStatic: ptr(0.0),
			Exact: ptr(6), ExactWitness: "search", ExactLower: ptr(6), ExactSeconds: ptr(0.01)},
		{Scenario: "zipf2000", Planner: "tessera", GPUs: 300, LB3: 290, Legal: true, DemandMet: 1, PlanSeconds: 0.05, PlanSecondsP99: 0.06, Runs: 5,
			Sweep: &SeedSweep{Seeds: 2, RatioLB3: Spread{1, 1.03, 1.09}, DemandMet: Spread{1, 1, 1}, PlanSeconds: 0.2, PlanSecondsP99: 1.5,
				PerSeed: []SeedRun{{Seed: 1, GPUs: 300, LB3: 290}, {Seed: 2, GPUs: 109, LB3: 100, Exact: ptr(108)}}}},
		{Scenario: "zipf20000", Planner: "tessera", GPUs: 3000, LB3: 2900, Legal: true, DemandMet: 1, Exact: ptr(3000),
			Sweep: &SeedSweep{Seeds: 2, RatioLB3: Spread{1, 1.05, 1.10}, DemandMet: Spread{1, 1, 1},
				PerSeed: []SeedRun{{Seed: 1, GPUs: 3000, LB3: 2900}, {Seed: 2, GPUs: 110, LB3: 100, Exact: ptr(110)}}}},
		{Scenario: "zipf200", Planner: "tessera", Step: "", GPUs: 44, LB3: 40, Legal: true, DemandMet: 1, Exact: ptr(44)},
	}
	md := Markdown(rs, ReportInfo{})
	for _, want := range []string{
		"**PASS** s3: GPUs ≤ LB3 + 1: 5 ≤ 5; exact optimum 5",
		"**UNREACHABLE** s3: strictly fewer GPUs than the best static baseline: 5 < 5 (all-1g); unreachable: exact optimum = best static = 5 GPUs (witness: search, 10.0 ms)",
		"**FAIL** s4: strictly fewer GPUs than the best static baseline: 7 < 7 (all-1g)\n",
		"**PASS** zipf2000: GPUs ≤ 1.08 × LB3: 300 ≤ 313.20",
		"**FAIL** zipf2000 over 2 seeds: GPUs ≤ 1.08 × LB3 on every seed: largest ratio 1.090; above it: seed 2: 109 GPUs, LB3 100, ratio 1.090\n",
		"**PASS** zipf2000 over 2 seeds: all demand met on every seed: least 100.0%",
		"**FAIL** zipf2000: plan time at 2,000 services (~300 GPUs) ≤ 1 s: p99 over 2 seeds 1.50 s (p50 200.0 ms); own seed p99 60.0 ms (p50 50.0 ms, 5 runs)",
		"**UNREACHABLE** zipf20000 over 2 seeds: GPUs ≤ 1.08 × LB3 on every seed: largest ratio 1.100; unreachable on seed 2: 110 GPUs, LB3 100, ratio 1.100, exact optimum 110 (the optimum itself is above 1.08 × LB3)",
		"**UNREACHABLE** zipf200: GPUs ≤ 1.08 × LB3: 44 ≤ 43.20 (ratio 0.000; exact optimum 44); unreachable: the exact optimum 44 is above 43.20",
		"checks pass; 3 cannot pass on these instances, proven (**UNREACHABLE**",
		"**FAIL** dynamic settle-10 (±10% step) over 3 seeds: layouts of ≤ 2% of GPUs change on every seed: at most 3.0%; above it: seed 9: 3 of 100\n",
		"**FAIL** dynamic settle-10 (±10% step) over 3 seeds: GPUs ≤ 1.03 × a fresh plan's on every seed: at most 1.040×; above it: seed 8: 104 GPUs, fresh 100\n",
		"**PASS** dynamic settle-10 (±10% step): GPUs ≤ 1.03 × a fresh plan's: 100 ≤ 103.00 (fresh 100)",
		"**PASS** s6: GPUs ≤ LB3 + 1: 17 ≤ 17",
		"**PASS** s6: strictly fewer GPUs than the best static baseline: 17 < 19 (all-1g)",
		"**FAIL** s6x6: GPUs ≤ LB3 + 1: 99 ≤ 97",
		"**FAIL** s6x6: plan time at ~100 GPUs ≤ 0.1 s: p99 200.0 ms",
		"**PASS** zipf200: GPUs ≤ 1.08 × LB3: 42 ≤ 42.12",
		"**FAIL** zipf200: all demand met: 50.0%",
		"**FAIL** dynamic grow-10 (±10% step): layouts of ≤ 2% of GPUs change: 3 ≤ 2.00",
		"**FAIL** dynamic grow-10 (±10% step): GPUs ≤ 1.03 × a fresh plan's: 100 ≤ 99.91 (fresh 97)",
		"**FAIL** dynamic shift-50: the plan is legal (Evaluate and Check): check: boom",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "greedy: ") {
		t.Errorf("targets are checked for baselines:\n%s", md)
	}
}

// TestRunSweepsAndPeakRSS runs zipf200 and dynamic with Tessera alone,
// three seeds and a stand-in memory probe that records what it is asked.
func TestRunSweepsAndPeakRSS(t *testing.T) {
	ss, err := Scenarios("zipf200", "dynamic")
	if err != nil {
		t.Fatal(err)
	}
	tessera, err := SelectPlanners(TesseraPlanner)
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		gpusWithSlices int
		services       int
		opts           scheduler.Options
	}
	var calls []call
	probe := func(_ context.Context, c scheduler.Cluster, w scheduler.Workload, opts scheduler.Options) (RSS, error) {
		n := 0
		for _, node := range c.Nodes {
			for _, g := range node.GPUs {
				if len(g.Slices) > 0 {
					n++
				}
			}
		}
		calls = append(calls, call{n, len(w.Services), opts})
		return RSS{PeakMiB: float64(len(calls)), BaseMiB: 0.25, InputMiB: 0.5}, nil
	}
	const seeds = 3
	rs, err := Run(context.Background(), ss, tessera, RunOptions{Runs: 1, Seeds: seeds, PeakRSS: probe})
	if err != nil {
		t.Fatal(err)
	}
	steps := len(ss[1].Steps)
	if len(rs) != 2+steps || len(calls) != len(rs) {
		t.Fatalf("%d results, %d memory probes; want %d of each", len(rs), len(calls), 2+steps)
	}
	for i, r := range rs {
		name := r.Scenario + "/" + r.Step
		if r.PeakRSSMiB == nil || *r.PeakRSSMiB != float64(i+1) || r.InputRSSMiB == nil || *r.InputRSSMiB != 0.5 || r.BaseRSSMiB == nil || *r.BaseRSSMiB != 0.25 {
			t.Errorf("%s: peak RSS %v, base %v, input %v", name, r.PeakRSSMiB, r.BaseRSSMiB, r.InputRSSMiB)
		}
		// The probe gets the plan's own inputs: fresh for the initial
		// plans, the running cluster and Tessera's re-plan options for
		// the steps.
		c := calls[i]
		if r.Step == "" {
			if c.opts != (scheduler.Options{Fresh: true}) || c.gpusWithSlices != 0 {
				t.Errorf("%s: probe got %+v on %d GPUs with slices", name, c.opts, c.gpusWithSlices)
			}
		} else if c.opts != Replanners()[TesseraPlanner].Options || c.gpusWithSlices == 0 || c.services != 11 {
			t.Errorf("%s: probe got %+v on %d GPUs with slices, %d services", name, c.opts, c.gpusWithSlices, c.services)
		}
		sw := r.Sweep
		if r.Scenario == "dynamic" && r.Step == "" {
			if sw != nil {
				t.Errorf("%s: a sweep of an initial workload that has no seed", name)
			}
			continue
		}
		if sw == nil {
			t.Errorf("%s: no seed sweep", name)
			continue
		}
		first := ss[0].Seed
		if r.Scenario == "dynamic" {
			first = ss[1].Seed
		}
		if sw.Seeds != seeds || sw.FirstSeed != first || sw.Illegal != 0 || sw.Error != "" {
			t.Errorf("%s: sweep %+v", name, sw)
		}
		// The first seed is the scenario's own: its plan is the row's.
		if len(sw.PerSeed) != seeds || sw.PerSeed[0].Seed != first || sw.PerSeed[0].GPUs != r.GPUs || sw.PerSeed[2].Seed != first+2 {
			t.Errorf("%s: per seed %+v, row GPUs %d", name, sw.PerSeed, r.GPUs)
		}
		g := float64(r.GPUs)
		if sw.GPUs.Min > g || sw.GPUs.Max < g || sw.GPUs.Min > sw.GPUs.Median || sw.GPUs.Median > sw.GPUs.Max {
			t.Errorf("%s: GPUs %v outside the sweep's %+v", name, g, sw.GPUs)
		}
		if sw.LB3.Max > sw.GPUs.Max || sw.RatioLB3.Min < 1 || sw.DemandMet.Min < 1-1e-9 {
			t.Errorf("%s: LB3 %+v, ratio %+v, met %+v", name, sw.LB3, sw.RatioLB3, sw.DemandMet)
		}
		if sw.PlanSeconds <= 0 || sw.PlanSecondsP99 < sw.PlanSeconds {
			t.Errorf("%s: plan times %v / %v", name, sw.PlanSeconds, sw.PlanSecondsP99)
		}
		if zipf := r.Scenario == "zipf200"; (sw.ExactDecided != nil) != zipf || (sw.ChangedFraction != nil) == zipf || (sw.FreshRatio != nil) == zipf {
			t.Errorf("%s: exact figures for zipf, change figures for re-plans only: %+v", name, sw)
		}
		if sw.ExactDecided != nil && (*sw.ExactDecided != seeds || *sw.ExactEqual > *sw.ExactDecided) {
			t.Errorf("%s: exact decided %d, equal %d", name, *sw.ExactDecided, *sw.ExactEqual)
		}
		if sw.FreshRatio != nil && (sw.FreshRatio.Min <= 0 || sw.ChangedFraction.Max > 1) {
			t.Errorf("%s: fresh ratio %+v, changed %+v", name, sw.FreshRatio, sw.ChangedFraction)
		}
	}
	md := Markdown(rs, ReportInfo{})
	for _, want := range []string{
		"## Over seeds", "| zipf200 | – | 3 |", "| dynamic | grow-10 | 3 |",
		"zipf200 over 3 seeds: GPUs ≤ 1.08 × LB3 on every seed",
		"dynamic grow-10 (±10% step) over 3 seeds: layouts of ≤ 2% of GPUs change on every seed",
		"## Peak memory", "| dynamic | settle-10 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}

	// A failing probe fails the run.
	_, err = Run(context.Background(), ss[:1], tessera, RunOptions{Runs: 1, ExactBudget: -1,
		PeakRSS: func(context.Context, scheduler.Cluster, scheduler.Workload, scheduler.Options) (RSS, error) {
			return RSS{}, errors.New("no /proc")
		}})
	if err == nil || !strings.Contains(err.Error(), "peak RSS: no /proc") {
		t.Errorf("failing probe: err = %v", err)
	}
}

func TestSpreadOf(t *testing.T) {
	if got := spreadOf([]float64{5, 1, 3, 2}); got != (Spread{Min: 1, Median: 2, Max: 5}) {
		t.Errorf("spreadOf = %+v", got)
	}
	if got := spreadOf(nil); got != (Spread{}) {
		t.Errorf("spreadOf(nil) = %+v", got)
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5}
	if q := quantile(xs, 0.5); q != 3 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(xs, 0.99); q != 5 {
		t.Errorf("p99 = %v", q)
	}
	if q := quantile(nil, 0.5); q != 0 {
		t.Errorf("p50 of nothing = %v", q)
	}
}
