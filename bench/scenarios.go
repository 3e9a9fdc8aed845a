package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/tessera-gpu/tessera/scheduler"
)

// Scenario is one benchmark input: a cluster of empty GPUs, the demand to
// plan for and, for dynamic scenarios, the demand changes to re-plan for.
type Scenario struct {
	// Name is the scenario's name, one of ScenarioNames.
	Name string
	// Seed is the seed of the scenario's random choices (math/rand/v2
	// PCG); 0 when it makes none.
	Seed uint64
	// Cluster has enough empty a100-80gb GPUs for any reasonable planner
	// (see SizeCluster).
	Cluster scheduler.Cluster
	// Workload is the demand to plan first.
	Workload scheduler.Workload
	// Steps are the later demands, in order, each re-planned from the
	// plan of the one before; empty for static scenarios.
	Steps []Step
}

// Step is a demand change: the whole workload to re-plan for. Its services
// are the scenario's, in the same order, with changed demands.
type Step struct {
	// Name says what changed ("grow-10"); it is safe in a file name.
	Name     string
	Workload scheduler.Workload
}

// Cluster sizing of every scenario.
const (
	// GPUsPerNode is the number of GPUs of a benchmark node.
	GPUsPerNode = 8
	// ClusterHeadroomPercent is how many GPUs a scenario's cluster has,
	// in percent of the whole-GPU replica count (see SizeCluster).
	ClusterHeadroomPercent = 115
)

// Seeds of the random scenarios (math/rand/v2 PCG, second word 0).
const (
	// ZipfSeed picks the models of the zipf scenarios' services. All zipf
	// sizes share it, so zipf200's services are the first 200 of
	// zipf2000's.
	ZipfSeed uint64 = 20240917
	// DynamicSeed picks the services each step of the dynamic scenario
	// changes.
	DynamicSeed uint64 = 20250101
)

// ZipfExponent is s in the zipf scenarios' demand shares i^-s / Σ j^-s.
const ZipfExponent = 1.1

// scenarioNames lists the scenarios in ScenarioNames order.
var scenarioNames = [...]string{
	"s2", "s3", "s4", "s5", "s6", "s6x6", "s6x63", "s6x630",
	"zipf200", "zipf2000", "zipf20000", "dynamic",
}

// ScenarioNames returns the names of the benchmark scenarios, in the order
// Scenarios returns them:
//
//   - s2 … s6: ParvaGPU SLO scenarios 2–6 (scheduling.md §7.1): 11
//     services, one per model and named after it, each with its scenario's
//     SLO request rate as demand, the NoMPS throughput derived with the
//     scenario's latency row on the a100-80gb profiles, MinReplicas 1.
//   - s6x6, s6x63, s6x630: s6 with every demand multiplied by 6, 63, 630
//     (about 10², 10³ and 10⁴ GPUs).
//   - zipf200, zipf2000, zipf20000: N services; service i (1-based) serves
//     a uniformly random model (ZipfSeed) and gets the share
//     i^-1.1 / Σ_j j^-1.1 of the S6 total demand (39,342 req/s), with S6
//     latencies; named "zipf-00042-resnet50".
//   - dynamic: s6x6, then the demand changes of DynamicSteps.
func ScenarioNames() []string { return append([]string(nil), scenarioNames[:]...) }

// Scenarios builds the named scenarios, in the order named, or all of them
// in ScenarioNames order when no name is given. The same name always gives
// the same scenario. An unknown name is an error that lists the valid ones.
func Scenarios(names ...string) ([]Scenario, error) {
	if len(names) == 0 {
		names = scenarioNames[:]
	}
	d := ParvaGPU()
	out := make([]Scenario, 0, len(names))
	for _, name := range names {
		s, err := buildScenario(&d, name)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Seeded reports whether the named scenario draws random choices, so that
// ScenarioWithSeed can build it with other seeds: the zipf scenarios and
// dynamic.
func Seeded(name string) bool {
	return strings.HasPrefix(name, "zipf") || name == "dynamic"
}

// ScenarioWithSeed builds a seeded scenario (see Seeded) with another
// seed: the zipf scenarios draw their services' models with it, dynamic
// its steps. With the scenario's own seed (ZipfSeed, DynamicSeed) it is
// the scenario Scenarios returns. Seed 0 is refused, as is a scenario
// that is not seeded.
func ScenarioWithSeed(name string, seed uint64) (Scenario, error) {
	if !Seeded(name) || !slices.Contains(scenarioNames[:], name) {
		return Scenario{}, fmt.Errorf("bench: scenario %q has no seed to vary; seeded scenarios: zipf200, zipf2000, zipf20000, dynamic", name)
	}
	if seed == 0 {
		return Scenario{}, fmt.Errorf("bench: scenario %s: seed 0 means no seed; use another", name)
	}
	d := ParvaGPU()
	return buildSeededScenario(&d, name, seed)
}

// buildScenario builds one scenario by name.
func buildScenario(d *ThroughputData, name string) (Scenario, error) {
	switch name {
	case "zipf200", "zipf2000", "zipf20000":
		return buildSeededScenario(d, name, ZipfSeed)
	case "dynamic":
		return buildSeededScenario(d, name, DynamicSeed)
	}
	return buildSeededScenario(d, name, 0)
}

// buildSeededScenario builds one scenario by name; seed is used by the
// seeded scenarios only.
func buildSeededScenario(d *ThroughputData, name string, seed uint64) (Scenario, error) {
	s := Scenario{Name: name}
	switch name {
	case "s2", "s3", "s4", "s5", "s6":
		s.Workload = sloWorkload(d, int(name[1]-'0'), 1)
	case "s6x6":
		s.Workload = sloWorkload(d, 6, 6)
	case "s6x63":
		s.Workload = sloWorkload(d, 6, 63)
	case "s6x630":
		s.Workload = sloWorkload(d, 6, 630)
	case "zipf200":
		s.Seed, s.Workload = seed, zipfWorkload(d, 200, seed)
	case "zipf2000":
		s.Seed, s.Workload = seed, zipfWorkload(d, 2000, seed)
	case "zipf20000":
		s.Seed, s.Workload = seed, zipfWorkload(d, 20000, seed)
	case "dynamic":
		s.Seed, s.Workload = seed, sloWorkload(d, 6, 6)
		s.Steps = DynamicSteps(s.Workload, seed)
	default:
		return Scenario{}, fmt.Errorf("bench: unknown scenario %q; valid scenarios: %s", name, strings.Join(scenarioNames[:], ", "))
	}
	ws := []scheduler.Workload{s.Workload}
	for _, st := range s.Steps {
		ws = append(ws, st.Workload)
	}
	s.Cluster = SizeCluster(ws...)
	return s, nil
}

// sloWorkload is ParvaGPU SLO scenario 1..6 with every demand × k: one
// service per model present, named after the model, in Models order.
func sloWorkload(d *ThroughputData, scenario int, k float64) scheduler.Workload {
	var w scheduler.Workload
	for _, m := range models {
		rate := d.Demand(scenario, m)
		if rate == 0 {
			continue
		}
		w.Services = append(w.Services, scheduler.Service{
			Name:        m,
			Model:       m,
			Demand:      rate * k,
			MinReplicas: 1,
			Throughput:  d.Rates(NoMPS, scenario, m),
		})
	}
	return w
}

// zipfWorkload is n services with Zipf(ZipfExponent) shares of the S6
// total demand, each serving a model drawn uniformly with seed.
func zipfWorkload(d *ThroughputData, n int, seed uint64) scheduler.Workload {
	rng := rand.New(rand.NewPCG(seed, 0))
	norm := 0.0
	for j := n; j >= 1; j-- { // smallest terms first, for accuracy
		norm += math.Pow(float64(j), -ZipfExponent)
	}
	total := d.TotalDemand(6)
	w := scheduler.Workload{Services: make([]scheduler.Service, n)}
	for i := range n {
		m := models[rng.IntN(NumModels)]
		w.Services[i] = scheduler.Service{
			Name:        fmt.Sprintf("zipf-%05d-%s", i+1, m),
			Model:       m,
			Demand:      total * math.Pow(float64(i+1), -ZipfExponent) / norm,
			MinReplicas: 1,
			Throughput:  d.Rates(NoMPS, 6, m),
		}
	}
	return w
}

// dynamicStep is one demand change: each service's demand is multiplied by
// the factor pick returns for it.
type dynamicStep struct {
	name string
	// pick returns a service's factor from its rank in a random
	// permutation of the n services and a random coin, both drawn anew
	// for each step.
	pick func(rank, n int, coin bool) float64
}

// dynamicSteps are the demand changes of the dynamic scenario. Each
// multiplies the previous step's demands (the first: the base workload's).
var dynamicSteps = [...]dynamicStep{
	// Every service +10%.
	{"grow-10", func(_, _ int, _ bool) float64 { return 1.1 }},
	// Every service −10%.
	{"shrink-10", func(_, _ int, _ bool) float64 { return 0.9 }},
	// A random half of the services +50%, the others −50%.
	{"shift-50", func(rank, n int, _ bool) float64 { return halves(rank, n, 1.5, 0.5) }},
	// Each service +10% or −10% by a coin toss.
	{"jitter-10", func(_, _ int, coin bool) float64 { return flip(coin, 1.1, 0.9) }},
	// A random quarter of the services +50%, the others unchanged.
	{"surge-50", func(rank, n int, _ bool) float64 { return quarter(rank, n, 1.5, 1) }},
	// A random half of the services −50%, the others +10%.
	{"drain-50", func(rank, n int, _ bool) float64 { return halves(rank, n, 0.5, 1.1) }},
	// Each service +50% or −10% by a coin toss.
	{"jitter-50", func(_, _ int, coin bool) float64 { return flip(coin, 1.5, 0.9) }},
	// Every service −10%.
	{"settle-10", func(_, _ int, _ bool) float64 { return 0.9 }},
}

// halves gives a to the first ⌊n/2⌋ ranks and b to the others.
func halves(rank, n int, a, b float64) float64 {
	if rank < n/2 {
		return a
	}
	return b
}

// quarter gives a to the first ⌈n/4⌉ ranks and b to the others.
func quarter(rank, n int, a, b float64) float64 {
	if rank < (n+3)/4 {
		return a
	}
	return b
}

// flip gives a on heads and b on tails.
func flip(coin bool, a, b float64) float64 {
	if coin {
		return a
	}
	return b
}

// DynamicSteps returns the dynamic scenario's eight demand changes applied
// to base, each to the demands of the one before:
//
//  1. grow-10: every service +10%;
//  2. shrink-10: every service −10%;
//  3. shift-50: a random half (⌊n/2⌋) of the services +50%, the others −50%;
//  4. jitter-10: each service +10% or −10% (a coin toss);
//  5. surge-50: a random quarter (⌈n/4⌉) +50%, the others unchanged;
//  6. drain-50: a random half −50%, the others +10%;
//  7. jitter-50: each service +50% or −10% (a coin toss);
//  8. settle-10: every service −10%.
//
// The random choices come from a math/rand/v2 PCG seeded with (seed, 0):
// per step, a permutation of the services, then one coin per service. The
// result shares no memory with base.
func DynamicSteps(base scheduler.Workload, seed uint64) []Step {
	rng := rand.New(rand.NewPCG(seed, 0))
	n := len(base.Services)
	cur := base
	steps := make([]Step, 0, len(dynamicSteps))
	for _, ds := range dynamicSteps {
		perm := rng.Perm(n)
		rank := make([]int, n)
		for r, i := range perm {
			rank[i] = r
		}
		next := scheduler.Workload{Services: make([]scheduler.Service, n)}
		for i, svc := range cur.Services {
			coin := rng.IntN(2) == 1
			svc.Demand *= ds.pick(rank[i], n, coin)
			svc.Throughput = append([]scheduler.Rate(nil), svc.Throughput...)
			next.Services[i] = svc
		}
		steps = append(steps, Step{Name: ds.name, Workload: next})
		cur = next
	}
	return steps
}

// WholeGPUReplicas is Σ over services of max(1, MinReplicas,
// ⌈demand / T[7g.80gb]⌉): the replicas serving every service with whole
// a100-80gb GPUs, as baseline B0 does. A service without a 7g.80gb rate
// counts one GPU per replica of its best rate.
func WholeGPUReplicas(w scheduler.Workload) int {
	total := 0
	for _, s := range w.Services {
		t := s.RateOn(scheduler.Resource{GPUModel: GPUModel, Profile: "7g.80gb"})
		if t <= 0 {
			for _, r := range s.Throughput {
				t = max(t, r.RPS)
			}
		}
		n := 1
		if t > 0 && s.Demand > 0 {
			n = max(1, int(math.Ceil(s.Demand/t)))
		}
		total += max(n, s.MinReplicas)
	}
	return total
}

// SizeCluster returns a cluster of empty a100-80gb GPUs big enough for any
// reasonable planner on every one of workloads: ClusterHeadroomPercent % of
// the largest WholeGPUReplicas, rounded up to whole nodes of GPUsPerNode
// GPUs, named node-0000, node-0001, ….
func SizeCluster(workloads ...scheduler.Workload) scheduler.Cluster {
	need := 0
	for _, w := range workloads {
		need = max(need, WholeGPUReplicas(w))
	}
	gpus := (need*ClusterHeadroomPercent + 99) / 100
	nodes := (gpus + GPUsPerNode - 1) / GPUsPerNode
	c := scheduler.Cluster{Nodes: make([]scheduler.Node, nodes)}
	for i := range c.Nodes {
		n := scheduler.Node{Name: fmt.Sprintf("node-%04d", i), GPUs: make([]scheduler.GPU, GPUsPerNode)}
		for g := range n.GPUs {
			n.GPUs[g] = scheduler.GPU{Index: g, Model: GPUModel}
		}
		c.Nodes[i] = n
	}
	return c
}
