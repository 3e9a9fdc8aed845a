package bench

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// Planner is a named planning algorithm: one of the baselines or the
// scheduler under test.
type Planner struct {
	// Name identifies the planner in reports ("whole-gpu", "greedy").
	Name string
	// Plan plans workload w on cluster c. It fails only on invalid input
	// (see CheckInput); a cluster too small for the demand gives a plan
	// whose ServicePlans say what is unmet.
	Plan func(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (scheduler.Plan, error)
}

// Baselines returns the baseline planners of scheduling.md §7.3, in a fixed
// order: "whole-gpu" (B0), "all-1g", "all-2g", "all-3g", "all-balanced"
// (B1) and "greedy" (B2). Each call returns a fresh slice.
//
// Every baseline plans fresh: current layouts and running replicas are
// ignored, cordoned GPUs and GPUs whose model is not in the catalog are
// left empty, and the plan has no Changes (LayoutChanged and ChangedGPUs
// are filled in; CapacityDip and LowerBound are left 0: not computed).
// Each is deterministic: the same input gives the same plan.
func Baselines() []Planner {
	wrap := func(name string, f func(*migconfig.Catalog, scheduler.Cluster, scheduler.Workload) scheduler.Plan) Planner {
		return Planner{Name: name, Plan: func(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) (scheduler.Plan, error) {
			if err := CheckInput(cat, c, w); err != nil {
				return scheduler.Plan{}, fmt.Errorf("%s: %w", name, err)
			}
			return f(cat, c, w), nil
		}}
	}
	return []Planner{
		wrap("whole-gpu", WholeGPU),
		wrap("all-1g", All1g),
		wrap("all-2g", All2g),
		wrap("all-3g", All3g),
		wrap("all-balanced", AllBalanced),
		wrap("greedy", Greedy),
	}
}

// CheckInput reports input that no planner can make sense of: a nil
// catalog, two GPUs with the same node and index, a service without a
// name or with a duplicate one, a negative or non-finite demand, a negative
// replica minimum, or a negative or non-finite throughput.
func CheckInput(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) error {
	if cat == nil {
		return errors.New("no GPU catalog")
	}
	seenGPU := map[gpuKey]bool{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			k := gpuKey{n.Name, g.Index}
			if seenGPU[k] {
				return fmt.Errorf("cluster lists %s twice", k)
			}
			seenGPU[k] = true
		}
	}
	_, err := serviceIndex(w)
	return err
}

// serviceIndex maps service names to their position in the workload and
// checks the services' figures.
func serviceIndex(w scheduler.Workload) (map[string]int, error) {
	idx := make(map[string]int, len(w.Services))
	for i, s := range w.Services {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("service %d has no name", i)
		case math.IsNaN(s.Demand) || math.IsInf(s.Demand, 0) || s.Demand < 0:
			return nil, fmt.Errorf("service %s: demand %v is not a finite non-negative rate", s.Name, s.Demand)
		case s.MinReplicas < 0:
			return nil, fmt.Errorf("service %s: negative minReplicas %d", s.Name, s.MinReplicas)
		}
		if _, dup := idx[s.Name]; dup {
			return nil, fmt.Errorf("service %s is listed twice", s.Name)
		}
		for _, t := range s.Throughput {
			if math.IsNaN(t.RPS) || math.IsInf(t.RPS, 0) || t.RPS < 0 {
				return nil, fmt.Errorf("service %s: throughput %v on %s/%s is not a finite non-negative rate", s.Name, t.RPS, t.GPUModel, t.Profile)
			}
		}
		idx[s.Name] = i
	}
	return idx, nil
}

// gpuKey names a GPU in the cluster.
type gpuKey struct {
	node  string
	index int
}

// String formats the key as "node/gpu3".
func (k gpuKey) String() string { return fmt.Sprintf("%s/gpu%d", k.node, k.index) }

// rateOn is what one replica of s serves on profile p of model m: the
// service's throughput on (m.Key, p.Name), or 0 when the profile has less
// memory than the service needs or the rate is not a positive number.
func rateOn(s scheduler.Service, m *migconfig.GPUModel, p *migconfig.Profile) float64 {
	if s.MemoryMiB > 0 && p.MemoryMiB < s.MemoryMiB {
		return 0
	}
	r := s.RateOn(scheduler.Resource{GPUModel: m.Key, Profile: p.Name})
	if !(r > 0) || math.IsInf(r, 0) {
		return 0
	}
	return r
}

// minReplicas is the least number of replicas service s must get: its
// MinReplicas, and at least one when it has demand.
func minReplicas(s scheduler.Service) int {
	if s.Demand > 0 {
		return max(s.MinReplicas, 1)
	}
	return max(s.MinReplicas, 0)
}

// covers reports whether capacity meets demand, allowing for the rounding
// of summed float rates (a relative 1e-9).
func covers(capacity, demand float64) bool {
	return capacity >= demand || demand-capacity <= 1e-9*math.Max(1, demand)
}

// isBase reports whether p is a plain profile: not "+me" and not the
// double-memory REV2 1g.
func isBase(p *migconfig.Profile) bool {
	return !p.HasMediaExtensions() && p.Index != migconfig.ProfileIndex1SliceRev2
}

// baseProfile returns model m's plain profile with g compute slices (g = 0:
// the whole GPU, which must also span every memory slice).
func baseProfile(m *migconfig.GPUModel, g int) (*migconfig.Profile, bool) {
	var best *migconfig.Profile
	for i := range m.Profiles {
		p := &m.Profiles[i]
		if !isBase(p) {
			continue
		}
		if g == 0 {
			if p.ComputeSlices != m.ComputeSlices || p.MemorySlices != m.MemorySlices {
				continue
			}
		} else if p.ComputeSlices != g {
			continue
		}
		if best == nil || p.MemorySlices < best.MemorySlices {
			best = p
		}
	}
	return best, best != nil
}

// ---------------------------------------------------------------------------
// Plan construction shared by the baselines.

// gpuState is one cluster GPU while a baseline plans it.
type gpuState struct {
	key     gpuKey
	model   string              // as the cluster names it
	m       *migconfig.GPUModel // nil when not in the catalog
	usable  bool                // in the catalog and not cordoned
	current []scheduler.Slice
	slices  []scheduler.Slice // planned
	used    uint16            // memory slices covered by planned slices
}

// builder holds what every baseline needs: the GPUs in cluster order, the
// workload and a reason per service for demand left unmet.
type builder struct {
	cat     *migconfig.Catalog
	cluster scheduler.Cluster
	w       scheduler.Workload
	gpus    []gpuState
	reasons []string
}

func newBuilder(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) *builder {
	b := &builder{cat: cat, cluster: c, w: w, reasons: make([]string, len(w.Services))}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			st := gpuState{key: gpuKey{n.Name, g.Index}, model: g.Model, current: g.Slices}
			if cat != nil {
				if m, ok := cat.ByKey(g.Model); ok {
					st.m = m
					st.usable = !g.Cordoned
				}
			}
			b.gpus = append(b.gpus, st)
		}
	}
	return b
}

// invalidPlan is what the plain baseline functions return for input that
// CheckInput refuses: every GPU unused and every service unmet.
func invalidPlan(c scheduler.Cluster, w scheduler.Workload, err error) scheduler.Plan {
	b := newBuilder(nil, c, w)
	for i := range b.reasons {
		b.reasons[i] = "invalid input: " + err.Error()
	}
	p := b.finish()
	for i := range p.Services {
		p.Services[i].Unmet = b.reasons[i]
	}
	return p
}

// add puts a slice on GPU g.
func (b *builder) add(g int, p *migconfig.Profile, pl migconfig.Placement, service string) {
	st := &b.gpus[g]
	st.slices = append(st.slices, scheduler.Slice{Profile: p.Name, Placement: pl, Service: service})
	st.used |= pl.Mask()
}

// finish assembles the plan: GPUs in cluster order with their slices by
// placement, GPUsUsed, LayoutChanged, and per service the capacity and
// replicas counted from the slices, with the recorded reason when the
// service is short.
func (b *builder) finish() scheduler.Plan {
	var p scheduler.Plan
	p.GPUs = make([]scheduler.GPUPlan, len(b.gpus))
	for i := range b.gpus {
		st := &b.gpus[i]
		sl := slices.Clone(st.slices)
		slices.SortStableFunc(sl, func(x, y scheduler.Slice) int {
			return cmp.Compare(x.Placement.Start, y.Placement.Start)
		})
		changed := !scheduler.SameLayout(st.current, sl)
		p.GPUs[i] = scheduler.GPUPlan{Node: st.key.node, Index: st.key.index, Model: st.model, Slices: sl, LayoutChanged: changed}
		if len(sl) > 0 {
			p.GPUsUsed++
		}
	}
	p.ChangedGPUs, p.AddedGPUs, p.ReleasedGPUs = scheduler.LayoutChanges(b.cluster, p)
	caps, reps := b.tally(p.GPUs)
	p.Services = make([]scheduler.ServicePlan, len(b.w.Services))
	for i, s := range b.w.Services {
		sp := scheduler.ServicePlan{Name: s.Name, Demand: s.Demand, Capacity: caps[i], Replicas: reps[i]}
		if !covers(caps[i], s.Demand) || reps[i] < minReplicas(s) {
			sp.Unmet = b.reasons[i]
			if sp.Unmet == "" {
				sp.Unmet = "out of GPUs"
			}
			sp.Unmet = fmt.Sprintf("%s (%.4g of %.4g req/s, %d of %d replicas)", sp.Unmet, caps[i], s.Demand, reps[i], minReplicas(s))
		}
		p.Services[i] = sp
	}
	return p
}

// tally counts each service's capacity and replicas on the planned GPUs.
func (b *builder) tally(gpus []scheduler.GPUPlan) ([]float64, []int) {
	caps := make([]float64, len(b.w.Services))
	reps := make([]int, len(b.w.Services))
	idx := map[string]int{}
	for i, s := range b.w.Services {
		if _, dup := idx[s.Name]; !dup {
			idx[s.Name] = i
		}
	}
	for gi, g := range gpus {
		m := b.gpus[gi].m
		for _, sl := range g.Slices {
			si, ok := idx[sl.Service]
			if !ok || m == nil {
				continue
			}
			if p, ok := m.ProfileByName(sl.Profile); ok {
				caps[si] += rateOn(b.w.Services[si], m, p)
				reps[si]++
			}
		}
	}
	return caps, reps
}

// ---------------------------------------------------------------------------
// B0 and B1: one fixed layout on every used GPU.

// slot is one instance of a static layout: a plain profile of G compute
// slices (0: the whole GPU) at a memory-slice start.
type slot struct {
	g, start int
}

// WholeGPU is baseline B0, MIG off: one replica per whole GPU, GPUs taken
// first-fit in cluster order, services in workload order, each service
// getting replicas until its capacity covers its demand and it has its
// minimum (MinReplicas, at least one with demand). On a homogeneous
// cluster that is replicas = max(MinReplicas, 1, ⌈d / T[7g]⌉).
//
// A whole GPU is represented as the model's full-size MIG profile at
// placement 0:<all memory slices> (7g.80gb at 0:8 on an A100-80GB), which
// is a legal layout, so Evaluate needs no special case for it; its rate is
// the service's rate on that profile. Caveat (scheduling.md §5): with MIG
// off the GPU keeps the SMs MIG mode disables (A100: 108 instead of 98,
// ≈10% more), so this baseline slightly understates what a MIG-off GPU
// serves; the report's sensitivity row scales T[7g] by 108/98.
func WholeGPU(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	return planStatic(cat, c, w, []slot{{0, 0}})
}

// All1g is baseline B1 with the all-1g layout: seven 1g at 0..6 on every
// used GPU. See AllBalanced for the assignment rule.
func All1g(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	return planStatic(cat, c, w, []slot{{1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}})
}

// All2g is baseline B1 with the all-2g layout: three 2g at 0, 2 and 4.
// See AllBalanced for the assignment rule.
func All2g(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	return planStatic(cat, c, w, []slot{{2, 0}, {2, 2}, {2, 4}})
}

// All3g is baseline B1 with the all-3g layout: two 3g at 0 and 4 (one
// compute slice stranded by construction). See AllBalanced for the
// assignment rule.
func All3g(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	return planStatic(cat, c, w, []slot{{3, 0}, {3, 4}})
}

// AllBalanced is baseline B1 with mig-parted's all-balanced layout: 2g at
// 0:2, 1g at 2 and 3, 3g at 4:4.
//
// The static baselines share one rule. Every used GPU gets the layout (a
// GPU whose model cannot hold it is not used); profiles are found in the
// catalog by compute slices (plain profiles: no +me, no double-memory 1g).
// Services are served one at a time in workload order, each until its
// capacity covers its demand and it has its minimum replicas. A service
// ranks the kinds of slice of the layout on which it has a positive rate by
// throughput per compute slice (ties: fewer compute slices first); each
// replica takes the first free slice of the best-ranked kind on an already
// used GPU (cluster order, then ascending start), falling back to the
// next kind, and only when no used GPU has a free slice it can run on
// opens the first unused GPU (cluster order) and takes that GPU's
// best-ranked slice. A service with no positive rate on the layout gets
// nothing and is reported unmet.
func AllBalanced(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	return planStatic(cat, c, w, []slot{{2, 0}, {1, 2}, {1, 3}, {3, 4}})
}

// template is a static layout resolved on one GPU model.
type template struct {
	m        *migconfig.GPUModel
	profiles []*migconfig.Profile
	places   []migconfig.Placement
}

// resolveTemplate finds the layout's profiles on model m and checks that
// the layout is legal there.
func resolveTemplate(m *migconfig.GPUModel, layout []slot) (template, bool) {
	t := template{m: m}
	var l migconfig.GPULayout
	l.MigEnabled = true
	for _, s := range layout {
		p, ok := baseProfile(m, s.g)
		if !ok {
			return template{}, false
		}
		pl := migconfig.Placement{Start: s.start, Size: p.MemorySlices}
		if !p.ValidPlacement(pl) {
			return template{}, false
		}
		t.profiles = append(t.profiles, p)
		t.places = append(t.places, pl)
		l.Instances = append(l.Instances, migconfig.Instance{Profile: p.ID, Placement: pl})
	}
	if migconfig.ValidateLayout(m, l) != nil {
		return template{}, false
	}
	return t, true
}

// resource is a kind of slice a service may run on, with its rank.
type resource struct {
	model   string // catalog key
	profile string
	g       int
	rate    float64
}

// resKey names a kind of slice: a profile of a GPU model.
type resKey struct{ model, profile string }

// rankStatic lists the kinds of slice of the static layout on which s has
// a positive rate, best first: highest throughput per compute slice, then
// fewest compute slices, then cluster order of the model and template
// order of the profile.
func rankStatic(s scheduler.Service, models []string, templates map[string]template) []resource {
	var ranked []resource
	for _, key := range models {
		t := templates[key]
		seen := map[string]bool{}
		for _, p := range t.profiles {
			if seen[p.Name] {
				continue
			}
			seen[p.Name] = true
			if r := rateOn(s, t.m, p); r > 0 {
				ranked = append(ranked, resource{model: key, profile: p.Name, g: p.ComputeSlices, rate: r})
			}
		}
	}
	slices.SortStableFunc(ranked, func(x, y resource) int {
		if c := cmp.Compare(y.rate/float64(y.g), x.rate/float64(x.g)); c != 0 {
			return c
		}
		return cmp.Compare(x.g, y.g)
	})
	return ranked
}

func planStatic(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload, layout []slot) scheduler.Plan {
	if err := CheckInput(cat, c, w); err != nil {
		return invalidPlan(c, w, err)
	}
	b := newBuilder(cat, c, w)

	// Resolve the layout once per model; GPUs whose model cannot hold it
	// are unusable.
	templates := map[string]template{}
	var models []string // catalog keys in order of first appearance
	for i := range b.gpus {
		st := &b.gpus[i]
		if !st.usable {
			continue
		}
		t, seen := templates[st.m.Key]
		if !seen {
			var ok bool
			if t, ok = resolveTemplate(st.m, layout); !ok {
				t = template{m: st.m}
			}
			templates[st.m.Key] = t
			models = append(models, st.m.Key)
		}
		if len(t.profiles) == 0 {
			st.usable = false
		}
	}

	// opened lists the used GPUs in the order opened; free[g] marks, per
	// slice of GPU g, whether it is still free.
	var opened []int
	free := map[int][]bool{}
	open := func(g int) {
		t := templates[b.gpus[g].m.Key]
		for k, p := range t.profiles {
			b.add(g, p, t.places[k], "")
		}
		free[g] = slices.Repeat([]bool{true}, len(t.profiles))
		opened = append(opened, g)
	}
	// firstFree returns the free slice of kind r on GPU g with the lowest
	// start (template slots are in ascending start order), or -1.
	firstFree := func(g int, r resource) int {
		if b.gpus[g].m.Key != r.model {
			return -1
		}
		for k, sl := range b.gpus[g].slices {
			if free[g][k] && sl.Profile == r.profile {
				return k
			}
		}
		return -1
	}
	// cursor, per kind of slice, is the first position in opened that may
	// still have a free slice of that kind; slices are only ever taken, so
	// it only moves forward. nextUnused, per model, is the first GPU that
	// may still be opened.
	cursor := map[resKey]int{}
	nextUnused := map[string]int{}

	for si, s := range w.Services {
		ranked := rankStatic(s, models, templates)
		need := minReplicas(s)
		if len(ranked) == 0 {
			if need > 0 {
				b.reasons[si] = "no slice of this layout fits the service (no positive rate, or too little memory)"
			}
			continue
		}
		capacity, replicas := 0.0, 0
		for !covers(capacity, s.Demand) || replicas < need {
			g, k, r := -1, -1, resource{}
			// The best-ranked kind with a free slice on a used GPU.
			for _, rr := range ranked {
				rk := resKey{rr.model, rr.profile}
				for pos := cursor[rk]; pos < len(opened); pos++ {
					if kk := firstFree(opened[pos], rr); kk >= 0 {
						g, k, r = opened[pos], kk, rr
						break
					}
					if pos == cursor[rk] {
						cursor[rk]++
					}
				}
				if g >= 0 {
					break
				}
			}
			if g < 0 {
				// Open the first unused GPU (cluster order) whose model
				// has a kind of slice the service can use.
				for _, rr := range ranked {
					u := nextUnused[rr.model]
					for u < len(b.gpus) && (!b.gpus[u].usable || b.gpus[u].m.Key != rr.model || free[u] != nil) {
						u++
					}
					nextUnused[rr.model] = u
					if u < len(b.gpus) && (g < 0 || u < g) {
						g = u
					}
				}
				if g < 0 {
					b.reasons[si] = "out of GPUs"
					break
				}
				open(g)
				for _, rr := range ranked { // the best-ranked kind on g's model
					if k = firstFree(g, rr); k >= 0 {
						r = rr
						break
					}
				}
			}
			free[g][k] = false
			b.gpus[g].slices[k].Service = s.Name
			capacity += r.rate
			replicas++
		}
	}
	return b.finish()
}

// ---------------------------------------------------------------------------
// B2: greedy.

// Greedy is baseline B2 (in the spirit of MIG-serving's greedy stage).
//
// Instances: each service picks its best kind of slice, the (GPU model,
// profile) with the highest throughput per compute slice T/g over the
// models of the usable GPUs (ties: fewer compute slices, fewer memory
// slices, then cluster and catalog order), and takes ⌊d / T_best⌋
// instances of it. The leftover demand d − ⌊d / T_best⌋·T_best, if any, gets
// one instance of the smallest profile of the same model whose rate covers
// it (fewest compute slices, then fewest memory slices) — ParvaGPU's
// last-segment trick. A service still below its minimum replicas gets
// more instances of the smallest profile it can run on.
//
// Packing: all instances, largest first (compute slices, then memory
// slices, descending; otherwise workload order), are packed first-fit:
// each goes to the first GPU of its model in cluster order that has a
// placement, tried in ascending start order, whose memory slices are free
// and that keeps the layout legal (migconfig.ValidateLayout with explicit
// placements: MaxCount and the +me limit included). An instance that fits
// nowhere leaves its service unmet.
func Greedy(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload) scheduler.Plan {
	if err := CheckInput(cat, c, w); err != nil {
		return invalidPlan(c, w, err)
	}
	b := newBuilder(cat, c, w)

	// The models of the usable GPUs, in cluster order, and per model the
	// usable GPUs.
	var models []*migconfig.GPUModel
	gpusOf := map[string][]int{}
	for i, st := range b.gpus {
		if !st.usable {
			continue
		}
		if _, seen := gpusOf[st.m.Key]; !seen {
			models = append(models, st.m)
		}
		gpusOf[st.m.Key] = append(gpusOf[st.m.Key], i)
	}

	type instance struct {
		service int
		m       *migconfig.GPUModel
		p       *migconfig.Profile
	}
	smaller := func(x, y *migconfig.Profile) bool {
		if x.ComputeSlices != y.ComputeSlices {
			return x.ComputeSlices < y.ComputeSlices
		}
		return x.MemorySlices < y.MemorySlices
	}
	var insts []instance
	for si, s := range w.Services {
		need := minReplicas(s)
		if need == 0 && s.Demand == 0 {
			continue
		}
		var bm *migconfig.GPUModel
		var bp *migconfig.Profile
		bestRate := 0.0
		for _, m := range models {
			for k := range m.Profiles {
				p := &m.Profiles[k]
				r := rateOn(s, m, p)
				if r <= 0 {
					continue
				}
				if bp == nil {
					bm, bp, bestRate = m, p, r
					continue
				}
				a, z := r/float64(p.ComputeSlices), bestRate/float64(bp.ComputeSlices)
				if a > z || (a == z && smaller(p, bp)) {
					bm, bp, bestRate = m, p, r
				}
			}
		}
		if bp == nil {
			b.reasons[si] = "no slice in the cluster fits the service (no positive rate, or too little memory)"
			continue
		}
		// Never ask for more instances of a profile than the model's
		// GPUs could hold: the rest would be unmet anyway.
		limit := func(p *migconfig.Profile) int { return len(gpusOf[bm.Key]) * p.MaxCount }
		n := 0
		if s.Demand > 0 {
			// ⌊d / T⌋, forgiving rounding when d is a multiple of T; at
			// most one more than fits, so that the shortfall shows.
			q := math.Floor(s.Demand/bestRate + 1e-9)
			n = int(math.Min(q, float64(limit(bp)+1)))
		}
		count := 0
		for ; count < n; count++ {
			insts = append(insts, instance{si, bm, bp})
		}
		capacity := float64(n) * bestRate
		if n <= limit(bp) && !covers(capacity, s.Demand) {
			// The last segment: the smallest profile covering the rest.
			rest := s.Demand - capacity
			var rp *migconfig.Profile
			for k := range bm.Profiles {
				p := &bm.Profiles[k]
				if r := rateOn(s, bm, p); covers(r, rest) && r > 0 && (rp == nil || smaller(p, rp)) {
					rp = p
				}
			}
			if rp == nil {
				rp = bp // cannot happen: rest < T_best
			}
			insts = append(insts, instance{si, bm, rp})
			count++
		}
		if count < need {
			var sp *migconfig.Profile
			for k := range bm.Profiles {
				p := &bm.Profiles[k]
				if rateOn(s, bm, p) > 0 && (sp == nil || smaller(p, sp)) {
					sp = p
				}
			}
			for ; count < need && count <= limit(sp); count++ {
				insts = append(insts, instance{si, bm, sp})
			}
		}
	}
	slices.SortStableFunc(insts, func(x, y instance) int {
		if c := cmp.Compare(y.p.ComputeSlices, x.p.ComputeSlices); c != 0 {
			return c
		}
		return cmp.Compare(y.p.MemorySlices, x.p.MemorySlices)
	})

	// cursor, per (model, profile), is the first position among the
	// model's GPUs that might still take the profile: adding instances
	// never makes room, so a GPU that refuses a profile refuses it for
	// good.
	cursor := map[resKey]int{}
	layouts := make([]migconfig.GPULayout, len(b.gpus))
	for _, in := range insts {
		list := gpusOf[in.m.Key]
		rk := resKey{in.m.Key, in.p.Name}
		placed := false
		for pos := cursor[rk]; pos < len(list) && !placed; pos++ {
			g := list[pos]
			if pl, ok := fitOn(in.m, in.p, layouts[g], b.gpus[g].used); ok {
				layouts[g].MigEnabled = true
				layouts[g].Instances = append(layouts[g].Instances, migconfig.Instance{Profile: in.p.ID, Placement: pl})
				b.add(g, in.p, pl, w.Services[in.service].Name)
				placed = true
			} else if pos == cursor[rk] {
				cursor[rk]++
			}
		}
		if !placed && b.reasons[in.service] == "" {
			b.reasons[in.service] = "out of GPUs"
		}
	}
	return b.finish()
}

// fitOn returns the lowest-start placement of profile p that is free on a
// GPU of model m with layout l (memory slices used) and keeps the layout
// legal.
func fitOn(m *migconfig.GPUModel, p *migconfig.Profile, l migconfig.GPULayout, used uint16) (migconfig.Placement, bool) {
	count := 0
	for _, in := range l.Instances {
		if in.Profile == p.ID {
			count++
		}
	}
	if count >= p.MaxCount {
		return migconfig.Placement{}, false
	}
	for _, pl := range p.Placements {
		if used&pl.Mask() != 0 {
			continue
		}
		next := migconfig.GPULayout{MigEnabled: true, Instances: append(slices.Clip(l.Instances), migconfig.Instance{Profile: p.ID, Placement: pl})}
		if migconfig.ValidateLayout(m, next) == nil {
			return pl, true
		}
	}
	return migconfig.Placement{}, false
}
