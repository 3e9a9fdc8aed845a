package deviceplugin

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/migconfig"
)

// gpuOf builds an Inventory GPU with slices of the given profiles, in
// placement order; an empty list means MIG disabled.
func gpuOf(index int, profiles ...string) agent.GPU {
	g := agent.GPU{Index: index, UUID: "GPU-" + string(rune('a'+index)), MigEnabled: len(profiles) > 0}
	for i, p := range profiles {
		g.Slices = append(g.Slices, agent.Slice{
			UUID: g.UUID + "-MIG-" + string(rune('0'+i)), Profile: p, GPUIndex: index, GPUUUID: g.UUID,
			GPUInstanceID: i + 1, Placement: migconfig.Placement{Start: i, Size: 1}, Healthy: true,
		})
	}
	return g
}

func ids(devices []Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.ID
	}
	return out
}

func summary(res map[string][]Device) map[string][]string {
	out := map[string][]string{}
	for r, d := range res {
		out[r] = ids(d)
	}
	return out
}

func TestResources(t *testing.T) {
	mixedNode := agent.Inventory{GPUs: []agent.GPU{
		gpuOf(0, "3g.40gb", "1g.10gb", "1g.10gb+me"),
		gpuOf(1),
		gpuOf(2, "1c.3g.40gb", "1c.3g.40gb", "1g.10gb"),
	}}
	uniform := agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb"), gpuOf(1, "1g.10gb")}}
	noMig := agent.Inventory{GPUs: []agent.GPU{gpuOf(0), gpuOf(1)}}
	tests := []struct {
		name     string
		strategy Strategy
		inv      agent.Inventory
		want     map[string][]string
		err      string
	}{
		{"mixed: one resource per profile, +me as .me, MIG-off GPUs whole", StrategyMixed, mixedNode, map[string][]string{
			"nvidia.com/mig-3g.40gb":    {"GPU-a-MIG-0"},
			"nvidia.com/mig-1g.10gb":    {"GPU-a-MIG-1", "GPU-c-MIG-2"},
			"nvidia.com/mig-1g.10gb.me": {"GPU-a-MIG-2"},
			"nvidia.com/mig-1c.3g.40gb": {"GPU-c-MIG-0", "GPU-c-MIG-1"},
			"nvidia.com/gpu":            {"GPU-b"},
		}, ""},
		{"single: every slice as nvidia.com/gpu", StrategySingle, uniform, map[string][]string{
			"nvidia.com/gpu": {"GPU-a-MIG-0", "GPU-a-MIG-1", "GPU-b-MIG-0"},
		}, ""},
		{"single without MIG: whole GPUs", StrategySingle, noMig, map[string][]string{"nvidia.com/gpu": {"GPU-a", "GPU-b"}}, ""},
		{"single with two profiles", StrategySingle, agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb"), gpuOf(1, "2g.20gb")}}, nil,
			"needs one MIG profile on every GPU, the node has 1g.10gb on GPUs 0, 2g.20gb on GPUs 1"},
		{"single with MIG off on one GPU", StrategySingle, agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb"), gpuOf(1)}}, nil,
			"GPUs 1 have MIG disabled"},
		{"none: whole GPUs whatever MIG says", StrategyNone, mixedNode, map[string][]string{"nvidia.com/gpu": {"GPU-a", "GPU-b", "GPU-c"}}, ""},
		{"empty node", StrategyMixed, agent.Inventory{}, map[string][]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resources(tt.strategy, tt.inv, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := summary(got); !reflect.DeepEqual(s, tt.want) {
				t.Errorf("got %v\nwant %v", s, tt.want)
			}
		})
	}
}

func TestResourcesHealth(t *testing.T) {
	inv := agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb")}}
	inv.GPUs[0].Slices[1].Healthy = false
	got, err := Resources(StrategyMixed, inv, map[string]string{"GPU-a-MIG-0": "Xid 79"})
	if err != nil {
		t.Fatal(err)
	}
	d := got["nvidia.com/mig-1g.10gb"]
	if d[0].Healthy || d[0].Reason != "Xid 79" || d[1].Healthy {
		t.Errorf("devices %+v", d)
	}
}

func TestSocketNames(t *testing.T) {
	names := map[string]bool{}
	for _, m := range migconfig.Builtin().Models() {
		for _, p := range m.Profiles {
			r := ResourcePrefix + migconfig.ResourceName(p.Name)
			n := socketName(r)
			if strings.ContainsAny(n, "/+ ") || !strings.HasSuffix(n, ".sock") {
				t.Errorf("%s → socket %q", r, n)
			}
			names[n] = true
		}
	}
	var all []string
	for n := range names {
		all = append(all, n)
	}
	sort.Strings(all)
	if socketName(GPUResource) != "tessera-gpu.sock" || socketName("nvidia.com/mig-1g.10gb.me") != "tessera-mig-1g.10gb.me.sock" {
		t.Errorf("socket names: %s, %s", socketName(GPUResource), socketName("nvidia.com/mig-1g.10gb.me"))
	}
}

func TestParseStrategies(t *testing.T) {
	for _, s := range []string{"mixed", "single", "none"} {
		if _, err := ParseStrategy(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseStrategy("all"); err == nil || !strings.Contains(err.Error(), "mixed, single or none") {
		t.Errorf("ParseStrategy(all): %v", err)
	}
	for _, s := range []string{"envvar", "cdi-annotations", "cdi-cri"} {
		if _, err := ParseListStrategy(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseListStrategy("volume-mounts"); err == nil {
		t.Error("ParseListStrategy(volume-mounts) accepted")
	}
}
