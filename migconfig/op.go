package migconfig

import (
	"encoding/json"
	"fmt"
	"strings"
)

// OpKind is what an Op does.
type OpKind int

// The kinds of operation, in the order Diff emits them for one GPU:
// mode changes first, then destroys, then creates.
const (
	// OpSetMigMode enables or disables MIG on a GPU.
	OpSetMigMode OpKind = iota + 1
	// OpDestroyInstance destroys a GPU instance: its compute instances
	// first, then the GPU instance itself.
	OpDestroyInstance
	// OpCreateInstance creates a GPU instance at an explicit placement, then
	// its compute instances.
	OpCreateInstance
)

// String names the kind as the CLI prints it.
func (k OpKind) String() string {
	switch k {
	case OpSetMigMode:
		return "set-mig-mode"
	case OpDestroyInstance:
		return "destroy"
	case OpCreateInstance:
		return "create"
	default:
		return fmt.Sprintf("OpKind(%d)", int(k))
	}
}

// MarshalText makes the kind print as its name in JSON and YAML.
func (k OpKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind from its name, so printed plans can be read
// back.
func (k *OpKind) UnmarshalText(text []byte) error {
	for _, c := range []OpKind{OpSetMigMode, OpDestroyInstance, OpCreateInstance} {
		if string(text) == c.String() {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("unknown op kind %q: want set-mig-mode, destroy or create", text)
}

// Op is one step of applying a layout to a GPU.
type Op struct {
	// Kind is what the op does.
	Kind OpKind `json:"kind"`
	// GPU is the NVML index of the GPU the op acts on.
	GPU int `json:"gpu"`
	// GPUUUID is the UUID of that GPU, so an op cannot hit another GPU
	// if indices change between plan and apply.
	GPUUUID string `json:"gpuUUID,omitempty"`
	// Enable is the target mode of an OpSetMigMode.
	Enable bool `json:"enable,omitempty"`
	// Instance is the instance destroyed or created. For a destroy it is
	// the observed instance (with GPUInstanceID); for a create its
	// placement is always set.
	Instance Instance `json:"instance"`
	// ProfileName is the instance's profile name, for messages.
	ProfileName string `json:"profileName,omitempty"`
	// Busy marks a destroy of an instance that has processes on it, and a
	// MIG mode change on a GPU that has processes (or, for a disable, a
	// busy instance).
	Busy bool `json:"busy,omitempty"`
}

// MarshalJSON leaves the instance out of a mode change, which has none (a
// zero instance would read as profile ID 0, the 7g profile).
func (o Op) MarshalJSON() ([]byte, error) {
	type plain Op
	if o.Kind != OpSetMigMode {
		return json.Marshal(plain(o))
	}
	return json.Marshal(struct {
		plain
		Instance *Instance `json:"instance,omitempty"`
	}{plain: plain(o)})
}

// String describes the op in one line, for plans and logs.
func (o Op) String() string {
	switch o.Kind {
	case OpSetMigMode:
		mode := "disabled"
		if o.Enable {
			mode = "enabled"
		}
		return fmt.Sprintf("gpu %d: set MIG mode %s", o.GPU, mode)
	case OpDestroyInstance:
		busy := ""
		if o.Busy {
			busy = " (busy)"
		}
		return fmt.Sprintf("gpu %d: destroy %s at %s (GI %d)%s", o.GPU, o.profileLabel(), o.Instance.Placement, o.Instance.GPUInstanceID, busy)
	case OpCreateInstance:
		return fmt.Sprintf("gpu %d: create %s at %s", o.GPU, o.profileLabel(), o.Instance.Placement)
	default:
		return fmt.Sprintf("gpu %d: %s", o.GPU, o.Kind)
	}
}

func (o Op) profileLabel() string {
	name := o.ProfileName
	if name == "" {
		name = fmt.Sprintf("profile %d", o.Instance.Profile)
	}
	c := o.Instance.Compute
	if c.Slices != 0 || c.Count > 1 {
		name = fmt.Sprintf("%s [%dx %dc]", name, max(c.Count, 1), c.Slices)
	}
	return name
}

// FormatOps prints ops one per line.
func FormatOps(ops []Op) string {
	var b strings.Builder
	for _, op := range ops {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return b.String()
}
