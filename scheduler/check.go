package scheduler

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Check verifies that plan is a legal plan for serving w on c: it covers
// every GPU of the cluster in order, every layout is valid on its GPU model
// (profiles exist, placements are legal and disjoint, counts within
// limits), every replica belongs to a service of the workload that fits
// that slice, and cordoned GPUs get no new replicas. Unless opts.Fresh or
// opts.Migrate, it also checks that no slice running a replica is
// destroyed unless its service stops that many replicas. It returns every
// problem found.
func Check(cat *migconfig.Catalog, c Cluster, w Workload, plan Plan, opts Options) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	services := map[string]Service{}
	for _, s := range w.Services {
		services[s.Name] = s
	}
	var gpus []GPU
	var nodes []string
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			gpus = append(gpus, g)
			nodes = append(nodes, n.Name)
		}
	}
	if len(plan.GPUs) != len(gpus) {
		return fmt.Errorf("plan lists %d GPUs, the cluster has %d", len(plan.GPUs), len(gpus))
	}
	// Layouts repeat across a cluster's GPUs: validate each one once.
	validated := map[string]error{}
	validate := func(m *migconfig.GPUModel, l migconfig.GPULayout) error {
		var key strings.Builder
		key.WriteString(m.Key)
		for _, in := range l.Instances {
			fmt.Fprintf(&key, "|%d@%d:%d", in.Profile, in.Placement.Start, in.Placement.Size)
		}
		err, ok := validated[key.String()]
		if !ok {
			err = migconfig.ValidateLayout(m, l)
			validated[key.String()] = err
		}
		return err
	}
	before, after := map[string]int{}, map[string]int{}
	destroyedBusy := map[string]int{}
	for i, gp := range plan.GPUs {
		g := gpus[i]
		where := fmt.Sprintf("%s/gpu%d", nodes[i], g.Index)
		if gp.Node != nodes[i] || gp.Index != g.Index || gp.Model != g.Model {
			fail("%s: plan entry %d is %s/gpu%d (%s)", where, i, gp.Node, gp.Index, gp.Model)
			continue
		}
		m, ok := cat.ByKey(g.Model)
		if !ok {
			fail("%s: unknown GPU model %q", where, g.Model)
			continue
		}
		layout := migconfig.GPULayout{MigEnabled: true}
		for _, s := range gp.Slices {
			prof, ok := m.ProfileByName(s.Profile)
			if !ok {
				fail("%s: %q is not a profile of %s", where, s.Profile, m.Name)
				continue
			}
			layout.Instances = append(layout.Instances, migconfig.Instance{Profile: prof.ID, Placement: s.Placement})
			if s.Service == "" {
				continue
			}
			svc, ok := services[s.Service]
			if !ok {
				fail("%s: replica of unknown service %q", where, s.Service)
				continue
			}
			if svc.RateOn(Resource{g.Model, s.Profile}) <= 0 || (svc.MemoryMiB > 0 && prof.MemoryMiB > 0 && svc.MemoryMiB > prof.MemoryMiB) {
				fail("%s: service %q does not fit %s", where, s.Service, s.Profile)
			}
			after[s.Service]++
			if g.Cordoned && !hasReplica(g.Slices, s) {
				fail("%s: new replica of %q on a cordoned GPU", where, s.Service)
			}
		}
		if err := validate(m, layout); err != nil {
			fail("%s: %v", where, err)
		}
		for _, s := range g.Slices {
			if s.Service == "" {
				continue
			}
			before[s.Service]++
			if !hasSlice(gp.Slices, s) {
				destroyedBusy[s.Service]++
			}
		}
	}
	if !opts.Fresh && !opts.Migrate {
		for name, n := range destroyedBusy {
			if stopped := before[name] - after[name]; stopped < n {
				fail("service %q: %d slices running its replicas are destroyed, but it stops only %d replicas", name, n, max(stopped, 0))
			}
		}
	}
	return errors.Join(errs...)
}

func hasSlice(list []Slice, s Slice) bool {
	for _, x := range list {
		if x.Profile == s.Profile && x.Placement == s.Placement {
			return true
		}
	}
	return false
}

func hasReplica(list []Slice, s Slice) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
