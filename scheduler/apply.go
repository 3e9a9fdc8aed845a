package scheduler

import (
	"fmt"
	"slices"
)

// SameLayout reports whether two layouts have the same MIG instances
// (profile and placement), whatever replicas run on them.
func SameLayout(a, b []Slice) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(s Slice) string { return fmt.Sprintf("%s@%s", s.Profile, s.Placement) }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

type gpuID struct {
	node  string
	index int
}

// Applied returns the cluster as it runs once the plan is carried out:
// every GPU the plan lists carries the plan's slices and replicas; GPUs it
// does not list keep theirs. c is not modified.
func (p Plan) Applied(c Cluster) Cluster {
	planned := make(map[gpuID][]Slice, len(p.GPUs))
	for _, g := range p.GPUs {
		planned[gpuID{g.Node, g.Index}] = g.Slices
	}
	out := Cluster{Nodes: make([]Node, len(c.Nodes))}
	for i, n := range c.Nodes {
		node := Node{Name: n.Name, GPUs: make([]GPU, len(n.GPUs))}
		for j, g := range n.GPUs {
			if s, ok := planned[gpuID{n.Name, g.Index}]; ok {
				g.Slices = slices.Clone(s)
			} else {
				g.Slices = slices.Clone(g.Slices)
			}
			node.GPUs[j] = g
		}
		out.Nodes[i] = node
	}
	return out
}

// LayoutChanges compares the cluster's layouts with the plan's and counts
// the GPUs in use on both sides whose instances differ (changed), the
// empty GPUs that get a layout (added) and the GPUs left empty (released):
// the definitions of Plan's ChangedGPUs, AddedGPUs and ReleasedGPUs.
func LayoutChanges(c Cluster, p Plan) (changed, added, released int) {
	current := map[gpuID][]Slice{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			current[gpuID{n.Name, g.Index}] = g.Slices
		}
	}
	for _, g := range p.GPUs {
		cur := current[gpuID{g.Node, g.Index}]
		switch {
		case SameLayout(cur, g.Slices):
		case len(cur) == 0:
			added++
		case len(g.Slices) == 0:
			released++
		default:
			changed++
		}
	}
	return changed, added, released
}
