package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// running builds a cluster of a100-80gb GPUs on one node, each GPU with
// the slices given.
func running(gpus ...[]Slice) Cluster {
	n := Node{Name: "n"}
	for i, s := range gpus {
		n.GPUs = append(n.GPUs, GPU{Index: i, Model: "a100-80gb", Slices: s})
	}
	return Cluster{Nodes: []Node{n}}
}

func slice(profile string, start, size int, service string) Slice {
	return Slice{Profile: profile, Placement: migconfig.Placement{Start: start, Size: size}, Service: service}
}

func TestRepackSavesAGPUWithinBudget(t *testing.T) {
	cat := migconfig.Builtin()
	linear := rates(100, 200, 300, 400, 700) // 100 req/s per compute slice
	svc := func(name string, demand float64) Service {
		return Service{Name: name, Demand: demand, Throughput: linear}
	}
	whole := func(service string) []Slice { return []Slice{slice("7g.80gb", 0, 8, service)} }
	// Two whole-GPU replicas whose demand dropped to 300 req/s each: one
	// GPU re-laid out as 3g+4g serves both, the other is released. No
	// free slice exists, so only a re-layout saves the GPU.
	two := running(whole("a"), whole("b"), nil)
	twoDemand := Workload{Services: []Service{svc("a", 300), svc("b", 300)}}
	// Three whole-GPU replicas, demand 200 (a runs best on 1g), 600 and
	// 600 req/s: two GPUs laid out 4g+2g+1g serve it, but emptying one of
	// the three re-lays out both others.
	three := running(whole("a"), whole("b"), whole("c"), nil)
	threeDemand := Workload{Services: []Service{
		{Name: "a", Demand: 200, Throughput: rates(100, 150, 200, 250, 400)}, svc("b", 600), svc("c", 600)}}
	tests := []struct {
		name          string
		c             Cluster
		w             Workload
		opts          Options
		gpus, changed int
	}{
		{"re-lays out one GPU to free another (default budget)", two, twoDemand, Options{Migrate: true}, 1, 1},
		{"budget of one GPU", two, twoDemand, Options{Migrate: true, MaxChangedGPUs: 1}, 1, 1},
		{"no repack: as before", two, twoDemand, Options{Migrate: true, MaxChangedGPUs: NoRepack}, 2, 0},
		{"without Migrate running replicas stay", two, twoDemand, Options{}, 2, 0},
		{"two re-layouts needed, budget 1", three, threeDemand, Options{Migrate: true, MaxChangedGPUs: 1}, 3, 0},
		{"two re-layouts needed, default budget (1 of 2 GPUs)", three, threeDemand, Options{Migrate: true}, 3, 0},
		{"two re-layouts needed, budget 2", three, threeDemand, Options{Migrate: true, MaxChangedGPUs: 2}, 2, 2},
	}
	pl := NewPlanner(cat)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := pl.Plan(tc.c, tc.w, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(cat, tc.c, tc.w, plan, tc.opts); err != nil {
				t.Fatalf("illegal plan: %v", err)
			}
			if plan.GPUsUsed != tc.gpus || plan.ChangedGPUs != tc.changed {
				t.Errorf("%d GPUs, %d changed; want %d, %d\n%s", plan.GPUsUsed, plan.ChangedGPUs, tc.gpus, tc.changed, describe(plan))
			}
			for _, s := range plan.Services {
				if s.Unmet != "" {
					t.Errorf("%s unmet: %s", s.Name, s.Unmet)
				}
			}
		})
	}
}

// TestRepackTransitionOrder checks the changes of a repack: the re-laid
// out GPU is changed before the emptied one is torn down, so the replica
// that moves there runs before its old slice goes, and the capacity dip
// counts the replica that has to stop on the re-laid-out GPU itself.
func TestRepackTransitionOrder(t *testing.T) {
	cat := migconfig.Builtin()
	linear := rates(100, 200, 300, 400, 700)
	c := running([]Slice{slice("7g.80gb", 0, 8, "a")}, []Slice{slice("7g.80gb", 0, 8, "b")})
	w := Workload{Services: []Service{{Name: "a", Demand: 300, Throughput: linear}, {Name: "b", Demand: 300, Throughput: linear}}}
	plan, err := NewPlanner(cat).Plan(c, w, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.GPUsUsed != 1 || plan.ReleasedGPUs != 1 || plan.ChangedGPUs != 1 {
		t.Fatalf("want one GPU re-laid out and one released:\n%s", describe(plan))
	}
	kept := plan.GPUs[0].Node + "/0"
	if len(plan.GPUs[1].Slices) > 0 {
		kept = "n/1"
	}
	firstStart, lastStop := -1, -1
	for k, ch := range plan.Changes {
		where := fmt.Sprintf("%s/%d", ch.Node, ch.GPU)
		if ch.Kind == StartReplica && ch.Service == "a" && where == kept && firstStart < 0 {
			firstStart = k
		}
		if ch.Kind == StopReplica && ch.Service == "a" {
			lastStop = k
		}
	}
	if firstStart < 0 || lastStop < 0 || firstStart > lastStop {
		t.Errorf("a's new replica does not start before its old one stops: %v", plan.Changes)
	}
	// b's only replica stops while its GPU is re-laid out: half the
	// demand is served at worst.
	if math.Abs(plan.CapacityDip-0.5) > 1e-9 {
		t.Errorf("capacity dip %v, want 0.5: %v", plan.CapacityDip, plan.Changes)
	}
}

func TestChangeBudget(t *testing.T) {
	tests := []struct {
		max, changed, used int
		ok                 bool
	}{
		{0, 1, 10, true},  // at least one GPU
		{0, 2, 99, false}, // 2% of 99 is 1.98
		{0, 2, 100, true}, // 2% of 100
		{0, 3, 100, false},
		{3, 3, 10, true}, // a fixed number
		{3, 4, 1000, false},
		{NoRepack, 50, 10, true}, // no bound
	}
	for _, tc := range tests {
		if got := newBudget(tc.max).allows(tc.changed, tc.used); got != tc.ok {
			t.Errorf("budget %d: %d changed of %d used allowed = %v, want %v", tc.max, tc.changed, tc.used, got, tc.ok)
		}
	}
}

// budgetOf is the most changed GPUs opts allow a plan that uses used
// GPUs.
func budgetOf(opts Options, used int) int {
	if opts.MaxChangedGPUs > 0 {
		return opts.MaxChangedGPUs
	}
	return max(1, int(math.Floor(DefaultChangedFraction*float64(used)+1e-9)))
}

// TestRepackProperties re-plans random running clusters (some with free
// memory, some with cordoned GPUs) after random demand steps, with and
// without Migrate and with several budgets: every plan passes Check,
// serves all demand, changes no more GPUs than the budget allows, is
// deterministic, and with Migrate uses no more GPUs than without it.
func TestRepackProperties(t *testing.T) {
	cat := migconfig.Builtin()
	pl := NewPlanner(cat)
	r := rand.New(rand.NewPCG(17, 5))
	changedPlans := 0
	for iter := 0; iter < 24; iter++ {
		w := randomWorkload(r, 2+r.IntN(12))
		c := testCluster(48)
		plan, err := pl.Plan(c, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		run := plan.Applied(c)
		for ni := range run.Nodes {
			for gi := range run.Nodes[ni].GPUs {
				g := &run.Nodes[ni].GPUs[gi]
				switch r.IntN(8) {
				case 0: // a free slice destroyed: free memory
					for si := range g.Slices {
						if g.Slices[si].Service == "" {
							g.Slices = append(g.Slices[:si:si], g.Slices[si+1:]...)
							break
						}
					}
				case 1:
					g.Cordoned = len(g.Slices) > 0
				}
			}
		}
		step := w
		step.Services = append([]Service(nil), w.Services...)
		for i := range step.Services {
			step.Services[i].Demand *= []float64{0.5, 0.9, 1.1, 1.5}[r.IntN(4)]
		}
		for _, budget := range []int{0, 1, 3} {
			used := map[bool]int{}
			for _, migrate := range []bool{false, true} {
				opts := Options{Migrate: migrate, MaxChangedGPUs: budget}
				where := fmt.Sprintf("iter %d, budget %d, migrate %v", iter, budget, migrate)
				re, err := pl.Plan(run, step, opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := Check(cat, run, step, re, opts); err != nil {
					t.Fatalf("%s: illegal plan: %v", where, err)
				}
				if limit := budgetOf(opts, re.GPUsUsed); re.ChangedGPUs > limit {
					t.Errorf("%s: %d GPUs change layout, budget %d", where, re.ChangedGPUs, limit)
				}
				for _, s := range re.Services {
					if s.Unmet != "" || s.Capacity < s.Demand*(1-1e-9) {
						t.Fatalf("%s: %s capacity %v of %v: %s", where, s.Name, s.Capacity, s.Demand, s.Unmet)
					}
				}
				if re.CapacityDip < 0 || re.CapacityDip > 1 {
					t.Fatalf("%s: capacity dip %v", where, re.CapacityDip)
				}
				if again, _ := pl.Plan(run, step, opts); !reflect.DeepEqual(re, again) {
					t.Fatalf("%s: planning twice gave different plans", where)
				}
				used[migrate] = re.GPUsUsed
				if re.ChangedGPUs > 0 {
					changedPlans++
				}
			}
			if used[true] > used[false] {
				t.Errorf("iter %d, budget %d: migrating re-plan uses %d GPUs, the plain one %d", iter, budget, used[true], used[false])
			}
		}
	}
	// The random clusters exercise the budget: some re-plans change
	// layouts.
	if changedPlans == 0 {
		t.Error("no re-plan changed a layout: the property is not exercised")
	}
	t.Logf("%d re-plans changed layouts", changedPlans)
}
