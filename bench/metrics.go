package bench

import (
	"fmt"
	"math"
	"strings"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// Metrics scores one plan (scheduling.md §7.2). Every figure is recomputed
// from the plan's slices and the workload's throughput tables; the plan's
// own ServicePlans and GPUsUsed are not trusted.
type Metrics struct {
	// GPUs counts the used GPUs: those with at least one slice.
	GPUs int `json:"gpus"`
	// ComputeSlices and MemorySlices are the slices of the used GPUs
	// (7 and 8 per A100-80GB).
	ComputeSlices int `json:"computeSlices"`
	MemorySlices  int `json:"memorySlices"`
	// AllocatedComputeSlices and AllocatedMemorySlices are those of the
	// slices that run a replica.
	AllocatedComputeSlices int `json:"allocatedComputeSlices"`
	AllocatedMemorySlices  int `json:"allocatedMemorySlices"`
	// SliceUtilisation is AllocatedComputeSlices / ComputeSlices;
	// MemorySliceUtilisation is AllocatedMemorySlices / MemorySlices.
	// Both are 0 when no GPU is used.
	SliceUtilisation       float64 `json:"sliceUtilisation"`
	MemorySliceUtilisation float64 `json:"memorySliceUtilisation"`
	// Demand is Σ d over the services; Capacity is the total provisioned
	// rate Σ cap; Served is Σ min(d, cap).
	Demand   float64 `json:"demand"`
	Capacity float64 `json:"capacity"`
	Served   float64 `json:"served"`
	// CapacityUtilisation is Served / Capacity (1 when nothing is
	// provisioned).
	CapacityUtilisation float64 `json:"capacityUtilisation"`
	// DemandMet is Served / Demand (1 when there is no demand).
	DemandMet float64 `json:"demandMet"`
	// WorstServed is the least min(1, cap/d) over the services with
	// demand (1 when none has any).
	WorstServed float64 `json:"worstServed"`
	// ServicesShort counts the services whose capacity is below their
	// demand.
	ServicesShort int `json:"servicesShort"`
	// ReplicasShort counts the services with fewer replicas than their
	// minimum (MinReplicas, and at least one when they have demand).
	ReplicasShort int `json:"replicasShort"`
	// Replicas counts the slices that run a replica.
	Replicas int `json:"replicas"`
	// StrandedComputeSlices counts the compute slices of used GPUs that no
	// instance covers (one per GPU of two 3g, for example).
	StrandedComputeSlices int `json:"strandedComputeSlices"`
	// FreeSlices counts the instances that run no replica.
	FreeSlices int `json:"freeSlices"`
	// Services has one entry per service, in workload order.
	Services []ServiceMetrics `json:"services"`
}

// ServiceMetrics is what a plan gives one service.
type ServiceMetrics struct {
	Name     string  `json:"name"`
	Demand   float64 `json:"demand"`
	Capacity float64 `json:"capacity"`
	// Served is min(1, Capacity/Demand), 1 without demand.
	Served   float64 `json:"served"`
	Replicas int     `json:"replicas"`
	// MinReplicas is the least number of replicas the service needs.
	MinReplicas int `json:"minReplicas"`
}

// Evaluate checks that plan p is legal for cluster c and workload w and
// scores it. It refuses (with an error naming the GPU and slice) a plan
// with: a GPU that is not in the cluster, listed twice, or given another
// model than the cluster's; slices on a GPU whose model is not in the
// catalog; a profile that is not one of the model's; a slice without a
// placement; placements that are invalid, overlap, or break MaxCount or
// the +me limit (migconfig.ValidateLayout with explicit placements); a
// replica of a service not in the workload; or a replica on a slice where
// that service's rate is 0 (no throughput entry, a zero rate, or less
// memory than the service's MemoryMiB). Input that CheckInput refuses is
// an error too.
//
// MIG-off GPUs need no special case: the whole-gpu baseline represents a
// whole GPU as the model's full-size profile at placement 0:<all memory
// slices> (7g.80gb at 0:8 on an A100-80GB), a legal MIG layout whose
// compute and memory slices are all allocated; its rate is the service's
// 7g rate. A GPU absent from p.GPUs, or listed with no slices, is unused.
func Evaluate(cat *migconfig.Catalog, c scheduler.Cluster, w scheduler.Workload, p scheduler.Plan) (Metrics, error) {
	if err := CheckInput(cat, c, w); err != nil {
		return Metrics{}, err
	}
	svc, _ := serviceIndex(w)
	cluster := map[gpuKey]scheduler.GPU{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			cluster[gpuKey{n.Name, g.Index}] = g
		}
	}

	var mt Metrics
	caps := make([]float64, len(w.Services))
	reps := make([]int, len(w.Services))
	seen := map[gpuKey]bool{}
	for _, gp := range p.GPUs {
		k := gpuKey{gp.Node, gp.Index}
		g, ok := cluster[k]
		if !ok {
			return Metrics{}, fmt.Errorf("plan GPU %s is not in the cluster", k)
		}
		if seen[k] {
			return Metrics{}, fmt.Errorf("plan lists GPU %s twice", k)
		}
		seen[k] = true
		if gp.Model != "" && !strings.EqualFold(gp.Model, g.Model) {
			return Metrics{}, fmt.Errorf("plan GPU %s: model %q, but the cluster's GPU is %q", k, gp.Model, g.Model)
		}
		if len(gp.Slices) == 0 {
			continue
		}
		m, ok := cat.ByKey(g.Model)
		if !ok {
			return Metrics{}, fmt.Errorf("plan GPU %s: model %q is not in the catalog", k, g.Model)
		}
		layout := migconfig.GPULayout{MigEnabled: true}
		covered := 0
		for i, sl := range gp.Slices {
			pr, ok := m.ProfileByName(sl.Profile)
			if !ok {
				return Metrics{}, fmt.Errorf("plan GPU %s slice %d: %q is not a MIG profile of %s", k, i, sl.Profile, m.Name)
			}
			if !sl.Placement.IsSet() {
				return Metrics{}, fmt.Errorf("plan GPU %s slice %d: %s has no placement", k, i, sl.Profile)
			}
			layout.Instances = append(layout.Instances, migconfig.Instance{Profile: pr.ID, Placement: sl.Placement})
			covered += pr.ComputeSlices
			if sl.Service == "" {
				mt.FreeSlices++
				continue
			}
			si, ok := svc[sl.Service]
			if !ok {
				return Metrics{}, fmt.Errorf("plan GPU %s slice %d (%s@%s): service %q is not in the workload", k, i, sl.Profile, sl.Placement, sl.Service)
			}
			r := rateOn(w.Services[si], m, pr)
			if r <= 0 {
				return Metrics{}, fmt.Errorf("plan GPU %s slice %d (%s@%s): service %s has no throughput on %s/%s (or needs more than %d MiB)",
					k, i, sl.Profile, sl.Placement, sl.Service, m.Key, pr.Name, pr.MemoryMiB)
			}
			caps[si] += r
			reps[si]++
			mt.Replicas++
			mt.AllocatedComputeSlices += pr.ComputeSlices
			mt.AllocatedMemorySlices += pr.MemorySlices
		}
		if err := migconfig.ValidateLayout(m, layout); err != nil {
			return Metrics{}, fmt.Errorf("plan GPU %s: layout %s: %w", k, describeLayout(gp.Slices), err)
		}
		mt.GPUs++
		mt.ComputeSlices += m.ComputeSlices
		mt.MemorySlices += m.MemorySlices
		mt.StrandedComputeSlices += max(m.ComputeSlices-covered, 0)
	}

	mt.WorstServed = 1
	mt.Services = make([]ServiceMetrics, len(w.Services))
	for i, s := range w.Services {
		sm := ServiceMetrics{Name: s.Name, Demand: s.Demand, Capacity: caps[i], Served: 1, Replicas: reps[i], MinReplicas: minReplicas(s)}
		served := s.Demand
		if !covers(caps[i], s.Demand) {
			served = caps[i]
			sm.Served = caps[i] / s.Demand
			mt.ServicesShort++
		}
		mt.WorstServed = math.Min(mt.WorstServed, sm.Served)
		if reps[i] < sm.MinReplicas {
			mt.ReplicasShort++
		}
		mt.Demand += s.Demand
		mt.Capacity += caps[i]
		mt.Served += served
		mt.Services[i] = sm
	}
	mt.SliceUtilisation = ratio(float64(mt.AllocatedComputeSlices), float64(mt.ComputeSlices), 0)
	mt.MemorySliceUtilisation = ratio(float64(mt.AllocatedMemorySlices), float64(mt.MemorySlices), 0)
	mt.CapacityUtilisation = math.Min(1, ratio(mt.Served, mt.Capacity, 1))
	mt.DemandMet = ratio(mt.Served, mt.Demand, 1)
	return mt, nil
}

// ratio returns a/b, or ifZero when b is 0.
func ratio(a, b, ifZero float64) float64 {
	if b == 0 {
		return ifZero
	}
	return a / b
}

// describeLayout formats a plan GPU's slices for messages: "3g.40gb@0:4
// (svc) + 1g.10gb@4:1".
func describeLayout(sl []scheduler.Slice) string {
	parts := make([]string, len(sl))
	for i, s := range sl {
		parts[i] = s.Profile + "@" + s.Placement.String()
		if s.Service != "" {
			parts[i] += " (" + s.Service + ")"
		}
	}
	return strings.Join(parts, " + ")
}
