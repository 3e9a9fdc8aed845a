package dcgm

import (
	"slices"
	"testing"
	"time"
)

func TestOptionsNormalize(t *testing.T) {
	o, err := Options{Address: "  localhost:5555 "}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if o.UpdateInterval != DefaultUpdateInterval || o.Logger == nil || o.Address != "localhost:5555" {
		t.Errorf("normalize = %+v, want the default interval, a logger and a trimmed address", o)
	}
	freq, age, n := o.watchParams()
	if freq != 1_000_000 || age != 5 || n != 1 {
		t.Errorf("watchParams = (%d µs, %v s, %d), want (1000000, 5, 1)", freq, age, n)
	}

	o, err = Options{UpdateInterval: 100 * time.Millisecond}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if freq, age, _ := o.watchParams(); freq != 100_000 || age != 0.5 {
		t.Errorf("watchParams(100ms) = (%d µs, %v s), want (100000, 0.5)", freq, age)
	}

	for _, bad := range []time.Duration{-time.Second, time.Nanosecond} {
		if _, err := (Options{UpdateInterval: bad}).normalize(); err == nil {
			t.Errorf("UpdateInterval %v: no error", bad)
		}
	}
}

func TestStandaloneArgs(t *testing.T) {
	tests := []struct {
		address string
		want    []string
	}{
		{"localhost:5555", []string{"localhost:5555", "0"}},
		{"10.0.0.7", []string{"10.0.0.7", "0"}},
		{"[::1]:5555", []string{"[::1]:5555", "0"}},
		{"/run/nvidia/hostengine.sock", []string{"/run/nvidia/hostengine.sock", "1"}},
		{"tcp://localhost:5555", []string{"tcp://localhost:5555"}},
		{"UNIX:///run/dcgm.sock", []string{"UNIX:///run/dcgm.sock"}},
		{"vsock://3:5555", []string{"vsock://3:5555"}},
	}
	for _, tc := range tests {
		if got := standaloneArgs(tc.address); !slices.Equal(got, tc.want) {
			t.Errorf("standaloneArgs(%q) = %q, want %q", tc.address, got, tc.want)
		}
	}
}

func TestSupportsFields(t *testing.T) {
	tests := []struct {
		name    string
		groups  [][]uint
		ok      bool
		missing []uint16
	}{
		{"none", nil, false, []uint16{1001, 1002, 1005}},
		{"one group", [][]uint{{1001, 1002, 1003, 1004, 1005}}, true, nil},
		{"spread over groups", [][]uint{{1001, 1002}, {1005, 1009}}, true, nil},
		{"no DRAM", [][]uint{{1001, 1002, 1003, 1004}}, false, []uint16{1005}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, missing := supportsFields(tc.groups)
			if ok != tc.ok || !slices.Equal(missing, tc.missing) {
				t.Errorf("supportsFields = %v, %v; want %v, %v", ok, missing, tc.ok, tc.missing)
			}
		})
	}
}
