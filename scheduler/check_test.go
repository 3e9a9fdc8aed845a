package scheduler

import (
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestCheckReportsEveryBadGPU(t *testing.T) {
	cat := migconfig.Builtin()
	c := testCluster(3)
	w := Workload{Services: []Service{{Name: "a", Demand: 100, Throughput: rates(100, 0, 300, 0, 0)}}}
	overlap := []Slice{
		{Profile: "3g.40gb", Placement: migconfig.Placement{Start: 4, Size: 4}, Service: "a"},
		{Profile: "1g.10gb", Placement: migconfig.Placement{Start: 4, Size: 1}},
	}
	good := []Slice{
		{Profile: "3g.40gb", Placement: migconfig.Placement{Start: 4, Size: 4}, Service: "a"},
		{Profile: "1g.10gb", Placement: migconfig.Placement{Start: 0, Size: 1}},
	}
	plan := Plan{}
	for i, slices := range [][]Slice{overlap, good, overlap} {
		plan.GPUs = append(plan.GPUs, GPUPlan{Node: "node-0", Index: i, Model: "a100-80gb", Slices: slices})
	}
	err := Check(cat, c, w, plan, Options{Fresh: true})
	if err == nil {
		t.Fatal("overlapping slices passed Check")
	}
	// The same bad layout on two GPUs is reported on both, the good one
	// on neither.
	for _, want := range []string{"node-0/gpu0:", "node-0/gpu2:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "node-0/gpu1:") {
		t.Errorf("error names the legal GPU: %v", err)
	}
	plan.GPUs[0].Slices, plan.GPUs[2].Slices = good, good
	if err := Check(cat, c, w, plan, Options{Fresh: true}); err != nil {
		t.Fatalf("legal plan: %v", err)
	}
}
