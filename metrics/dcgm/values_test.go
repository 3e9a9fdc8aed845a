package dcgm

import (
	"math"
	"testing"

	"github.com/tessera-gpu/tessera/metrics"
)

func TestSampleValue(t *testing.T) {
	tests := []struct {
		name string
		s    sample
		want float64 // NaN: blank
	}{
		{"double", sample{Type: typeDouble, Float: 0.381124}, 0.381124},
		{"double zero is a value", sample{Type: typeDouble, Float: 0}, 0},
		{"double one", sample{Type: typeDouble, Float: 1}, 1},
		{"double blank", sample{Type: typeDouble, Float: fp64Blank}, math.NaN()},
		{"double not found", sample{Type: typeDouble, Float: fp64Blank + 1}, math.NaN()},
		{"double not supported", sample{Type: typeDouble, Float: fp64Blank + 2}, math.NaN()},
		{"double not permissioned", sample{Type: typeDouble, Float: fp64Blank + 3}, math.NaN()},
		{"double NaN", sample{Type: typeDouble, Float: math.NaN()}, math.NaN()},
		{"double +Inf", sample{Type: typeDouble, Float: math.Inf(1)}, math.NaN()},
		{"double -Inf", sample{Type: typeDouble, Float: math.Inf(-1)}, math.NaN()},
		{"just below the double blank", sample{Type: typeDouble, Float: fp64Blank - 1}, fp64Blank - 1},
		{"int64", sample{Type: typeInt64, Int: 42}, 42},
		{"int64 blank", sample{Type: typeInt64, Int: int64Blank}, math.NaN()},
		{"int64 as dcgm-exporter's README shows it", sample{Type: typeInt64, Int: 9223372036854775794}, math.NaN()},
		{"int64 not permissioned", sample{Type: typeInt64, Int: int64Blank + 3}, math.NaN()},
		{"int64 max", sample{Type: typeInt64, Int: math.MaxInt64}, math.NaN()},
		{"bad status", sample{Type: typeDouble, Float: 0.5, Status: -14}, math.NaN()},
		{"not watched", sample{Type: typeDouble, Float: 0.5, Status: statusNotWatched}, math.NaN()},
		{"string type", sample{Type: 's'}, math.NaN()},
		{"no type", sample{}, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.value()
			if math.IsNaN(tc.want) {
				if !math.IsNaN(got) {
					t.Errorf("value = %v, want NaN", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("value = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProfilesFrom(t *testing.T) {
	nan := math.NaN()
	d := func(entity uint, field uint16, v float64) sample {
		return sample{EntityID: entity, FieldID: field, Type: typeDouble, Float: v}
	}
	p := plan{
		entities: []gpuInstance{{EntityID: 0}, {EntityID: 1}, {EntityID: 2}},
		slices:   map[uint][]string{0: {"MIG-a"}, 1: {"MIG-b", "MIG-b2"}, 2: {"MIG-c"}},
	}
	tests := []struct {
		name       string
		samples    []sample
		want       map[string]metrics.Profile
		notWatched bool
	}{
		{
			name: "all fields",
			samples: []sample{
				d(0, fieldGREngineActive, 0.5), d(0, fieldSMActive, 0.25), d(0, fieldDRAMActive, 0.125),
			},
			want: map[string]metrics.Profile{"MIG-a": {GraphicsEngineActive: 0.5, SMActive: 0.25, DRAMActive: 0.125}},
		},
		{
			name: "a blank field is NaN, the slice stays",
			samples: []sample{
				d(0, fieldGREngineActive, 0.5), d(0, fieldSMActive, fp64Blank), d(0, fieldDRAMActive, 0),
			},
			want: map[string]metrics.Profile{"MIG-a": {GraphicsEngineActive: 0.5, SMActive: nan, DRAMActive: 0}},
		},
		{
			name: "a field DCGM did not return is NaN",
			samples: []sample{
				d(2, fieldDRAMActive, 0.75),
			},
			want: map[string]metrics.Profile{"MIG-c": {GraphicsEngineActive: nan, SMActive: nan, DRAMActive: 0.75}},
		},
		{
			name: "all fields blank leaves the slice out",
			samples: []sample{
				d(0, fieldGREngineActive, fp64Blank), d(0, fieldSMActive, fp64Blank+2),
				{EntityID: 0, FieldID: fieldDRAMActive, Type: typeInt64, Int: int64Blank},
			},
			want: map[string]metrics.Profile{},
		},
		{
			name: "one GPU instance, two slices",
			samples: []sample{
				d(1, fieldGREngineActive, 1), d(1, fieldSMActive, 0.9), d(1, fieldDRAMActive, 0.1),
			},
			want: map[string]metrics.Profile{
				"MIG-b":  {GraphicsEngineActive: 1, SMActive: 0.9, DRAMActive: 0.1},
				"MIG-b2": {GraphicsEngineActive: 1, SMActive: 0.9, DRAMActive: 0.1},
			},
		},
		{
			name: "entities and fields not asked for are ignored",
			samples: []sample{
				d(7, fieldGREngineActive, 0.5), d(0, 1004, 0.5), d(0, fieldSMActive, 0.5),
			},
			want: map[string]metrics.Profile{"MIG-a": {GraphicsEngineActive: nan, SMActive: 0.5, DRAMActive: nan}},
		},
		{
			name: "not watched",
			samples: []sample{
				{EntityID: 0, FieldID: fieldGREngineActive, Type: typeDouble, Status: statusNotWatched},
				d(2, fieldSMActive, 0.5),
			},
			want:       map[string]metrics.Profile{"MIG-c": {GraphicsEngineActive: nan, SMActive: 0.5, DRAMActive: nan}},
			notWatched: true,
		},
		{
			name: "nothing returned",
			want: map[string]metrics.Profile{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, notWatched := profilesFrom(tc.samples, p)
			if notWatched != tc.notWatched {
				t.Errorf("notWatched = %v, want %v", notWatched, tc.notWatched)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d profiles %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for uuid, want := range tc.want {
				g, ok := got[uuid]
				if !ok {
					t.Errorf("no profile for %s", uuid)
					continue
				}
				if !sameFloat(g.GraphicsEngineActive, want.GraphicsEngineActive) ||
					!sameFloat(g.SMActive, want.SMActive) || !sameFloat(g.DRAMActive, want.DRAMActive) {
					t.Errorf("%s = %+v, want %+v", uuid, g, want)
				}
			}
		})
	}
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}
