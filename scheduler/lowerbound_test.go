package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// lbCluster returns a one-node cluster with n GPUs of each given model.
func lbCluster(n int, models ...string) Cluster {
	node := Node{Name: "node-0"}
	for _, m := range models {
		for i := 0; i < n; i++ {
			node.GPUs = append(node.GPUs, GPU{Index: len(node.GPUs), Model: m})
		}
	}
	return Cluster{Nodes: []Node{node}}
}

// a100 builds a service whose rates are given on a100-80gb profiles.
func a100(name string, demand float64, rates map[string]float64) Service {
	s := Service{Name: name, Demand: demand}
	for _, p := range []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"} {
		if v, ok := rates[p]; ok {
			s.Throughput = append(s.Throughput, Rate{GPUModel: "a100-80gb", Profile: p, RPS: v})
		}
	}
	return s
}

// s6Workload is scenario S6 of the scheduling reference: the 11 ParvaGPU
// models with the NoMPS throughputs of the S1/S2/S6 latency row (§6.3)
// and S6 demands (39,342 req/s in all).
func s6Workload() Workload {
	rows := []struct {
		name   string
		demand float64
		t      [5]float64 // 1g 2g 3g 4g 7g
	}{
		{"bert", 1264, [5]float64{135, 204, 243, 271, 322}},
		{"densenet121", 3342, [5]float64{323, 613, 1039, 1198, 2009}},
		{"densenet169", 5260, [5]float64{256, 482, 1461, 1619, 1702}},
		{"densenet201", 2269, [5]float64{186, 382, 600, 695, 1252}},
		{"inceptionv3", 5722, [5]float64{584, 1149, 1794, 2126, 3273}},
		{"mobilenetv2", 7513, [5]float64{745, 1416, 2301, 2622, 4020}},
		{"resnet101", 2811, [5]float64{253, 516, 864, 1026, 1745}},
		{"resnet152", 2010, [5]float64{184, 374, 608, 739, 1261}},
		{"resnet50", 4196, [5]float64{412, 818, 1329, 1548, 2551}},
		{"vgg16", 2659, [5]float64{262, 521, 832, 1008, 1685}},
		{"vgg19", 2296, [5]float64{225, 447, 707, 874, 1461}},
	}
	var w Workload
	for _, r := range rows {
		w.Services = append(w.Services, a100(r.name, r.demand, map[string]float64{
			"1g.10gb": r.t[0], "2g.20gb": r.t[1], "3g.40gb": r.t[2], "4g.40gb": r.t[3], "7g.80gb": r.t[4],
		}))
	}
	return w
}

func TestLowerBoundHandComputed(t *testing.T) {
	cat := migconfig.Builtin()
	tiny := func(n int) Workload {
		var w Workload
		for i := 0; i < n; i++ {
			w.Services = append(w.Services, a100(fmt.Sprintf("tiny-%d", i), 10, map[string]float64{"1g.10gb": 200}))
		}
		return w
	}
	tests := []struct {
		name          string
		w             Workload
		lb1, lb2, lb3 int
		lp2, lp3      float64
		prices        map[string]float64 // a100-80gb profile → π, checked when set
	}{
		{
			// 1g gives 200 per slice, 7g 1000/7: an all-1g GPU serves 1400.
			name: "one service 3000 req/s",
			w:    Workload{Services: []Service{a100("s", 3000, map[string]float64{"1g.10gb": 200, "7g.80gb": 1000})}},
			lb1:  3, lb2: 3, lb3: 3, lp2: 3000.0 / 1400, lp3: 3000.0 / 1400,
			prices: map[string]float64{"1g.10gb": 1.0 / 7},
		},
		{
			// 100 req/s is half a 1g instance; LB3 needs a whole one.
			name: "one small service",
			w:    Workload{Services: []Service{a100("s", 100, map[string]float64{"1g.10gb": 200, "7g.80gb": 1000})}},
			lb1:  1, lb2: 1, lb3: 1, lp2: 100.0 / 1400, lp3: 1.0 / 7,
		},
		{
			// Two tiny services need one 1g each: 2/7 of a GPU.
			name: "two tiny services",
			w:    tiny(2),
			lb1:  1, lb2: 1, lb3: 1, lp2: 20.0 / 1400, lp3: 2.0 / 7,
		},
		{
			// Eight tiny services need eight 1g instances: more than a GPU.
			name: "eight tiny services",
			w:    tiny(8),
			lb1:  1, lb2: 1, lb3: 2, lp2: 80.0 / 1400, lp3: 8.0 / 7,
			prices: map[string]float64{"1g.10gb": 1.0 / 7},
		},
		{
			// MinReplicas 10 on one tiny service: ten 1g instances.
			name: "min replicas",
			w: Workload{Services: []Service{func() Service {
				s := a100("s", 10, map[string]float64{"1g.10gb": 200})
				s.MinReplicas = 10
				return s
			}()}},
			lb1: 1, lb2: 1, lb3: 2, lp2: 10.0 / 1400, lp3: 10.0 / 7,
		},
		{
			// 30 GiB replicas do not fit 1g.10gb: 3g+3g (1200/GPU) or 7g
			// (1000/GPU) remain, so 1400 req/s needs 7/6 GPU. LB1 still
			// sees 3g's 200 per slice.
			name: "memory excludes 1g",
			w: Workload{Services: []Service{func() Service {
				s := a100("big", 1400, map[string]float64{"1g.10gb": 200, "3g.40gb": 600, "7g.80gb": 1000})
				s.MemoryMiB = 30000
				return s
			}()}},
			lb1: 1, lb2: 2, lb3: 2, lp2: 1400.0 / 1200, lp3: 1400.0 / 1200,
		},
		{
			// Without the memory floor 1g gives 1400 per GPU.
			name: "memory allows 1g",
			w:    Workload{Services: []Service{a100("big", 1400, map[string]float64{"1g.10gb": 200, "3g.40gb": 600, "7g.80gb": 1000})}},
			lb1:  1, lb2: 1, lb3: 1, lp2: 1, lp3: 1,
		},
		{
			// A 3g+4g GPU: 4g serves a (1000 on 4g only), 3g serves b (600
			// on 3g only); each needs one instance, so one GPU holds both.
			name: "3g plus 4g",
			w: Workload{Services: []Service{
				a100("a", 1000, map[string]float64{"4g.40gb": 1000}),
				a100("b", 600, map[string]float64{"3g.40gb": 600}),
			}},
			lb1: 1, lb2: 1, lb3: 1, lp2: 1, lp3: 1,
		},
		{
			name: "zero demand is ignored",
			w:    Workload{Services: []Service{a100("idle", 0, map[string]float64{"7g.80gb": 1000})}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := LowerBound(cat, lbCluster(4, "a100-80gb"), tt.w)
			if err != nil {
				t.Fatal(err)
			}
			if b.LB1 != tt.lb1 || b.LB2 != tt.lb2 || b.LB3 != tt.lb3 {
				t.Errorf("LB1/LB2/LB3 = %d/%d/%d, want %d/%d/%d", b.LB1, b.LB2, b.LB3, tt.lb1, tt.lb2, tt.lb3)
			}
			if !lbClose(b.LP2, tt.lp2) || !lbClose(b.LP3, tt.lp3) {
				t.Errorf("LP2/LP3 = %.9g/%.9g, want %.9g/%.9g", b.LP2, b.LP3, tt.lp2, tt.lp3)
			}
			for prof, want := range tt.prices {
				got, ok := b.Prices[Resource{GPUModel: "a100-80gb", Profile: prof}]
				if !ok || !lbClose(got, want) {
					t.Errorf("price of %s = %v (present %v), want %v", prof, got, ok, want)
				}
			}
			if len(b.Unservable) != 0 {
				t.Errorf("Unservable = %v, want none", b.Unservable)
			}
		})
	}
}

func TestLowerBoundUnservable(t *testing.T) {
	w := Workload{Services: []Service{
		a100("ok", 1400, map[string]float64{"1g.10gb": 200}),
		{Name: "h100-only", Demand: 50, Throughput: []Rate{{GPUModel: "h100-80gb", Profile: "1g.10gb", RPS: 300}}},
		func() Service {
			s := a100("too-big", 50, map[string]float64{"1g.10gb": 200, "7g.80gb": 1000})
			s.MemoryMiB = 100000
			return s
		}(),
		a100("idle-h100-only", 0, nil),
	}}
	b, err := LowerBound(migconfig.Builtin(), lbCluster(2, "a100-80gb"), w)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h100-only", "too-big"}; !slices.Equal(b.Unservable, want) {
		t.Errorf("Unservable = %v, want %v", b.Unservable, want)
	}
	if b.LB1 != 1 || b.LB2 != 1 || b.LB3 != 1 || !lbClose(b.LP3, 1) {
		t.Errorf("bound %+v, want 1/1/1 with LP3 = 1", b)
	}
	if _, ok := b.Prices[Resource{GPUModel: "a100-80gb", Profile: "7g.80gb"}]; ok {
		t.Errorf("7g.80gb priced, but only too-big could use it: %v", b.Prices)
	}
}

func TestLowerBoundCordonedGPUsDoNotCount(t *testing.T) {
	c := lbCluster(1, "a100-80gb", "h100-80gb")
	c.Nodes[0].GPUs[1].Cordoned = true // the H100
	w := Workload{Services: []Service{{Name: "s", Demand: 100, Throughput: []Rate{
		{GPUModel: "h100-80gb", Profile: "7g.80gb", RPS: 1000},
	}}}}
	b, err := LowerBound(migconfig.Builtin(), c, w)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Unservable, []string{"s"}) || b.LB3 != 0 {
		t.Errorf("bound %+v, want s unservable and LB3 0", b)
	}
}

func TestLowerBoundErrors(t *testing.T) {
	cat := migconfig.Builtin()
	ok := a100("s", 10, map[string]float64{"1g.10gb": 200})
	tests := []struct {
		name string
		cat  *migconfig.Catalog
		c    Cluster
		w    Workload
	}{
		{"nil catalog", nil, lbCluster(1, "a100-80gb"), Workload{Services: []Service{ok}}},
		{"unknown GPU model", cat, lbCluster(1, "tpu-v9"), Workload{Services: []Service{ok}}},
		{"unknown profile", cat, lbCluster(1, "a100-80gb"), Workload{Services: []Service{{Name: "s", Demand: 1,
			Throughput: []Rate{{GPUModel: "a100-80gb", Profile: "5g.50gb", RPS: 1}}}}}},
		{"NaN demand", cat, lbCluster(1, "a100-80gb"), Workload{Services: []Service{a100("s", math.NaN(), nil)}}},
		{"negative demand", cat, lbCluster(1, "a100-80gb"), Workload{Services: []Service{a100("s", -1, nil)}}},
		{"infinite rate", cat, lbCluster(1, "a100-80gb"), Workload{Services: []Service{a100("s", 1, map[string]float64{"1g.10gb": math.Inf(1)})}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := LowerBound(tt.cat, tt.c, tt.w); err == nil {
				t.Errorf("no error, bound %+v", b)
			}
		})
	}
}

func TestLowerBoundMixedFleet(t *testing.T) {
	cat := migconfig.Builtin()
	c := lbCluster(2, "a100-80gb", "h100-80gb")
	rate := func(model, profile string, rps float64) Rate {
		return Rate{GPUModel: model, Profile: profile, RPS: rps}
	}
	t.Run("faster model wins", func(t *testing.T) {
		// An H100 all-1g serves 2100, an A100 1400: 4200 req/s is two H100s.
		w := Workload{Services: []Service{{Name: "s", Demand: 4200, Throughput: []Rate{
			rate("a100-80gb", "1g.10gb", 200), rate("h100-80gb", "1g.10gb", 300),
		}}}}
		b, err := LowerBound(cat, c, w)
		if err != nil {
			t.Fatal(err)
		}
		if b.LB1 != 2 || b.LB2 != 2 || b.LB3 != 2 || !lbClose(b.LP2, 2) || !lbClose(b.LP3, 2) {
			t.Errorf("bound %+v, want 2/2/2 with LP 2", b)
		}
		h := b.Prices[Resource{GPUModel: "h100-80gb", Profile: "1g.10gb"}]
		if !lbClose(h, 1.0/7) {
			t.Errorf("h100 1g price %v, want 1/7", h)
		}
		if _, ok := b.Prices[Resource{GPUModel: "a100-80gb", Profile: "1g.10gb"}]; !ok {
			t.Errorf("a100 1g has no price: %v", b.Prices)
		}
	})
	t.Run("models share the objective", func(t *testing.T) {
		// a runs only on A100 7g (1 GPU per 1000), b only on H100 3g
		// (two per GPU): 1500 + 900 req/s → 1.5 + 0.75 GPUs.
		w := Workload{Services: []Service{
			{Name: "a", Demand: 1500, Throughput: []Rate{rate("a100-80gb", "7g.80gb", 1000)}},
			{Name: "b", Demand: 900, Throughput: []Rate{rate("h100-80gb", "3g.40gb", 600)}},
		}}
		b, err := LowerBound(cat, c, w)
		if err != nil {
			t.Fatal(err)
		}
		if !lbClose(b.LP2, 2.25) || !lbClose(b.LP3, 2.25) || b.LB2 != 3 || b.LB3 != 3 {
			t.Errorf("bound %+v, want LP 2.25 and LB 3", b)
		}
	})
	t.Run("agrees with the direct LP", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 11))
		for trial := 0; trial < 30; trial++ {
			w := lbRandomWorkload(rng, 1+rng.IntN(10), []string{"a100-80gb", "h100-80gb"})
			lbCheckAgainstDirect(t, cat, c, w)
		}
	})
}

// lbRandomWorkload draws n services with random rates on the base
// profiles of the given models (each present with probability 0.7),
// random demands over four orders of magnitude, random MinReplicas and,
// sometimes, a memory floor.
func lbRandomWorkload(rng *rand.Rand, n int, models []string) Workload {
	profiles := []struct {
		name string
		g    float64
	}{{"1g.10gb", 1}, {"2g.20gb", 2}, {"3g.40gb", 3}, {"4g.40gb", 4}, {"7g.80gb", 7}}
	var w Workload
	for i := 0; i < n; i++ {
		s := Service{Name: fmt.Sprintf("svc-%d", i), Demand: math.Pow(10, 4*rng.Float64())}
		if rng.IntN(4) == 0 {
			s.MinReplicas = rng.IntN(5)
		}
		if rng.IntN(6) == 0 {
			s.MemoryMiB = 5000 + rng.IntN(40000)
		}
		for _, m := range models {
			base := 50 + 400*rng.Float64()
			for _, p := range profiles {
				if rng.Float64() < 0.7 {
					// Sub- to super-linear scaling with the slice size.
					rps := base * math.Pow(p.g, 0.5+0.7*rng.Float64())
					s.Throughput = append(s.Throughput, Rate{GPUModel: m, Profile: p.name, RPS: rps})
				}
			}
		}
		w.Services = append(w.Services, s)
	}
	return w
}

// lbCheckAgainstDirect compares LowerBound's LP values with the direct
// standard-form LP and checks the bounds' order and validity.
func lbCheckAgainstDirect(t *testing.T, cat *migconfig.Catalog, c Cluster, w Workload) {
	t.Helper()
	b, err := LowerBound(cat, c, w)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newLBProblem(cat, c, w)
	if err != nil {
		t.Fatal(err)
	}
	want2, err := p.directLP(false)
	if err != nil {
		t.Fatal(err)
	}
	want3, err := p.directLP(true)
	if err != nil {
		t.Fatal(err)
	}
	if !lbClose(b.LP2, want2) || !lbClose(b.LP3, want3) {
		t.Errorf("%d services: LP2/LP3 = %.10g/%.10g, direct LP %.10g/%.10g", len(w.Services), b.LP2, b.LP3, want2, want3)
	}
	if !(b.LB1 <= b.LB2 && b.LB2 <= b.LB3) {
		t.Errorf("bounds out of order: %+v", b)
	}
	if b.LB3 != roundUpGPUs(want3) || b.LB2 != max(roundUpGPUs(want2), b.LB1) {
		t.Errorf("LB2/LB3 = %d/%d, direct LP rounds to %d/%d", b.LB2, b.LB3, roundUpGPUs(want2), roundUpGPUs(want3))
	}
	lbCheckPrices(t, p, b)
}

// lbCheckPrices checks that the prices are feasible duals: non-negative,
// no configuration costs more than one GPU, and every resource has one.
func lbCheckPrices(t *testing.T, p *lbProblem, b Bound) {
	t.Helper()
	if len(b.Prices) != len(p.resources) {
		t.Errorf("%d prices for %d resources", len(b.Prices), len(p.resources))
	}
	for r, v := range b.Prices {
		if v < 0 {
			t.Errorf("price of %s is %v < 0", r, v)
		}
	}
	for _, n := range p.configs {
		dot := 0.0
		for r, k := range n {
			dot += k * b.Prices[p.resources[r]]
		}
		if dot > 1+1e-9 {
			t.Errorf("a configuration costs %v GPUs at the prices", dot)
		}
	}
}

// lbClose reports whether a and b agree to 1e-6, relative to the larger.
func lbClose(a, b float64) bool {
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestLowerBoundMatchesDirectLP(t *testing.T) {
	cat := migconfig.Builtin()
	c := lbCluster(8, "a100-80gb")
	rng := rand.New(rand.NewPCG(2024, 9))
	trials := 200
	if testing.Short() {
		trials = 30
	}
	for trial := 0; trial < trials; trial++ {
		w := lbRandomWorkload(rng, 1+rng.IntN(12), []string{"a100-80gb"})
		lbCheckAgainstDirect(t, cat, c, w)
		if t.Failed() {
			t.Fatalf("trial %d failed; workload %+v", trial, w)
		}
	}
}

func TestLowerBoundS6(t *testing.T) {
	cat := migconfig.Builtin()
	c := lbCluster(32, "a100-80gb")
	w := s6Workload()
	lbCheckAgainstDirect(t, cat, c, w)
	b, err := LowerBound(cat, c, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("S6: LB1 %d, LB2 %d (LP %.6f), LB3 %d (LP %.6f)", b.LB1, b.LB2, b.LP2, b.LB3, b.LP3)
	for _, r := range slices.SortedFunc(func(yield func(Resource) bool) {
		for r := range b.Prices {
			if !yield(r) {
				return
			}
		}
	}, func(a, b Resource) int { return lbCmp(a.String(), b.String()) }) {
		t.Logf("  price %s = %.6f", r, b.Prices[r])
	}
}

func lbCmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lbLongTail is the Zipf long tail of the benchmark: n tenants, each a
// uniformly random one of the 11 S6 models, with demand share ∝ i^−1.1 of
// k times S6's total.
func lbLongTail(n int, k float64, seed uint64) Workload {
	base := s6Workload()
	rng := rand.New(rand.NewPCG(seed, 1))
	total := 0.0
	for _, s := range base.Services {
		total += s.Demand
	}
	norm := 0.0
	for i := 1; i <= n; i++ {
		norm += math.Pow(float64(i), -1.1)
	}
	w := Workload{Services: make([]Service, n)}
	for i := range w.Services {
		s := base.Services[rng.IntN(len(base.Services))]
		s.Name = fmt.Sprintf("tenant-%d", i)
		s.Demand = k * total * math.Pow(float64(i+1), -1.1) / norm
		w.Services[i] = s
	}
	return w
}

func TestLowerBoundLongTail(t *testing.T) {
	cat := migconfig.Builtin()
	c := lbCluster(64, "a100-80gb")
	for _, n := range []int{200, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := lbLongTail(n, 1, 42)
			b, err := LowerBound(cat, c, w)
			if err != nil {
				t.Fatal(err)
			}
			if !(b.LB1 <= b.LB2 && b.LB2 <= b.LB3) || b.LP3 < b.LP2-1e-6 {
				t.Errorf("bounds out of order: %+v", b)
			}
			// Every tenant needs an instance: at least n 1g slices.
			if float64(b.LB3) < float64(n)/7 {
				t.Errorf("LB3 %d below the one-instance floor %d/7", b.LB3, n)
			}
			p, err := newLBProblem(cat, c, w)
			if err != nil {
				t.Fatal(err)
			}
			lbCheckPrices(t, p, b)
			t.Logf("%d tenants: LB1 %d, LB2 %d (%.4f), LB3 %d (%.4f)", n, b.LB1, b.LB2, b.LP2, b.LB3, b.LP3)
		})
	}
}

// TestLowerBoundSmallTailMatchesDirect checks the cutting planes against
// the direct LP on a 30-tenant long tail, where LB3's floor binds.
func TestLowerBoundSmallTailMatchesDirect(t *testing.T) {
	lbCheckAgainstDirect(t, migconfig.Builtin(), lbCluster(8, "a100-80gb"), lbLongTail(30, 1, 5))
}

func BenchmarkLowerBound(b *testing.B) {
	cat := migconfig.Builtin()
	c := lbCluster(64, "a100-80gb")
	for _, n := range []int{11, 200, 2000, 20000} {
		w := lbLongTail(n, 10, 42)
		if n == 11 {
			w = s6Workload()
		}
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) { lbBench(b, cat, c, w) })
	}
	mixed := lbCluster(32, "a100-80gb", "h100-80gb")
	w := lbRandomWorkload(rand.New(rand.NewPCG(1, 2)), 20000, []string{"a100-80gb", "h100-80gb"})
	b.Run("mixed/services=20000", func(b *testing.B) { lbBench(b, cat, mixed, w) })
}

// lbBench times LowerBound and reports the cutting-plane iterations of
// LB2 and LB3.
func lbBench(b *testing.B, cat *migconfig.Catalog, c Cluster, w Workload) {
	p, err := newLBProblem(cat, c, w)
	if err != nil {
		b.Fatal(err)
	}
	_, _, it2 := p.maximizeDual(false)
	_, _, it3 := p.maximizeDual(true)
	for b.Loop() {
		if _, err := LowerBound(cat, c, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(it2), "iter-LB2")
	b.ReportMetric(float64(it3), "iter-LB3")
}
