package deviceplugin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// dev is a healthy slice on GPU g at placement start p.
func dev(id string, g, p int) Device {
	return Device{ID: id, GPUIndex: g, Placement: migconfig.Placement{Start: p, Size: 1}, Healthy: true}
}

func TestPrefer(t *testing.T) {
	// Two GPUs with three 1g slices each.
	devices := []Device{dev("a0", 0, 0), dev("a1", 0, 1), dev("a2", 0, 2), dev("b0", 1, 0), dev("b1", 1, 1), dev("b2", 1, 2)}
	sick := append([]Device(nil), devices...)
	sick[4].Healthy = false
	tests := []struct {
		name        string
		devices     []Device
		allocated   map[int]int
		available   []string
		mustInclude []string
		size        int
		want        []string
		err         string
	}{
		{"empty node: first GPU, in placement order", devices, map[int]int{}, []string{"b2", "b1", "b0", "a2", "a1", "a0"}, nil, 2, []string{"a0", "a1"}, ""},
		{"pack onto the GPU with most allocated (any resource)", devices, map[int]int{1: 2}, []string{"a0", "a1", "a2", "b2"}, nil, 2, []string{"b2", "a0"}, ""},
		{"without pod-resources: unoffered devices count as allocated", devices, nil, []string{"a0", "a1", "a2", "b2"}, nil, 1, []string{"b2"}, ""},
		{"must-include first, then pack beside it", devices, map[int]int{}, []string{"a0", "a1", "b0", "b1", "b2"}, []string{"b1"}, 2, []string{"b1", "b0"}, ""},
		{"unhealthy and unknown available IDs skipped", sick, map[int]int{1: 1}, []string{"b1", "zz", "b2", "a0"}, nil, 2, []string{"b2", "a0"}, ""},
		{"too few: the best it can, and an error", devices, map[int]int{}, []string{"a0"}, nil, 2, []string{"a0"}, "only 1 healthy devices available, 2 requested"},
		{"size below must-include", devices, map[int]int{}, []string{"a0", "a1"}, []string{"a0", "a1"}, 1, []string{"a0", "a1"}, "smaller than the 2 devices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Prefer(tt.devices, tt.allocated, tt.available, tt.mustInclude, tt.size)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %v, error %v; want %v and %q", got, err, tt.want, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestPreferKeepsWholeGPUsFree allocates one slice at a time through
// Prefer and checks that the second GPU stays untouched until the first is
// full.
func TestPreferKeepsWholeGPUsFree(t *testing.T) {
	var devices []Device
	for g := range 3 {
		for p := range 7 {
			devices = append(devices, dev(string(rune('a'+g))+string(rune('0'+p)), g, p))
		}
	}
	taken := map[string]bool{}
	for n := 1; n <= 10; n++ {
		var available []string
		for _, d := range devices {
			if !taken[d.ID] {
				available = append(available, d.ID)
			}
		}
		got, err := Prefer(devices, nil, available, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		taken[got[0]] = true
		wantGPU := byte('a')
		if n > 7 {
			wantGPU = 'b'
		}
		if got[0][0] != wantGPU {
			t.Fatalf("allocation %d went to %s; GPU %c should fill first", n, got[0], wantGPU)
		}
	}
}
