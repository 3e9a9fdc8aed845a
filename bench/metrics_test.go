package bench

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

func at(start, size int) migconfig.Placement { return migconfig.Placement{Start: start, Size: size} }

// blPlan returns a plan for blCluster(n) with the given slices on the
// first GPUs.
func blPlan(n int, gpus ...[]scheduler.Slice) scheduler.Plan {
	c := blCluster(n)
	var p scheduler.Plan
	for _, nd := range c.Nodes {
		for _, g := range nd.GPUs {
			p.GPUs = append(p.GPUs, scheduler.GPUPlan{Node: nd.Name, Index: g.Index, Model: g.Model})
		}
	}
	for i, sl := range gpus {
		p.GPUs[i].Slices = sl
	}
	return p
}

func TestEvaluateMetrics(t *testing.T) {
	cat := migconfig.Builtin()
	w := blWorkload(blService("a", 10, bl3g, 9), blService("b", 4, bl2g, 5), withMin(blService("c", 0, bl1g, 1), 1))
	p := blPlan(4,
		[]scheduler.Slice{{Profile: bl3g, Placement: at(0, 4), Service: "a"}, {Profile: bl3g, Placement: at(4, 4)}},
		[]scheduler.Slice{{Profile: bl2g, Placement: at(0, 2), Service: "b"}},
	)
	m, err := Evaluate(cat, blCluster(4), w, p)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{
		GPUs: 2, ComputeSlices: 14, MemorySlices: 16,
		AllocatedComputeSlices: 5, AllocatedMemorySlices: 6,
		SliceUtilisation: 5.0 / 14, MemorySliceUtilisation: 6.0 / 16,
		Demand: 14, Capacity: 14, Served: 13,
		CapacityUtilisation: 13.0 / 14, DemandMet: 13.0 / 14, WorstServed: 0.9,
		ServicesShort: 1, ReplicasShort: 1, Replicas: 2,
		StrandedComputeSlices: 1 + 5, FreeSlices: 1,
	}
	got := m
	got.Services = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate\n got %+v\nwant %+v", got, want)
	}
	wantSvc := []ServiceMetrics{
		{Name: "a", Demand: 10, Capacity: 9, Served: 0.9, Replicas: 1, MinReplicas: 1},
		{Name: "b", Demand: 4, Capacity: 5, Served: 1, Replicas: 1, MinReplicas: 1},
		{Name: "c", Demand: 0, Capacity: 0, Served: 1, Replicas: 0, MinReplicas: 1},
	}
	for i, s := range m.Services {
		if s != wantSvc[i] {
			t.Errorf("service %d = %+v, want %+v", i, s, wantSvc[i])
		}
	}
}

func TestEvaluateEmptyPlan(t *testing.T) {
	m, err := Evaluate(migconfig.Builtin(), blCluster(2), blWorkload(), scheduler.Plan{})
	if err != nil {
		t.Fatal(err)
	}
	if m.GPUs != 0 || m.SliceUtilisation != 0 || m.DemandMet != 1 || m.WorstServed != 1 || m.CapacityUtilisation != 1 {
		t.Errorf("empty plan: %+v", m)
	}
}

func TestEvaluateWholeGPU(t *testing.T) {
	cat := migconfig.Builtin()
	w := blWorkload(blService("a", 25, bl7g, 10))
	p := WholeGPU(cat, blCluster(4), w)
	m, err := Evaluate(cat, blCluster(4), w, p)
	if err != nil {
		t.Fatal(err)
	}
	if m.GPUs != 3 || m.SliceUtilisation != 1 || m.MemorySliceUtilisation != 1 || m.StrandedComputeSlices != 0 || m.FreeSlices != 0 || m.DemandMet != 1 {
		t.Errorf("whole-gpu metrics: %+v", m)
	}
}

func TestEvaluateRefusesIllegalPlans(t *testing.T) {
	cat := migconfig.Builtin()
	w := blWorkload(blService("a", 10, bl1g, 2, bl2g, 5, bl3g, 9), scheduler.Service{Name: "big", Demand: 1, MemoryMiB: 30000,
		Throughput: []scheduler.Rate{{GPUModel: "a100-80gb", Profile: bl1g, RPS: 1}, {GPUModel: "a100-80gb", Profile: bl3g, RPS: 1}}})
	one := func(sl ...scheduler.Slice) scheduler.Plan { return blPlan(2, sl) }
	s := func(profile string, start, size int, svc string) scheduler.Slice {
		return scheduler.Slice{Profile: profile, Placement: at(start, size), Service: svc}
	}
	notInCluster := one(s(bl3g, 0, 4, "a"))
	notInCluster.GPUs[1].Node = "elsewhere"
	twice := one(s(bl3g, 0, 4, "a"))
	twice.GPUs[1] = twice.GPUs[0]
	wrongModel := one(s(bl3g, 0, 4, "a"))
	wrongModel.GPUs[0].Model = "h100-80gb"
	unknownModel := blCluster(2)
	unknownModel.Nodes[0].GPUs[0].Model = "v100"
	unknownModelPlan := one(s(bl3g, 0, 4, "a"))
	unknownModelPlan.GPUs[0].Model = "v100"

	tests := []struct {
		name    string
		cluster scheduler.Cluster
		plan    scheduler.Plan
		want    string
	}{
		{"GPU not in the cluster", blCluster(2), notInCluster, "not in the cluster"},
		{"GPU listed twice", blCluster(2), twice, "twice"},
		{"model differs from the cluster's", blCluster(2), wrongModel, "model"},
		{"model not in the catalog", unknownModel, unknownModelPlan, "not in the catalog"},
		{"unknown profile", blCluster(2), one(s("3g.20gb", 0, 4, "a")), "not a MIG profile"},
		{"no placement", blCluster(2), one(scheduler.Slice{Profile: bl3g, Service: "a"}), "no placement"},
		{"invalid placement", blCluster(2), one(s(bl3g, 2, 4, "a")), "cannot be placed"},
		{"wrong placement size", blCluster(2), one(s(bl3g, 0, 2, "a")), "cannot be placed"},
		{"overlapping placements", blCluster(2), one(s(bl2g, 0, 2, "a"), s(bl1g, 1, 1, "a")), "overlaps"},
		{"over MaxCount", blCluster(2), one(s("1g.10gb+me", 0, 1, ""), s("1g.10gb+me", 1, 1, "")), "maximum"},
		{"too many compute slices", blCluster(2), one(s("7g.80gb", 0, 8, ""), s(bl1g, 0, 1, "")), "compute slices"},
		{"unknown service", blCluster(2), one(s(bl3g, 0, 4, "ghost")), "not in the workload"},
		{"zero rate", blCluster(2), one(s(bl4g, 0, 4, "a")), "no throughput"},
		{"too little memory", blCluster(2), one(s(bl1g, 0, 1, "big")), "no throughput"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(cat, tc.cluster, w, tc.plan)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Evaluate error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}

	// The same workload with a legal plan passes.
	if _, err := Evaluate(cat, blCluster(2), w, one(s(bl3g, 4, 4, "big"), s(bl2g, 0, 2, "a"), s(bl1g, 2, 1, "a"))); err != nil {
		t.Fatalf("legal plan refused: %v", err)
	}
	// Invalid workloads are refused too.
	if _, err := Evaluate(cat, blCluster(2), blWorkload(blService("a", math.NaN())), scheduler.Plan{}); err == nil {
		t.Fatal("NaN demand accepted")
	}
}
