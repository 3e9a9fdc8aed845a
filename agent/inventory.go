package agent

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/migconfig"
)

// State is the layout state of the node as NVIDIA's mig-manager reports it
// in the nvidia.com/mig.config.state label.
type State string

// The states. StateNone means nothing is desired: the agent only observes.
const (
	StateNone    State = ""
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailed  State = "failed"
)

// Inventory is what the node has and what the agent is doing about it, as
// of one reconcile pass. A published Inventory is never modified: every
// change is a new value with a higher Version, so subscribers may keep and
// read it from any goroutine.
type Inventory struct {
	// Version increases by one with every published change; 0 is the
	// zero Inventory, before the first pass.
	Version uint64 `json:"version"`
	// Node is the node's name, when the agent knows it.
	Node string `json:"node,omitempty"`
	// ObservedAt is when the GPUs were last read.
	ObservedAt time.Time `json:"observedAt"`
	// Observed reports that this pass read the GPUs. When reading failed
	// it is false and GPUs is empty: consumers (the device plugin) keep
	// what they had rather than take the node for empty.
	Observed bool `json:"observed"`
	// State is the layout state: "" when nothing is desired, else pending,
	// success or failed.
	State State `json:"state,omitempty"`
	// Reason explains State in one line when it is not success.
	Reason string `json:"reason,omitempty"`
	// Desired describes the desired state in effect, nil when none.
	Desired *DesiredSummary `json:"desired,omitempty"`
	// GPUs are the node's GPUs in NVML index order.
	GPUs []GPU `json:"gpus"`
	// HeldBack are the operations not carried out because of busy
	// instances, and why.
	HeldBack []gpu.Held `json:"heldBack,omitempty"`
	// HeldSince is when the current hold-back began; zero when nothing is
	// held back.
	HeldSince time.Time `json:"heldSince,omitempty"`
	// PendingReset are the GPUs whose MIG mode change waits for a GPU reset
	// or reboot (Ampere); the agent never resets a GPU.
	PendingReset []int `json:"pendingReset,omitempty"`
	// LastApply is the result of the last apply that changed or tried to
	// change something; nil before the first.
	LastApply *ApplyRecord `json:"lastApply,omitempty"`
	// LastError is the last error of a pass (reading the node, resolving
	// the layout, an NVML failure, a hook), empty once a pass succeeds.
	LastError string `json:"lastError,omitempty"`
	// Notes are facts an operator should know, one line each: MIG mode on
	// Hopper not surviving a reboot, catalog differences, overridden entries.
	Notes []string `json:"notes,omitempty"`
}

// DesiredSummary names the desired state an Inventory was reconciled
// against.
type DesiredSummary struct {
	// Source says where it came from ("file /etc/tessera/agent.yaml",
	// "node gpu-1 label nvidia.com/mig.config=all-1g.10gb").
	Source string `json:"source"`
	// Config is the selected named config; empty when only explicit
	// layouts are desired.
	Config string `json:"config,omitempty"`
	// Explicit lists the GPUs whose layout comes from an explicit per-GPU
	// layout (the tessera.dev/mig-layout annotation), which wins over
	// Config.
	Explicit []int `json:"explicit,omitempty"`
	// Revision identifies the content: it changes when the file, label or
	// annotation behind the desired state changes.
	Revision string `json:"revision,omitempty"`
}

// ApplyRecord is one apply: when, how many operations, and the result.
type ApplyRecord struct {
	// At is when the apply ended.
	At time.Time `json:"at"`
	// Planned is the number of operations planned.
	Planned int `json:"planned"`
	// Result is what gpu.Node.Apply reported.
	Result gpu.ApplyResult `json:"result"`
	// Error is Apply's error, empty when none.
	Error string `json:"error,omitempty"`
}

// GPU is one GPU of the node.
type GPU struct {
	// Index is NVML's device index.
	Index int `json:"index"`
	// UUID is the GPU's UUID.
	UUID string `json:"uuid"`
	// Name is NVML's product name.
	Name string `json:"name"`
	// Model is the catalog key ("a100-80gb"); empty when unknown or not
	// MIG-capable.
	Model string `json:"model,omitempty"`
	// MemoryMiB is the GPU's memory.
	MemoryMiB int `json:"memoryMiB"`
	// MigCapable reports whether the GPU supports MIG.
	MigCapable bool `json:"migCapable"`
	// MigEnabled is the MIG mode in effect; MigPending the mode after the
	// next reset.
	MigEnabled bool `json:"migEnabled"`
	MigPending bool `json:"migPending"`
	// Busy reports processes on the whole GPU (outside MIG devices).
	Busy bool `json:"busy,omitempty"`
	// Allocated reports that the whole GPU is allocated to a pod.
	Allocated bool `json:"allocated,omitempty"`
	// Applied is the layout the GPU has, in mig-parted's notation
	// ("3g.40gb@0, 1g.10gb@4, ...").
	Applied string `json:"applied"`
	// Desired is the layout wanted for the GPU; empty when the desired
	// state does not select it.
	Desired string `json:"desired,omitempty"`
	// Selected reports that the desired state selects this GPU.
	Selected bool `json:"selected"`
	// InSync reports that the GPU has its desired layout (true when not
	// selected).
	InSync bool `json:"inSync"`
	// Slices are the GPU's MIG devices in placement order.
	Slices []Slice `json:"slices,omitempty"`
}

// Slice is one MIG device: a GPU instance with one of its compute
// instances. It is what a pod gets.
type Slice struct {
	// UUID is the MIG device UUID ("MIG-…").
	UUID string `json:"uuid"`
	// Profile is the MIG device's name as NVIDIA's device plugin derives
	// resources from it: the GPU-instance profile ("1g.10gb", "1g.10gb+me"),
	// prefixed by the compute slices when the instance is split
	// ("1c.3g.40gb").
	Profile string `json:"profile"`
	// GPUInstanceProfile is the GPU instance's profile name.
	GPUInstanceProfile string `json:"gpuInstanceProfile"`
	// ProfileID is the GPU instance's NVML profile ID.
	ProfileID migconfig.ProfileID `json:"profileID"`
	// Placement is the GPU instance's placement.
	Placement migconfig.Placement `json:"placement"`
	// GPUIndex and GPUUUID name the parent GPU.
	GPUIndex int    `json:"gpuIndex"`
	GPUUUID  string `json:"gpuUUID"`
	// GPUInstanceID and ComputeInstanceID are NVML's IDs.
	GPUInstanceID     int `json:"gpuInstanceID"`
	ComputeInstanceID int `json:"computeInstanceID"`
	// MemoryMiB is the MIG device's memory.
	MemoryMiB int `json:"memoryMiB"`
	// Busy reports processes on the MIG device.
	Busy bool `json:"busy,omitempty"`
	// Allocated reports that the kubelet has allocated the slice to a pod
	// (see Agent.SetAllocated); its instance is then kept like a busy one.
	Allocated bool `json:"allocated,omitempty"`
	// Processes are the PIDs on the MIG device.
	Processes []uint32 `json:"processes,omitempty"`
	// Healthy reports the slice fit to run work: false once a critical
	// Xid hit it (see Agent.SetUnhealthy), until it recovers.
	Healthy bool `json:"healthy"`
	// Unhealthy says why the slice is unhealthy ("Xid 94").
	Unhealthy string `json:"unhealthy,omitempty"`
}

// Slices returns every slice of the node, in GPU and placement order.
func (inv Inventory) Slices() []Slice {
	var out []Slice
	for _, g := range inv.GPUs {
		out = append(out, g.Slices...)
	}
	return out
}

// InSync reports whether every selected GPU has its desired layout.
func (inv Inventory) InSync() bool {
	for _, g := range inv.GPUs {
		if !g.InSync {
			return false
		}
	}
	return true
}

// buildGPUs turns an observation and the desired layouts into the GPUs of
// an Inventory. The model catalog names profiles; desired, allocated
// (device IDs the kubelet allocated to pods) and unhealthy (device ID →
// reason) may be nil.
func buildGPUs(cat *migconfig.Catalog, node migconfig.NodeState, desired map[int]migconfig.GPULayout, allocated map[string]bool, unhealthy map[string]string) []GPU {
	out := make([]GPU, 0, len(node.GPUs))
	for _, g := range node.GPUs {
		m, known := cat.Lookup(g)
		v := GPU{
			Index:      g.Index,
			UUID:       g.UUID,
			Name:       g.Name,
			Model:      g.Model,
			MemoryMiB:  g.MemoryMiB,
			MigCapable: g.MigCapable,
			MigEnabled: g.Mig.Current,
			MigPending: g.Mig.Pending,
			Busy:       len(g.Processes) > 0,
			Allocated:  g.Allocated,
			InSync:     true,
		}
		if known {
			v.Applied = layoutString(m, migconfig.GPULayout{MigEnabled: g.Mig.Current, Instances: g.Instances})
			v.Slices = slicesOf(m, g)
			for i := range v.Slices {
				sl := &v.Slices[i]
				sl.Allocated = allocated[sl.UUID]
				if reason, bad := unhealthy[sl.UUID]; bad {
					sl.Healthy, sl.Unhealthy = false, reason
				}
			}
		} else {
			v.Applied = fmt.Sprintf("%d instances", len(g.Instances))
			if !g.Mig.Current {
				v.Applied = "MIG disabled"
			}
		}
		if want, ok := desired[g.Index]; ok {
			v.Selected = true
			if known {
				v.Desired = layoutString(m, want)
				ops, err := migconfig.Diff(m, g, want)
				v.InSync = err == nil && len(ops) == 0
			} else {
				v.InSync = false
			}
		}
		out = append(out, v)
	}
	return out
}

// layoutString prints a layout the way operators read it.
func layoutString(m *migconfig.GPUModel, l migconfig.GPULayout) string {
	if !l.MigEnabled {
		return "MIG disabled"
	}
	if len(l.Instances) == 0 {
		return "MIG enabled, no instances"
	}
	return migconfig.FormatInstances(m, l.Instances)
}

// slicesOf lists a GPU's MIG devices in placement order.
func slicesOf(m *migconfig.GPUModel, g migconfig.GPUState) []Slice {
	var out []Slice
	for _, in := range g.Instances {
		for _, ci := range in.ComputeInstances {
			profile, giProfile := migconfig.SliceNames(m, in, ci)
			out = append(out, Slice{
				UUID:               ci.UUID,
				Profile:            profile,
				GPUInstanceProfile: giProfile,
				ProfileID:          in.Profile,
				Placement:          in.Placement,
				GPUIndex:           g.Index,
				GPUUUID:            g.UUID,
				GPUInstanceID:      in.GPUInstanceID,
				ComputeInstanceID:  ci.ID,
				MemoryMiB:          ci.MemoryMiB,
				Busy:               len(ci.Processes) > 0,
				Processes:          append([]uint32(nil), ci.Processes...),
				Healthy:            true,
			})
		}
	}
	return out
}

// sameContent reports whether two inventories differ only in Version and
// ObservedAt, so that an unchanged node is not published again.
func sameContent(a, b Inventory) bool {
	a.Version, b.Version = 0, 0
	a.ObservedAt, b.ObservedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// hub publishes inventories to subscribers. A subscriber's channel holds
// at most one value: when it has not read the previous version yet, the
// newer one replaces it, so a slow subscriber misses intermediate versions
// but never blocks the publisher and always ends up with the latest.
type hub struct {
	mu     sync.Mutex
	latest Inventory
	subs   map[int]chan Inventory
	nextID int
}

func newHub() *hub { return &hub{subs: map[int]chan Inventory{}} }

// publish stores inv as the latest version, with the next version number,
// unless its content equals the latest; it returns the stored value and
// whether it was new.
func (h *hub) publish(inv Inventory) (Inventory, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latest.Version > 0 && sameContent(h.latest, inv) {
		return h.latest, false
	}
	inv.Version = h.latest.Version + 1
	h.latest = inv
	for _, ch := range h.subs {
		offer(ch, inv)
	}
	return inv, true
}

// offer puts v into a one-slot channel, replacing an unread value. Only
// the publisher sends, under the hub's lock, so the send cannot block.
func offer(ch chan Inventory, v Inventory) {
	select {
	case <-ch:
	default:
	}
	ch <- v
}

// current returns the latest version.
func (h *hub) current() Inventory {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest
}

// subscribe returns a channel that receives the latest version now (if
// there is one) and every later version, and a function that ends the
// subscription and closes the channel.
func (h *hub) subscribe() (<-chan Inventory, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Inventory, 1)
	id := h.nextID
	h.nextID++
	h.subs[id] = ch
	if h.latest.Version > 0 {
		ch <- h.latest
	}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs, id)
			close(ch)
		})
	}
}

// sortedKeys returns a map's int keys in ascending order.
func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
