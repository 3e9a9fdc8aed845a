package migconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// lfParse parses src as "t.yaml", failing the test on error.
func lfParse(t testing.TB, src string) *migconfig.File {
	t.Helper()
	f, err := migconfig.ParseFile("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseFile:\n%s\nerror:\n%v", src, err)
	}
	return f
}

// lfErrLines returns the lines of err's message.
func lfErrLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

const lfHeader = "version: v1\nmig-configs:\n"

func TestParseFileAccepts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string][]migconfig.ConfigEntry // positions ignored
	}{{
		name: "string device-filter and all",
		src: lfHeader + `  all-balanced:
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "2g.10gb": 1
        "3g.20gb": 1
`,
		want: map[string][]migconfig.ConfigEntry{"all-balanced": {{
			DeviceFilter: []migconfig.DeviceFilter{{DeviceID: 0x20B010DE}},
			Devices:      migconfig.Devices{All: true},
			MigEnabled:   true,
			MigDevices:   []migconfig.MigDevice{{Name: "1g.5gb", Count: 2}, {Name: "2g.10gb", Count: 1}, {Name: "3g.20gb", Count: 1}},
		}}},
	}, {
		name: "device-filter list, lower case, unquoted, subsystem",
		src: lfHeader + `  c:
    - device-filter: ["0x20b010de", 0x20B110DE, "0x233010DE:0x16C110DE"]
      devices: [0, 2]
      mig-enabled: false
`,
		want: map[string][]migconfig.ConfigEntry{"c": {{
			DeviceFilter: []migconfig.DeviceFilter{{DeviceID: 0x20B010DE}, {DeviceID: 0x20B110DE}, {DeviceID: 0x233010DE, SubsystemID: 0x16C110DE}},
			Devices:      migconfig.Devices{Indexes: []int{0, 2}},
		}}},
	}, {
		name: "empty device-filter means none; empty devices list",
		src: lfHeader + `  c:
    - device-filter: ""
      devices: []
      mig-enabled: false
    - device-filter: []
      devices: all
      mig-enabled: false
      mig-devices: {}
`,
		want: map[string][]migconfig.ConfigEntry{"c": {
			{Devices: migconfig.Devices{Indexes: []int{}}},
			{Devices: migconfig.Devices{All: true}},
		}},
	}, {
		name: "all-enabled with empty mig-devices, zero counts, YAML 1.1 booleans",
		src: lfHeader + `  all-enabled:
    - devices: all
      mig-enabled: yes
      mig-devices: {}
  zeros:
    - devices: all
      mig-enabled: True
      mig-devices: {"1g.5gb": 0, "2g.10gb": 0}
  off:
    - devices: all
      mig-enabled: off
`,
		want: map[string][]migconfig.ConfigEntry{
			"all-enabled": {{Devices: migconfig.Devices{All: true}, MigEnabled: true, MigDevices: []migconfig.MigDevice{}}},
			"zeros": {{Devices: migconfig.Devices{All: true}, MigEnabled: true,
				MigDevices: []migconfig.MigDevice{{Name: "1g.5gb"}, {Name: "2g.10gb"}}}},
			"off": {{Devices: migconfig.Devices{All: true}}},
		},
	}, {
		name: "compute splits and attributes",
		src: lfHeader + `  c:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1c.3g.20gb": 3
        "1g.10gb+me": 1
        "1g.24gb+me.all": 1
        "1g.24gb+gfx": 1
        "1g.24gb-me": 1
`,
		want: map[string][]migconfig.ConfigEntry{"c": {{
			Devices: migconfig.Devices{All: true}, MigEnabled: true,
			MigDevices: []migconfig.MigDevice{{Name: "1c.3g.20gb", Count: 3}, {Name: "1g.10gb+me", Count: 1},
				{Name: "1g.24gb+me.all", Count: 1}, {Name: "1g.24gb+gfx", Count: 1}, {Name: "1g.24gb-me", Count: 1}},
		}}},
	}, {
		name: "placements extension",
		src: lfHeader + `  p:
    - devices: all
      mig-enabled: true
      mig-devices: {"3g.20gb": 1, "1g.5gb": 4, "1c.3g.20gb": 4}
      placements: {"3g.20gb": [4], "1g.5gb": [0, 1, 2], "1c.3g.20gb": []}
`,
		want: map[string][]migconfig.ConfigEntry{"p": {{
			Devices: migconfig.Devices{All: true}, MigEnabled: true,
			MigDevices: []migconfig.MigDevice{{Name: "3g.20gb", Count: 1}, {Name: "1g.5gb", Count: 4}, {Name: "1c.3g.20gb", Count: 4}},
			Placements: []migconfig.ProfilePlacements{{Name: "3g.20gb", Starts: []int{4}}, {Name: "1g.5gb", Starts: []int{0, 1, 2}}, {Name: "1c.3g.20gb", Starts: []int{}}},
		}}},
	}, {
		name: "anchors, aliases and merge keys",
		src: lfHeader + `  a: &list
    - &base
      devices: all
      mig-enabled: true
      mig-devices: &devs {"7g.40gb": 1}
  b: *list
  c:
    - <<: *base
      devices: [1]
    - <<: [*base]
      mig-devices: *devs
      devices: [2]
`,
		want: map[string][]migconfig.ConfigEntry{
			"a": {{Devices: migconfig.Devices{All: true}, MigEnabled: true, MigDevices: []migconfig.MigDevice{{Name: "7g.40gb", Count: 1}}}},
			"b": {{Devices: migconfig.Devices{All: true}, MigEnabled: true, MigDevices: []migconfig.MigDevice{{Name: "7g.40gb", Count: 1}}}},
			"c": {
				{Devices: migconfig.Devices{Indexes: []int{1}}, MigEnabled: true, MigDevices: []migconfig.MigDevice{{Name: "7g.40gb", Count: 1}}},
				{Devices: migconfig.Devices{Indexes: []int{2}}, MigEnabled: true, MigDevices: []migconfig.MigDevice{{Name: "7g.40gb", Count: 1}}},
			},
		},
	}, {
		name: "JSON",
		src:  `{"version": "v1", "mig-configs": {"j": [{"devices": "all", "mig-enabled": true, "mig-devices": {"4g.20gb": 1}}]}}`,
		want: map[string][]migconfig.ConfigEntry{"j": {{
			Devices: migconfig.Devices{All: true}, MigEnabled: true, MigDevices: []migconfig.MigDevice{{Name: "4g.20gb", Count: 1}},
		}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := lfParse(t, tt.src)
			if f.Version != "v1" || f.Path != "t.yaml" {
				t.Errorf("Version, Path = %q, %q", f.Version, f.Path)
			}
			got := lfStrip(f).Configs
			want := lfStrip(&migconfig.File{Configs: tt.want}).Configs
			if !reflect.DeepEqual(got, want) {
				t.Errorf("configs:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseFileKeepsOrderAndPositions(t *testing.T) {
	f := lfParse(t, lfHeader+`  zeta:
    - devices: all
      mig-enabled: false
  alpha:
    - devices: all
      mig-enabled: true
      mig-devices:
        "2g.10gb": 1
        "1g.5gb": 2
      placements:
        "1g.5gb": [0]
`)
	if got, want := f.ConfigNames(), []string{"zeta", "alpha"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ConfigNames = %v, want %v", got, want)
	}
	names := f.ConfigNames()
	names[0] = "changed"
	if f.Names[0] != "zeta" {
		t.Error("ConfigNames returned the File's own slice")
	}
	e := f.Configs["alpha"][0]
	checks := []struct {
		what string
		got  migconfig.Pos
		want migconfig.Pos
	}{
		{"entry", e.Source.Pos, migconfig.Pos{Line: 7, Column: 7}},
		{"devices", e.Source.Devices, migconfig.Pos{Line: 7, Column: 7}},
		{"mig-enabled", e.Source.MigEnabled, migconfig.Pos{Line: 8, Column: 7}},
		{"mig-devices", e.Source.MigDevices, migconfig.Pos{Line: 9, Column: 7}},
		{"2g.10gb", e.MigDevices[0].Pos, migconfig.Pos{Line: 10, Column: 9}},
		{"1g.5gb", e.MigDevices[1].Pos, migconfig.Pos{Line: 11, Column: 9}},
		{"placements", e.Source.Placements, migconfig.Pos{Line: 12, Column: 7}},
		{"placement 1g.5gb", e.Placements[0].Pos, migconfig.Pos{Line: 13, Column: 9}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s at %s, want %s", c.what, c.got, c.want)
		}
	}
	if got := e.Placement("1g.5gb"); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("Placement(1g.5gb) = %v", got)
	}
	if got := e.Placement("2g.10gb"); got != nil {
		t.Errorf("Placement(2g.10gb) = %v, want nil", got)
	}
}

func TestParseFileRejects(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // every line of the error, in order
	}{{
		name: "empty file",
		src:  "",
		want: []string{"t.yaml:1:1: file is empty; expected version: v1 and mig-configs"},
	}, {
		name: "only comments",
		src:  "# nothing here\n\n",
		want: []string{"t.yaml:1:1: file is empty; expected version: v1 and mig-configs"},
	}, {
		name: "only a document marker",
		src:  "---\n",
		want: []string{"t.yaml:1:1: file is empty; expected version: v1 and mig-configs"},
	}, {
		name: "null document",
		src:  "~\n",
		want: []string{"t.yaml:1:1: file is empty; expected version: v1 and mig-configs"},
	}, {
		name: "not a mapping",
		src:  "- version: v1\n",
		want: []string{"t.yaml:1:1: expected a mapping with version and mig-configs, found a list"},
	}, {
		name: "scalar document",
		src:  "hello\n",
		want: []string{`t.yaml:1:1: expected a mapping with version and mig-configs, found "hello"`},
	}, {
		name: "YAML syntax error",
		src:  lfHeader + "  a: [\n",
		want: []string{"t.yaml:3:6: invalid YAML: did not find expected node content"},
	}, {
		name: "two documents",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: false\n---\nversion: v1\n",
		want: []string{"t.yaml:6:1: a layout file holds one YAML document; found a second one"},
	}, {
		name: "missing version and mig-configs",
		src:  "other: 1\n",
		want: []string{
			`t.yaml:1:1: unknown field "other"; expected one of version, mig-configs`,
			"t.yaml:1:1: version: missing; expected version: v1",
			"t.yaml:1:1: mig-configs: missing; at least one config is required",
		},
	}, {
		name: "unknown version",
		src:  "version: v2\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n",
		want: []string{`t.yaml:1:10: version: unknown version "v2"; expected v1`},
	}, {
		name: "misspelt top-level key",
		src:  "version: v1\nmig-config: {}\n",
		want: []string{
			"t.yaml:1:1: mig-configs: missing; at least one config is required",
			`t.yaml:2:1: unknown field "mig-config"; did you mean mig-configs?`,
		},
	}, {
		name: "no configs",
		src:  "version: v1\nmig-configs: {}\n",
		want: []string{"t.yaml:2:1: mig-configs: at least one config is required"},
	}, {
		name: "null mig-configs",
		src:  "version: v1\nmig-configs:\n",
		want: []string{"t.yaml:2:1: mig-configs: at least one config is required"},
	}, {
		name: "mig-configs is a list",
		src:  "version: v1\nmig-configs: [a]\n",
		want: []string{"t.yaml:2:14: mig-configs: expected a mapping from config names to lists of entries, found a list"},
	}, {
		name: "empty, null and non-list configs",
		src:  lfHeader + "  a: []\n  b:\n  c: {}\n  d:\n    - 3\n",
		want: []string{
			"t.yaml:3:3: mig-configs.a: at least one entry is required",
			"t.yaml:4:3: mig-configs.b: at least one entry is required",
			"t.yaml:5:6: mig-configs.c: expected a list of entries, found a mapping",
			`t.yaml:7:7: mig-configs.d[0]: expected a mapping with devices, mig-enabled and mig-devices, found "3"`,
		},
	}, {
		name: "missing required fields",
		src:  lfHeader + "  a:\n    - {}\n",
		want: []string{
			"t.yaml:4:7: mig-configs.a[0].mig-enabled: missing required field",
			"t.yaml:4:7: mig-configs.a[0].devices: missing required field (all, or a list of GPU indices)",
		},
	}, {
		name: "unknown entry keys",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n      mig-device: {}\n      foo: 1\n",
		want: []string{
			`t.yaml:7:7: mig-configs.a[0]: unknown field "mig-device"; did you mean mig-devices?`,
			`t.yaml:8:7: mig-configs.a[0]: unknown field "foo"; expected one of device-filter, devices, mig-enabled, mig-devices, placements`,
		},
	}, {
		name: "mig-enabled not a boolean",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: \"true\"\n    - devices: all\n      mig-enabled: 1\n",
		want: []string{
			`t.yaml:5:20: mig-configs.a[0].mig-enabled: expected true or false, found "true"`,
			`t.yaml:7:20: mig-configs.a[1].mig-enabled: expected true or false, found "1"`,
		},
	}, {
		name: "mig-devices missing or null when enabled",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n    - devices: all\n      mig-enabled: true\n      mig-devices: ~\n",
		want: []string{
			"t.yaml:4:7: mig-configs.a[0].mig-devices: missing; it is required when mig-enabled is true (use {} for no MIG devices)",
			"t.yaml:8:7: mig-configs.a[1].mig-devices: is null; it is required when mig-enabled is true (use {} for no MIG devices)",
		},
	}, {
		name: "mig-devices when disabled, even with zero counts",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: false\n      mig-devices: {\"1g.5gb\": 0}\n",
		want: []string{"t.yaml:6:7: mig-configs.a[0].mig-devices: must be empty when mig-enabled is false"},
	}, {
		name: "bad devices",
		src: lfHeader + "  a:\n    - devices: some\n      mig-enabled: false\n    - devices: [-1, \"0\", 1.5, x, {}]\n      mig-enabled: false\n" +
			"    - devices: 0\n      mig-enabled: false\n    - devices: ~\n      mig-enabled: false\n    - devices: ALL\n      mig-enabled: false\n",
		want: []string{
			`t.yaml:4:16: mig-configs.a[0].devices: expected all or a list of GPU indices, found "some"`,
			`t.yaml:6:17: mig-configs.a[1].devices: expected a GPU index (an integer ≥ 0), found "-1"`,
			`t.yaml:6:21: mig-configs.a[1].devices: expected a GPU index (an integer ≥ 0), found "0"`,
			`t.yaml:6:26: mig-configs.a[1].devices: expected a GPU index (an integer ≥ 0), found "1.5"`,
			`t.yaml:6:31: mig-configs.a[1].devices: expected a GPU index (an integer ≥ 0), found "x"`,
			`t.yaml:6:34: mig-configs.a[1].devices: expected a GPU index (an integer ≥ 0), found a mapping`,
			`t.yaml:8:16: mig-configs.a[2].devices: expected all or a list of GPU indices, found "0"`,
			`t.yaml:10:16: mig-configs.a[3].devices: expected all or a list of GPU indices, found null`,
			`t.yaml:12:16: mig-configs.a[4].devices: expected all or a list of GPU indices, found "ALL"`,
		},
	}, {
		name: "bad device filters",
		src: lfHeader + "  a:\n    - device-filter: [\"0xZZ\", \"0x20B010DE:0x0\", \"1:2:3\", [1], ~, \"0x1FFFFFFFF\"]\n      devices: all\n      mig-enabled: false\n" +
			"    - device-filter: {a: 1}\n      devices: all\n      mig-enabled: false\n" +
			"    - device-filter: \"0x20B010DE:nope\"\n      devices: all\n      mig-enabled: false\n",
		want: []string{
			`t.yaml:4:23: mig-configs.a[0].device-filter: "0xZZ" is not a PCI ID (expected 0xDDDDVVVV, device << 16 | vendor)`,
			`t.yaml:4:31: mig-configs.a[0].device-filter: "0x20B010DE:0x0": subsystem ID 0 matches no GPU`,
			`t.yaml:4:49: mig-configs.a[0].device-filter: "1:2:3": expected 0xDDDDVVVV or 0xDDDDVVVV:0xSSSSVVVV`,
			`t.yaml:4:58: mig-configs.a[0].device-filter: expected a PCI ID such as "0x20B010DE", found a list`,
			`t.yaml:4:63: mig-configs.a[0].device-filter: expected a PCI ID such as "0x20B010DE", found null`,
			`t.yaml:4:66: mig-configs.a[0].device-filter: "0x1FFFFFFFF" is not a PCI ID (expected 0xDDDDVVVV, device << 16 | vendor)`,
			`t.yaml:7:22: mig-configs.a[1].device-filter: expected a PCI ID or a list of PCI IDs, found a mapping`,
			`t.yaml:10:22: mig-configs.a[2].device-filter: "0x20B010DE:nope": subsystem "nope" is not a PCI ID (expected 0xSSSSVVVV)`,
		},
	}, {
		name: "bad MIG device names and counts",
		src: lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices:\n" +
			"        1g5gb: 1\n        1g.5gb+: 1\n        1g.5gb+me-x: 1\n        0g.5gb: 1\n        1x.5gb: 1\n" +
			"        1g.5gb+1me: 1\n        \" 1g.5gb\": 1\n        1g.5gb: -1\n        2g.10gb: \"2\"\n        3g.20gb: 1.5\n" +
			"        4g.20gb: 1\n        4g.20gb: 2\n        7g.40gb: [1]\n",
		want: []string{
			`t.yaml:7:9: mig-configs.a[0].mig-devices: invalid MIG device name "1g5gb": expected <g>g.<gb>gb or <c>c.<g>g.<gb>gb, found 1 '.'-separated fields`,
			`t.yaml:8:9: mig-configs.a[0].mig-devices: invalid MIG device name "1g.5gb+": empty attribute`,
			`t.yaml:9:9: mig-configs.a[0].mig-devices: invalid MIG device name "1g.5gb+me-x": a name cannot have both '+' and '-' attributes`,
			`t.yaml:10:9: mig-configs.a[0].mig-devices: invalid MIG device name "0g.5gb": number in "0g" must be at least 1`,
			`t.yaml:11:9: mig-configs.a[0].mig-devices: invalid MIG device name "1x.5gb": expected <n>g, found "1x"`,
			`t.yaml:12:9: mig-configs.a[0].mig-devices: invalid MIG device name "1g.5gb+1me": attribute "1me" begins with a digit`,
			`t.yaml:13:9: mig-configs.a[0].mig-devices: invalid MIG device name " 1g.5gb": expected <n>g, found " 1g"`,
			`t.yaml:14:17: mig-configs.a[0].mig-devices: count of "1g.5gb" must be an integer ≥ 0, found "-1"`,
			`t.yaml:15:18: mig-configs.a[0].mig-devices: count of "2g.10gb" must be an integer ≥ 0, found "2"`,
			`t.yaml:16:18: mig-configs.a[0].mig-devices: count of "3g.20gb" must be an integer ≥ 0, found "1.5"`,
			`t.yaml:18:9: mig-configs.a[0].mig-devices: duplicate key "4g.20gb" (first at line 17)`,
			`t.yaml:19:18: mig-configs.a[0].mig-devices: count of "7g.40gb" must be an integer ≥ 0, found a list`,
		},
	}, {
		name: "mig-devices is a list",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: [\"1g.5gb\"]\n",
		want: []string{`t.yaml:6:20: mig-configs.a[0].mig-devices: expected a mapping from MIG device names to counts, found a list`},
	}, {
		name: "duplicate keys everywhere",
		src: "version: v1\nversion: v1\nmig-configs:\n  a:\n    - devices: all\n      devices: all\n      mig-enabled: false\n" +
			"  a:\n    - devices: all\n      mig-enabled: false\n",
		want: []string{
			`t.yaml:2:1: duplicate key "version" (first at line 1)`,
			`t.yaml:6:7: mig-configs.a[0]: duplicate key "devices" (first at line 5)`,
			`t.yaml:8:3: mig-configs: duplicate key "a" (first at line 4)`,
		},
	}, {
		name: "bad placements",
		src: lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.5gb: 2\n        1c.3g.20gb: 4\n" +
			"      placements:\n        1g.5g: [0]\n        1g.5gb: [0, 1, 2]\n        1c.3g.20gb: [0, 4, 4, -1, x]\n",
		want: []string{
			`t.yaml:10:9: mig-configs.a[0].placements: "1g.5g" is not a key of mig-devices; did you mean 1g.5gb?`,
			`t.yaml:11:9: mig-configs.a[0].placements: 3 placements for "1g.5gb", but mig-devices asks for 2`,
			`t.yaml:12:28: mig-configs.a[0].placements: placement 4 of "1c.3g.20gb" is listed twice`,
			`t.yaml:12:31: mig-configs.a[0].placements: placement of "1c.3g.20gb" must be a memory-slice start (an integer ≥ 0), found "-1"`,
			`t.yaml:12:35: mig-configs.a[0].placements: placement of "1c.3g.20gb" must be a memory-slice start (an integer ≥ 0), found "x"`,
		},
	}, {
		name: "too many placements for a compute split, placements not a list",
		src: lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.5gb: 2\n        1c.3g.20gb: 4\n" +
			"      placements:\n        1c.3g.20gb: [0, 4, 5]\n        1g.5gb: 3\n",
		want: []string{
			`t.yaml:10:9: mig-configs.a[0].placements: 3 placements for "1c.3g.20gb", but its 4 compute instances take 2 GPU instances`,
			`t.yaml:11:17: mig-configs.a[0].placements: placements of "1g.5gb" must be a list of memory-slice starts, found "3"`,
		},
	}, {
		name: "placements on a disabled entry, placements a list",
		src: lfHeader + "  a:\n    - devices: all\n      mig-enabled: false\n      placements: {\"1g.5gb\": [0]}\n" +
			"    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n      placements: [0]\n",
		want: []string{
			`t.yaml:6:20: mig-configs.a[0].placements: "1g.5gb" is not a key of mig-devices`,
			`t.yaml:10:19: mig-configs.a[1].placements: expected a mapping from mig-devices names to lists of memory-slice starts, found a list`,
		},
	}, {
		name: "non-string keys",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {[1]: 1, ~: 2}\n",
		want: []string{
			"t.yaml:6:21: mig-configs.a[0].mig-devices: mapping keys must be strings, found a list",
			"t.yaml:6:29: mig-configs.a[0].mig-devices: mapping keys must be strings, found null",
		},
	}, {
		name: "merge key recursion",
		src:  lfHeader + "  a:\n    - &x\n      devices: all\n      mig-enabled: false\n      <<: *x\n",
		want: []string{"t.yaml:4:7: mig-configs.a[0]: merge keys (<<) nested too deeply"},
	}, {
		name: "merge of a non-mapping",
		src:  lfHeader + "  a:\n    - devices: all\n      mig-enabled: false\n      <<: 3\n",
		want: []string{`t.yaml:6:11: mig-configs.a[0]: a merge key (<<) takes a mapping, found "3"`},
	}, {
		name: "self-referencing alias",
		src:  "x: &a [*a]\nversion: v1\nmig-configs: *a\n",
		want: []string{
			`t.yaml:1:1: unknown field "x"; expected one of version, mig-configs`,
			"t.yaml:1:4: mig-configs: expected a mapping from config names to lists of entries, found a list",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := migconfig.ParseFile("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseFile accepted:\n%s\nparsed: %+v", tt.src, f)
			}
			if f != nil {
				t.Errorf("ParseFile returned a File with its error")
			}
			if got := lfErrLines(err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseFile:\n%s\nerror:\n%s\nwant:\n%s", tt.src, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var list migconfig.ErrorList
			if !errors.As(err, &list) || len(list) != len(tt.want) {
				t.Fatalf("error is not an ErrorList of %d: %#v", len(tt.want), err)
			}
			var fe *migconfig.FileError
			if !errors.As(err, &fe) || fe.File != "t.yaml" {
				t.Errorf("errors.As(*FileError) = %v", fe)
			}
		})
	}
}

func TestFileErrorFormat(t *testing.T) {
	cause := errors.New("cause")
	tests := []struct {
		err  *migconfig.FileError
		want string
	}{
		{&migconfig.FileError{File: "layouts.yaml", Line: 12, Column: 7, Field: "mig-configs.all-balanced[0].mig-devices",
			Msg: `"3g.21gb" is not a profile of A100-SXM4-40GB; did you mean 3g.20gb?`},
			`layouts.yaml:12:7: mig-configs.all-balanced[0].mig-devices: "3g.21gb" is not a profile of A100-SXM4-40GB; did you mean 3g.20gb?`},
		{&migconfig.FileError{File: "f", Line: 3, Msg: "m"}, "f:3: m"},
		{&migconfig.FileError{File: "f", Msg: "m"}, "f: m"},
		{&migconfig.FileError{Field: "version", Msg: "m"}, "version: m"},
		{&migconfig.FileError{Line: 2, Column: 1, Msg: "m", Err: cause}, "2:1: m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if !errors.Is(tests[4].err, cause) {
		t.Error("FileError does not unwrap to its cause")
	}
	if (migconfig.ErrorList{}).Err() != nil {
		t.Error("empty ErrorList.Err() != nil")
	}
	l := migconfig.ErrorList{{Line: 5, Msg: "b"}, {Line: 2, Column: 9, Msg: "a", Err: cause}}
	if got := l.Err().Error(); got != "2:9: a\n5: b" {
		t.Errorf("sorted list = %q", got)
	}
	if !errors.Is(l.Err(), cause) {
		t.Error("ErrorList does not unwrap to its elements' causes")
	}
}

func TestParseDeviceFilter(t *testing.T) {
	tests := []struct {
		in   string
		want migconfig.DeviceFilter
		str  string
	}{
		{"0x20B010DE", migconfig.DeviceFilter{DeviceID: 0x20B010DE}, "0x20B010DE"},
		{"0x20b010de", migconfig.DeviceFilter{DeviceID: 0x20B010DE}, "0x20B010DE"},
		{"0X233010DE:0x16c110de", migconfig.DeviceFilter{DeviceID: 0x233010DE, SubsystemID: 0x16C110DE}, "0x233010DE:0x16C110DE"},
		{"548409566", migconfig.DeviceFilter{DeviceID: 0x20B010DE}, "0x20B010DE"},
	}
	for _, tt := range tests {
		got, err := migconfig.ParseDeviceFilter(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseDeviceFilter(%q) = %+v (%s), %v; want %+v (%s)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"", "x", "0x", "0x1:0x2:0x3", "0x100000000", "0x20B010DE:", "0x20B010DE:0"} {
		if _, err := migconfig.ParseDeviceFilter(bad); err == nil {
			t.Errorf("ParseDeviceFilter(%q) accepted", bad)
		}
	}
	g := migconfig.GPUState{DeviceID: 0x233010DE, SubsystemID: 0x16C110DE}
	if !(migconfig.DeviceFilter{DeviceID: 0x233010DE}).Matches(g) ||
		!(migconfig.DeviceFilter{DeviceID: 0x233010DE, SubsystemID: 0x16C110DE}).Matches(g) ||
		(migconfig.DeviceFilter{DeviceID: 0x233010DE, SubsystemID: 0x17C110DE}).Matches(g) ||
		(migconfig.DeviceFilter{DeviceID: 0x233110DE}).Matches(g) {
		t.Error("DeviceFilter.Matches is wrong")
	}
}

// TestFixtures parses and validates every file in testdata.
func TestFixtures(t *testing.T) {
	paths := lfFixtures(t)
	if len(paths) < 4 {
		t.Fatalf("only %d fixtures in testdata", len(paths))
	}
	cat := migconfig.Builtin()
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := migconfig.ParseFile(filepath.Base(p), data)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if err := f.Validate(cat); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			lfCheckRoundTrip(t, f)
		})
	}
}

// lfFixtures lists testdata's layout files.
func lfFixtures(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"testdata/*.yaml", "testdata/*.json"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// lfStrip returns a copy of f without what a round trip may change:
// positions, the path, and the difference between nil and empty slices.
func lfStrip(f *migconfig.File) *migconfig.File {
	out := &migconfig.File{Version: f.Version, Names: append([]string{}, f.Names...), Configs: map[string][]migconfig.ConfigEntry{}}
	for name, entries := range f.Configs {
		es := make([]migconfig.ConfigEntry, 0, len(entries))
		for _, e := range entries {
			c := migconfig.ConfigEntry{
				DeviceFilter: append([]migconfig.DeviceFilter{}, e.DeviceFilter...),
				Devices:      migconfig.Devices{All: e.Devices.All, Indexes: append([]int{}, e.Devices.Indexes...)},
				MigEnabled:   e.MigEnabled,
				MigDevices:   []migconfig.MigDevice{},
				Placements:   []migconfig.ProfilePlacements{},
			}
			for _, d := range e.MigDevices {
				c.MigDevices = append(c.MigDevices, migconfig.MigDevice{Name: d.Name, Count: d.Count})
			}
			for _, p := range e.Placements {
				c.Placements = append(c.Placements, migconfig.ProfilePlacements{Name: p.Name, Starts: append([]int{}, p.Starts...)})
			}
			es = append(es, c)
		}
		out.Configs[name] = es
	}
	return out
}

// lfCheckRoundTrip marshals f as YAML and JSON and checks that both parse
// back to an equal File.
func lfCheckRoundTrip(t testing.TB, f *migconfig.File) {
	t.Helper()
	for _, format := range []string{"yaml", "json"} {
		data, err := f.Marshal(format)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", format, err)
		}
		g, err := migconfig.ParseFile("roundtrip."+format, data)
		if err != nil {
			t.Fatalf("ParseFile(Marshal(%s)):\n%s\nerror: %v", format, data, err)
		}
		if a, b := lfStrip(f), lfStrip(g); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s round trip changed the file:\n%s\nbefore %+v\nafter  %+v", format, data, a, b)
		}
	}
}

// TestMarshalOddConfigNames checks that config names YAML or JSON treat
// specially survive Marshal → ParseFile in both formats.
func TestMarshalOddConfigNames(t *testing.T) {
	names := []string{
		"", "~", "null", "true", "yes", "1", "0x10", "1.5", "- a", "a: b", "#x", " lead", "trail ", "a\nb", "\t",
		"é", "\u2028", "\u0085", "\u007f", "\u0090", "\ufeffbom", "<<", "=", "!x", "&a", "*a", "'q", "\"d", "@", "`",
		"%x", "?", "|", ">", "[", "{", "a\x01b", "日本語",
	}
	for _, n := range names {
		src := lfHeader + "  " + strconv.Quote(n) + ":\n    - devices: all\n      mig-enabled: false\n"
		f := lfParse(t, src)
		if f.Names[0] != n {
			t.Errorf("%q parsed as %q", n, f.Names[0])
		}
		lfCheckRoundTrip(t, f)
	}
	// The longest name allowed, of characters JSON escapes, still fits a
	// YAML simple key (1024 characters) when written as JSON.
	long := strings.Repeat("\u0085", migconfig.MaxConfigNameLen/2)
	f := lfParse(t, lfHeader+"  "+strconv.Quote(long)+":\n    - devices: all\n      mig-enabled: false\n")
	lfCheckRoundTrip(t, f)
	// Longer names are refused, even in YAML's explicit-key syntax.
	_, err := migconfig.ParseFile("t.yaml", []byte(lfHeader+"  ? "+strings.Repeat("k", 1500)+"\n  : - devices: all\n      mig-enabled: false\n"))
	if want := "t.yaml:3:5: mig-configs: config name \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk…\" is 1500 bytes long; at most 128 are allowed"; err == nil || err.Error() != want {
		t.Errorf("long config name: %v\nwant %s", err, want)
	}
}

// TestParseFileSyntaxErrorPositions checks that YAML syntax errors point at
// the line and column of the problem, not at the line yaml.v3 reports
// (which for parser errors is the 0-based line of the enclosing
// collection, and for errors on the first line is missing).
func TestParseFileSyntaxErrorPositions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{{
		name: "tab before anything",
		src:  "\t bad",
		want: "t.yaml:1:1: invalid YAML: found character that cannot start any token (a tab; YAML indents with spaces)",
	}, {
		name: "tab indentation",
		src:  lfHeader + "  a:\n\t- devices: all\n\t  mig-enabled: false\n",
		want: "t.yaml:4:1: invalid YAML: found character that cannot start any token (a tab; YAML indents with spaces)",
	}, {
		name: "tab after spaces",
		src:  lfHeader + "  a:\n    - devices: all\n    \tmig-enabled: false\n",
		want: "t.yaml:5:5: invalid YAML: found a tab character that violates indentation",
	}, {
		name: "character that cannot start a token",
		src:  lfHeader + "  a:\n    - devices: @all\n",
		want: "t.yaml:4:16: invalid YAML: found character that cannot start any token",
	}, {
		name: "key indented less than its mapping",
		src:  lfHeader + "  a:\n    - devices: all\n     mig-enabled: true\n      mig-devices: {}\n",
		want: "t.yaml:5:6: invalid YAML: did not find expected '-' indicator",
	}, {
		name: "key indented less than its mapping, in a mapping",
		src:  "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n  b:\n    - devices: all\n   mig-enabled: false\n",
		want: "t.yaml:8:4: invalid YAML: did not find expected key",
	}, {
		name: "key indented more than its mapping",
		src:  lfHeader + "  a:\n    - devices: all\n        mig-enabled: false\n",
		want: "t.yaml:5:20: invalid YAML: mapping values are not allowed in this context",
	}, {
		name: "two values on the first line",
		src:  "version: v1: v2\n",
		want: "t.yaml:1:12: invalid YAML: mapping values are not allowed in this context",
	}, {
		name: "three values on one line",
		src:  "version: v1\nmig-configs: a: b: c\n",
		want: "t.yaml:2:15: invalid YAML: mapping values are not allowed in this context",
	}, {
		name: "unclosed double quote",
		src:  lfHeader + "  a:\n    - devices: \"all\n      mig-enabled: false\n",
		want: "t.yaml:4:16: invalid YAML: found unexpected end of stream (the quoted string that starts here is never closed)",
	}, {
		name: "unclosed single quote",
		src:  lfHeader + "  'a:\n    - devices: all\n",
		want: "t.yaml:3:3: invalid YAML: found unexpected end of stream (the quoted string that starts here is never closed)",
	}, {
		name: "unclosed flow mapping",
		src:  lfHeader + "  a:\n    - {devices: all, mig-enabled: false\n",
		want: "t.yaml:4:7: invalid YAML: did not find expected ',' or '}'",
	}, {
		name: "unclosed flow mapping on the first line",
		src:  "{version: v1",
		want: "t.yaml:1:1: invalid YAML: did not find expected ',' or '}'",
	}, {
		name: "unclosed flow sequence",
		src:  lfHeader + "  a:\n    - devices: [0, 1\n      mig-enabled: false\n",
		want: "t.yaml:4:16: invalid YAML: did not find expected ',' or ']'",
	}, {
		name: "control character",
		src:  lfHeader + "  a:\x01\n",
		want: "t.yaml:3:5: invalid YAML: control characters are not allowed",
	}, {
		name: "invalid UTF-8",
		src:  lfHeader + "  a\xff: []\n",
		want: "t.yaml:3:4: invalid YAML: invalid leading UTF-8 octet",
	}, {
		name: "unknown anchor",
		src:  lfHeader + "  a: *nope\n",
		want: "t.yaml:3:6: invalid YAML: unknown anchor 'nope' referenced",
	}, {
		name: "syntax error in a second document",
		src:  "version: v1\n---\n\t",
		want: "t.yaml:3:1: invalid YAML: found character that cannot start any token (a tab; YAML indents with spaces)",
	}, {
		name: "CRLF line breaks",
		src:  "version: v1\r\nmig-configs:\r\n  a:\r\n\t- devices: all\r\n",
		want: "t.yaml:4:1: invalid YAML: found character that cannot start any token (a tab; YAML indents with spaces)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := migconfig.ParseFile("t.yaml", []byte(tt.src))
			var list migconfig.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("ParseFile(%q) = %v, want an ErrorList", tt.src, err)
			}
			if got := list[0].Error(); got != tt.want {
				t.Errorf("ParseFile(%q):\n got %s\nwant %s", tt.src, got, tt.want)
			}
			for _, e := range list {
				if e.Line <= 0 || e.Column <= 0 {
					t.Errorf("error without a position: %s", e)
				}
			}
		})
	}
}
