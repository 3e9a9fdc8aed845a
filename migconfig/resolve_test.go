package migconfig_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// lfStarts returns placements of size at each start.
func lfStarts(size int, starts ...int) []migconfig.Placement {
	out := make([]migconfig.Placement, len(starts))
	for i, s := range starts {
		out[i] = migconfig.Placement{Start: s, Size: size}
	}
	return out
}

// lfA100 is a hand-written A100-40GB-like model, independent of Builtin.
func lfA100() migconfig.GPUModel {
	return migconfig.GPUModel{
		Key: "a100-40gb", Name: "A100-SXM4-40GB", ProductNames: []string{"NVIDIA A100-SXM4-40GB"},
		DeviceIDs: []uint32{0x20B010DE}, Architecture: migconfig.Ampere,
		MemorySlices: 8, ComputeSlices: 7, MemoryMiB: 40192,
		Profiles: []migconfig.Profile{
			{Name: "1g.5gb", Index: 0, ID: 19, ComputeSlices: 1, MemorySlices: 1, MaxCount: 7, Placements: lfStarts(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.10gb", Index: 1, ID: 14, ComputeSlices: 2, MemorySlices: 2, MaxCount: 3, Placements: lfStarts(2, 0, 2, 4)},
			{Name: "3g.20gb", Index: 2, ID: 9, ComputeSlices: 3, MemorySlices: 4, MaxCount: 2, Placements: lfStarts(4, 0, 4)},
			{Name: "4g.20gb", Index: 3, ID: 5, ComputeSlices: 4, MemorySlices: 4, MaxCount: 1, Placements: lfStarts(4, 0)},
			{Name: "7g.40gb", Index: 4, ID: 0, ComputeSlices: 7, MemorySlices: 8, MaxCount: 1, Placements: lfStarts(8, 0)},
			{Name: "1g.5gb+me", Index: 7, ID: 20, ComputeSlices: 1, MemorySlices: 1, MaxCount: 1, Placements: lfStarts(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "1g.10gb", Index: 9, ID: 15, ComputeSlices: 1, MemorySlices: 2, MaxCount: 4, Placements: lfStarts(2, 0, 2, 4, 6)},
		},
	}
}

// lfA30 is a hand-written A30-like model.
func lfA30() migconfig.GPUModel {
	return migconfig.GPUModel{
		Key: "a30", Name: "A30-24GB", ProductNames: []string{"NVIDIA A30"},
		DeviceIDs: []uint32{0x20B710DE}, Architecture: migconfig.Ampere,
		MemorySlices: 4, ComputeSlices: 4, MemoryMiB: 24000,
		Profiles: []migconfig.Profile{
			{Name: "1g.6gb", Index: 0, ID: 14, ComputeSlices: 1, MemorySlices: 1, MaxCount: 4, Placements: lfStarts(1, 0, 1, 2, 3)},
			{Name: "2g.12gb", Index: 1, ID: 5, ComputeSlices: 2, MemorySlices: 2, MaxCount: 2, Placements: lfStarts(2, 0, 2)},
			{Name: "4g.24gb", Index: 3, ID: 0, ComputeSlices: 4, MemorySlices: 4, MaxCount: 1, Placements: lfStarts(4, 0)},
			{Name: "1g.6gb+me", Index: 7, ID: 21, ComputeSlices: 1, MemorySlices: 1, MaxCount: 1, Placements: lfStarts(1, 0, 1, 2, 3)},
		},
	}
}

func lfCatalog(t testing.TB) *migconfig.Catalog {
	t.Helper()
	c, err := migconfig.NewCatalog(lfA100(), lfA30())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lfGPU is a MIG-capable GPU at index i with PCI device ID id.
func lfGPU(i int, id uint32) migconfig.GPUState {
	return migconfig.GPUState{Index: i, UUID: fmt.Sprintf("GPU-%d", i), DeviceID: id, MigCapable: true, Mig: migconfig.MigMode{Current: true, Pending: true}}
}

// lfT4 is a GPU without MIG at index i.
func lfT4(i int) migconfig.GPUState {
	return migconfig.GPUState{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Name: "Tesla T4", DeviceID: 0x1EB810DE}
}

func lfNode(gpus ...migconfig.GPUState) migconfig.NodeState { return migconfig.NodeState{GPUs: gpus} }

// lfIn is an instance of profile id, placed at start when start ≥ 0.
func lfIn(id migconfig.ProfileID, size, start int) migconfig.Instance {
	in := migconfig.Instance{Profile: id}
	if start >= 0 {
		in.Placement = migconfig.Placement{Start: start, Size: size}
	}
	return in
}

func lfSplit(in migconfig.Instance, c, n int) migconfig.Instance {
	in.Compute = migconfig.Compute{Slices: c, Count: n}
	return in
}

const (
	lfA100ID = 0x20B010DE
	lfA30ID  = 0x20B710DE
)

func TestResolve(t *testing.T) {
	balanced := []migconfig.Instance{lfIn(9, 4, -1), lfIn(14, 2, -1), lfIn(19, 1, -1), lfIn(19, 1, -1)}
	tests := []struct {
		name   string
		src    string
		config string
		node   migconfig.NodeState
		want   map[int]migconfig.GPULayout
	}{{
		name: "device-filter selects, others untouched, devices all skips non-MIG GPUs",
		src: lfHeader + `  all-balanced:
    - device-filter: ["0x20B010DE"]
      devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
`,
		config: "all-balanced",
		node:   lfNode(lfGPU(0, lfA100ID), lfT4(1), lfGPU(2, lfA30ID), lfGPU(3, lfA100ID)),
		want: map[int]migconfig.GPULayout{
			0: {MigEnabled: true, Instances: balanced},
			3: {MigEnabled: true, Instances: balanced},
		},
	}, {
		name: "disabled entries need no model",
		src: lfHeader + `  off:
    - devices: all
      mig-enabled: false
`,
		config: "", // the only config
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, 0x2B0010DE), lfT4(2)),
		want: map[int]migconfig.GPULayout{
			0: {MigEnabled: false},
			1: {MigEnabled: false},
		},
	}, {
		name: "explicit placements, sorted",
		src: lfHeader + `  pinned:
    - devices: [1]
      mig-enabled: true
      mig-devices: {"1g.5gb": 2, "3g.20gb": 1, "2g.10gb": 1}
      placements: {"3g.20gb": [4], "1g.5gb": [3]}
`,
		config: "pinned",
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA100ID)),
		want: map[int]migconfig.GPULayout{
			1: {MigEnabled: true, Instances: []migconfig.Instance{
				lfIn(19, 1, 3), lfIn(9, 4, 4), lfIn(14, 2, -1), lfIn(19, 1, -1),
			}},
		},
	}, {
		name: "compute splits",
		src: lfHeader + `  split:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1c.3g.20gb": 3}
    - devices: [1]
      mig-enabled: true
      mig-devices: {"1c.3g.20gb": 4}
      placements: {"1c.3g.20gb": [4]}
    - devices: [2]
      mig-enabled: true
      mig-devices: {"2c.7g.40gb": 3}
    - devices: [3]
      mig-enabled: true
      mig-devices: {"3c.3g.20gb": 1, "2c.4g.20gb": 1}
`,
		config: "split",
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA100ID), lfGPU(2, lfA100ID), lfGPU(3, lfA100ID)),
		want: map[int]migconfig.GPULayout{
			0: {MigEnabled: true, Instances: []migconfig.Instance{lfSplit(lfIn(9, 4, -1), 1, 3)}},
			1: {MigEnabled: true, Instances: []migconfig.Instance{lfSplit(lfIn(9, 4, 4), 1, 3), lfSplit(lfIn(9, 4, -1), 1, 1)}},
			2: {MigEnabled: true, Instances: []migconfig.Instance{lfSplit(lfIn(0, 8, -1), 2, 3)}},
			3: {MigEnabled: true, Instances: []migconfig.Instance{lfSplit(lfIn(5, 4, -1), 2, 1), lfIn(9, 4, -1)}},
		},
	}, {
		name: "subsystem filter",
		src: lfHeader + `  sub:
    - device-filter: "0x20B010DE:0x145F10DE"
      devices: all
      mig-enabled: true
      mig-devices: {"7g.40gb": 1}
`,
		config: "sub",
		node: func() migconfig.NodeState {
			a, b := lfGPU(0, lfA100ID), lfGPU(1, lfA100ID)
			a.SubsystemID, b.SubsystemID = 0x145F10DE, 0x134F10DE
			return lfNode(a, b)
		}(),
		want: map[int]migconfig.GPULayout{0: {MigEnabled: true, Instances: []migconfig.Instance{lfIn(0, 8, -1)}}},
	}, {
		name: "MIG enabled with no instances; device-filter excludes an explicit index",
		src: lfHeader + `  on:
    - device-filter: "0x20B710DE"
      devices: [0, 1]
      mig-enabled: true
      mig-devices: {}
`,
		config: "on",
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA30ID)),
		want:   map[int]migconfig.GPULayout{1: {MigEnabled: true, Instances: []migconfig.Instance{}}},
	}}
	cat := lfCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := lfParse(t, tt.src)
			got, err := f.Resolve(cat, tt.config, tt.node)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestResolveSameNameDifferentProfiles(t *testing.T) {
	// "1g.10gb" is the double-memory REV2 profile (ID 15, 2 memory slices)
	// on the A100-40GB but the base 1-slice profile (ID 19) on the
	// A100-80GB and H100: names resolve on each GPU's own model.
	f := lfParse(t, lfHeader+`  all-1g.10gb:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 4}
`)
	cat := migconfig.Builtin()
	node := lfNode(lfGPU(0, 0x20B010DE), lfGPU(1, 0x20B210DE), lfGPU(2, 0x233010DE))
	got, err := f.Resolve(cat, "all-1g.10gb", node)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]migconfig.ProfileID{0: 15, 1: 19, 2: 19}
	for gpu, id := range want {
		l := got[gpu]
		if len(l.Instances) != 4 {
			t.Fatalf("GPU %d: %d instances, want 4", gpu, len(l.Instances))
		}
		for _, in := range l.Instances {
			if in.Profile != id {
				t.Errorf("GPU %d: profile %d, want %d", gpu, in.Profile, id)
			}
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		config string
		node   migconfig.NodeState
		want   []string
		is     error
	}{{
		name: "unknown profile name, with suggestion",
		src: lfHeader + `  all-balanced:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "3g.21gb": 1
`,
		config: "all-balanced",
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA100ID)),
		want:   []string{`t.yaml:8:9: mig-configs.all-balanced[0].mig-devices: GPUs 0, 1: "3g.21gb" is not a profile of A100-SXM4-40GB; did you mean 3g.20gb?`},
	}, {
		name: "name of another model, reported once per model",
		src: lfHeader + `  mixed:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices: {"1g.5gb": 1, "1g.6gb": 1, "3g.20gb": 0}
`,
		config: "mixed",
		node:   lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA30ID)),
		want: []string{
			`t.yaml:6:21: mig-configs.mixed[0].mig-devices: GPU 1: "1g.5gb" is not a profile of A30-24GB; did you mean 1g.6gb?`,
			`t.yaml:6:34: mig-configs.mixed[0].mig-devices: GPU 0: "1g.6gb" is not a profile of A100-SXM4-40GB; did you mean 1g.5gb?`,
		},
	}, {
		name: "no suggestion lists the profiles",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"5g.30gb": 1}
`,
		node: lfNode(lfGPU(0, lfA30ID)),
		want: []string{`t.yaml:6:21: mig-configs.c[0].mig-devices: GPU 0: "5g.30gb" is not a profile of A30-24GB (it has 1g.6gb, 2g.12gb, 4g.24gb, 1g.6gb+me)`},
	}, {
		name: "errors of the entry that wins, not of the one it overrides",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.6gb": 4}
    - device-filter: "0x20B010DE"
      devices: [1]
      mig-enabled: true
      mig-devices: {"3g.20gb": 3}
`,
		node: lfNode(lfGPU(0, lfA30ID), lfGPU(1, lfA100ID)),
		want: []string{`t.yaml:10:21: mig-configs.c[1].mig-devices: GPU 1: 3 × 3g.20gb: A100-SXM4-40GB allows at most 2`},
	}, {
		name: "index that does not exist, non-MIG GPU by index",
		src: lfHeader + `  c:
    - devices: [0, 4]
      mig-enabled: true
      mig-devices: {}
    - devices: [1]
      mig-enabled: true
      mig-devices: {}
`,
		node: lfNode(lfGPU(0, lfA100ID), lfT4(1)),
		want: []string{
			`t.yaml:4:7: mig-configs.c[0].devices: GPU 4 does not exist; the node has GPUs 0, 1`,
			`t.yaml:7:7: mig-configs.c[1].devices: GPU 1 (Tesla T4) does not support MIG`,
		},
	}, {
		name: "unknown GPU model",
		src:  lfHeader + "  c:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n",
		node: func() migconfig.NodeState {
			g := lfGPU(0, 0x290110DE)
			g.Name = "NVIDIA B200"
			return lfNode(g)
		}(),
		want: []string{`t.yaml:4:7: mig-configs.c[0]: GPU 0 (NVIDIA B200, device ID 0x290110DE): GPU model not in the catalog`},
		is:   migconfig.ErrUnknownGPUModel,
	}, {
		name: "bad compute splits and counts",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices:
        "3c.4g.20gb": 1
        "4c.3g.20gb": 1
        "1g.5gb+me": 2
        "2c.3g.20gb": 3
`,
		node: lfNode(lfGPU(0, lfA100ID)),
		want: []string{
			`t.yaml:7:9: mig-configs.c[0].mig-devices: GPU 0: "3c.4g.20gb": compute instances of 3 slices cannot split a 4g GPU instance (C must equal G, or 2C ≤ G+1)`,
			`t.yaml:8:9: mig-configs.c[0].mig-devices: GPU 0: "4c.3g.20gb": compute instances of 4 slices cannot split a 3g GPU instance (C must equal G, or 2C ≤ G+1)`,
			`t.yaml:9:9: mig-configs.c[0].mig-devices: GPU 0: 2 × 1g.5gb+me: A100-SXM4-40GB allows at most 1`,
			`t.yaml:10:9: mig-configs.c[0].mig-devices: GPU 0: 3 × 2c.3g.20gb need 3 3g.20gb GPU instances; A100-SXM4-40GB allows at most 2`,
		},
	}, {
		name: "bad placement start",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 1, "2g.10gb": 1}
      placements:
        "3g.20gb": [2]
        "2g.10gb": [6]
`,
		node: lfNode(lfGPU(0, lfA100ID)),
		want: []string{
			`t.yaml:8:9: mig-configs.c[0].placements: GPU 0: 2 is not a start of 3g.20gb on A100-SXM4-40GB (starts: 0, 4)`,
			`t.yaml:9:9: mig-configs.c[0].placements: GPU 0: 6 is not a start of 2g.10gb on A100-SXM4-40GB (starts: 0, 2, 4)`,
		},
	}, {
		name: "layout that does not fit: ValidateLayout's reason, wrapped",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
      placements: {"3g.20gb": [0]}
`,
		node: lfNode(lfGPU(0, lfA100ID)),
		want: []string{`t.yaml:6:7: mig-configs.c[0].mig-devices: GPU 0: not possible on A100-SXM4-40GB: `},
	}}
	cat := lfCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := lfParse(t, tt.src)
			got, err := f.Resolve(cat, tt.config, tt.node)
			if err == nil {
				t.Fatalf("Resolve = %+v, want an error", got)
			}
			if got != nil {
				t.Errorf("Resolve returned layouts with its error: %+v", got)
			}
			lines := lfErrLines(err)
			ok := len(lines) == len(tt.want)
			for i := 0; ok && i < len(lines); i++ {
				if strings.HasSuffix(tt.want[i], ": ") {
					ok = strings.HasPrefix(lines[i], tt.want[i])
				} else {
					ok = lines[i] == tt.want[i]
				}
			}
			if !ok {
				t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
		})
	}
}

func TestResolveWrapsValidateLayout(t *testing.T) {
	f := lfParse(t, lfHeader+`  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
      placements: {"3g.20gb": [0]}
`)
	m := lfA100()
	layout := migconfig.GPULayout{MigEnabled: true, Instances: []migconfig.Instance{
		lfIn(9, 4, 0), lfIn(14, 2, -1), lfIn(19, 1, -1), lfIn(19, 1, -1),
	}}
	want := migconfig.ValidateLayout(&m, layout)
	if want == nil {
		t.Fatal("ValidateLayout accepts 3g@0 + 2g + 2×1g on an A100-40GB")
	}
	_, err := f.Resolve(lfCatalog(t), "c", lfNode(lfGPU(0, lfA100ID)))
	var fe *migconfig.FileError
	if !errors.As(err, &fe) || fe.Unwrap() == nil || fe.Unwrap().Error() != want.Error() {
		t.Fatalf("Resolve error %v does not wrap ValidateLayout's %v", err, want)
	}
	if !strings.Contains(fe.Msg, want.Error()) || fe.Line != 6 || fe.Column != 7 {
		t.Errorf("error %q at %d:%d", fe.Msg, fe.Line, fe.Column)
	}
}

func TestResolveUnknownConfig(t *testing.T) {
	f := lfParse(t, lfHeader+"  all-disabled:\n    - devices: all\n      mig-enabled: false\n  all-enabled:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n")
	_, err := f.Resolve(lfCatalog(t), "all-enabeld", lfNode())
	if !errors.Is(err, migconfig.ErrUnknownConfig) {
		t.Fatalf("err = %v, want ErrUnknownConfig", err)
	}
	want := `t.yaml: mig-configs: unknown config "all-enabeld"; the file has all-disabled, all-enabled; did you mean all-enabled?`
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	if _, err := f.Resolve(lfCatalog(t), "", lfNode()); !errors.Is(err, migconfig.ErrUnknownConfig) {
		t.Errorf("Resolve with no config name on a two-config file: %v", err)
	}
	if _, err := f.Resolve(nil, "all-enabled", lfNode(lfGPU(0, lfA100ID))); !errors.Is(err, migconfig.ErrUnknownGPUModel) {
		t.Errorf("Resolve with a nil catalog: %v", err)
	}
	got, err := f.Resolve(lfCatalog(t), "all-disabled", lfNode(lfT4(0)))
	if err != nil || len(got) != 0 {
		t.Errorf("Resolve(all-disabled) on a node without MIG = %v, %v; want empty", got, err)
	}
}

func TestValidate(t *testing.T) {
	cat := lfCatalog(t)
	ok := lfParse(t, lfHeader+`  c:
    - device-filter: ["0x233010DE", "0x20B010DE"]
      devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 2}
    - device-filter: "0x294110DE"
      devices: all
      mig-enabled: true
      mig-devices: {"1g.23gb": 7, "9g.1gb": 1}
    - devices: all
      mig-enabled: true
      mig-devices: {"2g.12gb": 2}
    - devices: all
      mig-enabled: false
`)
	if err := ok.Validate(cat); err != nil {
		t.Errorf("Validate: %v", err)
	}
	bad := lfParse(t, lfHeader+`  all-balanced:
    - device-filter: ["0x20B010DE", "0x20B710DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "2g.10gb": 1
        "3g.21gb": 1
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 3}
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.41gb": 1}
`)
	err := bad.Validate(cat)
	want := []string{
		`t.yaml:8:9: mig-configs.all-balanced[0].mig-devices: "1g.5gb" is not a profile of A30-24GB; did you mean 1g.6gb?`,
		`t.yaml:9:9: mig-configs.all-balanced[0].mig-devices: "2g.10gb" is not a profile of A30-24GB; did you mean 2g.12gb?`,
		`t.yaml:10:9: mig-configs.all-balanced[0].mig-devices: "3g.21gb" is not a profile of A100-SXM4-40GB; did you mean 3g.20gb?`,
		`t.yaml:10:9: mig-configs.all-balanced[0].mig-devices: "3g.21gb" is not a profile of A30-24GB (it has 1g.6gb, 2g.12gb, 4g.24gb, 1g.6gb+me)`,
		`t.yaml:13:21: mig-configs.all-balanced[1].mig-devices: fits no GPU model in the catalog; closest is A100-SXM4-40GB: 3 × 3g.20gb: A100-SXM4-40GB allows at most 2`,
		`t.yaml:16:21: mig-configs.all-balanced[2].mig-devices: fits no GPU model in the catalog; closest is A100-SXM4-40GB: "7g.41gb" is not a profile of A100-SXM4-40GB; did you mean 7g.40gb?`,
	}
	if got := lfErrLines(err); !reflect.DeepEqual(got, want) {
		t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	empty, _ := migconfig.NewCatalog()
	if err := ok.Validate(empty); err == nil || !strings.Contains(err.Error(), "the catalog has no GPU models") {
		t.Errorf("Validate(empty catalog) = %v", err)
	}
}

// TestResolveLastEntryWins checks mig-parted's rule for a GPU that several
// entries select: the entries apply in order, so the last one's layout is
// the one the GPU ends with, and problems of the layouts it replaces do not
// matter.
func TestResolveLastEntryWins(t *testing.T) {
	f := lfParse(t, lfHeader+`  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.40gb": 1}
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.5gb": 7}
    - device-filter: "0x20B710DE"
      devices: all
      mig-enabled: true
      mig-devices: {"2g.12gb": 2}
    - devices: [0, 3]
      mig-enabled: false
`)
	node := lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA100ID), lfGPU(2, lfA30ID), lfGPU(3, lfA100ID))
	seven := make([]migconfig.Instance, 7)
	for i := range seven {
		seven[i] = lfIn(19, 1, -1)
	}
	want := map[int]migconfig.GPULayout{
		0: {MigEnabled: false},
		1: {MigEnabled: true, Instances: []migconfig.Instance{lfIn(0, 8, -1)}},
		2: {MigEnabled: true, Instances: []migconfig.Instance{lfIn(5, 2, -1), lfIn(5, 2, -1)}},
		3: {MigEnabled: false},
	}
	got, err := f.Resolve(lfCatalog(t), "c", node)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve:\n got %+v\nwant %+v", got, want)
	}

	res, err := f.ResolveDetail(lfCatalog(t), "c", node)
	if err != nil {
		t.Fatalf("ResolveDetail: %v", err)
	}
	if !reflect.DeepEqual(res.Layouts, want) {
		t.Errorf("ResolveDetail.Layouts:\n got %+v\nwant %+v", res.Layouts, want)
	}
	wantOverrides := []migconfig.Override{
		{File: "t.yaml", Config: "c", GPU: 0, Entry: 1, EntryPos: migconfig.Pos{Line: 7, Column: 7}, Replaced: 0, ReplacedPos: migconfig.Pos{Line: 4, Column: 7}},
		{File: "t.yaml", Config: "c", GPU: 2, Entry: 2, EntryPos: migconfig.Pos{Line: 10, Column: 7}, Replaced: 0, ReplacedPos: migconfig.Pos{Line: 4, Column: 7}},
		{File: "t.yaml", Config: "c", GPU: 0, Entry: 3, EntryPos: migconfig.Pos{Line: 14, Column: 7}, Replaced: 1, ReplacedPos: migconfig.Pos{Line: 7, Column: 7}},
		{File: "t.yaml", Config: "c", GPU: 3, Entry: 3, EntryPos: migconfig.Pos{Line: 14, Column: 7}, Replaced: 0, ReplacedPos: migconfig.Pos{Line: 4, Column: 7}},
	}
	if !reflect.DeepEqual(res.Overrides, wantOverrides) {
		t.Errorf("Overrides:\n got %+v\nwant %+v", res.Overrides, wantOverrides)
	}
	wantText := []string{
		"t.yaml:7:7: mig-configs.c[1]: GPU 0: overrides the layout of mig-configs.c[0] (line 4)",
		"t.yaml:10:7: mig-configs.c[2]: GPU 2: overrides the layout of mig-configs.c[0] (line 4)",
		"t.yaml:14:7: mig-configs.c[3]: GPU 0: overrides the layout of mig-configs.c[1] (line 7)",
		"t.yaml:14:7: mig-configs.c[3]: GPU 3: overrides the layout of mig-configs.c[0] (line 4)",
	}
	for i, o := range res.Overrides {
		if i < len(wantText) && o.String() != wantText[i] {
			t.Errorf("Overrides[%d].String() = %q\nwant %q", i, o.String(), wantText[i])
		}
	}

	// Without overrides the list is empty; errors give no Resolution.
	one := lfParse(t, lfHeader+"  c:\n    - devices: all\n      mig-enabled: false\n")
	if res, err := one.ResolveDetail(lfCatalog(t), "", node); err != nil || len(res.Overrides) != 0 || len(res.Layouts) != 4 {
		t.Errorf("ResolveDetail without overrides = %+v, %v", res, err)
	}
	if res, err := one.ResolveDetail(lfCatalog(t), "nope", node); err == nil || res != nil {
		t.Errorf("ResolveDetail(unknown config) = %+v, %v", res, err)
	}
}

// TestResolveOverriddenEntryErrors checks which problems still count when
// a later entry overrides an earlier one: problems of the overridden
// layout do not, problems with the entry's own selection do.
func TestResolveOverriddenEntryErrors(t *testing.T) {
	f := lfParse(t, lfHeader+`  c:
    - devices: [0, 5]
      mig-enabled: true
      mig-devices: {"5g.30gb": 1}
    - devices: all
      mig-enabled: false
`)
	_, err := f.Resolve(lfCatalog(t), "c", lfNode(lfGPU(0, lfA100ID)))
	want := "t.yaml:4:7: mig-configs.c[0].devices: GPU 5 does not exist; the node has GPU 0"
	if err == nil || err.Error() != want {
		t.Errorf("Resolve error:\n%v\nwant:\n%s", err, want)
	}
}

// TestValidateNamesEachModelsFacts checks that when an entry without a
// device-filter fits no model, the message gives each model that has its
// profiles its own facts, naming the model: "1g.10gb" is the 2-slice REV2
// profile on the A100-40GB but the 1-slice profile on the A100-80GB and
// the H100.
func TestValidateNamesEachModelsFacts(t *testing.T) {
	cat := migconfig.Builtin()
	tests := []struct {
		name string
		src  string
		want []string
	}{{
		name: "bad start",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 1}
      placements: {"1g.10gb": [7]}
`,
		want: []string{
			`t.yaml:7:20: mig-configs.c[0].placements: fits no GPU model in the catalog; on the models that have its profiles: ` +
				`7 is not a start of 1g.10gb on A100-SXM4-40GB (starts: 0, 2, 4, 6); ` +
				`7 is not a start of 1g.10gb on A100-SXM4-80GB (starts: 0, 1, 2, 3, 4, 5, 6); ` +
				`7 is not a start of 1g.10gb on H100-80GB (starts: 0, 1, 2, 3, 4, 5, 6)`,
		},
	}, {
		name: "too many",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 8}
`,
		want: []string{
			`t.yaml:6:21: mig-configs.c[0].mig-devices: fits no GPU model in the catalog; on the models that have its profiles: ` +
				`8 × 1g.10gb: A100-SXM4-40GB allows at most 4; ` +
				`8 × 1g.10gb: A100-SXM4-80GB allows at most 7; ` +
				`8 × 1g.10gb: H100-80GB allows at most 7`,
		},
	}, {
		name: "one model has the profile",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 3}
`,
		want: []string{
			`t.yaml:6:21: mig-configs.c[0].mig-devices: fits no GPU model in the catalog; closest is A100-SXM4-40GB: 3 × 3g.20gb: A100-SXM4-40GB allows at most 2`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lfParse(t, tt.src).Validate(cat)
			if got := lfErrLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
