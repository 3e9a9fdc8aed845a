package agent

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

func TestParseExplicitErrors(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"empty", "  ", "empty"},
		{"not a list", `{"devices":[0]}`, "want a JSON list"},
		{"bad JSON", `[{"devices":[0],}]`, "annotation:1:"},
		{"unknown key", `[{"devices":[0],"mig-enabled":true,"mig-devicez":{}}]`, "annotation:1:"},
		{"unknown profile", `[{"devices":[0],"mig-enabled":true,"mig-devices":{"3g.41gb":2}}]`, "3g.41gb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseExplicit("annotation", tt.value)
			if err == nil {
				// Profile names are checked against the GPU's model at
				// resolve time.
				s, node := simNode(t, "h100-80gb", 1)
				_ = s
				st, serr := node.Snapshot(context.Background())
				if serr != nil {
					t.Fatal(serr)
				}
				_, err = f.Resolve(migconfig.Builtin(), ExplicitConfig, st)
				err = ExplicitError(err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "mig-configs") {
				t.Errorf("error %q shows the wrapper's field path", err)
			}
		})
	}
}

func TestParseExplicitColumnsPointIntoTheValue(t *testing.T) {
	value := `[{"devices":[0],"mig-enabled":"yes"}]`
	_, err := ParseExplicit("annotation", value)
	var list migconfig.ErrorList
	if err == nil || !asErrorList(err, &list) {
		t.Fatalf("error %v, want an ErrorList", err)
	}
	col := list[0].Column
	if col < 1 || col > len(value) || !strings.HasPrefix(value[col-1:], `"yes"`) {
		t.Errorf("column %d does not point at the bad value in %s (error %v)", col, value, err)
	}
}

func asErrorList(err error, list *migconfig.ErrorList) bool {
	l, ok := err.(migconfig.ErrorList)
	if ok {
		*list = l
	}
	return ok
}

// TestFormatExplicitRoundTrips writes layouts as an annotation and resolves
// it back to the same layouts, on every standard machine.
func TestFormatExplicitRoundTrips(t *testing.T) {
	cat := migconfig.Builtin()
	for _, mach := range sim.Machines() {
		t.Run(mach.Spec(), func(t *testing.T) {
			s, err := mach.Build(cat)
			if err != nil {
				t.Fatal(err)
			}
			node := openNode(t, s)
			st, err := node.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]migconfig.GPULayout{}
			for _, g := range st.GPUs {
				m, ok := cat.Lookup(g)
				if !ok {
					continue
				}
				var ids []migconfig.ProfileID
				for _, p := range m.Profiles {
					ids = append(ids, p.ID)
				}
				layouts := migconfig.MaximalLayouts(m, ids)
				// A different maximal layout per GPU, with placements.
				want[g.Index] = layouts[(g.Index*7)%len(layouts)]
			}
			want[0] = migconfig.GPULayout{} // MIG disabled on GPU 0
			value, err := FormatExplicit(cat, st, want)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseExplicit("annotation", value)
			if err != nil {
				t.Fatalf("%v\n%s", err, value)
			}
			got, err := f.Resolve(cat, ExplicitConfig, st)
			if err != nil {
				t.Fatalf("%v\n%s", ExplicitError(err), value)
			}
			for i, w := range want {
				if w.Instances == nil {
					w.Instances = []migconfig.Instance{}
				}
				g := got[i]
				if g.Instances == nil {
					g.Instances = []migconfig.Instance{}
				}
				migconfig.SortInstances(w.Instances)
				if !reflect.DeepEqual(g, w) {
					t.Errorf("gpu %d: got %+v, want %+v\n%s", i, g, w, value)
				}
			}
		})
	}
}
