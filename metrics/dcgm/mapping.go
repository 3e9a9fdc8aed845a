package dcgm

import (
	"cmp"
	"slices"

	"github.com/tessera-gpu/tessera/metrics"
)

// gpuInstance is one MIG GPU instance as DCGM's MIG hierarchy
// (dcgmGetGpuInstanceHierarchy) describes it: an FE_GPU_I entity.
type gpuInstance struct {
	// EntityID is the DCGM FE_GPU_I entity ID.
	EntityID uint
	// GPUID is the DCGM ID of the parent GPU (the FE_GPU parent entity),
	// which is not necessarily its NVML index.
	GPUID uint
	// GPUIndex is the NVML index of the parent GPU.
	GPUIndex int
	// GPUUUID is the parent GPU's UUID ("GPU-…"), or empty.
	GPUUUID string
	// GPUInstanceID is NVML's GPU instance ID within the parent GPU.
	GPUInstanceID int
	// ProfileID is NVML's GPU instance profile ID.
	ProfileID int
}

// plan is what one Profile call watches and how its values come back to
// slices.
type plan struct {
	// entities are the GPU instances to watch, sorted by entity ID, each
	// once.
	entities []gpuInstance
	// slices lists, per entity ID, the slice UUIDs that read its values
	// (more than one when a GPU instance holds several compute
	// instances).
	slices map[uint][]string
	// missing are the slice UUIDs with no GPU instance in DCGM's
	// hierarchy (not there yet, gone, or on a GPU without profiling).
	missing []string
}

type uuidKey struct {
	gpu string
	gi  int
}

type indexKey struct {
	gpu, gi int
}

// planFor matches slices to DCGM GPU instances. A slice matches the
// instance with its GPU instance ID on its parent GPU, the GPU named by
// UUID where both sides know it, else by NVML index; a UUID mismatch
// never matches, so a renumbered GPU cannot report another GPU's
// values. supported, when not nil, limits the match to instances whose
// parent DCGM GPU ID it holds.
func planFor(refs []metrics.SliceRef, instances []gpuInstance, supported map[uint]bool) plan {
	instances = slices.Clone(instances)
	slices.SortFunc(instances, func(a, b gpuInstance) int { return cmp.Compare(a.EntityID, b.EntityID) })
	byUUID := make(map[uuidKey]gpuInstance)
	byIndex := make(map[indexKey]gpuInstance)
	for _, gi := range instances {
		if supported != nil && !supported[gi.GPUID] {
			continue
		}
		if gi.GPUUUID != "" {
			k := uuidKey{gi.GPUUUID, gi.GPUInstanceID}
			if _, dup := byUUID[k]; !dup {
				byUUID[k] = gi
			}
		}
		k := indexKey{gi.GPUIndex, gi.GPUInstanceID}
		if _, dup := byIndex[k]; !dup {
			byIndex[k] = gi
		}
	}

	p := plan{slices: make(map[uint][]string)}
	for _, ref := range refs {
		gi, ok := match(ref, byUUID, byIndex)
		if !ok {
			p.missing = append(p.missing, ref.UUID)
			continue
		}
		if _, seen := p.slices[gi.EntityID]; !seen {
			p.entities = append(p.entities, gi)
		}
		p.slices[gi.EntityID] = append(p.slices[gi.EntityID], ref.UUID)
	}
	slices.SortFunc(p.entities, func(a, b gpuInstance) int { return cmp.Compare(a.EntityID, b.EntityID) })
	return p
}

func match(ref metrics.SliceRef, byUUID map[uuidKey]gpuInstance, byIndex map[indexKey]gpuInstance) (gpuInstance, bool) {
	if ref.GPUUUID != "" {
		if gi, ok := byUUID[uuidKey{ref.GPUUUID, ref.GPUInstanceID}]; ok {
			return gi, true
		}
	}
	gi, ok := byIndex[indexKey{ref.GPUIndex, ref.GPUInstanceID}]
	if !ok || (ref.GPUUUID != "" && gi.GPUUUID != "" && gi.GPUUUID != ref.GPUUUID) {
		return gpuInstance{}, false
	}
	return gi, true
}

// groupAction is what to do with the watched entity group before reading.
type groupAction int

const (
	// keepGroup reads from the group as it is (or from no group when
	// nothing is wanted and none exists).
	keepGroup groupAction = iota
	// buildGroup creates the group: none exists and entities are wanted.
	buildGroup
	// rebuildGroup destroys the group and creates it anew: the layout
	// changed, so the wanted entities differ from the watched ones.
	rebuildGroup
	// dropGroup destroys the group and watches nothing: no slice asked
	// for matches a GPU instance, and DCGM should stop sampling.
	dropGroup
)

func (a groupAction) String() string {
	switch a {
	case keepGroup:
		return "keep"
	case buildGroup:
		return "build"
	case rebuildGroup:
		return "rebuild"
	case dropGroup:
		return "drop"
	}
	return "unknown"
}

// decideGroup compares the watched group (have: whether one exists;
// watched: its entities) with the entities a plan wants. The entities
// are compared whole — entity ID, parent GPU, GPU instance ID and
// profile — so a GPU instance destroyed and recreated differently under
// the same entity ID is watched anew.
func decideGroup(have bool, watched, want []gpuInstance) groupAction {
	switch {
	case len(want) == 0 && have:
		return dropGroup
	case len(want) == 0:
		return keepGroup
	case !have:
		return buildGroup
	case slices.Equal(watched, want):
		return keepGroup
	}
	return rebuildGroup
}
