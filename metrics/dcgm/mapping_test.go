package dcgm

import (
	"slices"
	"testing"

	"github.com/tessera-gpu/tessera/metrics"
)

// A two-GPU node as DCGM's hierarchy lists it: DCGM GPU IDs 0 and 1 are
// NVML indexes 0 and 1, each GPU has GPU instances 1 and 2.
var testInstances = []gpuInstance{
	{EntityID: 0, GPUID: 0, GPUIndex: 0, GPUUUID: "GPU-aaaa", GPUInstanceID: 1, ProfileID: 9},
	{EntityID: 1, GPUID: 0, GPUIndex: 0, GPUUUID: "GPU-aaaa", GPUInstanceID: 2, ProfileID: 9},
	{EntityID: 8, GPUID: 1, GPUIndex: 1, GPUUUID: "GPU-bbbb", GPUInstanceID: 1, ProfileID: 19},
	{EntityID: 9, GPUID: 1, GPUIndex: 1, GPUUUID: "GPU-bbbb", GPUInstanceID: 2, ProfileID: 19},
}

func TestPlanFor(t *testing.T) {
	ref := func(uuid string, gpu int, gpuUUID string, gi int) metrics.SliceRef {
		return metrics.SliceRef{UUID: uuid, GPUIndex: gpu, GPUUUID: gpuUUID, GPUInstanceID: gi}
	}
	tests := []struct {
		name      string
		refs      []metrics.SliceRef
		instances []gpuInstance
		supported map[uint]bool
		entities  []uint
		slices    map[uint][]string
		missing   []string
	}{
		{
			name:     "nothing asked",
			entities: nil, slices: map[uint][]string{},
		},
		{
			name:     "by GPU UUID and GI id",
			refs:     []metrics.SliceRef{ref("MIG-1", 1, "GPU-bbbb", 2), ref("MIG-2", 0, "GPU-aaaa", 1)},
			entities: []uint{0, 9},
			slices:   map[uint][]string{0: {"MIG-2"}, 9: {"MIG-1"}},
		},
		{
			name:     "same GI id on two GPUs is two entities",
			refs:     []metrics.SliceRef{ref("MIG-1", 0, "GPU-aaaa", 1), ref("MIG-2", 1, "GPU-bbbb", 1)},
			entities: []uint{0, 8},
			slices:   map[uint][]string{0: {"MIG-1"}, 8: {"MIG-2"}},
		},
		{
			name:     "slice without GPU UUID matches by NVML index",
			refs:     []metrics.SliceRef{ref("MIG-1", 1, "", 1)},
			entities: []uint{8},
			slices:   map[uint][]string{8: {"MIG-1"}},
		},
		{
			name: "hierarchy without GPU UUID matches by NVML index",
			refs: []metrics.SliceRef{ref("MIG-1", 0, "GPU-aaaa", 2)},
			instances: []gpuInstance{
				{EntityID: 5, GPUID: 0, GPUIndex: 0, GPUInstanceID: 2},
			},
			entities: []uint{5},
			slices:   map[uint][]string{5: {"MIG-1"}},
		},
		{
			name: "GPU UUID wins over a renumbered NVML index",
			refs: []metrics.SliceRef{ref("MIG-1", 0, "GPU-bbbb", 1)},
			// DCGM numbers GPU-bbbb 1; our slice says index 0.
			entities: []uint{8},
			slices:   map[uint][]string{8: {"MIG-1"}},
		},
		{
			name:     "GPU UUID mismatch at the same index never matches",
			refs:     []metrics.SliceRef{ref("MIG-1", 0, "GPU-cccc", 1)},
			entities: nil, slices: map[uint][]string{},
			missing: []string{"MIG-1"},
		},
		{
			name:     "GI not in the hierarchy is missing",
			refs:     []metrics.SliceRef{ref("MIG-1", 0, "GPU-aaaa", 1), ref("MIG-2", 0, "GPU-aaaa", 7)},
			entities: []uint{0},
			slices:   map[uint][]string{0: {"MIG-1"}},
			missing:  []string{"MIG-2"},
		},
		{
			name:     "two compute instances of one GI share its entity",
			refs:     []metrics.SliceRef{ref("MIG-ci0", 0, "GPU-aaaa", 2), ref("MIG-ci1", 0, "GPU-aaaa", 2)},
			entities: []uint{1},
			slices:   map[uint][]string{1: {"MIG-ci0", "MIG-ci1"}},
		},
		{
			name:      "GPUs without profiling support are left out",
			refs:      []metrics.SliceRef{ref("MIG-1", 0, "GPU-aaaa", 1), ref("MIG-2", 1, "GPU-bbbb", 1)},
			supported: map[uint]bool{1: true},
			entities:  []uint{8},
			slices:    map[uint][]string{8: {"MIG-2"}},
			missing:   []string{"MIG-1"},
		},
		{
			name:     "no MIG instances at all",
			refs:     []metrics.SliceRef{ref("MIG-1", 0, "GPU-aaaa", 1)},
			entities: nil, slices: map[uint][]string{},
			instances: []gpuInstance{},
			missing:   []string{"MIG-1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			instances := tc.instances
			if instances == nil {
				instances = testInstances
			}
			// The hierarchy's order must not matter.
			reversed := slices.Clone(instances)
			slices.Reverse(reversed)
			for _, in := range [][]gpuInstance{instances, reversed} {
				p := planFor(tc.refs, in, tc.supported)
				var ids []uint
				for _, e := range p.entities {
					ids = append(ids, e.EntityID)
				}
				if !slices.Equal(ids, tc.entities) {
					t.Errorf("entities = %v, want %v", ids, tc.entities)
				}
				if len(p.slices) != len(tc.slices) {
					t.Errorf("slices = %v, want %v", p.slices, tc.slices)
				}
				for id, want := range tc.slices {
					if !slices.Equal(p.slices[id], want) {
						t.Errorf("slices[%d] = %v, want %v", id, p.slices[id], want)
					}
				}
				if !slices.Equal(p.missing, tc.missing) {
					t.Errorf("missing = %v, want %v", p.missing, tc.missing)
				}
			}
		})
	}
}

func TestPlanForDoesNotReorderItsInput(t *testing.T) {
	in := slices.Clone(testInstances)
	slices.Reverse(in)
	before := slices.Clone(in)
	planFor([]metrics.SliceRef{{UUID: "MIG-1", GPUIndex: 0, GPUInstanceID: 1}}, in, nil)
	if !slices.Equal(in, before) {
		t.Errorf("planFor reordered its input: %v, was %v", in, before)
	}
}

func TestDecideGroup(t *testing.T) {
	a, b := testInstances[0], testInstances[2]
	recreated := a
	recreated.ProfileID = 14 // same entity ID, another profile after a MIG reconfiguration
	moved := a
	moved.GPUInstanceID = 5
	tests := []struct {
		name    string
		have    bool
		watched []gpuInstance
		want    []gpuInstance
		action  groupAction
	}{
		{"nothing watched, nothing wanted", false, nil, nil, keepGroup},
		{"nothing watched, entities wanted", false, nil, []gpuInstance{a}, buildGroup},
		{"same entities", true, []gpuInstance{a, b}, []gpuInstance{a, b}, keepGroup},
		{"an entity added", true, []gpuInstance{a}, []gpuInstance{a, b}, rebuildGroup},
		{"an entity removed", true, []gpuInstance{a, b}, []gpuInstance{b}, rebuildGroup},
		{"same entity ID, another profile", true, []gpuInstance{a, b}, []gpuInstance{recreated, b}, rebuildGroup},
		{"same entity ID, another GI id", true, []gpuInstance{a}, []gpuInstance{moved}, rebuildGroup},
		{"group watched, nothing wanted", true, []gpuInstance{a}, nil, dropGroup},
		{"group watched, empty want", true, []gpuInstance{a}, []gpuInstance{}, dropGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideGroup(tc.have, tc.watched, tc.want); got != tc.action {
				t.Errorf("decideGroup = %v, want %v", got, tc.action)
			}
		})
	}
}

// TestPlanThenDecide runs the two steps the way Profile does across a MIG
// layout change: an unchanged hierarchy keeps the group, a new layout
// rebuilds it.
func TestPlanThenDecide(t *testing.T) {
	refs := []metrics.SliceRef{{UUID: "MIG-1", GPUIndex: 0, GPUUUID: "GPU-aaaa", GPUInstanceID: 1}}
	first := planFor(refs, testInstances, nil)
	if got := decideGroup(false, nil, first.entities); got != buildGroup {
		t.Fatalf("first call: %v, want build", got)
	}
	again := planFor(refs, testInstances, nil)
	if got := decideGroup(true, first.entities, again.entities); got != keepGroup {
		t.Fatalf("unchanged layout: %v, want keep", got)
	}
	// GI 1 on GPU 0 destroyed and recreated as a bigger instance, which
	// DCGM numbers differently.
	relaid := []gpuInstance{{EntityID: 3, GPUID: 0, GPUIndex: 0, GPUUUID: "GPU-aaaa", GPUInstanceID: 1, ProfileID: 5}}
	after := planFor(refs, relaid, nil)
	if got := decideGroup(true, first.entities, after.entities); got != rebuildGroup {
		t.Fatalf("new layout: %v, want rebuild", got)
	}
}

func TestGroupActionString(t *testing.T) {
	for a, want := range map[groupAction]string{keepGroup: "keep", buildGroup: "build", rebuildGroup: "rebuild", dropGroup: "drop", 42: "unknown"} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(a), got, want)
		}
	}
}
