package migconfig

import (
	"strings"
	"testing"
)

// The pack and diff tests use their own small models (written from
// ../shared/reference/mig.md §2.1, §2.11 and §3.1) so they do not depend on
// the built-in catalog they help to validate.

func pkStarts(size int, starts ...int) []Placement {
	out := make([]Placement, len(starts))
	for i, s := range starts {
		out[i] = Placement{Start: s, Size: size}
	}
	return out
}

func pkA100() *GPUModel {
	return &GPUModel{
		Key: "a100-40gb", Name: "A100-SXM4-40GB", Architecture: Ampere,
		MemorySlices: 8, ComputeSlices: 7, MemoryMiB: 40960,
		DeviceIDs: []uint32{0x20B010DE},
		Profiles: []Profile{
			{Name: "1g.5gb", Index: 0, ID: 19, ComputeSlices: 1, MemorySlices: 1, MaxCount: 7, Placements: pkStarts(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.10gb", Index: 1, ID: 14, ComputeSlices: 2, MemorySlices: 2, MaxCount: 3, Placements: pkStarts(2, 0, 2, 4)},
			{Name: "3g.20gb", Index: 2, ID: 9, ComputeSlices: 3, MemorySlices: 4, MaxCount: 2, Placements: pkStarts(4, 0, 4)},
			{Name: "4g.20gb", Index: 3, ID: 5, ComputeSlices: 4, MemorySlices: 4, MaxCount: 1, Placements: pkStarts(4, 0)},
			{Name: "7g.40gb", Index: 4, ID: 0, ComputeSlices: 7, MemorySlices: 8, MaxCount: 1, Placements: pkStarts(8, 0)},
			{Name: "1g.5gb+me", Index: 7, ID: 20, ComputeSlices: 1, MemorySlices: 1, MaxCount: 1, Placements: pkStarts(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "1g.10gb", Index: 9, ID: 15, ComputeSlices: 1, MemorySlices: 2, MaxCount: 4, Placements: pkStarts(2, 0, 2, 4, 6)},
		},
	}
}

// pkA100NoRev2 is the A100-40GB as older drivers show it, without the
// double-memory 1g.10gb profile.
func pkA100NoRev2() *GPUModel {
	m := pkA100()
	m.Profiles = m.Profiles[:len(m.Profiles)-1]
	return m
}

func pkA30() *GPUModel {
	return &GPUModel{
		Key: "a30", Name: "A30-24GB", Architecture: Ampere,
		MemorySlices: 4, ComputeSlices: 4, MemoryMiB: 24576,
		DeviceIDs: []uint32{0x20B710DE},
		Profiles: []Profile{
			{Name: "4g.24gb", Index: 3, ID: 0, ComputeSlices: 4, MemorySlices: 4, MaxCount: 1, Placements: pkStarts(4, 0)},
			{Name: "2g.12gb", Index: 1, ID: 5, ComputeSlices: 2, MemorySlices: 2, MaxCount: 2, Placements: pkStarts(2, 0, 2)},
			{Name: "2g.12gb+me", Index: 8, ID: 6, ComputeSlices: 2, MemorySlices: 2, MaxCount: 1, Placements: pkStarts(2, 0, 2)},
			{Name: "1g.6gb", Index: 0, ID: 14, ComputeSlices: 1, MemorySlices: 1, MaxCount: 4, Placements: pkStarts(1, 0, 1, 2, 3)},
			{Name: "1g.6gb+me", Index: 7, ID: 21, ComputeSlices: 1, MemorySlices: 1, MaxCount: 1, Placements: pkStarts(1, 0, 1, 2, 3)},
		},
	}
}

// pkLayout builds a MIG-enabled layout from "name" or "name@start" items.
func pkLayout(t testing.TB, m *GPUModel, items ...string) GPULayout {
	t.Helper()
	l := GPULayout{MigEnabled: true}
	for _, it := range items {
		name, at, placed := strings.Cut(it, "@")
		p, ok := m.ProfileByName(name)
		if !ok {
			t.Fatalf("test layout: no profile %q on %s", name, m.Key)
		}
		in := Instance{Profile: p.ID}
		if placed {
			in.Placement = Placement{Start: int(at[0] - '0'), Size: p.MemorySlices}
		}
		l.Instances = append(l.Instances, in)
	}
	return l
}

// pkPlaced renders a packed layout as "name@start" items in placement order.
func pkPlaced(m *GPUModel, l GPULayout) string {
	parts := make([]string, len(l.Instances))
	for i, in := range l.Instances {
		p, _ := m.ProfileByID(in.Profile)
		parts[i] = p.Name + "@" + in.Placement.String()
	}
	return strings.Join(parts, " ")
}

func TestPackClassicCases(t *testing.T) {
	a100, a30 := pkA100(), pkA30()
	tests := []struct {
		name    string
		model   *GPUModel
		layout  []string
		want    string // packed placements; empty when an error is expected
		wantErr string
	}{
		// ../shared/reference/mig.md §3.3
		{"4g+3g", a100, []string{"3g.20gb", "4g.20gb"}, "4g.20gb@0:4 3g.20gb@4:4", ""},
		{"3g+3g", a100, []string{"3g.20gb", "3g.20gb"}, "3g.20gb@0:4 3g.20gb@4:4", ""},
		{"4g+4g", a100, []string{"4g.20gb", "4g.20gb"}, "", "2× 4g.20gb exceeds the maximum of 1"},
		{"7x1g", a100, []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"},
			"1g.5gb@0:1 1g.5gb@1:1 1g.5gb@2:1 1g.5gb@3:1 1g.5gb@4:1 1g.5gb@5:1 1g.5gb@6:1", ""},
		{"8x1g", a100, []string{"1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}, "", "exceeds the maximum of 7"},
		{"3x2g", a100, []string{"2g.10gb", "2g.10gb", "2g.10gb"}, "2g.10gb@0:2 2g.10gb@2:2 2g.10gb@4:2", ""},
		{"3g+4x1g puts 3g high", a100, []string{"1g.5gb", "1g.5gb", "3g.20gb", "1g.5gb", "1g.5gb"},
			"1g.5gb@0:1 1g.5gb@1:1 1g.5gb@2:1 1g.5gb@3:1 3g.20gb@4:4", ""},
		{"3g@0+4x1g impossible", a100, []string{"3g.20gb@0", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"}, "", "no placement of"},
		{"all-balanced", a100, []string{"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"},
			"2g.10gb@0:2 1g.5gb@2:1 1g.5gb@3:1 3g.20gb@4:4", ""},
		// A lone 1g goes to 6:1, as the driver places it: that leaves the
		// longest free region (0-5) and room for a 4g.
		{"lone 1g leaves a 4g", a100, []string{"1g.5gb"}, "1g.5gb@6:1", ""},
		{"lone 1g without rev2", pkA100NoRev2(), []string{"1g.5gb"}, "1g.5gb@6:1", ""},
		{"4x1g.10gb rev2", a100, []string{"1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb"},
			"1g.10gb@0:2 1g.10gb@2:2 1g.10gb@4:2 1g.10gb@6:2", ""},
		{"fixed placement honoured", a100, []string{"2g.10gb@4", "1g.5gb"}, "2g.10gb@4:2 1g.5gb@6:1", ""},
		{"invalid fixed placement", a100, []string{"3g.20gb@2"}, "", "3g.20gb cannot be placed at 2:4 on A100-SXM4-40GB; valid placements: 0:4, 4:4"},
		{"overlapping fixed placements", a100, []string{"2g.10gb@0", "3g.20gb@0"}, "", "overlaps"},
		{"too much compute", a100, []string{"4g.20gb", "3g.20gb", "1g.5gb"}, "", "needs 8 compute slices"},
		{"empty layout", a100, nil, "", ""},
		// A30 (§3.1): 4g; 2g+2g; 2g+1g+1g; 4×1g; at most one +me in total.
		{"a30 2g+1g+1g", a30, []string{"1g.6gb", "2g.12gb", "1g.6gb"}, "2g.12gb@0:2 1g.6gb@2:1 1g.6gb@3:1", ""},
		{"a30 4x1g", a30, []string{"1g.6gb", "1g.6gb", "1g.6gb", "1g.6gb"}, "1g.6gb@0:1 1g.6gb@1:1 1g.6gb@2:1 1g.6gb@3:1", ""},
		{"a30 4g+1g", a30, []string{"4g.24gb", "1g.6gb"}, "", "needs 5 compute slices"},
		{"a30 two +me", a30, []string{"1g.6gb+me", "2g.12gb+me"}, "", "media engines for one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Pack(tc.model, pkLayout(t, tc.model, tc.layout...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Pack error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if s := pkPlaced(tc.model, got); s != tc.want {
				t.Errorf("Pack = %s\n          want %s", s, tc.want)
			}
		})
	}
}

func TestPackMIGDisabled(t *testing.T) {
	m := pkA100()
	if _, err := Pack(m, GPULayout{MigEnabled: false}); err != nil {
		t.Fatalf("disabled empty layout: %v", err)
	}
	l := pkLayout(t, m, "1g.5gb")
	l.MigEnabled = false
	if _, err := Pack(m, l); err == nil || !strings.Contains(err.Error(), "MIG disabled") {
		t.Fatalf("instances with MIG disabled: err = %v", err)
	}
}

func TestPackComputeSplits(t *testing.T) {
	m := pkA100()
	threeG, _ := m.ProfileByName("3g.20gb")
	tests := []struct {
		c       Compute
		wantErr string
	}{
		{Compute{}, ""},
		{Compute{Slices: 1, Count: 3}, ""},
		{Compute{Slices: 2, Count: 1}, ""},
		{Compute{Slices: 1, Count: 4}, "do not fit"},
		{Compute{Slices: 2, Count: 2}, "do not fit"},
		{Compute{Slices: 4}, "not a compute-instance profile"},
	}
	for _, tc := range tests {
		l := GPULayout{MigEnabled: true, Instances: []Instance{{Profile: threeG.ID, Compute: tc.c}}}
		err := ValidateLayout(m, l)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("compute %+v: err = %v, want %q", tc.c, err, tc.wantErr)
		}
	}
	sevenG, _ := m.ProfileByName("7g.40gb")
	// 7g admits 1c, 2c, 3c, 4c and 7c but not 5c or 6c (§4).
	for slices, ok := range map[int]bool{1: true, 2: true, 3: true, 4: true, 5: false, 6: false, 7: true} {
		err := ValidateLayout(m, GPULayout{MigEnabled: true, Instances: []Instance{{Profile: sevenG.ID, Compute: Compute{Slices: slices}}}})
		if (err == nil) != ok {
			t.Errorf("%dc.7g: err = %v, want ok=%v", slices, err, ok)
		}
	}
}

func TestPackIsDeterministic(t *testing.T) {
	m := pkA100()
	l := pkLayout(t, m, "1g.5gb", "2g.10gb", "1g.5gb", "1g.10gb")
	first, err := Pack(m, l)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		again, err := Pack(m, l)
		if err != nil {
			t.Fatal(err)
		}
		if pkPlaced(m, again) != pkPlaced(m, first) {
			t.Fatalf("run %d: %s, first run %s", i, pkPlaced(m, again), pkPlaced(m, first))
		}
	}
}

func TestFormatInstances(t *testing.T) {
	m := pkA100()
	l := pkLayout(t, m, "1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb@4")
	if got, want := FormatInstances(m, l.Instances), "2×1g.5gb + 2g.10gb + 3g.20gb@4:4"; got != want {
		t.Errorf("FormatInstances = %q, want %q", got, want)
	}
}
