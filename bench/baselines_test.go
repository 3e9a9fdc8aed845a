package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// A100-80GB profile names, as the throughput tables use them.
const (
	bl1g = "1g.10gb"
	bl2g = "2g.20gb"
	bl3g = "3g.40gb"
	bl4g = "4g.40gb"
	bl7g = "7g.80gb"
)

// blCluster returns a cluster of n A100-80GB GPUs, four per node.
func blCluster(n int) scheduler.Cluster {
	return blClusterOf("a100-80gb", n)
}

// blClusterOf returns a cluster of n GPUs of one model, four per node.
func blClusterOf(model string, n int) scheduler.Cluster {
	var c scheduler.Cluster
	for i := 0; i < n; i++ {
		if i%4 == 0 {
			c.Nodes = append(c.Nodes, scheduler.Node{Name: fmt.Sprintf("node%d", i/4)})
		}
		nd := &c.Nodes[len(c.Nodes)-1]
		nd.GPUs = append(nd.GPUs, scheduler.GPU{Index: i % 4, Model: model})
	}
	return c
}

// blService returns a service with A100-80GB rates given as profile, rate
// pairs.
func blService(name string, demand float64, rates ...any) scheduler.Service {
	s := scheduler.Service{Name: name, Demand: demand}
	for i := 0; i+1 < len(rates); i += 2 {
		s.Throughput = append(s.Throughput, scheduler.Rate{GPUModel: "a100-80gb", Profile: rates[i].(string), RPS: toFloat(rates[i+1])})
	}
	return s
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a number: %v", v))
}

func withMin(s scheduler.Service, n int) scheduler.Service { s.MinReplicas = n; return s }

func blWorkload(s ...scheduler.Service) scheduler.Workload { return scheduler.Workload{Services: s} }

// layoutString formats the used GPUs of a plan as
// "3g.40gb@0:4=a 3g.40gb@4:4=- | 1g.10gb@0:1=b", "-" marking a free slice.
func layoutString(p scheduler.Plan) string {
	var gpus []string
	for _, g := range p.GPUs {
		if len(g.Slices) == 0 {
			continue
		}
		var sl []string
		for _, s := range g.Slices {
			svc := s.Service
			if svc == "" {
				svc = "-"
			}
			sl = append(sl, fmt.Sprintf("%s@%s=%s", s.Profile, s.Placement, svc))
		}
		gpus = append(gpus, strings.Join(sl, " "))
	}
	return strings.Join(gpus, " | ")
}

func planner(t *testing.T, name string) Planner {
	t.Helper()
	for _, p := range Baselines() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no baseline %q", name)
	return Planner{}
}

func TestBaselineNames(t *testing.T) {
	var got []string
	for _, p := range Baselines() {
		got = append(got, p.Name)
	}
	want := []string{"whole-gpu", "all-1g", "all-2g", "all-3g", "all-balanced", "greedy"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Baselines() names = %v, want %v", got, want)
	}
}

func TestBaselines(t *testing.T) {
	tiny := func(name string) scheduler.Service { return blService(name, 1, bl1g, 10) }
	cordoned := blCluster(3)
	cordoned.Nodes[0].GPUs[0].Cordoned = true
	mixed := blClusterOf("a30", 2)
	mixed.Nodes = append(mixed.Nodes, blClusterOf("a100-80gb", 2).Nodes[0])
	mixed.Nodes[1].Name = "node1"

	tests := []struct {
		name     string
		planner  string
		cluster  scheduler.Cluster
		workload scheduler.Workload
		gpus     int
		layout   string // of the used GPUs; "" skips the check
		capacity []float64
		replicas []int
		unmet    []string // substring of each service's Unmet, "" for none
	}{
		{
			name: "whole-gpu: 2.5× the 7g rate takes 3 GPUs", planner: "whole-gpu",
			cluster: blCluster(8), workload: blWorkload(blService("a", 25, bl7g, 10, bl3g, 5)),
			gpus: 3, layout: "7g.80gb@0:8=a | 7g.80gb@0:8=a | 7g.80gb@0:8=a",
			capacity: []float64{30}, replicas: []int{3}, unmet: []string{""},
		},
		{
			name: "whole-gpu: exact multiple takes no extra GPU", planner: "whole-gpu",
			cluster: blCluster(8), workload: blWorkload(blService("a", 0.3, bl7g, 0.1)),
			gpus: 3, replicas: []int{3}, unmet: []string{""},
		},
		{
			name: "whole-gpu: minimum replicas", planner: "whole-gpu",
			cluster: blCluster(8), workload: blWorkload(withMin(blService("a", 5, bl7g, 10), 3)),
			gpus: 3, replicas: []int{3}, unmet: []string{""},
		},
		{
			name: "whole-gpu: services in workload order", planner: "whole-gpu",
			cluster: blCluster(8), workload: blWorkload(blService("a", 15, bl7g, 10), blService("b", 5, bl7g, 10)),
			gpus: 3, layout: "7g.80gb@0:8=a | 7g.80gb@0:8=a | 7g.80gb@0:8=b",
			capacity: []float64{20, 10}, unmet: []string{"", ""},
		},
		{
			name: "whole-gpu: zero demand and no minimum gets nothing", planner: "whole-gpu",
			cluster: blCluster(2), workload: blWorkload(blService("a", 0, bl7g, 10)),
			gpus: 0, replicas: []int{0}, unmet: []string{""},
		},
		{
			name: "whole-gpu: out of GPUs", planner: "whole-gpu",
			cluster: blCluster(2), workload: blWorkload(blService("a", 25, bl7g, 10)),
			gpus: 2, capacity: []float64{20}, replicas: []int{2}, unmet: []string{"out of GPUs"},
		},
		{
			name: "whole-gpu: no 7g rate", planner: "whole-gpu",
			cluster: blCluster(2), workload: blWorkload(blService("a", 5, bl1g, 10)),
			gpus: 0, replicas: []int{0}, unmet: []string{"no slice"},
		},
		{
			name: "whole-gpu: cordoned GPU skipped", planner: "whole-gpu",
			cluster: cordoned, workload: blWorkload(blService("a", 5, bl7g, 10)),
			gpus: 1, replicas: []int{1}, unmet: []string{""},
		},
		{
			name: "all-1g: 8 tiny services take 2 GPUs", planner: "all-1g",
			cluster:  blCluster(4),
			workload: blWorkload(tiny("s1"), tiny("s2"), tiny("s3"), tiny("s4"), tiny("s5"), tiny("s6"), tiny("s7"), tiny("s8")),
			gpus:     2,
			layout: "1g.10gb@0:1=s1 1g.10gb@1:1=s2 1g.10gb@2:1=s3 1g.10gb@3:1=s4 1g.10gb@4:1=s5 1g.10gb@5:1=s6 1g.10gb@6:1=s7 | " +
				"1g.10gb@0:1=s8 1g.10gb@1:1=- 1g.10gb@2:1=- 1g.10gb@3:1=- 1g.10gb@4:1=- 1g.10gb@5:1=- 1g.10gb@6:1=-",
		},
		{
			name: "all-1g: service without a 1g rate is unmet", planner: "all-1g",
			cluster: blCluster(2), workload: blWorkload(blService("a", 5, bl2g, 10)),
			gpus: 0, unmet: []string{"no slice of this layout"},
		},
		{
			name: "all-1g: memory too small", planner: "all-1g",
			cluster: blCluster(2), workload: blWorkload(scheduler.Service{Name: "a", Demand: 1, MemoryMiB: 15000,
				Throughput: []scheduler.Rate{{GPUModel: "a100-80gb", Profile: bl1g, RPS: 10}}}),
			gpus: 0, unmet: []string{"no slice of this layout"},
		},
		{
			name: "all-2g: three replicas fill one GPU", planner: "all-2g",
			cluster: blCluster(2), workload: blWorkload(blService("a", 12, bl2g, 5)),
			gpus: 1, layout: "2g.20gb@0:2=a 2g.20gb@2:2=a 2g.20gb@4:2=a", capacity: []float64{15}, unmet: []string{""},
		},
		{
			name: "all-3g: three services take 2 GPUs", planner: "all-3g",
			cluster: blCluster(4), workload: blWorkload(blService("a", 1, bl3g, 5), blService("b", 1, bl3g, 5), blService("c", 1, bl3g, 5)),
			gpus: 2, layout: "3g.40gb@0:4=a 3g.40gb@4:4=b | 3g.40gb@0:4=c 3g.40gb@4:4=-",
		},
		{
			name: "all-balanced: best per-slice profile first, then fallback, then a new GPU", planner: "all-balanced",
			cluster: blCluster(4), workload: blWorkload(blService("a", 20, bl1g, 2, bl2g, 5, bl3g, 9)),
			gpus: 2, layout: "2g.20gb@0:2=a 1g.10gb@2:1=a 1g.10gb@3:1=a 3g.40gb@4:4=a | 2g.20gb@0:2=- 1g.10gb@2:1=- 1g.10gb@3:1=- 3g.40gb@4:4=a",
			capacity: []float64{27}, replicas: []int{5},
		},
		{
			name: "all-balanced: later services fill free slices first", planner: "all-balanced",
			cluster: blCluster(4), workload: blWorkload(blService("a", 20, bl1g, 2, bl2g, 5, bl3g, 9), blService("b", 5, bl1g, 3)),
			gpus: 2, layout: "2g.20gb@0:2=a 1g.10gb@2:1=a 1g.10gb@3:1=a 3g.40gb@4:4=a | 2g.20gb@0:2=- 1g.10gb@2:1=b 1g.10gb@3:1=b 3g.40gb@4:4=a",
			unmet: []string{"", ""},
		},
		{
			name: "greedy: 2.2× the 3g rate takes 2×3g and a 1g for the rest", planner: "greedy",
			cluster: blCluster(4), workload: blWorkload(blService("a", 19.8, bl1g, 2, bl2g, 5, bl3g, 9, bl4g, 10, bl7g, 15)),
			gpus: 2, layout: "3g.40gb@0:4=a 3g.40gb@4:4=a | 1g.10gb@0:1=a",
			capacity: []float64{20}, replicas: []int{3}, unmet: []string{""},
		},
		{
			name: "greedy: rest needing a 2g", planner: "greedy",
			cluster: blCluster(4), workload: blWorkload(blService("a", 22, bl1g, 2, bl2g, 5, bl3g, 9)),
			gpus: 2, layout: "3g.40gb@0:4=a 3g.40gb@4:4=a | 2g.20gb@0:2=a",
		},
		{
			name: "greedy: exact multiple has no last segment", planner: "greedy",
			cluster: blCluster(4), workload: blWorkload(blService("a", 27, bl1g, 2, bl3g, 9)),
			gpus: 2, layout: "3g.40gb@0:4=a 3g.40gb@4:4=a | 3g.40gb@0:4=a", replicas: []int{3},
		},
		{
			name: "greedy: first-fit decreasing at the lowest start", planner: "greedy",
			cluster: blCluster(4), workload: blWorkload(blService("a", 9, bl1g, 2, bl3g, 9), blService("b", 16, bl1g, 4, bl2g, 5)),
			gpus: 2, layout: "3g.40gb@0:4=a 1g.10gb@4:1=b 1g.10gb@5:1=b 1g.10gb@6:1=b | 1g.10gb@0:1=b",
		},
		{
			name: "greedy: minimum replicas on the smallest profile", planner: "greedy",
			cluster: blCluster(4), workload: blWorkload(withMin(blService("a", 10, bl1g, 1, bl7g, 14), 3)),
			gpus: 2, layout: "7g.80gb@0:8=a | 1g.10gb@0:1=a 1g.10gb@1:1=a", replicas: []int{3}, unmet: []string{""},
		},
		{
			name: "greedy: memory requirement skips small profiles", planner: "greedy",
			cluster: blCluster(2), workload: blWorkload(scheduler.Service{Name: "a", Demand: 9, MemoryMiB: 30000,
				Throughput: []scheduler.Rate{{GPUModel: "a100-80gb", Profile: bl1g, RPS: 5}, {GPUModel: "a100-80gb", Profile: bl2g, RPS: 9}, {GPUModel: "a100-80gb", Profile: bl3g, RPS: 9}}}),
			gpus: 1, layout: "3g.40gb@0:4=a",
		},
		{
			name: "greedy: out of GPUs", planner: "greedy",
			cluster: blCluster(1), workload: blWorkload(blService("a", 27, bl3g, 9)),
			gpus: 1, capacity: []float64{18}, replicas: []int{2}, unmet: []string{"out of GPUs"},
		},
		{
			name: "greedy: only the GPUs of the service's model", planner: "greedy",
			cluster: mixed, workload: blWorkload(blService("a", 9, bl3g, 9)),
			gpus: 1, layout: "3g.40gb@0:4=a", unmet: []string{""},
		},
		{
			name: "all-3g: a30 cannot hold the layout", planner: "all-3g",
			cluster: mixed, workload: blWorkload(blService("a", 9, bl3g, 9)),
			gpus: 1, layout: "3g.40gb@0:4=a 3g.40gb@4:4=-", unmet: []string{""},
		},
		{
			name: "whole-gpu: a30 has no a100 rate", planner: "whole-gpu",
			cluster: mixed, workload: blWorkload(blService("a", 9, bl7g, 9)),
			gpus: 1, layout: "7g.80gb@0:8=a", unmet: []string{""},
		},
	}
	cat := migconfig.Builtin()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planner(t, tc.planner).Plan(cat, tc.cluster, tc.workload)
			if err != nil {
				t.Fatal(err)
			}
			if p.GPUsUsed != tc.gpus {
				t.Errorf("GPUsUsed = %d, want %d\nlayout: %s", p.GPUsUsed, tc.gpus, layoutString(p))
			}
			if tc.layout != "" {
				if got := layoutString(p); got != tc.layout {
					t.Errorf("layout\n got %s\nwant %s", got, tc.layout)
				}
			}
			if len(p.Services) != len(tc.workload.Services) {
				t.Fatalf("%d service plans for %d services", len(p.Services), len(tc.workload.Services))
			}
			for i, sp := range p.Services {
				if tc.capacity != nil && math.Abs(sp.Capacity-tc.capacity[i]) > 1e-9 {
					t.Errorf("service %s capacity = %v, want %v", sp.Name, sp.Capacity, tc.capacity[i])
				}
				if tc.replicas != nil && sp.Replicas != tc.replicas[i] {
					t.Errorf("service %s replicas = %d, want %d", sp.Name, sp.Replicas, tc.replicas[i])
				}
				if tc.unmet != nil {
					if tc.unmet[i] == "" && sp.Unmet != "" {
						t.Errorf("service %s unmet: %s", sp.Name, sp.Unmet)
					}
					if tc.unmet[i] != "" && !strings.Contains(sp.Unmet, tc.unmet[i]) {
						t.Errorf("service %s Unmet = %q, want it to mention %q", sp.Name, sp.Unmet, tc.unmet[i])
					}
				}
			}
			// Every baseline plan is legal and its service plans agree
			// with what Evaluate recomputes.
			m, err := Evaluate(cat, tc.cluster, tc.workload, p)
			if err != nil {
				t.Fatalf("Evaluate: %v\nlayout: %s", err, layoutString(p))
			}
			checkAgrees(t, p, m)
		})
	}
}

// checkAgrees compares a plan's own accounting with Evaluate's.
func checkAgrees(t *testing.T, p scheduler.Plan, m Metrics) {
	t.Helper()
	if m.GPUs != p.GPUsUsed {
		t.Errorf("Evaluate counts %d GPUs, plan says %d", m.GPUs, p.GPUsUsed)
	}
	for i, sp := range p.Services {
		sm := m.Services[i]
		if math.Abs(sm.Capacity-sp.Capacity) > 1e-9 || sm.Replicas != sp.Replicas {
			t.Errorf("service %s: plan says %v req/s on %d replicas, Evaluate %v on %d", sp.Name, sp.Capacity, sp.Replicas, sm.Capacity, sm.Replicas)
		}
		short := sm.Served < 1 || sm.Replicas < sm.MinReplicas
		if short != (sp.Unmet != "") {
			t.Errorf("service %s: short = %v but Unmet = %q", sp.Name, short, sp.Unmet)
		}
	}
}

func TestBaselinePlanShape(t *testing.T) {
	c := blCluster(6)
	c.Nodes[0].GPUs[1].Slices = []scheduler.Slice{{Profile: bl7g, Placement: migconfig.Placement{Start: 0, Size: 8}, Service: "old"}}
	w := blWorkload(blService("a", 25, bl7g, 10))
	p, err := planner(t, "whole-gpu").Plan(migconfig.Builtin(), c, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GPUs) != 6 {
		t.Fatalf("plan lists %d GPUs, want all 6 of the cluster", len(p.GPUs))
	}
	for i, g := range p.GPUs {
		want := c.Nodes[i/4].GPUs[i%4]
		if g.Node != c.Nodes[i/4].Name || g.Index != want.Index || g.Model != want.Model {
			t.Errorf("plan GPU %d is %s/%d %s, want cluster order", i, g.Node, g.Index, g.Model)
		}
	}
	// GPU 1 already has a 7g: its layout does not change; GPUs 0 and 2
	// get one; the rest stay empty as they are.
	changed := []bool{true, false, true, false, false, false}
	for i, g := range p.GPUs {
		if g.LayoutChanged != changed[i] {
			t.Errorf("GPU %d LayoutChanged = %v, want %v", i, g.LayoutChanged, changed[i])
		}
	}
	// Both were empty: they are added GPUs, not changed ones (Plan's
	// definitions); nothing in use is re-laid out or released.
	if p.ChangedGPUs != 0 || p.AddedGPUs != 2 || p.ReleasedGPUs != 0 {
		t.Errorf("changed/added/released = %d/%d/%d, want 0/2/0", p.ChangedGPUs, p.AddedGPUs, p.ReleasedGPUs)
	}
}

func TestBaselinesRefuseInvalidInput(t *testing.T) {
	cat := migconfig.Builtin()
	dupGPU := blCluster(2)
	dupGPU.Nodes[0].GPUs[1].Index = 0
	tests := []struct {
		name string
		cat  *migconfig.Catalog
		c    scheduler.Cluster
		w    scheduler.Workload
		want string
	}{
		{"nil catalog", nil, blCluster(1), blWorkload(blService("a", 1, bl7g, 1)), "catalog"},
		{"duplicate GPU", cat, dupGPU, blWorkload(blService("a", 1, bl7g, 1)), "twice"},
		{"duplicate service", cat, blCluster(1), blWorkload(blService("a", 1, bl7g, 1), blService("a", 1, bl7g, 1)), "listed twice"},
		{"unnamed service", cat, blCluster(1), blWorkload(blService("", 1, bl7g, 1)), "no name"},
		{"negative demand", cat, blCluster(1), blWorkload(blService("a", -1, bl7g, 1)), "demand"},
		{"NaN demand", cat, blCluster(1), blWorkload(blService("a", math.NaN(), bl7g, 1)), "demand"},
		{"infinite demand", cat, blCluster(1), blWorkload(blService("a", math.Inf(1), bl7g, 1)), "demand"},
		{"negative minimum", cat, blCluster(1), blWorkload(withMin(blService("a", 1, bl7g, 1), -1)), "minReplicas"},
		{"negative rate", cat, blCluster(1), blWorkload(blService("a", 1, bl7g, -1)), "throughput"},
	}
	for _, tc := range tests {
		for _, pl := range Baselines() {
			t.Run(tc.name+"/"+pl.Name, func(t *testing.T) {
				_, err := pl.Plan(tc.cat, tc.c, tc.w)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Plan error = %v, want one mentioning %q", err, tc.want)
				}
			})
		}
	}
	// The plain functions report the problem per service instead.
	p := Greedy(cat, blCluster(2), blWorkload(blService("a", -1, bl7g, 1), blService("b", 1, bl7g, 1)))
	if p.GPUsUsed != 0 || len(p.GPUs) != 2 || len(p.Services) != 2 {
		t.Fatalf("invalid input gave %+v", p)
	}
	for _, sp := range p.Services {
		if !strings.Contains(sp.Unmet, "invalid input") {
			t.Errorf("service %s Unmet = %q, want invalid input", sp.Name, sp.Unmet)
		}
	}
}

// randomWorkload returns 1–6 services with positive A100-80GB rates on
// every base profile (throughput per compute slice varying by profile),
// demands up to 60 req/s, some with zero demand, a replica minimum or a
// demand that is an exact multiple of a rate.
func randomWorkload(r *rand.Rand) scheduler.Workload {
	var w scheduler.Workload
	n := 1 + r.IntN(6)
	for i := 0; i < n; i++ {
		perSlice := 1 + 9*r.Float64()
		s := scheduler.Service{Name: fmt.Sprintf("s%d", i), Demand: math.Round(60*r.Float64()*100) / 100}
		for _, pg := range []struct {
			name string
			g    int
		}{{bl1g, 1}, {bl2g, 2}, {bl3g, 3}, {bl4g, 4}, {bl7g, 7}} {
			rate := perSlice * float64(pg.g) * (0.6 + 0.6*r.Float64())
			s.Throughput = append(s.Throughput, scheduler.Rate{GPUModel: "a100-80gb", Profile: pg.name, RPS: rate})
		}
		switch r.IntN(8) {
		case 0:
			s.Demand = 0
		case 1:
			s.MinReplicas = 1 + r.IntN(3)
		case 2:
			s.Demand = s.Throughput[r.IntN(5)].RPS * float64(1+r.IntN(3)) // exact multiple
		}
		w.Services = append(w.Services, s)
	}
	return w
}

// enoughGPUs bounds the GPUs any baseline needs: every replica on its own
// GPU at the slowest rate.
func enoughGPUs(w scheduler.Workload) int {
	n := 0
	for _, s := range w.Services {
		slowest := math.Inf(1)
		for _, t := range s.Throughput {
			slowest = math.Min(slowest, t.RPS)
		}
		n += int(math.Ceil(s.Demand/slowest)) + s.MinReplicas + 1
	}
	return n
}

func TestBaselinesProperty(t *testing.T) {
	cat := migconfig.Builtin()
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 0x7e55e7a))
		w := randomWorkload(r)
		c := blCluster(enoughGPUs(w))
		for _, pl := range Baselines() {
			p, err := pl.Plan(cat, c, w)
			if err != nil {
				t.Fatalf("seed %d %s: %v", seed, pl.Name, err)
			}
			m, err := Evaluate(cat, c, w, p)
			if err != nil {
				t.Fatalf("seed %d %s: illegal plan: %v\n%s", seed, pl.Name, err, layoutString(p))
			}
			if m.DemandMet != 1 || m.ServicesShort != 0 || m.ReplicasShort != 0 || m.WorstServed != 1 {
				t.Fatalf("seed %d %s: demand not met: %+v\n%s", seed, pl.Name, m, layoutString(p))
			}
			checkAgrees(t, p, m)
			if again, _ := pl.Plan(cat, c, w); !reflect.DeepEqual(p, again) {
				t.Fatalf("seed %d %s: not deterministic", seed, pl.Name)
			}
			// Whole GPUs are fully allocated; no static or greedy GPU is
			// left without a replica.
			if pl.Name == "whole-gpu" && m.GPUs > 0 && m.SliceUtilisation != 1 {
				t.Errorf("seed %d whole-gpu: slice utilisation %v", seed, m.SliceUtilisation)
			}
			for _, g := range p.GPUs {
				busy := false
				for _, s := range g.Slices {
					busy = busy || s.Service != ""
				}
				if len(g.Slices) > 0 && !busy {
					t.Errorf("seed %d %s: GPU %s/%d used but idle", seed, pl.Name, g.Node, g.Index)
				}
			}
		}
	}
}

// BenchmarkBaselines plans a Zipf-like workload of 2,000 services on a
// 3,000-GPU cluster with each baseline.
func BenchmarkBaselines(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var w scheduler.Workload
	for i := 0; i < 2000; i++ {
		s := blService(fmt.Sprintf("s%d", i), 4000*math.Pow(float64(i+1), -1.1),
			bl1g, 10+r.Float64()*5, bl2g, 22+r.Float64()*8, bl3g, 33+r.Float64()*12, bl4g, 45+r.Float64()*10, bl7g, 70+r.Float64()*20)
		w.Services = append(w.Services, s)
	}
	c := blCluster(3000)
	cat := migconfig.Builtin()
	for _, pl := range Baselines() {
		b.Run(pl.Name, func(b *testing.B) {
			for b.Loop() {
				if _, err := pl.Plan(cat, c, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
