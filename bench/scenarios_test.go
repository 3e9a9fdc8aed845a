package bench

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/scheduler"
)

func mustScenario(t *testing.T, name string) Scenario {
	t.Helper()
	ss, err := Scenarios(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].Name != name {
		t.Fatalf("Scenarios(%q) = %d scenarios", name, len(ss))
	}
	return ss[0]
}

func totalDemand(w scheduler.Workload) float64 {
	total := 0.0
	for _, s := range w.Services {
		total += s.Demand
	}
	return total
}

func TestScenarioNames(t *testing.T) {
	want := []string{"s2", "s3", "s4", "s5", "s6", "s6x6", "s6x63", "s6x630", "zipf200", "zipf2000", "zipf20000", "dynamic"}
	if got := ScenarioNames(); !slices.Equal(got, want) {
		t.Errorf("ScenarioNames() = %v, want %v", got, want)
	}
	ss, err := Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range ss {
		got = append(got, s.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Scenarios() names = %v, want %v", got, want)
	}
}

func TestScenariosSelect(t *testing.T) {
	for _, c := range []struct {
		names   []string
		want    []string
		wantErr bool
	}{
		{names: []string{"s6", "s2"}, want: []string{"s6", "s2"}},
		{names: []string{"dynamic"}, want: []string{"dynamic"}},
		{names: []string{"s1"}, wantErr: true},
		{names: []string{"s2", "zipf"}, wantErr: true},
		{names: []string{"S2"}, wantErr: true},
	} {
		t.Run(strings.Join(c.names, ","), func(t *testing.T) {
			ss, err := Scenarios(c.names...)
			if c.wantErr {
				if err == nil {
					t.Fatal("no error for an unknown scenario")
				}
				for _, n := range ScenarioNames() {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error %q does not list %s", err, n)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range ss {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSLOScenarios(t *testing.T) {
	d := ParvaGPU()
	for _, c := range []struct {
		name     string
		scenario int
		k        float64
		total    float64
	}{
		{"s2", 2, 1, 4360},
		{"s3", 3, 1, 8716},
		{"s4", 4, 1, 13071},
		{"s5", 5, 1, 26229},
		{"s6", 6, 1, 39342},
		{"s6x6", 6, 6, 6 * 39342},
		{"s6x63", 6, 63, 63 * 39342},
		{"s6x630", 6, 630, 630 * 39342},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustScenario(t, c.name)
			if s.Seed != 0 || len(s.Steps) != 0 {
				t.Errorf("seed %d, %d steps; want a static scenario", s.Seed, len(s.Steps))
			}
			if got := totalDemand(s.Workload); got != c.total {
				t.Errorf("total demand %v, want %v", got, c.total)
			}
			var names []string
			for _, svc := range s.Workload.Services {
				names = append(names, svc.Name)
				if svc.Model != svc.Name || svc.MinReplicas != 1 {
					t.Errorf("%s: model %q, minReplicas %d", svc.Name, svc.Model, svc.MinReplicas)
				}
				if want := d.Demand(c.scenario, svc.Name) * c.k; svc.Demand != want {
					t.Errorf("%s: demand %v, want %v", svc.Name, svc.Demand, want)
				}
				if want := d.Rates(NoMPS, c.scenario, svc.Name); !reflect.DeepEqual(svc.Throughput, want) || len(want) != NumProfiles {
					t.Errorf("%s: throughput %v, want %v", svc.Name, svc.Throughput, want)
				}
			}
			if !slices.Equal(names, Models()) {
				t.Errorf("services %v, want one per model %v", names, Models())
			}
		})
	}
	// A few rates straight from scheduling.md §6.3, through the scenarios.
	for _, c := range []struct {
		scenario, service, profile string
		want                       float64
	}{
		{"s2", "bert", "1g.10gb", 135},
		{"s6", "densenet169", "3g.40gb", 1461},
		{"s3", "densenet121", "3g.40gb", 985},
		{"s4", "resnet152", "1g.10gb", 168},
		{"s5", "resnet50", "7g.80gb", 2483},
		{"s5", "mobilenetv2", "4g.40gb", 2622},
		{"s6x630", "vgg19", "7g.80gb", 1461},
	} {
		s := mustScenario(t, c.scenario)
		i := slices.IndexFunc(s.Workload.Services, func(x scheduler.Service) bool { return x.Name == c.service })
		got := s.Workload.Services[i].RateOn(scheduler.Resource{GPUModel: GPUModel, Profile: c.profile})
		if math.RoundToEven(got) != c.want {
			t.Errorf("%s %s %s: %v, want %v", c.scenario, c.service, c.profile, got, c.want)
		}
	}
}

func TestZipfScenarios(t *testing.T) {
	d := ParvaGPU()
	nameRE := regexp.MustCompile(`^zipf-(\d{5})-([a-z0-9]+)$`)
	var prev Scenario
	for _, n := range []int{200, 2000, 20000} {
		name := fmt.Sprintf("zipf%d", n)
		t.Run(name, func(t *testing.T) {
			s := mustScenario(t, name)
			svcs := s.Workload.Services
			if len(svcs) != n || s.Seed != ZipfSeed || len(s.Steps) != 0 {
				t.Fatalf("%d services, seed %d, %d steps", len(svcs), s.Seed, len(s.Steps))
			}
			if got := totalDemand(s.Workload); math.Abs(got-39342) > 1e-6 {
				t.Errorf("total demand %v, want 39342", got)
			}
			seen := map[string]bool{}
			for i, svc := range svcs {
				m := nameRE.FindStringSubmatch(svc.Name)
				if m == nil || m[1] != fmt.Sprintf("%05d", i+1) || m[2] != svc.Model || modelIndex(svc.Model) < 0 {
					t.Fatalf("service %d: name %q, model %q", i+1, svc.Name, svc.Model)
				}
				seen[svc.Model] = true
				if svc.MinReplicas != 1 || !reflect.DeepEqual(svc.Throughput, d.Rates(NoMPS, 6, svc.Model)) {
					t.Fatalf("%s: minReplicas %d, throughput %v: want 1 and the S6 rates", svc.Name, svc.MinReplicas, svc.Throughput)
				}
				if i > 0 {
					// d_i / d_{i+1} = ((i+1)/i)^1.1
					want := math.Pow(float64(i+1)/float64(i), ZipfExponent)
					if got := svcs[i-1].Demand / svc.Demand; math.Abs(got-want) > 1e-9 {
						t.Fatalf("%s: demand ratio to the previous %v, want %v", svc.Name, got, want)
					}
				}
			}
			if len(seen) != NumModels {
				t.Errorf("only %d of the %d models drawn", len(seen), NumModels)
			}
			// The models are a prefix of the larger scenario's.
			if prev.Name != "" {
				for i, svc := range prev.Workload.Services {
					if svcs[i].Model != svc.Model {
						t.Fatalf("service %d: model %s in %s, %s in %s", i+1, svc.Model, prev.Name, svcs[i].Model, name)
					}
				}
			}
			prev = s
		})
	}
	// Pin the first draws, so a change of the generator (or of Go's
	// math/rand/v2) that would change the benchmark's input is noticed.
	s := mustScenario(t, "zipf200")
	var first []string
	for _, svc := range s.Workload.Services[:6] {
		first = append(first, svc.Name)
	}
	want := []string{"zipf-00001-densenet169", "zipf-00002-inceptionv3", "zipf-00003-bert", "zipf-00004-resnet50", "zipf-00005-resnet152", "zipf-00006-inceptionv3"}
	if !slices.Equal(first, want) {
		t.Errorf("first services %v, want %v", first, want)
	}
}

func TestDynamicScenario(t *testing.T) {
	s := mustScenario(t, "dynamic")
	base := mustScenario(t, "s6x6")
	if !reflect.DeepEqual(s.Workload, base.Workload) {
		t.Error("dynamic does not start from s6x6")
	}
	if s.Seed != DynamicSeed {
		t.Errorf("seed %d, want %d", s.Seed, DynamicSeed)
	}
	if len(s.Steps) < 6 || len(s.Steps) > 8 {
		t.Fatalf("%d steps, want 6–8", len(s.Steps))
	}
	factors := map[float64]int{}
	names := map[string]bool{}
	prev := s.Workload
	for _, st := range s.Steps {
		if names[st.Name] || !safeName.MatchString(st.Name) {
			t.Errorf("step name %q repeated or unsafe", st.Name)
		}
		names[st.Name] = true
		if len(st.Workload.Services) != len(prev.Services) {
			t.Fatalf("%s: %d services, want %d", st.Name, len(st.Workload.Services), len(prev.Services))
		}
		stepFactors := map[float64]int{}
		for i, svc := range st.Workload.Services {
			p := prev.Services[i]
			if svc.Name != p.Name || svc.Model != p.Model || !reflect.DeepEqual(svc.Throughput, p.Throughput) || svc.MinReplicas != p.MinReplicas {
				t.Fatalf("%s: service %d changed more than its demand", st.Name, i)
			}
			f := math.Round(svc.Demand/p.Demand*100) / 100
			if f != 0.5 && f != 0.9 && f != 1 && f != 1.1 && f != 1.5 {
				t.Errorf("%s: %s demand × %v, want ±10%%, ±50%% or unchanged", st.Name, svc.Name, f)
			}
			stepFactors[f]++
			factors[f]++
		}
		if st.Name == "shift-50" && (stepFactors[1.5] != len(prev.Services)/2 || stepFactors[0.5] != len(prev.Services)-len(prev.Services)/2) {
			t.Errorf("shift-50: factors %v, want half ×1.5 and the rest ×0.5", stepFactors)
		}
		prev = st.Workload
	}
	for _, f := range []float64{0.5, 0.9, 1.1, 1.5} {
		if factors[f] == 0 {
			t.Errorf("no service changes by ×%v in any step", f)
		}
	}
	// Steps are fresh copies; changing one changes neither the base nor
	// another step.
	s.Steps[0].Workload.Services[0].Throughput[0].RPS = -1
	if s.Workload.Services[0].Throughput[0].RPS < 0 || s.Steps[1].Workload.Services[0].Throughput[0].RPS < 0 {
		t.Error("steps share memory with the base workload")
	}
	// Another seed gives other steps.
	if other := DynamicSteps(base.Workload, DynamicSeed+1); reflect.DeepEqual(other, DynamicSteps(base.Workload, DynamicSeed)) {
		t.Error("DynamicSteps ignores its seed")
	}
}

func TestScenariosDeterministic(t *testing.T) {
	a, err := Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two calls of Scenarios() differ")
	}
	base := mustScenario(t, "s6").Workload
	if !reflect.DeepEqual(DynamicSteps(base, 7), DynamicSteps(base, 7)) {
		t.Error("DynamicSteps with one seed differ")
	}
}

func TestSizeCluster(t *testing.T) {
	svc := func(demand, t7 float64, minReplicas int) scheduler.Service {
		return scheduler.Service{Name: "x", Demand: demand, MinReplicas: minReplicas,
			Throughput: []scheduler.Rate{{GPUModel: GPUModel, Profile: "1g.10gb", RPS: t7 / 4}, {GPUModel: GPUModel, Profile: "7g.80gb", RPS: t7}}}
	}
	w := func(s ...scheduler.Service) scheduler.Workload { return scheduler.Workload{Services: s} }
	for _, c := range []struct {
		name      string
		workloads []scheduler.Workload
		replicas  int // WholeGPUReplicas of the first workload
		nodes     int
	}{
		{"idle service gets one", []scheduler.Workload{w(svc(0, 100, 0))}, 1, 1},              // 1.15 → 2 GPUs
		{"ceil per service", []scheduler.Workload{w(svc(101, 100, 1), svc(1, 100, 1))}, 3, 1}, // 3.45 → 4 GPUs
		{"min replicas", []scheduler.Workload{w(svc(1, 100, 3))}, 3, 1},
		{"exactly 8 GPUs", []scheduler.Workload{w(svc(700, 100, 1))}, 7, 2},                           // 8.05 → 9 GPUs
		{"max over workloads", []scheduler.Workload{w(svc(100, 100, 1)), w(svc(2000, 100, 1))}, 1, 3}, // 20 → 23 GPUs
		{"no 7g rate: best rate", []scheduler.Workload{w(scheduler.Service{Demand: 250, Throughput: []scheduler.Rate{{GPUModel: GPUModel, Profile: "1g.10gb", RPS: 100}}})}, 3, 1},
		{"empty", []scheduler.Workload{{}}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := WholeGPUReplicas(c.workloads[0]); got != c.replicas {
				t.Errorf("WholeGPUReplicas = %d, want %d", got, c.replicas)
			}
			cl := SizeCluster(c.workloads...)
			if len(cl.Nodes) != c.nodes {
				t.Fatalf("%d nodes, want %d", len(cl.Nodes), c.nodes)
			}
			for i, n := range cl.Nodes {
				if n.Name != fmt.Sprintf("node-%04d", i) || len(n.GPUs) != GPUsPerNode {
					t.Fatalf("node %d: %q with %d GPUs", i, n.Name, len(n.GPUs))
				}
				for g, gpu := range n.GPUs {
					if gpu.Index != g || gpu.Model != GPUModel || gpu.Cordoned || len(gpu.Slices) != 0 {
						t.Fatalf("node %d GPU %d: %+v", i, g, gpu)
					}
				}
			}
		})
	}
	// Every scenario's cluster has the headroom for its largest workload,
	// rounded up to whole nodes.
	ss, err := Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		most := WholeGPUReplicas(s.Workload)
		for _, st := range s.Steps {
			most = max(most, WholeGPUReplicas(st.Workload))
		}
		need := float64(most) * ClusterHeadroomPercent / 100
		if gpus := float64(countGPUs(s.Cluster)); gpus < need || gpus >= need+GPUsPerNode+1 {
			t.Errorf("%s: %v GPUs, want ⌈%v⌉ rounded up to whole nodes", s.Name, gpus, need)
		}
	}
}

func TestScenarioWithSeed(t *testing.T) {
	for _, name := range []string{"zipf200", "dynamic"} {
		own := mustScenario(t, name)
		same, err := ScenarioWithSeed(name, own.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(same, own) {
			t.Errorf("%s with its own seed differs from Scenarios(%q)", name, name)
		}
		other, err := ScenarioWithSeed(name, own.Seed+1)
		if err != nil {
			t.Fatal(err)
		}
		if other.Seed != own.Seed+1 || other.Name != name {
			t.Errorf("%s seed %d: got %s seed %d", name, own.Seed+1, other.Name, other.Seed)
		}
		if reflect.DeepEqual(other.Workload, own.Workload) && reflect.DeepEqual(other.Steps, own.Steps) {
			t.Errorf("%s: another seed gives the same scenario", name)
		}
	}
	// dynamic's seed changes the steps only.
	a, _ := ScenarioWithSeed("dynamic", 3)
	if b := mustScenario(t, "dynamic"); !reflect.DeepEqual(a.Workload, b.Workload) {
		t.Error("dynamic's initial workload depends on the seed")
	}
	for _, name := range []string{"zipf2000", "zipf20000", "dynamic"} {
		if !Seeded(name) {
			t.Errorf("Seeded(%q) = false", name)
		}
	}
	for _, c := range []struct {
		name string
		seed uint64
		msg  string
	}{
		{"s6", 5, `scenario "s6" has no seed`},
		{"zipf7", 5, `scenario "zipf7" has no seed`},
		{"zipf200", 0, "seed 0"},
	} {
		if _, err := ScenarioWithSeed(c.name, c.seed); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ScenarioWithSeed(%q, %d): err = %v, want %q", c.name, c.seed, err, c.msg)
		}
	}
}
