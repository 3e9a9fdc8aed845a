package scheduler

import (
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestAppliedAndLayoutChanges(t *testing.T) {
	at := func(profile string, start, size int, service string) Slice {
		return Slice{Profile: profile, Placement: migconfig.Placement{Start: start, Size: size}, Service: service}
	}
	c := Cluster{Nodes: []Node{{Name: "n", GPUs: []GPU{
		{Index: 0, Model: "a100-80gb", Slices: []Slice{at("7g.80gb", 0, 8, "a")}}, // re-laid out
		{Index: 1, Model: "a100-80gb"},                                            // gets a layout
		{Index: 2, Model: "a100-80gb", Slices: []Slice{at("3g.40gb", 4, 4, "b")}}, // emptied
		{Index: 3, Model: "a100-80gb", Slices: []Slice{at("3g.40gb", 0, 4, "c")}}, // replica changes only
		{Index: 4, Model: "a100-80gb", Slices: []Slice{at("1g.10gb", 6, 1, "")}},  // not in the plan
	}}}}
	p := Plan{GPUs: []GPUPlan{
		{Node: "n", Index: 0, Slices: []Slice{at("3g.40gb", 0, 4, "a"), at("3g.40gb", 4, 4, "a")}},
		{Node: "n", Index: 1, Slices: []Slice{at("1g.10gb", 0, 1, "d")}},
		{Node: "n", Index: 2},
		{Node: "n", Index: 3, Slices: []Slice{at("3g.40gb", 0, 4, "e")}},
	}}
	if changed, added, released := LayoutChanges(c, p); changed != 1 || added != 1 || released != 1 {
		t.Errorf("LayoutChanges = %d changed, %d added, %d released; want 1, 1, 1", changed, added, released)
	}
	got := p.Applied(c)
	want := [][]Slice{p.GPUs[0].Slices, p.GPUs[1].Slices, nil, p.GPUs[3].Slices, c.Nodes[0].GPUs[4].Slices}
	for i, g := range got.Nodes[0].GPUs {
		if !SameLayout(g.Slices, want[i]) || (len(want[i]) > 0 && g.Slices[0].Service != want[i][0].Service) {
			t.Errorf("gpu %d after apply: %v, want %v", i, g.Slices, want[i])
		}
	}
	got.Nodes[0].GPUs[4].Slices[0].Service = "x"
	if c.Nodes[0].GPUs[4].Slices[0].Service != "" {
		t.Error("Applied modified its input")
	}
	if SameLayout([]Slice{at("1g.10gb", 0, 1, "")}, []Slice{at("1g.10gb", 1, 1, "")}) {
		t.Error("SameLayout ignores placements")
	}
}
