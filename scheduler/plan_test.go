package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// testCluster returns n A100-80GB GPUs on nodes of 8.
func testCluster(n int) Cluster {
	var c Cluster
	for i := 0; i < n; i++ {
		if i%8 == 0 {
			c.Nodes = append(c.Nodes, Node{Name: fmt.Sprintf("node-%d", i/8)})
		}
		node := &c.Nodes[len(c.Nodes)-1]
		node.GPUs = append(node.GPUs, GPU{Index: i % 8, Model: "a100-80gb"})
	}
	return c
}

// rates builds an a100-80gb throughput table from 1g, 2g, 3g, 4g, 7g rates.
func rates(r1, r2, r3, r4, r7 float64) []Rate {
	var out []Rate
	for i, p := range []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"} {
		v := []float64{r1, r2, r3, r4, r7}[i]
		if v > 0 {
			out = append(out, Rate{GPUModel: "a100-80gb", Profile: p, RPS: v})
		}
	}
	return out
}

func TestPlanKnownOptima(t *testing.T) {
	cat := migconfig.Builtin()
	linear := rates(100, 200, 300, 400, 700) // every slice serves 100 req/s
	tests := []struct {
		name     string
		services []Service
		gpus     int
	}{
		{"one 7g", []Service{{Name: "a", Demand: 700, Throughput: rates(0, 0, 0, 0, 700)}}, 1},
		{"seven tiny services share one GPU", func() []Service {
			var s []Service
			for i := 0; i < 7; i++ {
				s = append(s, Service{Name: fmt.Sprint("s", i), Demand: 1, Throughput: linear})
			}
			return s
		}(), 1},
		{"eight tiny services need two", func() []Service {
			var s []Service
			for i := 0; i < 8; i++ {
				s = append(s, Service{Name: fmt.Sprint("s", i), Demand: 1, Throughput: linear})
			}
			return s
		}(), 2},
		{"exactly two GPUs of compute", []Service{{Name: "a", Demand: 1400, Throughput: linear}}, 2},
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
		{"min replicas", []Service{{Name: "a", Demand: 10, MinReplicas: 9, Throughput: rates(100, 0, 0, 0, 0)}}, 2},
		{"zero demand needs nothing", []Service{{Name: "a", Demand: 0, Throughput: linear}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, w := testCluster(8), Workload{Services: tc.services}
			plan, err := NewPlanner(cat).Plan(c, w, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(cat, c, w, plan, Options{}); err != nil {
				t.Fatalf("illegal plan: %v", err)
			}
			if plan.GPUsUsed != tc.gpus {
				t.Errorf("GPUs used = %d, want %d\n%s", plan.GPUsUsed, tc.gpus, describe(plan))
			}
			for _, s := range plan.Services {
				if s.Unmet != "" {
					t.Errorf("service %s unmet: %s", s.Name, s.Unmet)
				}
			}
		})
	}
}

func describe(p Plan) string {
	var b strings.Builder
	for _, g := range p.GPUs {
		if len(g.Slices) > 0 {
			fmt.Fprintf(&b, "%s/%d: %v\n", g.Node, g.Index, g.Slices)
		}
	}
	return b.String()
}

func TestPlanReportsUnmetDemand(t *testing.T) {
	cat := migconfig.Builtin()
	w := Workload{Services: []Service{
		{Name: "big", Demand: 10000, Throughput: rates(0, 0, 0, 0, 700)},
		{Name: "h100-only", Demand: 5, Throughput: []Rate{{GPUModel: "h100-80gb", Profile: "1g.10gb", RPS: 50}}},
		{Name: "too-big", Demand: 5, MemoryMiB: 100000, Throughput: rates(100, 0, 0, 0, 700)},
	}}
	plan, err := NewPlanner(cat).Plan(testCluster(4), w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range plan.Services {
		got[s.Name] = s.Unmet
	}
	if !strings.Contains(got["big"], "not enough GPUs") {
		t.Errorf("big: unmet = %q", got["big"])
	}
	for _, name := range []string{"h100-only", "too-big"} {
		if !strings.Contains(got[name], "no GPU model in the cluster has a slice this service fits") {
			t.Errorf("%s: unmet = %q", name, got[name])
		}
	}
	if plan.GPUsUsed != 4 {
		t.Errorf("the servable part should use all 4 GPUs, used %d", plan.GPUsUsed)
	}
}

func TestPlanRejectsBadInput(t *testing.T) {
	cat := migconfig.Builtin()
	for name, w := range map[string]Workload{
		"duplicate service": {Services: []Service{{Name: "a", Demand: 1}, {Name: "a", Demand: 1}}},
		"negative demand":   {Services: []Service{{Name: "a", Demand: -1}}},
	} {
		if _, err := NewPlanner(cat).Plan(testCluster(1), w, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	bad := Cluster{Nodes: []Node{{Name: "n", GPUs: []GPU{{Model: "z9000"}}}}}
	if _, err := NewPlanner(cat).Plan(bad, Workload{}, Options{}); err == nil || !strings.Contains(err.Error(), "z9000") {
		t.Errorf("unknown model: err = %v", err)
	}
}

// randomWorkload draws services with CNN-like (near-linear) or BERT-like
// (sub-linear) throughput curves.
func randomWorkload(r *rand.Rand, n int) Workload {
	var w Workload
	for i := 0; i < n; i++ {
		base := 50 + r.Float64()*400
		exp := 0.4 + r.Float64()*0.7 // throughput ~ slices^exp
		f := func(g float64) float64 { return base * pow(g, exp) }
		s := Service{Name: fmt.Sprintf("svc-%02d", i), Demand: r.Float64() * base * 12, MinReplicas: r.IntN(2),
			Throughput: rates(f(1), f(2), f(3), f(4), f(7))}
		if r.IntN(5) == 0 {
			s.Demand = 0
		}
		w.Services = append(w.Services, s)
	}
	return w
}

func pow(x, e float64) float64 {
	out := 1.0
	// x^e for x in 1..7 via exp/log-free iteration is overkill; use the
	// standard library.
	return out * math.Pow(x, e)
}

func TestPlanProperties(t *testing.T) {
	cat := migconfig.Builtin()
	pl := NewPlanner(cat)
	r := rand.New(rand.NewPCG(7, 11))
	for iter := 0; iter < 60; iter++ {
		w := randomWorkload(r, 1+r.IntN(12))
		c := testCluster(64)
		plan, err := pl.Plan(c, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(cat, c, w, plan, Options{}); err != nil {
			t.Fatalf("iter %d: illegal plan: %v", iter, err)
		}
		for _, s := range plan.Services {
			if s.Unmet != "" {
				t.Fatalf("iter %d: %s unmet on a large cluster: %s", iter, s.Name, s.Unmet)
			}
			if s.Capacity < s.Demand*(1-1e-9) {
				t.Fatalf("iter %d: %s capacity %v < demand %v", iter, s.Name, s.Capacity, s.Demand)
			}
		}
		if plan.GPUsUsed < plan.LowerBound {
			t.Fatalf("iter %d: %d GPUs beat the lower bound %d: the bound is wrong", iter, plan.GPUsUsed, plan.LowerBound)
		}
		if plan.GPUsUsed > plan.LowerBound+2 {
			t.Errorf("iter %d: %d GPUs, lower bound %d", iter, plan.GPUsUsed, plan.LowerBound)
		}
		again, _ := pl.Plan(c, w, Options{})
		if !reflect.DeepEqual(plan, again) {
			t.Fatalf("iter %d: planning twice gave different plans", iter)
		}

		// Re-plan after a demand step from the running cluster.
		running := plan.Applied(c)
		step := w
		step.Services = append([]Service(nil), w.Services...)
		for i := range step.Services {
			step.Services[i].Demand *= 0.5 + r.Float64()
		}
		re, err := pl.Plan(running, step, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(cat, running, step, re, Options{}); err != nil {
			t.Fatalf("iter %d: illegal re-plan: %v", iter, err)
		}
		for _, s := range re.Services {
			if s.Unmet != "" {
				t.Fatalf("iter %d: re-plan leaves %s unmet: %s", iter, s.Name, s.Unmet)
			}
		}
		if re.CapacityDip < 0 || re.CapacityDip > 1 {
			t.Fatalf("iter %d: capacity dip %v", iter, re.CapacityDip)
		}
		// With migration it may move replicas, never uses more GPUs, and
		// still serves everything.
		mig, err := pl.Plan(running, step, Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(cat, running, step, mig, Options{Migrate: true}); err != nil {
			t.Fatalf("iter %d: illegal migrating re-plan: %v", iter, err)
		}
		if mig.GPUsUsed > re.GPUsUsed {
			t.Errorf("iter %d: migrating re-plan uses %d GPUs, the plain one %d", iter, mig.GPUsUsed, re.GPUsUsed)
		}
		for _, s := range mig.Services {
			if s.Unmet != "" {
				t.Fatalf("iter %d: migrating re-plan leaves %s unmet: %s", iter, s.Name, s.Unmet)
			}
		}
	}
}

func TestIncrementalKeepsUnchangedGPUs(t *testing.T) {
	cat := migconfig.Builtin()
	pl := NewPlanner(cat)
	w := randomWorkload(rand.New(rand.NewPCG(3, 3)), 10)
	c := testCluster(64)
	plan, err := pl.Plan(c, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	running := plan.Applied(c)
	// The same demand: nothing changes.
	same, err := pl.Plan(running, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if same.ChangedGPUs != 0 || len(same.Changes) != 0 || same.CapacityDip != 1 {
		t.Fatalf("re-plan of an unchanged workload changes %d GPUs (dip %v): %v", same.ChangedGPUs, same.CapacityDip, same.Changes)
	}
	// One service grows by 10%: few GPUs change, nothing dips.
	grown := w
	grown.Services = append([]Service(nil), w.Services...)
	grown.Services[0].Demand *= 1.1
	re, err := pl.Plan(running, grown, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if re.ChangedGPUs > 1 {
		t.Errorf("one service +10%%: %d GPUs change", re.ChangedGPUs)
	}
	if re.CapacityDip < 1-1e-9 {
		t.Errorf("growing needs no dip, got %v", re.CapacityDip)
	}
	if err := Check(cat, running, grown, re, Options{}); err != nil {
		t.Fatal(err)
	}
	// Fresh ignores what runs.
	fresh, err := pl.Plan(running, grown, Options{Fresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cat, c, grown, fresh, Options{Fresh: true}); err != nil {
		t.Fatal(err)
	}
}

// TestPlanMixedFleetAndSpecialProfiles covers what the benchmark data does
// not: a cluster of two GPU models, a service that only one of them runs,
// and the double-memory 1g and +me profiles.
func TestPlanMixedFleetAndSpecialProfiles(t *testing.T) {
	cat := migconfig.Builtin()
	c := Cluster{Nodes: []Node{
		{Name: "a100", GPUs: []GPU{{Index: 0, Model: "a100-80gb"}, {Index: 1, Model: "a100-80gb"}}},
		{Name: "h100", GPUs: []GPU{{Index: 0, Model: "h100-80gb"}, {Index: 1, Model: "h100-80gb"}}},
	}}
	w := Workload{Services: []Service{
		{Name: "both", Demand: 500, Throughput: []Rate{
			{GPUModel: "a100-80gb", Profile: "3g.40gb", RPS: 300},
			{GPUModel: "h100-80gb", Profile: "3g.40gb", RPS: 400},
		}},
		{Name: "h100-only", Demand: 100, Throughput: []Rate{{GPUModel: "h100-80gb", Profile: "1g.10gb", RPS: 60}}},
		// Needs more memory than a 1g.10gb has: only the double-memory 1g fits.
		{Name: "double-memory", Demand: 90, MemoryMiB: 15000, Throughput: []Rate{
			{GPUModel: "a100-80gb", Profile: "1g.10gb", RPS: 50},
			{GPUModel: "a100-80gb", Profile: "1g.20gb", RPS: 50},
		}},
		{Name: "video", Demand: 10, Throughput: []Rate{{GPUModel: "a100-80gb", Profile: "1g.10gb+me", RPS: 20}}},
	}}
	plan, err := NewPlanner(cat).Plan(c, w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cat, c, w, plan, Options{}); err != nil {
		t.Fatalf("illegal plan: %v\n%s", err, describe(plan))
	}
	for _, s := range plan.Services {
		if s.Unmet != "" {
			t.Errorf("%s unmet: %s", s.Name, s.Unmet)
		}
	}
	for _, g := range plan.GPUs {
		for _, s := range g.Slices {
			switch s.Service {
			case "h100-only":
				if g.Model != "h100-80gb" {
					t.Errorf("h100-only runs on %s", g.Model)
				}
			case "double-memory":
				if s.Profile != "1g.20gb" || s.Placement.Size != 2 {
					t.Errorf("double-memory runs on %s at %s", s.Profile, s.Placement)
				}
			case "video":
				if s.Profile != "1g.10gb+me" {
					t.Errorf("video runs on %s", s.Profile)
				}
			}
		}
	}
	if plan.LowerBound < 1 || plan.GPUsUsed < plan.LowerBound {
		t.Errorf("GPUs %d, lower bound %d", plan.GPUsUsed, plan.LowerBound)
	}
}

// TestPlanSpillsToAnotherModel checks that demand the preferred GPU model
// has no room for goes to another model's empty GPUs, fresh and when
// re-planning a running cluster.
func TestPlanSpillsToAnotherModel(t *testing.T) {
	cat := migconfig.Builtin()
	c := Cluster{Nodes: []Node{
		{Name: "a100", GPUs: []GPU{{Index: 0, Model: "a100-80gb"}}},
		{Name: "h100", GPUs: []GPU{{Index: 0, Model: "h100-80gb"}, {Index: 1, Model: "h100-80gb"}, {Index: 2, Model: "h100-80gb"}}},
	}}
	svc := func(demand float64) Workload {
		return Workload{Services: []Service{{Name: "s", Demand: demand, Throughput: []Rate{
			{GPUModel: "a100-80gb", Profile: "7g.80gb", RPS: 800}, // the a100 is cheaper per request
			{GPUModel: "h100-80gb", Profile: "7g.80gb", RPS: 700},
		}}}}
	}
	pl := NewPlanner(cat)
	plan, err := pl.Plan(c, svc(1500), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cat, c, svc(1500), plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if s := plan.Services[0]; s.Unmet != "" || s.Capacity < 1500 {
		t.Fatalf("fresh plan: %+v\n%s", s, describe(plan))
	}
	running := plan.Applied(c)
	re, err := pl.Plan(running, svc(2800), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cat, running, svc(2800), re, Options{}); err != nil {
		t.Fatal(err)
	}
	if s := re.Services[0]; s.Unmet != "" || s.Capacity < 2800 {
		t.Fatalf("re-plan: %+v\n%s", s, describe(re))
	}
	// Beyond every GPU of both models, the shortfall is reported.
	over, err := pl.Plan(c, svc(5000), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := over.Services[0]; !strings.Contains(s.Unmet, "not enough GPUs") || over.GPUsUsed != 4 {
		t.Fatalf("over capacity: %+v, %d GPUs used", s, over.GPUsUsed)
	}
}
