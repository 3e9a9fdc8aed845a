// Package scheduler is Tessera's planning core: it chooses MIG layouts for
// a cluster's GPUs and places inference replicas on the slices so that the
// demand of every service is served with the fewest GPUs.
//
// Like migconfig it is pure: Plan, LowerBound and the other functions take
// values and return values, do no I/O and read no clock, so the same input
// always gives the same plan.
package scheduler

import (
	"fmt"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Cluster is every GPU the scheduler may use, with what runs on it now.
type Cluster struct {
	Nodes []Node `json:"nodes" yaml:"nodes"`
}

// Node is one machine.
type Node struct {
	// Name identifies the node (its Kubernetes node name).
	Name string `json:"name" yaml:"name"`
	// GPUs are the node's GPUs.
	GPUs []GPU `json:"gpus" yaml:"gpus"`
}

// GPU is one GPU and its current MIG layout.
type GPU struct {
	// Index is the GPU's NVML index on its node.
	Index int `json:"index" yaml:"index"`
	// Model is the catalog key of the GPU model ("a100-80gb").
	Model string `json:"model" yaml:"model"`
	// Cordoned GPUs get no new work; their running replicas stay.
	Cordoned bool `json:"cordoned,omitempty" yaml:"cordoned,omitempty"`
	// Slices is the current layout: the MIG instances that exist, with
	// the replica each one runs, if any. Empty means MIG is off or no
	// instance exists.
	Slices []Slice `json:"slices,omitempty" yaml:"slices,omitempty"`
}

// Slice is one MIG instance and the replica on it.
type Slice struct {
	// Profile is the MIG profile name on the GPU's model ("3g.40gb").
	Profile string `json:"profile" yaml:"profile"`
	// Placement is the instance's position in memory slices.
	Placement migconfig.Placement `json:"placement" yaml:"placement"`
	// Service is the service whose replica runs on the slice; empty for a
	// free slice.
	Service string `json:"service,omitempty" yaml:"service,omitempty"`
}

// Workload is the demand the cluster must serve.
type Workload struct {
	Services []Service `json:"services" yaml:"services"`
}

// Service is one model served by replicas, each on its own slice.
type Service struct {
	// Name identifies the service.
	Name string `json:"name" yaml:"name"`
	// Model names the DNN model served (informational; throughput is
	// given per service).
	Model string `json:"model,omitempty" yaml:"model,omitempty"`
	// Demand is the request rate to serve, in requests per second.
	Demand float64 `json:"demand" yaml:"demand"`
	// MinReplicas is the least number of replicas; a service with demand
	// always gets at least one.
	MinReplicas int `json:"minReplicas,omitempty" yaml:"minReplicas,omitempty"`
	// MemoryMiB is the memory one replica needs; slices with less memory
	// are not used. 0 means the throughput table alone decides.
	MemoryMiB int `json:"memoryMiB,omitempty" yaml:"memoryMiB,omitempty"`
	// Throughput is what one replica serves within the service's latency
	// SLO on each (GPU model, profile). A pair that is absent, or has zero
	// rate, does not fit.
	Throughput []Rate `json:"throughput" yaml:"throughput"`
}

// Rate is the throughput of one replica on one kind of slice.
type Rate struct {
	// GPUModel is the catalog key of the GPU model.
	GPUModel string `json:"gpuModel" yaml:"gpuModel"`
	// Profile is the MIG profile name on that model.
	Profile string `json:"profile" yaml:"profile"`
	// RPS is the requests per second one replica serves within the SLO.
	RPS float64 `json:"rps" yaml:"rps"`
}

// Resource is a kind of slice: a MIG profile on a GPU model.
type Resource struct {
	GPUModel string
	Profile  string
}

// String formats the resource as "a100-80gb/3g.40gb".
func (r Resource) String() string { return r.GPUModel + "/" + r.Profile }

// RateOn returns the service's throughput on resource r, 0 if it does
// not fit.
func (s Service) RateOn(r Resource) float64 {
	for _, t := range s.Throughput {
		if t.GPUModel == r.GPUModel && t.Profile == r.Profile {
			return t.RPS
		}
	}
	return 0
}

// Options tune Plan.
type Options struct {
	// Fresh plans as if every GPU were empty: running replicas and current
	// layouts are ignored (no incremental re-plan).
	Fresh bool `json:"fresh,omitempty"`
	// Migrate lets an incremental re-plan move running replicas
	// (make-before-break: the new replica starts before the old one stops)
	// to drain GPUs, when it would otherwise use more than FreshSlack more
	// GPUs than a fresh plan. Without it no slice running a replica is
	// destroyed unless its service stops that replica.
	Migrate bool `json:"migrate,omitempty"`
	// MaxChangedGPUs is an incremental re-plan's change budget: the most
	// GPUs in use before and after it whose layout it changes
	// (Plan.ChangedGPUs). Within the budget the re-plan repacks: with
	// Migrate, when it would use more than FreshSlack more GPUs than a
	// fresh plan, it empties the GPUs with the least running compute by
	// moving their replicas' demand to free slices elsewhere and, for
	// what does not fit, to new instances in the re-laid-out free memory
	// of a few GPUs in use, whose running replicas stay on their slices.
	// 0 means the default: DefaultChangedFraction (2%) of the GPUs the
	// plan uses, at least 1. NoRepack (any negative value) turns the
	// budget and the repack off, as re-plans were before them. Fresh
	// plans ignore it.
	MaxChangedGPUs int `json:"maxChangedGPUs,omitempty"`
}

// Plan is the scheduler's answer: a layout and replicas per GPU, what
// each service gets, and how to get there from the current cluster.
type Plan struct {
	// GPUs lists every GPU of the cluster, in cluster order, with its
	// planned layout. A GPU with no slices is unused.
	GPUs []GPUPlan `json:"gpus"`
	// Services reports, per service in workload order, the capacity
	// planned and, when the demand is not met, why.
	Services []ServicePlan `json:"services"`
	// GPUsUsed counts the GPUs with at least one slice.
	GPUsUsed int `json:"gpusUsed"`
	// LowerBound is LB3, the configuration LP's bound on GPUs (see
	// LowerBound); 0 when not computed.
	LowerBound int `json:"lowerBound"`
	// Changes are the steps from the current cluster to the plan, in the
	// order to run them (make-before-break where free slices allow).
	Changes []Change `json:"changes,omitempty"`
	// ChangedGPUs counts GPUs in use before and after the plan whose
	// layout changes: the GPUs whose running replicas may be disturbed.
	ChangedGPUs int `json:"changedGPUs"`
	// AddedGPUs counts GPUs that were empty and get a layout.
	AddedGPUs int `json:"addedGPUs"`
	// ReleasedGPUs counts GPUs that had a layout and end up empty.
	ReleasedGPUs int `json:"releasedGPUs"`
	// CapacityDip is the lowest fraction of the total demand served at
	// any step of Changes, relative to the lower of the fractions served
	// before and after the transition: 1 when it never dips.
	CapacityDip float64 `json:"capacityDip"`
}

// GPUPlan is one GPU in a plan.
type GPUPlan struct {
	Node  string `json:"node"`
	Index int    `json:"index"`
	Model string `json:"model"`
	// Slices is the planned layout, each slice with the service whose
	// replica it runs (or none: a free slice).
	Slices []Slice `json:"slices,omitempty"`
	// LayoutChanged reports that the GPU's MIG instances differ from the
	// current ones.
	LayoutChanged bool `json:"layoutChanged,omitempty"`
}

// ServicePlan is what the plan gives one service.
type ServicePlan struct {
	Name     string  `json:"name"`
	Demand   float64 `json:"demand"`
	Capacity float64 `json:"capacity"`
	Replicas int     `json:"replicas"`
	// Unmet explains why Capacity < Demand (or the replica minimum is not
	// reached); empty when the service is fully served.
	Unmet string `json:"unmet,omitempty"`
}

// ChangeKind is what a Change does.
type ChangeKind string

// The kinds of change, in the order a plan lists them per step.
const (
	// StartReplica starts a replica of Service on a slice (creating the
	// slice first when Create is set).
	StartReplica ChangeKind = "start"
	// StopReplica stops the replica on a slice.
	StopReplica ChangeKind = "stop"
	// DestroySlice destroys a MIG instance.
	DestroySlice ChangeKind = "destroy"
	// CreateSlice creates a MIG instance.
	CreateSlice ChangeKind = "create"
)

// Change is one step of the transition to a plan.
type Change struct {
	Kind      ChangeKind          `json:"kind"`
	Node      string              `json:"node"`
	GPU       int                 `json:"gpu"`
	Profile   string              `json:"profile"`
	Placement migconfig.Placement `json:"placement"`
	Service   string              `json:"service,omitempty"`
}

// String describes the change in one line.
func (c Change) String() string {
	s := fmt.Sprintf("%s %s/gpu%d %s@%s", c.Kind, c.Node, c.GPU, c.Profile, c.Placement)
	if c.Service != "" {
		s += " " + c.Service
	}
	return s
}
