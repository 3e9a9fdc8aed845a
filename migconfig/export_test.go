package migconfig_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// lfObs is an observed GPU instance of profile id at start:size, holding
// one compute instance per entry of ciSlices (one full one when empty).
func lfObs(m *migconfig.GPUModel, id migconfig.ProfileID, start int, ciSlices ...int) migconfig.Instance {
	p, ok := m.ProfileByID(id)
	if !ok {
		panic("no profile")
	}
	if len(ciSlices) == 0 {
		ciSlices = []int{p.ComputeSlices}
	}
	in := migconfig.Instance{Profile: id, Placement: migconfig.Placement{Start: start, Size: p.MemorySlices}, GPUInstanceID: start + 1}
	off := 0
	for i, c := range ciSlices {
		in.ComputeInstances = append(in.ComputeInstances, migconfig.ComputeInstance{ID: i, Slices: c, Start: off})
		off += c
	}
	return in
}

// lfDesired is the desired form of observed instances: what a layout
// file that reproduces them resolves to.
func lfDesired(m *migconfig.GPUModel, ins []migconfig.Instance) []migconfig.Instance {
	out := []migconfig.Instance{}
	for _, in := range ins {
		d := migconfig.Instance{Profile: in.Profile, Placement: in.Placement}
		if c, ok := migconfig.ObservedCompute(m, in); ok {
			p, _ := m.ProfileByID(in.Profile)
			if c.Slices != p.ComputeSlices {
				d.Compute = c
			}
		}
		out = append(out, d)
	}
	migconfig.SortInstances(out)
	return out
}

// lfGPUOf returns a MIG-enabled GPU of the model with key at index i.
func lfGPUOf(t testing.TB, cat *migconfig.Catalog, key string, i int, build func(m *migconfig.GPUModel) []migconfig.Instance) migconfig.GPUState {
	t.Helper()
	m, ok := cat.ByKey(key)
	if !ok {
		t.Fatalf("no model %s", key)
	}
	g := lfGPU(i, m.DeviceIDs[0])
	g.Name = m.ProductNames[0]
	g.Model = m.Key
	if build != nil {
		g.Instances = build(m)
	}
	return g
}

func TestExportRoundTrip(t *testing.T) {
	cat := migconfig.Builtin()
	balanced := func(m *migconfig.GPUModel) []migconfig.Instance {
		return []migconfig.Instance{lfObs(m, 19, 0), lfObs(m, 19, 1), lfObs(m, 14, 2), lfObs(m, 9, 4)}
	}
	disabled := func(g migconfig.GPUState) migconfig.GPUState {
		g.Mig = migconfig.MigMode{}
		g.Instances = nil
		return g
	}
	nodes := []struct {
		name    string
		node    migconfig.NodeState
		entries int // entries in the exported config, after merging
	}{{
		name: "A100-40GB: balanced twice, disabled, a GPU without MIG",
		node: lfNode(
			lfGPUOf(t, cat, "a100-40gb", 0, balanced),
			disabled(lfGPUOf(t, cat, "a100-40gb", 1, nil)),
			lfGPUOf(t, cat, "a100-40gb", 2, balanced),
			lfT4(3),
			lfGPUOf(t, cat, "a100-40gb", 4, func(m *migconfig.GPUModel) []migconfig.Instance {
				// the 3g instance on the left half, which all-balanced
				// without placements would never produce
				return []migconfig.Instance{lfObs(m, 9, 0), lfObs(m, 14, 4), lfObs(m, 20, 6)}
			}),
		),
		entries: 3,
	}, {
		name: "A100-80GB: compute splits, an empty MIG GPU",
		node: lfNode(
			lfGPUOf(t, cat, "a100-80gb", 0, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 5, 0, 2, 2), lfObs(m, 9, 4, 1, 1, 1)}
			}),
			lfGPUOf(t, cat, "a100-80gb", 1, func(m *migconfig.GPUModel) []migconfig.Instance { return nil }),
			lfGPUOf(t, cat, "a100-80gb", 2, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 0, 0, 1, 1, 1, 1, 1, 1, 1)}
			}),
		),
		entries: 3,
	}, {
		name: "H100: seven 1g, four double-memory 1g, +me",
		node: lfNode(
			lfGPUOf(t, cat, "h100-80gb", 0, func(m *migconfig.GPUModel) []migconfig.Instance {
				var out []migconfig.Instance
				for s := 0; s < 7; s++ {
					out = append(out, lfObs(m, 19, s))
				}
				return out
			}),
			lfGPUOf(t, cat, "h100-80gb", 1, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 15, 6), lfObs(m, 15, 2), lfObs(m, 15, 0), lfObs(m, 15, 4)}
			}),
			lfGPUOf(t, cat, "h100-80gb", 2, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 20, 5), lfObs(m, 19, 6), lfObs(m, 14, 2), lfObs(m, 19, 0), lfObs(m, 19, 1), lfObs(m, 19, 4)}
			}),
		),
		entries: 3,
	}, {
		name: "H200: split 3g instances, fuller one on either side",
		node: lfNode(
			lfGPUOf(t, cat, "h200", 0, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 9, 0, 1, 1, 1), lfObs(m, 9, 4, 1)}
			}),
			lfGPUOf(t, cat, "h200", 1, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 9, 0, 1), lfObs(m, 9, 4, 1, 1, 1)}
			}),
			lfGPUOf(t, cat, "h200", 2, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 9, 4, 2), lfObs(m, 14, 0), lfObs(m, 19, 3)}
			}),
		),
		entries: 3,
	}, {
		name: "A30: mixed with +me, split 4g, mixed models on one node",
		node: lfNode(
			lfGPUOf(t, cat, "a30", 0, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 5, 0), lfObs(m, 14, 2), lfObs(m, 21, 3)}
			}),
			lfGPUOf(t, cat, "a30", 1, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 0, 0, 2, 2)}
			}),
			lfGPUOf(t, cat, "a30", 2, func(m *migconfig.GPUModel) []migconfig.Instance {
				return []migconfig.Instance{lfObs(m, 5, 0), lfObs(m, 14, 2), lfObs(m, 21, 3)}
			}),
			lfGPUOf(t, cat, "a100-40gb", 3, balanced),
		),
		entries: 3,
	}}
	for _, tt := range nodes {
		t.Run(tt.name, func(t *testing.T) {
			f := migconfig.Export(cat, tt.node, "")
			if got := f.ConfigNames(); !reflect.DeepEqual(got, []string{"current"}) {
				t.Fatalf("ConfigNames = %v", got)
			}
			if n := len(f.Configs["current"]); n != tt.entries {
				t.Errorf("%d entries, want %d", n, tt.entries)
			}
			for _, format := range []string{"yaml", "json"} {
				data, err := f.Marshal(format)
				if err != nil {
					t.Fatal(err)
				}
				g, err := migconfig.ParseFile("export."+format, data)
				if err != nil {
					t.Fatalf("ParseFile(export):\n%s\n%v", data, err)
				}
				if err := g.Validate(cat); err != nil {
					t.Errorf("Validate(export): %v", err)
				}
				got, err := g.Resolve(cat, "current", tt.node)
				if err != nil {
					t.Fatalf("Resolve(export):\n%s\n%v", data, err)
				}
				want := map[int]migconfig.GPULayout{}
				for _, gpu := range tt.node.GPUs {
					if !gpu.MigCapable {
						continue
					}
					if !gpu.Mig.Current {
						want[gpu.Index] = migconfig.GPULayout{}
						continue
					}
					m, _ := cat.Lookup(gpu)
					want[gpu.Index] = migconfig.GPULayout{MigEnabled: true, Instances: lfDesired(m, gpu.Instances)}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: export → resolve changed the layouts:\n%s\n got %+v\nwant %+v", format, data, got, want)
				}
			}
		})
	}
}

func TestExportFormat(t *testing.T) {
	cat := migconfig.Builtin()
	a100 := func(m *migconfig.GPUModel) []migconfig.Instance {
		return []migconfig.Instance{lfObs(m, 19, 0), lfObs(m, 19, 1), lfObs(m, 14, 2), lfObs(m, 9, 4, 1, 1, 1)}
	}
	node := lfNode(
		lfGPUOf(t, cat, "a100-40gb", 0, a100),
		lfGPUOf(t, cat, "a100-40gb", 1, a100),
		func() migconfig.GPUState {
			g := lfGPUOf(t, cat, "a30", 2, nil)
			g.Mig = migconfig.MigMode{}
			return g
		}(),
	)
	f := migconfig.Export(cat, node, "snapshot")
	yml, err := f.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	wantYAML := `version: v1
mig-configs:
  snapshot:
    - device-filter: ["0x20B010DE"]
      devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1c.3g.20gb": 3
        "1g.5gb": 2
        "2g.10gb": 1
      placements:
        "1c.3g.20gb": [4]
        "1g.5gb": [0, 1]
        "2g.10gb": [2]
    - device-filter: ["0x20B710DE"]
      devices: [2]
      mig-enabled: false
`
	if string(yml) != wantYAML {
		t.Errorf("MarshalYAML:\n%s\nwant:\n%s", yml, wantYAML)
	}
	js, err := f.Marshal("json")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{
  "version": "v1",
  "mig-configs": {
    "snapshot": [
      {
        "device-filter": [
          "0x20B010DE"
        ],
        "devices": [
          0,
          1
        ],
        "mig-enabled": true,
        "mig-devices": {
          "1c.3g.20gb": 3,
          "1g.5gb": 2,
          "2g.10gb": 1
        },
        "placements": {
          "1c.3g.20gb": [
            4
          ],
          "1g.5gb": [
            0,
            1
          ],
          "2g.10gb": [
            2
          ]
        }
      },
      {
        "device-filter": [
          "0x20B710DE"
        ],
        "devices": [
          2
        ],
        "mig-enabled": false
      }
    ]
  }
}
`
	if string(js) != wantJSON {
		t.Errorf("Marshal(json):\n%s\nwant:\n%s", js, wantJSON)
	}
	if _, err := f.Marshal("toml"); err == nil {
		t.Error("Marshal(toml) succeeded")
	}
}

func TestExportLeavesOutWhatItCannotName(t *testing.T) {
	cat := migconfig.Builtin()
	unknown := lfGPU(1, 0x3182FFFF)
	unknown.Instances = []migconfig.Instance{{Profile: 19, Placement: migconfig.Placement{Start: 0, Size: 1}}}
	badProfile := lfGPUOf(t, cat, "a100-40gb", 2, func(m *migconfig.GPUModel) []migconfig.Instance {
		return []migconfig.Instance{{Profile: 77, Placement: migconfig.Placement{Start: 0, Size: 1}}}
	})
	unknownOff := lfGPU(3, 0x3182FFFF)
	unknownOff.Mig = migconfig.MigMode{}
	f := migconfig.Export(cat, lfNode(lfT4(0), unknown, badProfile, unknownOff), "x")
	entries := f.Configs["x"]
	if len(entries) != 1 || !reflect.DeepEqual(entries[0].Devices.Indexes, []int{3}) || entries[0].MigEnabled {
		t.Errorf("Export = %+v; want only GPU 3, MIG disabled", entries)
	}
	empty := migconfig.Export(cat, lfNode(lfT4(0)), "x")
	if _, err := empty.MarshalYAML(); err == nil || !strings.Contains(err.Error(), `config "x" has no entries`) {
		t.Errorf("MarshalYAML of an empty export: %v", err)
	}
	if _, err := (&migconfig.File{}).MarshalJSON(); err == nil {
		t.Error("MarshalJSON of a file with no configs succeeded")
	}
}
