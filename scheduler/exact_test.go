package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// exactProfiles are the a100-80gb profiles of rates(), in its order.
var exactProfiles = []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}

func TestExactMinGPUsKnownOptima(t *testing.T) {
	cat := migconfig.Builtin()
	linear := rates(100, 200, 300, 400, 700) // every compute slice serves 100 req/s
	many := func(n int, s Service) []Service {
		var out []Service
		for i := 0; i < n; i++ {
			s.Name = fmt.Sprint("s", i)
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name     string
		services []Service
		gpus     int
	}{
		{"nothing to serve", []Service{{Name: "a", Demand: 0, Throughput: linear}}, 0},
		{"one 7g", []Service{{Name: "a", Demand: 700, Throughput: rates(0, 0, 0, 0, 700)}}, 1},
		{"seven tiny services share one GPU", many(7, Service{Demand: 1, Throughput: linear}), 1},
		{"eight tiny services need two", many(8, Service{Demand: 1, Throughput: linear}), 2},
		{"exactly two GPUs of compute", []Service{{Name: "a", Demand: 1400, Throughput: linear}}, 2},
		{"a little more than two GPUs of compute", []Service{{Name: "a", Demand: 1401, Throughput: linear}}, 3},
		{"3g+4g fills a GPU", []Service{
			{Name: "a", Demand: 300, Throughput: rates(0, 0, 300, 0, 0)},
			{Name: "b", Demand: 400, Throughput: rates(0, 0, 0, 400, 0)},
		}, 1},
		{"two 4g need two GPUs", []Service{
			{Name: "a", Demand: 400, Throughput: rates(0, 0, 0, 400, 0)},
			{Name: "b", Demand: 400, Throughput: rates(0, 0, 0, 400, 0)},
		}, 2},
		{"3g at 4:4 leaves four 1g", []Service{
			{Name: "a", Demand: 300, Throughput: rates(0, 0, 300, 0, 0)},
			{Name: "b", Demand: 400, Throughput: rates(100, 0, 0, 0, 0)},
		}, 1},
		{"five 1g do not fit beside a 3g", []Service{
			{Name: "a", Demand: 300, Throughput: rates(0, 0, 300, 0, 0)},
			{Name: "b", Demand: 500, Throughput: rates(100, 0, 0, 0, 0)},
		}, 2},
		{"two 3g leave no room for a 1g", []Service{
			{Name: "a", Demand: 600, Throughput: rates(0, 0, 300, 0, 0)},
			{Name: "b", Demand: 100, Throughput: rates(100, 0, 0, 0, 0)},
		}, 2},
		{"3g, 2g and 1g fill a GPU", []Service{
			{Name: "a", Demand: 300, Throughput: rates(0, 0, 300, 0, 0)},
			{Name: "b", Demand: 200, Throughput: rates(0, 200, 0, 0, 0)},
			{Name: "c", Demand: 100, Throughput: rates(100, 0, 0, 0, 0)},
		}, 1},
		{"min replicas", []Service{{Name: "a", Demand: 10, MinReplicas: 9, Throughput: rates(100, 0, 0, 0, 0)}}, 2},
		{"min replicas without demand", []Service{{Name: "a", MinReplicas: 3, Throughput: rates(0, 0, 0, 400, 0)}}, 3},
		{"memory rules out the small slices", []Service{{Name: "a", Demand: 10, MemoryMiB: 30000, Throughput: linear}}, 1},
		{"memory: three services need 3g or more", many(3, Service{Demand: 10, MemoryMiB: 30000, Throughput: linear}), 2},
		{"sub-linear: 1g replicas beat a 7g", []Service{{Name: "a", Demand: 1000, Throughput: rates(150, 200, 250, 280, 300)}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := Workload{Services: tc.services}
			r, err := ExactMinGPUs(cat, "a100-80gb", w, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Optimal || r.GPUs != tc.gpus || r.Lower != tc.gpus {
				t.Fatalf("got optimal=%v GPUs=%d lower=%d, want %d", r.Optimal, r.GPUs, r.Lower, tc.gpus)
			}
			checkExactWitness(t, cat, w, r)
		})
	}
}

// checkExactWitness checks the witness independently of ExactMinGPUs'
// own check: legal, every demand and replica minimum met, r.GPUs GPUs.
func checkExactWitness(t *testing.T, cat *migconfig.Catalog, w Workload, r ExactResult) {
	t.Helper()
	if err := Check(cat, r.Cluster, w, r.Witness, Options{Fresh: true}); err != nil {
		t.Fatalf("witness fails Check: %v", err)
	}
	if r.Witness.GPUsUsed != r.GPUs {
		t.Fatalf("witness uses %d GPUs, result says %d", r.Witness.GPUsUsed, r.GPUs)
	}
	capa, reps := map[string]float64{}, map[string]int{}
	for _, g := range r.Witness.GPUs {
		for _, s := range g.Slices {
			if s.Service == "" {
				continue
			}
			for _, svc := range w.Services {
				if svc.Name == s.Service {
					capa[s.Service] += svc.RateOn(Resource{g.Model, s.Profile})
					reps[s.Service]++
				}
			}
		}
	}
	for _, s := range w.Services {
		want := s.MinReplicas
		if s.Demand > 0 {
			want = max(want, 1)
		}
		if capa[s.Name] < s.Demand*(1-1e-9) || reps[s.Name] < want {
			t.Fatalf("witness gives %s %.1f req/s on %d replicas; demand %.1f, minimum %d", s.Name, capa[s.Name], reps[s.Name], s.Demand, want)
		}
	}
}

// bruteMinGPUs finds the fewest GPUs by brute force, sharing nothing with
// the exact search but migconfig: every multiset of k maximal layouts,
// and for each its slice counts handed to the services in every way
// (every per-profile count up to what the service could use on that
// profile alone). It returns -1 above maxK.
func bruteMinGPUs(t *testing.T, cat *migconfig.Catalog, w Workload, maxK int) int {
	t.Helper()
	m, _ := cat.ByKey("a100-80gb")
	var ids []migconfig.ProfileID
	for _, name := range exactProfiles {
		p, _ := m.ProfileByName(name)
		ids = append(ids, p.ID)
	}
	var layouts [][]int
	for _, l := range migconfig.MaximalLayouts(m, ids) {
		counts := make([]int, len(exactProfiles))
		for _, in := range l.Instances {
			for i, id := range ids {
				if in.Profile == id {
					counts[i]++
				}
			}
		}
		layouts = append(layouts, counts)
	}
	type svc struct {
		rate   []float64
		demand float64
		min    int
	}
	var svcs []svc
	for _, s := range w.Services {
		v := svc{demand: s.Demand, min: s.MinReplicas}
		if s.Demand > 0 {
			v.min = max(v.min, 1)
		}
		if v.demand <= 0 && v.min == 0 {
			continue
		}
		for _, name := range exactProfiles {
			rate := s.RateOn(Resource{"a100-80gb", name})
			p, _ := m.ProfileByName(name)
			if s.MemoryMiB > p.MemoryMiB {
				rate = 0
			}
			v.rate = append(v.rate, rate)
		}
		svcs = append(svcs, v)
	}
	memo := map[string]bool{}
	var fits func(i int, capacity []int) bool
	fits = func(i int, capacity []int) bool {
		if i == len(svcs) {
			return true
		}
		key := fmt.Sprint(i, capacity)
		if v, ok := memo[key]; ok {
			return v
		}
		s := svcs[i]
		n := make([]int, len(capacity))
		var try func(p int, got float64, reps int) bool
		try = func(p int, got float64, reps int) bool {
			if p == len(capacity) {
				if got < s.demand*(1-1e-9) || reps < s.min {
					return false
				}
				rest := make([]int, len(capacity))
				for q := range rest {
					rest[q] = capacity[q] - n[q]
				}
				return fits(i+1, rest)
			}
			limit := 0
			if s.rate[p] > 0 {
				limit = min(capacity[p], max(s.min, int(math.Ceil(s.demand/s.rate[p]))))
			}
			for k := 0; k <= limit; k++ {
				n[p] = k
				if try(p+1, got+float64(k)*s.rate[p], reps+k) {
					n[p] = 0
					return true
				}
			}
			n[p] = 0
			return false
		}
		ok := try(0, 0, 0)
		memo[key] = ok
		return ok
	}
	for k := 0; k <= maxK; k++ {
		found := false
		var pick func(from, left int, capacity []int)
		pick = func(from, left int, capacity []int) {
			if found {
				return
			}
			if left == 0 {
				found = fits(0, capacity)
				return
			}
			for c := from; c < len(layouts); c++ {
				next := append([]int(nil), capacity...)
				for q, n := range layouts[c] {
					next[q] += n
				}
				pick(c, left-1, next)
			}
		}
		pick(0, k, make([]int, len(exactProfiles)))
		if found {
			return k
		}
	}
	return -1
}

// smallRandomWorkload draws 1–4 services that need few replicas each,
// some restricted to a few profiles or by memory.
func smallRandomWorkload(r *rand.Rand) Workload {
	var w Workload
	n := 1 + r.IntN(4)
	for i := 0; i < n; i++ {
		base := 50 + r.Float64()*400
		exp := 0.3 + r.Float64()*0.8
		rs := make([]float64, 5)
		for p, g := range []float64{1, 2, 3, 4, 7} {
			if r.IntN(4) > 0 {
				rs[p] = base * math.Pow(g, exp)
			}
		}
		s := Service{Name: fmt.Sprintf("svc-%d", i), Demand: (1 + r.Float64()*7) * base, MinReplicas: r.IntN(3),
			Throughput: rates(rs[0], rs[1], rs[2], rs[3], rs[4])}
		switch r.IntN(6) {
		case 0:
			s.Demand = 0
		case 1:
			s.MemoryMiB = 15000 // not on 1g.10gb
		}
		w.Services = append(w.Services, s)
	}
	return w
}

func TestExactMinGPUsMatchesBruteForce(t *testing.T) {
	cat := migconfig.Builtin()
	r := rand.New(rand.NewPCG(5, 8))
	checked := 0
	for iter := 0; iter < 80; iter++ {
		w := smallRandomWorkload(r)
		res, err := ExactMinGPUs(cat, "a100-80gb", w, 0)
		if err != nil {
			if strings.Contains(err.Error(), "fits no slice") {
				continue
			}
			t.Fatal(err)
		}
		if !res.Optimal {
			t.Fatalf("iter %d: not optimal within the default budget (lower %d)", iter, res.Lower)
		}
		if res.GPUs > 4 {
			continue // too large for the brute force
		}
		want := bruteMinGPUs(t, cat, w, res.GPUs)
		if want != res.GPUs {
			t.Fatalf("iter %d: exact %d GPUs, brute force %d\n%+v", iter, res.GPUs, want, w)
		}
		checkExactWitness(t, cat, w, res)
		checked++
	}
	if checked < 50 {
		t.Fatalf("only %d instances checked against the brute force", checked)
	}
}

// The exact optimum lies between LB3 and the planner's GPU count.
func TestExactMinGPUsBetweenBoundAndPlanner(t *testing.T) {
	cat := migconfig.Builtin()
	pl := NewPlanner(cat)
	r := rand.New(rand.NewPCG(9, 4))
	for iter := 0; iter < 40; iter++ {
		w := randomWorkload(r, 1+r.IntN(12))
		res, err := ExactMinGPUs(cat, "a100-80gb", w, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := testCluster(64)
		plan, err := pl.Plan(c, w, Options{Fresh: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := LowerBound(cat, c, w)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Optimal {
			if res.Lower < b.LB3-1 || res.Lower > plan.GPUsUsed {
				t.Errorf("iter %d: undecided at %d GPUs; LB3 %d, planner %d", iter, res.Lower, b.LB3, plan.GPUsUsed)
			}
			continue
		}
		checkExactWitness(t, cat, w, res)
		if res.GPUs < b.LB3 {
			t.Fatalf("iter %d: exact optimum %d below LB3 %d: one of them is wrong", iter, res.GPUs, b.LB3)
		}
		if res.GPUs > plan.GPUsUsed {
			t.Fatalf("iter %d: exact optimum %d above the planner's %d GPUs", iter, res.GPUs, plan.GPUsUsed)
		}
	}
}

func TestExactMinGPUsBudget(t *testing.T) {
	cat := migconfig.Builtin()
	w := randomWorkload(rand.New(rand.NewPCG(1, 2)), 12)
	full, err := ExactMinGPUs(cat, "a100-80gb", w, 0)
	if err != nil || !full.Optimal {
		t.Fatalf("full search: %+v, %v", full.Optimal, err)
	}
	small, err := ExactMinGPUs(cat, "a100-80gb", w, 10)
	if err != nil {
		t.Fatal(err)
	}
	if small.Optimal || small.GPUs != 0 || small.Nodes > 11 {
		t.Fatalf("budget 10: optimal=%v GPUs=%d nodes=%d", small.Optimal, small.GPUs, small.Nodes)
	}
	if small.Lower > full.GPUs {
		t.Fatalf("budget 10: lower %d above the optimum %d", small.Lower, full.GPUs)
	}
}

func TestExactMinGPUsErrors(t *testing.T) {
	cat := migconfig.Builtin()
	ok := Workload{Services: []Service{{Name: "a", Demand: 1, Throughput: rates(100, 0, 0, 0, 0)}}}
	for name, tc := range map[string]struct {
		model string
		w     Workload
		want  string
	}{
		"unknown model":     {"z9000", ok, "z9000"},
		"negative demand":   {"a100-80gb", Workload{Services: []Service{{Name: "a", Demand: -1}}}, "demand"},
		"fits nothing":      {"a100-80gb", Workload{Services: []Service{{Name: "a", Demand: 1, MemoryMiB: 90000, Throughput: rates(1, 0, 0, 0, 1)}}}, "fits no slice"},
		"other GPU model":   {"h100-80gb", ok, "fits no slice"},
		"duplicate service": {"a100-80gb", Workload{Services: []Service{ok.Services[0], ok.Services[0]}}, "twice"},
	} {
		if _, err := ExactMinGPUs(cat, tc.model, tc.w, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}
