package scheduler

import (
	"fmt"
	"math"
	"sort"

	"github.com/tessera-gpu/tessera/migconfig"
)

// problem is a planning instance reduced to indices: the resources (kinds
// of slice) the cluster's GPU models offer and the services use, each
// service's rate on each resource, and the layouts each GPU model can take.
type problem struct {
	cat      *migconfig.Catalog
	models   []*migconfig.GPUModel // GPU models present, in first-seen order
	res      []resourceInfo        // resources, grouped by model
	services []serviceInfo
	// configs[g] are the maximal layouts of model g over its resources,
	// each with per-resource instance counts.
	configs [][]config
}

type resourceInfo struct {
	Resource
	model   int // index into problem.models
	profile *migconfig.Profile
}

type serviceInfo struct {
	Service
	index  int       // position in the workload
	rate   []float64 // per resource; 0 = does not fit
	demand float64
	min    int // replicas needed at least
}

type config struct {
	model  int
	layout migconfig.GPULayout
	count  []int // per resource index (global), 0 for other models' resources
	slots  []int // per instance of layout: resource index
}

// newProblem builds the index form of a cluster and workload. Cordoned
// GPUs do not count towards the models offered.
func newProblem(cat *migconfig.Catalog, c Cluster, w Workload) (*problem, error) {
	p := &problem{cat: cat}
	modelIndex := map[string]int{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			if _, ok := modelIndex[g.Model]; ok {
				continue
			}
			m, ok := cat.ByKey(g.Model)
			if !ok {
				return nil, fmt.Errorf("node %s gpu %d: unknown GPU model %q", n.Name, g.Index, g.Model)
			}
			modelIndex[g.Model] = len(p.models)
			p.models = append(p.models, m)
		}
	}
	// Resources: every (model, profile) some service can use.
	used := map[Resource]bool{}
	for _, s := range w.Services {
		for _, t := range s.Throughput {
			if t.RPS > 0 {
				used[Resource{t.GPUModel, t.Profile}] = true
			}
		}
	}
	for gi, m := range p.models {
		for i := range m.Profiles {
			prof := &m.Profiles[i]
			r := Resource{m.Key, prof.Name}
			if used[r] {
				p.res = append(p.res, resourceInfo{Resource: r, model: gi, profile: prof})
			}
		}
	}
	seen := map[string]bool{}
	for i, s := range w.Services {
		if seen[s.Name] {
			return nil, fmt.Errorf("service %q appears twice in the workload", s.Name)
		}
		seen[s.Name] = true
		if s.Demand < 0 || math.IsNaN(s.Demand) || math.IsInf(s.Demand, 0) {
			return nil, fmt.Errorf("service %q: demand %v is not a non-negative number", s.Name, s.Demand)
		}
		si := serviceInfo{Service: s, index: i, demand: s.Demand, rate: make([]float64, len(p.res))}
		for ri, r := range p.res {
			rate := s.RateOn(r.Resource)
			if s.MemoryMiB > 0 && r.profile.MemoryMiB > 0 && s.MemoryMiB > r.profile.MemoryMiB {
				rate = 0
			}
			if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
				return nil, fmt.Errorf("service %q: throughput %v on %s is not a non-negative number", s.Name, rate, r)
			}
			si.rate[ri] = rate
		}
		si.min = s.MinReplicas
		if s.Demand > 0 && si.min < 1 {
			si.min = 1
		}
		p.services = append(p.services, si)
	}
	p.configs = make([][]config, len(p.models))
	for gi, m := range p.models {
		var ids []migconfig.ProfileID
		for _, r := range p.res {
			if r.model == gi {
				ids = append(ids, r.profile.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		for _, l := range migconfig.MaximalLayouts(m, ids) {
			cfg := config{model: gi, layout: l, count: make([]int, len(p.res))}
			for _, in := range l.Instances {
				ri := p.resourceOf(gi, in.Profile)
				cfg.count[ri]++
				cfg.slots = append(cfg.slots, ri)
			}
			p.configs[gi] = append(p.configs[gi], cfg)
		}
	}
	return p, nil
}

// resourceOf returns the index of the resource of model g with profile id,
// or -1.
func (p *problem) resourceOf(g int, id migconfig.ProfileID) int {
	for i, r := range p.res {
		if r.model == g && r.profile.ID == id {
			return i
		}
	}
	return -1
}

// resourceByName returns the index of the resource for a GPU model key and
// profile name, or -1.
func (p *problem) resourceByName(model, profile string) int {
	for i, r := range p.res {
		if r.GPUModel == model && r.Profile == profile {
			return i
		}
	}
	return -1
}

// defaultPrices prices each resource by the larger of its shares of the
// GPU's compute and memory slices: what it takes of a GPU.
func (p *problem) defaultPrices() []float64 {
	prices := make([]float64, len(p.res))
	for i, r := range p.res {
		m := p.models[r.model]
		prices[i] = math.Max(float64(r.profile.ComputeSlices)/float64(m.ComputeSlices),
			float64(r.profile.MemorySlices)/float64(m.MemorySlices))
	}
	return prices
}

// sortedByCost returns resource indices usable by s, cheapest per request
// first.
func (p *problem) sortedByCost(s *serviceInfo, prices []float64) []int {
	var out []int
	for ri, rate := range s.rate {
		if rate > 0 && !math.IsInf(prices[ri], 1) {
			out = append(out, ri)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		ca, cb := prices[out[a]]/s.rate[out[a]], prices[out[b]]/s.rate[out[b]]
		if ca != cb {
			return ca < cb
		}
		return s.rate[out[a]] > s.rate[out[b]]
	})
	return out
}
