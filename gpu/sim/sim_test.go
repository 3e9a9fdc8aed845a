package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/migconfig"
)

// model returns a built-in catalog model.
func model(t testing.TB, key string) *migconfig.GPUModel {
	t.Helper()
	m, ok := migconfig.Builtin().ByKey(key)
	if !ok {
		t.Fatalf("built-in catalog has no %q", key)
	}
	return m
}

// started returns an initialized node of count GPUs of the model.
func started(t testing.TB, key string, count int, opts ...Option) *Node {
	t.Helper()
	n := New(model(t, key), count, opts...)
	if r := n.Init(); r != nvml.SUCCESS {
		t.Fatalf("Init: %v", r)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func handle(t testing.TB, n *Node, i int) nvml.Device {
	t.Helper()
	d, r := n.DeviceGetHandleByIndex(i)
	if r != nvml.SUCCESS {
		t.Fatalf("DeviceGetHandleByIndex(%d): %v", i, r)
	}
	return d
}

// enableMig enables MIG on GPU i, resetting it where the architecture
// needs it.
func enableMig(t testing.TB, n *Node, i int) nvml.Device {
	t.Helper()
	d := handle(t, n, i)
	if _, r := d.SetMigMode(nvml.DEVICE_MIG_ENABLE); r != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", r)
	}
	if err := n.ResetGPU(i); err != nil {
		t.Fatal(err)
	}
	return d
}

// gipInfo returns the profile info of the named profile, read by index as
// NVML callers do.
func gipInfo(t testing.TB, d nvml.Device, m *migconfig.GPUModel, name string) nvml.GpuInstanceProfileInfo {
	t.Helper()
	p, ok := m.ProfileByName(name)
	if !ok {
		t.Fatalf("%s has no profile %s", m.Key, name)
	}
	info, r := d.GetGpuInstanceProfileInfo(int(p.Index))
	if r != nvml.SUCCESS {
		t.Fatalf("GetGpuInstanceProfileInfo(%d): %v", p.Index, r)
	}
	return info
}

func createAt(t testing.TB, d nvml.Device, m *migconfig.GPUModel, name string, start int) (nvml.GpuInstance, nvml.Return) {
	t.Helper()
	info := gipInfo(t, d, m, name)
	p, _ := m.ProfileByName(name)
	return d.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: uint32(start), Size: uint32(p.MemorySlices)})
}

func mustCreateAt(t testing.TB, d nvml.Device, m *migconfig.GPUModel, name string, start int) nvml.GpuInstance {
	t.Helper()
	gi, r := createAt(t, d, m, name, start)
	if r != nvml.SUCCESS {
		t.Fatalf("create %s at %d: %v", name, start, r)
	}
	return gi
}

// fullCI creates the full-width compute instance of a GI and returns it
// with its MIG UUID.
func fullCI(t testing.TB, n *Node, gi nvml.GpuInstance) (nvml.ComputeInstance, string) {
	t.Helper()
	info, r := gi.GetInfo()
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	g := n.gpus[0]
	for _, gg := range n.gpus {
		if gg.handle == info.Device {
			g = gg
		}
	}
	p, _ := g.model.ProfileByID(migconfig.ProfileID(info.ProfileId))
	idx := -1
	for i := range nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
		if ciSlices(i) == p.ComputeSlices {
			idx = i
			break
		}
	}
	ciInfo, r := gi.GetComputeInstanceProfileInfo(idx, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
	if r != nvml.SUCCESS {
		t.Fatalf("GetComputeInstanceProfileInfo(%d): %v", idx, r)
	}
	ci, r := gi.CreateComputeInstance(&ciInfo)
	if r != nvml.SUCCESS {
		t.Fatalf("CreateComputeInstance: %v", r)
	}
	ciGot, _ := ci.GetInfo()
	return ci, migUUIDOf(t, n, g.index, int(info.Id), int(ciGot.Id))
}

// migUUIDOf finds a MIG device's UUID by enumerating the parent's MIG
// handles, as NVML callers do.
func migUUIDOf(t testing.TB, n *Node, gpuIndex, giID, ciID int) string {
	t.Helper()
	d := handle(t, n, gpuIndex)
	max, _ := d.GetMaxMigDeviceCount()
	for i := range max {
		mig, r := d.GetMigDeviceHandleByIndex(i)
		if r != nvml.SUCCESS {
			continue
		}
		g, _ := mig.GetGpuInstanceId()
		c, _ := mig.GetComputeInstanceId()
		if g == giID && c == ciID {
			u, _ := mig.GetUUID()
			return u
		}
	}
	t.Fatalf("no MIG device for GI %d CI %d", giID, ciID)
	return ""
}

func TestProfileInfoRealIDs(t *testing.T) {
	cases := []struct {
		model   string
		index0  uint32
		byIndex map[int]uint32
	}{
		{"a100-40gb", 19, map[int]uint32{0: 19, 1: 14, 2: 9, 3: 5, 4: 0, 7: 20, 9: 15}},
		{"a100-80gb", 19, map[int]uint32{0: 19, 1: 14, 2: 9, 3: 5, 4: 0, 7: 20, 9: 15}},
		{"h100-80gb", 19, map[int]uint32{0: 19, 1: 14, 2: 9, 3: 5, 4: 0, 7: 20, 9: 15}},
		{"h200", 19, map[int]uint32{0: 19, 1: 14, 2: 9, 3: 5, 4: 0, 7: 20, 9: 15}},
		{"a30", 14, map[int]uint32{0: 14, 1: 5, 3: 0, 7: 21, 8: 6}},
	}
	for _, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			n := started(t, tc.model, 1)
			m := model(t, tc.model)
			d := handle(t, n, 0)
			info, r := d.GetGpuInstanceProfileInfo(nvml.GPU_INSTANCE_PROFILE_1_SLICE)
			if r != nvml.SUCCESS || info.Id != tc.index0 {
				t.Fatalf("GetGpuInstanceProfileInfo(0) = ID %d, %v; want ID %d", info.Id, r, tc.index0)
			}
			for idx := range nvml.GPU_INSTANCE_PROFILE_COUNT {
				info, r := d.GetGpuInstanceProfileInfo(idx)
				want, ok := tc.byIndex[idx]
				if !ok {
					if r != nvml.ERROR_NOT_SUPPORTED {
						t.Errorf("index %d: %v, want ERROR_NOT_SUPPORTED", idx, r)
					}
					continue
				}
				if r != nvml.SUCCESS || info.Id != want {
					t.Errorf("index %d: ID %d, %v; want ID %d", idx, info.Id, r, want)
					continue
				}
				p, _ := m.ProfileByID(migconfig.ProfileID(want))
				if info.SliceCount != uint32(p.ComputeSlices) || info.InstanceCount != uint32(p.MaxCount) ||
					info.MemorySizeMB != uint64(p.MemoryMiB) || info.MultiprocessorCount != uint32(p.Multiprocessors) ||
					info.JpegCount != uint32(p.JPEGs) || info.OfaCount != uint32(p.OFAs) {
					t.Errorf("index %d: info %+v does not match %s", idx, info, p.Name)
				}
			}
			for _, idx := range []int{-1, nvml.GPU_INSTANCE_PROFILE_COUNT, 100} {
				if _, r := d.GetGpuInstanceProfileInfo(idx); r != nvml.ERROR_INVALID_ARGUMENT {
					t.Errorf("index %d: %v, want ERROR_INVALID_ARGUMENT", idx, r)
				}
			}
		})
	}
}

func TestProfilesNeedMig(t *testing.T) {
	n := started(t, "a100-40gb", 1, WithProfilesNeedMig())
	d := handle(t, n, 0)
	if _, r := d.GetGpuInstanceProfileInfo(0); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("MIG off: %v, want ERROR_NOT_SUPPORTED", r)
	}
	if pls, r := d.GetGpuInstancePossiblePlacements(&nvml.GpuInstanceProfileInfo{Id: 19}); r != nvml.SUCCESS || len(pls) != 7 {
		t.Fatalf("placements with MIG off: %v, %v", pls, r)
	}
	enableMig(t, n, 0)
	if info, r := d.GetGpuInstanceProfileInfo(0); r != nvml.SUCCESS || info.Id != 19 {
		t.Fatalf("MIG on: %+v, %v", info, r)
	}
}

type step struct {
	profile string
	start   int
	want    nvml.Return
}

func TestPlacementSemantics(t *testing.T) {
	cases := []struct {
		name  string
		model string
		steps []step
	}{
		{"4g+3g ok", "a100-40gb", []step{{"4g.20gb", 0, nvml.SUCCESS}, {"3g.20gb", 4, nvml.SUCCESS}}},
		{"4g+4g impossible", "a100-40gb", []step{{"4g.20gb", 0, nvml.SUCCESS}, {"4g.20gb", 0, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"4g.20gb", 4, nvml.ERROR_INVALID_ARGUMENT}}},
		{"3g@0 + 4x1g impossible", "a100-40gb", []step{
			{"3g.20gb", 0, nvml.SUCCESS}, {"1g.5gb", 4, nvml.SUCCESS}, {"1g.5gb", 5, nvml.SUCCESS}, {"1g.5gb", 6, nvml.SUCCESS},
			{"1g.5gb", 3, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"1g.5gb", 7, nvml.ERROR_INVALID_ARGUMENT}}},
		{"3g@4 + 4x1g ok", "a100-40gb", []step{
			{"3g.20gb", 4, nvml.SUCCESS}, {"1g.5gb", 0, nvml.SUCCESS}, {"1g.5gb", 1, nvml.SUCCESS}, {"1g.5gb", 2, nvml.SUCCESS}, {"1g.5gb", 3, nvml.SUCCESS}}},
		{"3g+3g ok", "a100-80gb", []step{{"3g.40gb", 0, nvml.SUCCESS}, {"3g.40gb", 4, nvml.SUCCESS}, {"1g.10gb", 3, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"7x1g then nothing", "h100-80gb", []step{
			{"1g.10gb", 0, nvml.SUCCESS}, {"1g.10gb", 1, nvml.SUCCESS}, {"1g.10gb", 2, nvml.SUCCESS}, {"1g.10gb", 3, nvml.SUCCESS},
			{"1g.10gb", 4, nvml.SUCCESS}, {"1g.10gb", 5, nvml.SUCCESS}, {"1g.10gb", 6, nvml.SUCCESS}, {"1g.20gb", 6, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"bad starts", "a100-40gb", []step{
			{"3g.20gb", 2, nvml.ERROR_INVALID_ARGUMENT}, {"2g.10gb", 6, nvml.ERROR_INVALID_ARGUMENT}, {"2g.10gb", 1, nvml.ERROR_INVALID_ARGUMENT},
			{"1g.10gb", 1, nvml.ERROR_INVALID_ARGUMENT}, {"7g.40gb", 0, nvml.SUCCESS}}},
		{"overlap", "a100-40gb", []step{{"2g.10gb", 2, nvml.SUCCESS}, {"3g.20gb", 0, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"1g.5gb", 3, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"1g.10gb", 2, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"3g.20gb", 4, nvml.SUCCESS}}},
		{"max count +me", "a100-40gb", []step{{"1g.5gb+me", 0, nvml.SUCCESS}, {"1g.5gb+me", 1, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"1g.5gb", 1, nvml.SUCCESS}}},
		{"max count 1g.10gb", "a100-40gb", []step{{"1g.10gb", 0, nvml.SUCCESS}, {"1g.10gb", 2, nvml.SUCCESS}, {"1g.10gb", 4, nvml.SUCCESS}, {"1g.10gb", 6, nvml.SUCCESS}}},
		{"a30 2g+1g+1g", "a30", []step{{"2g.12gb", 0, nvml.SUCCESS}, {"1g.6gb", 2, nvml.SUCCESS}, {"1g.6gb", 3, nvml.SUCCESS}, {"1g.6gb", 1, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"a30 one +me in all", "a30", []step{{"1g.6gb+me", 0, nvml.SUCCESS}, {"2g.12gb+me", 2, nvml.ERROR_INSUFFICIENT_RESOURCES}, {"2g.12gb", 2, nvml.SUCCESS}}},
		{"a30 bad start", "a30", []step{{"2g.12gb", 1, nvml.ERROR_INVALID_ARGUMENT}, {"4g.24gb", 0, nvml.SUCCESS}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, tc.model, 1)
			m := model(t, tc.model)
			d := enableMig(t, n, 0)
			for i, s := range tc.steps {
				if _, r := createAt(t, d, m, s.profile, s.start); r != s.want {
					t.Fatalf("step %d: %s at %d: %v, want %v", i, s.profile, s.start, r, s.want)
				}
			}
		})
	}
}

func TestCreateChecks(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := handle(t, n, 0)
	if _, r := createAt(t, d, m, "1g.5gb", 0); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("MIG disabled: %v, want ERROR_NOT_SUPPORTED", r)
	}
	info := gipInfo(t, d, m, "1g.5gb")
	if _, r := d.CreateGpuInstance(&info); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("MIG disabled, no placement: %v", r)
	}
	enableMig(t, n, 0)
	// A placement whose size is not the profile's is not one of its placements.
	if _, r := d.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: 0, Size: 2}); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("wrong size: %v", r)
	}
	if _, r := d.CreateGpuInstanceWithPlacement(nil, &nvml.GpuInstancePlacement{}); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("nil info: %v", r)
	}
	if _, r := d.CreateGpuInstanceWithPlacement(&nvml.GpuInstanceProfileInfo{Id: 1}, &nvml.GpuInstancePlacement{Start: 0, Size: 2}); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("unknown profile ID: %v", r)
	}
	// The profile is found by info.Id: an info whose Id is a profile
	// index (the go-nvml mock mistake) names another profile: ID 0 is 7g.
	gi, r := d.CreateGpuInstanceWithPlacement(&nvml.GpuInstanceProfileInfo{Id: 0}, &nvml.GpuInstancePlacement{Start: 0, Size: 8})
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	if gInfo, _ := gi.GetInfo(); gInfo.ProfileId != 0 || gInfo.Placement.Size != 8 {
		t.Fatalf("ID 0 made %+v", gInfo)
	}
}

func TestPossiblePlacementsByID(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	d := handle(t, n, 0)
	cases := []struct {
		id   uint32
		want string
		ret  nvml.Return
	}{
		{19, "0:1 1:1 2:1 3:1 4:1 5:1 6:1", nvml.SUCCESS},
		{15, "0:2 2:2 4:2 6:2", nvml.SUCCESS},
		{14, "0:2 2:2 4:2", nvml.SUCCESS},
		{9, "0:4 4:4", nvml.SUCCESS},
		{5, "0:4", nvml.SUCCESS},
		{0, "0:8", nvml.SUCCESS},
		{1, "", nvml.ERROR_NOT_SUPPORTED},
	}
	for _, tc := range cases {
		pls, r := d.GetGpuInstancePossiblePlacements(&nvml.GpuInstanceProfileInfo{Id: tc.id})
		var got []string
		for _, pl := range pls {
			got = append(got, fmt.Sprintf("%d:%d", pl.Start, pl.Size))
		}
		if r != tc.ret || strings.Join(got, " ") != tc.want {
			t.Errorf("ID %d: %v %v, want %q %v", tc.id, got, r, tc.want, tc.ret)
		}
	}
	if _, r := d.GetGpuInstancePossiblePlacements(nil); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Errorf("nil info: %v", r)
	}
}

func TestRemainingCapacity(t *testing.T) {
	cases := []struct {
		name    string
		setup   []step
		profile string
		want    int
	}{
		{"empty 1g", nil, "1g.5gb", 7},
		{"empty 2g", nil, "2g.10gb", 3},
		{"empty 1g.10gb", nil, "1g.10gb", 4},
		{"empty +me", nil, "1g.5gb+me", 1},
		{"3g@0 leaves three 1g", []step{{"3g.20gb", 0, nvml.SUCCESS}}, "1g.5gb", 3},
		{"3g@4 leaves four 1g", []step{{"3g.20gb", 4, nvml.SUCCESS}}, "1g.5gb", 4},
		{"4g leaves one 3g", []step{{"4g.20gb", 0, nvml.SUCCESS}}, "3g.20gb", 1},
		{"4g leaves no 4g", []step{{"4g.20gb", 0, nvml.SUCCESS}}, "4g.20gb", 0},
		{"+me used", []step{{"1g.5gb+me", 3, nvml.SUCCESS}}, "1g.5gb+me", 0},
		{"7g full", []step{{"7g.40gb", 0, nvml.SUCCESS}}, "1g.5gb", 0},
		{"1g@1 blocks 2g@0", []step{{"1g.5gb", 1, nvml.SUCCESS}}, "2g.10gb", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 1)
			m := model(t, "a100-40gb")
			d := enableMig(t, n, 0)
			for _, s := range tc.setup {
				mustCreateAt(t, d, m, s.profile, s.start)
			}
			info := gipInfo(t, d, m, tc.profile)
			got, r := d.GetGpuInstanceRemainingCapacity(&info)
			if r != nvml.SUCCESS || got != tc.want {
				t.Fatalf("remaining %s = %d, %v; want %d", tc.profile, got, r, tc.want)
			}
		})
	}
	n := started(t, "a100-40gb", 1)
	if _, r := handle(t, n, 0).GetGpuInstanceRemainingCapacity(&nvml.GpuInstanceProfileInfo{Id: 19}); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("MIG off: %v", r)
	}
}

func TestCreateGpuInstanceAutoPlacement(t *testing.T) {
	cases := []struct {
		name     string
		profiles []string
		want     []string // placements, or the failing return code
	}{
		{"19,14,5 (MIG guide)", []string{"1g.5gb", "2g.10gb", "4g.20gb"}, []string{"6:1", "4:2", "0:4"}},
		{"9,9", []string{"3g.20gb", "3g.20gb"}, []string{"4:4", "0:4"}},
		{"19,19,14,9 fails (MIG guide)", []string{"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"}, []string{"6:1", "5:1", "2:2", "ERROR_INSUFFICIENT_RESOURCES"}},
		{"9,19,14,19 fits (MIG guide)", []string{"3g.20gb", "1g.5gb", "2g.10gb", "1g.5gb"}, []string{"4:4", "3:1", "0:2", "2:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 1)
			m := model(t, "a100-40gb")
			d := enableMig(t, n, 0)
			for i, name := range tc.profiles {
				info := gipInfo(t, d, m, name)
				gi, r := d.CreateGpuInstance(&info)
				got := r.Error()
				if r == nvml.SUCCESS {
					gInfo, _ := gi.GetInfo()
					got = fmt.Sprintf("%d:%d", gInfo.Placement.Start, gInfo.Placement.Size)
				}
				if got != tc.want[i] {
					t.Fatalf("create %d (%s): %s, want %s", i, name, got, tc.want[i])
				}
			}
		})
	}
}

func TestGpuInstanceIDsAndListing(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := enableMig(t, n, 0)
	var ids []int
	for start := range 7 {
		gi := mustCreateAt(t, d, m, "1g.5gb", start)
		info, r := gi.GetInfo()
		if r != nvml.SUCCESS || info.ProfileId != 19 || info.Placement.Start != uint32(start) || info.Placement.Size != 1 || info.Device != d {
			t.Fatalf("GetInfo = %+v, %v", info, r)
		}
		ids = append(ids, int(info.Id))
		byID, r := d.GetGpuInstanceById(int(info.Id))
		if r != nvml.SUCCESS || byID != gi {
			t.Fatalf("GetGpuInstanceById(%d) = %v, %v", info.Id, byID, r)
		}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if slices.Equal(ids, sorted) || slices.Equal(ids, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("GI IDs %v follow placement order", ids)
	}
	if len(slices.Compact(sorted)) != 7 {
		t.Fatalf("GI IDs %v not distinct", ids)
	}
	info := gipInfo(t, d, m, "1g.5gb")
	gis, r := d.GetGpuInstances(&info)
	if r != nvml.SUCCESS || len(gis) != 7 {
		t.Fatalf("GetGpuInstances = %d, %v", len(gis), r)
	}
	other := gipInfo(t, d, m, "2g.10gb")
	if gis, r := d.GetGpuInstances(&other); r != nvml.SUCCESS || len(gis) != 0 {
		t.Fatalf("GetGpuInstances(2g) = %d, %v", len(gis), r)
	}
	if _, r := d.GetGpuInstanceById(99); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("GetGpuInstanceById(99): %v", r)
	}
	// Same seed, same history: same IDs.
	n2 := started(t, "a100-40gb", 1)
	d2 := enableMig(t, n2, 0)
	var ids2 []int
	for start := range 7 {
		in, _ := mustCreateAt(t, d2, m, "1g.5gb", start).GetInfo()
		ids2 = append(ids2, int(in.Id))
	}
	if !slices.Equal(ids, ids2) {
		t.Fatalf("IDs not reproducible: %v vs %v", ids, ids2)
	}
}

func TestComputeInstanceProfiles(t *testing.T) {
	type ciWant struct {
		ret       nvml.Return
		slices    uint32
		instances uint32
	}
	cases := []struct {
		gi   string
		want map[int]ciWant // by CI profile index
	}{
		{"7g.40gb", map[int]ciWant{
			0: {nvml.SUCCESS, 1, 7}, 1: {nvml.SUCCESS, 2, 3}, 2: {nvml.SUCCESS, 3, 2}, 3: {nvml.SUCCESS, 4, 1}, 4: {nvml.SUCCESS, 7, 1},
			5: {ret: nvml.ERROR_NOT_SUPPORTED}, 6: {ret: nvml.ERROR_NOT_SUPPORTED}, 7: {ret: nvml.ERROR_NOT_SUPPORTED}, 8: {ret: nvml.ERROR_NOT_SUPPORTED},
			9: {ret: nvml.ERROR_INVALID_ARGUMENT}, -1: {ret: nvml.ERROR_INVALID_ARGUMENT}}},
		{"4g.20gb", map[int]ciWant{0: {nvml.SUCCESS, 1, 4}, 1: {nvml.SUCCESS, 2, 2}, 2: {ret: nvml.ERROR_NOT_SUPPORTED}, 3: {nvml.SUCCESS, 4, 1}, 4: {ret: nvml.ERROR_NOT_SUPPORTED}}},
		{"3g.20gb", map[int]ciWant{0: {nvml.SUCCESS, 1, 3}, 1: {nvml.SUCCESS, 2, 1}, 2: {nvml.SUCCESS, 3, 1}, 3: {ret: nvml.ERROR_NOT_SUPPORTED}}},
		{"2g.10gb", map[int]ciWant{0: {nvml.SUCCESS, 1, 2}, 1: {nvml.SUCCESS, 2, 1}, 2: {ret: nvml.ERROR_NOT_SUPPORTED}}},
		{"1g.5gb", map[int]ciWant{0: {nvml.SUCCESS, 1, 1}, 1: {ret: nvml.ERROR_NOT_SUPPORTED}}},
	}
	for _, tc := range cases {
		t.Run(tc.gi, func(t *testing.T) {
			n := started(t, "a100-40gb", 1)
			m := model(t, "a100-40gb")
			d := enableMig(t, n, 0)
			gi := mustCreateAt(t, d, m, tc.gi, 0)
			for idx, w := range tc.want {
				info, r := gi.GetComputeInstanceProfileInfo(idx, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				if r != w.ret || (r == nvml.SUCCESS && (info.Id != uint32(idx) || info.SliceCount != w.slices || info.InstanceCount != w.instances)) {
					t.Errorf("CI profile %d: %+v %v, want %+v", idx, info, r, w)
				}
			}
			if _, r := gi.GetComputeInstanceProfileInfo(0, 1); r != nvml.ERROR_INVALID_ARGUMENT {
				t.Errorf("engine profile 1: %v", r)
			}
		})
	}
}

// ciStep creates a CI of slice-count profile index idx, at start (or
// anywhere when start < 0).
type ciStep struct {
	idx   int
	start int
	want  nvml.Return
}

func TestComputeInstanceLimits(t *testing.T) {
	cases := []struct {
		name  string
		gi    string
		steps []ciStep
	}{
		{"7g: two 3c then none", "7g.40gb", []ciStep{{2, -1, nvml.SUCCESS}, {2, -1, nvml.SUCCESS}, {2, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}, {0, -1, nvml.SUCCESS}, {0, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"7g: 3c placements 0 and 4", "7g.40gb", []ciStep{{2, 3, nvml.ERROR_INVALID_ARGUMENT}, {2, 4, nvml.SUCCESS}, {2, 0, nvml.SUCCESS}}},
		{"7g: 7c fills", "7g.40gb", []ciStep{{4, 0, nvml.SUCCESS}, {0, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"3g: three 1c", "3g.20gb", []ciStep{{0, -1, nvml.SUCCESS}, {0, -1, nvml.SUCCESS}, {0, -1, nvml.SUCCESS}, {0, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"3g: 1c@0 blocks 2c", "3g.20gb", []ciStep{{0, 0, nvml.SUCCESS}, {1, 0, nvml.ERROR_INSUFFICIENT_RESOURCES}, {1, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}, {0, 2, nvml.SUCCESS}}},
		{"4g: 2c twice", "4g.20gb", []ciStep{{1, 2, nvml.SUCCESS}, {1, 1, nvml.ERROR_INVALID_ARGUMENT}, {1, -1, nvml.SUCCESS}, {1, -1, nvml.ERROR_INSUFFICIENT_RESOURCES}}},
		{"4g: no 3c", "4g.20gb", []ciStep{{2, -1, nvml.ERROR_NOT_SUPPORTED}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 1)
			m := model(t, "a100-40gb")
			d := enableMig(t, n, 0)
			gi := mustCreateAt(t, d, m, tc.gi, 0)
			for i, s := range tc.steps {
				info, r := gi.GetComputeInstanceProfileInfo(s.idx, 0)
				if r != nvml.SUCCESS {
					info = nvml.ComputeInstanceProfileInfo{Id: uint32(s.idx)}
				}
				var ci nvml.ComputeInstance
				if s.start < 0 {
					ci, r = gi.CreateComputeInstance(&info)
				} else {
					ci, r = gi.CreateComputeInstanceWithPlacement(&info, &nvml.ComputeInstancePlacement{Start: uint32(s.start), Size: info.SliceCount})
				}
				if r != s.want {
					t.Fatalf("step %d: %+v: %v, want %v", i, s, r, s.want)
				}
				if r == nvml.SUCCESS {
					ciInfo, _ := ci.GetInfo()
					if ciInfo.GpuInstance != gi || ciInfo.Device != d || ciInfo.ProfileId != uint32(s.idx) || (s.start >= 0 && ciInfo.Placement.Start != uint32(s.start)) {
						t.Fatalf("step %d: CI info %+v", i, ciInfo)
					}
					got, r := gi.GetComputeInstanceById(int(ciInfo.Id))
					if r != nvml.SUCCESS || got != ci {
						t.Fatalf("GetComputeInstanceById(%d): %v", ciInfo.Id, r)
					}
				}
			}
		})
	}
}

func TestComputeInstanceListingAndCapacity(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := enableMig(t, n, 0)
	gi := mustCreateAt(t, d, m, "7g.40gb", 0)
	info1c, _ := gi.GetComputeInstanceProfileInfo(0, 0)
	info2c, _ := gi.GetComputeInstanceProfileInfo(1, 0)
	if c, _ := gi.GetComputeInstanceRemainingCapacity(&info1c); c != 7 {
		t.Fatalf("1c capacity %d", c)
	}
	pls, _ := gi.GetComputeInstancePossiblePlacements(&info2c)
	if len(pls) != 3 || pls[2].Start != 4 {
		t.Fatalf("2c placements %v", pls)
	}
	for range 2 {
		if _, r := gi.CreateComputeInstance(&info2c); r != nvml.SUCCESS {
			t.Fatal(r)
		}
	}
	if c, _ := gi.GetComputeInstanceRemainingCapacity(&info2c); c != 1 {
		t.Fatalf("2c capacity after two: %d", c)
	}
	if c, _ := gi.GetComputeInstanceRemainingCapacity(&info1c); c != 3 {
		t.Fatalf("1c capacity after two 2c: %d", c)
	}
	cis, r := gi.GetComputeInstances(&info2c)
	if r != nvml.SUCCESS || len(cis) != 2 {
		t.Fatalf("GetComputeInstances: %d %v", len(cis), r)
	}
	if cis, _ := gi.GetComputeInstances(&info1c); len(cis) != 0 {
		t.Fatalf("1c listed: %d", len(cis))
	}
	if _, r := gi.GetComputeInstanceById(5); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("GetComputeInstanceById(5): %v", r)
	}
}

func TestDestroyOrderAndStaleHandles(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := enableMig(t, n, 0)
	gi := mustCreateAt(t, d, m, "3g.20gb", 4)
	giInfo, _ := gi.GetInfo()
	ci, _ := fullCI(t, n, gi)
	if r := gi.Destroy(); r != nvml.ERROR_IN_USE {
		t.Fatalf("destroy GI with CI: %v, want ERROR_IN_USE", r)
	}
	if r := ci.Destroy(); r != nvml.SUCCESS {
		t.Fatalf("destroy CI: %v", r)
	}
	if _, r := ci.GetInfo(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("destroyed CI GetInfo: %v", r)
	}
	if r := ci.Destroy(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("CI destroyed twice: %v", r)
	}
	if r := gi.Destroy(); r != nvml.SUCCESS {
		t.Fatalf("destroy GI: %v", r)
	}
	if _, r := gi.GetInfo(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("destroyed GI GetInfo: %v", r)
	}
	if r := gi.Destroy(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("GI destroyed twice: %v", r)
	}
	if _, r := d.GetGpuInstanceById(int(giInfo.Id)); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("GetGpuInstanceById after destroy: %v", r)
	}
	if got := n.DestroyedInstances(); got != 1 {
		t.Fatalf("DestroyedInstances = %d", got)
	}
	// The room is free again.
	mustCreateAt(t, d, m, "3g.20gb", 4)
}

func TestBusyInstances(t *testing.T) {
	n := started(t, "h100-80gb", 1)
	m := model(t, "h100-80gb")
	d := enableMig(t, n, 0)
	gi := mustCreateAt(t, d, m, "2g.20gb", 2)
	ci, uuid := fullCI(t, n, gi)
	pid, err := n.StartProcess(uuid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.StartProcess(handleUUID(t, d)); err == nil {
		t.Fatal("process on the whole GPU with MIG enabled")
	}
	if r := ci.Destroy(); r != nvml.ERROR_IN_USE {
		t.Fatalf("busy CI destroy: %v", r)
	}
	if r := gi.Destroy(); r != nvml.ERROR_IN_USE {
		t.Fatalf("busy GI destroy: %v", r)
	}
	mig, r := n.DeviceGetHandleByUUID(uuid)
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	procs, _ := mig.GetComputeRunningProcesses()
	giInfo, _ := gi.GetInfo()
	if len(procs) != 1 || procs[0].Pid != pid || procs[0].GpuInstanceId != giInfo.Id || procs[0].ComputeInstanceId != 0 {
		t.Fatalf("MIG processes %+v", procs)
	}
	if all, _ := d.GetComputeRunningProcesses(); len(all) != 1 || all[0].Pid != pid {
		t.Fatalf("GPU processes %+v", all)
	}
	mem, _ := mig.GetMemoryInfo()
	p2g, _ := m.ProfileByName("2g.20gb")
	if mem.Total != uint64(p2g.MemoryMiB)<<20 || mem.Used != ProcessMemoryMiB<<20 {
		t.Fatalf("MIG memory %+v", mem)
	}
	if err := n.ResetGPU(0); err == nil {
		t.Fatal("reset of a busy GPU")
	}
	if err := n.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	if err := n.StopProcess(pid); err == nil {
		t.Fatal("stopped twice")
	}
	if r := ci.Destroy(); r != nvml.SUCCESS {
		t.Fatal(r)
	}
	if r := gi.Destroy(); r != nvml.SUCCESS {
		t.Fatal(r)
	}
}

func handleUUID(t testing.TB, d nvml.Device) string {
	t.Helper()
	u, r := d.GetUUID()
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	return u
}

func migMode(t testing.TB, d nvml.Device) string {
	t.Helper()
	cur, pend, r := d.GetMigMode()
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	return fmt.Sprintf("%d/%d", cur, pend)
}

func TestMigModeChanges(t *testing.T) {
	cases := []struct {
		name           string
		model          string
		opts           []Option
		busy           bool
		wantActivation nvml.Return
		wantRet        nvml.Return
		wantMode       string // current/pending after SetMigMode
	}{
		{"ampere pending until reset", "a100-40gb", nil, false, nvml.ERROR_RESET_REQUIRED, nvml.SUCCESS, "0/1"},
		{"ampere busy", "a100-80gb", nil, true, nvml.ERROR_IN_USE, nvml.SUCCESS, "0/1"},
		{"ampere auto reset", "a30", []Option{WithAmpereAutoReset()}, false, nvml.SUCCESS, nvml.SUCCESS, "1/1"},
		{"ampere auto reset busy", "a30", []Option{WithAmpereAutoReset()}, true, nvml.ERROR_IN_USE, nvml.SUCCESS, "0/1"},
		{"hopper immediate", "h100-80gb", nil, false, nvml.SUCCESS, nvml.SUCCESS, "1/1"},
		{"hopper busy", "h200", nil, true, nvml.SUCCESS, nvml.ERROR_IN_USE, "0/0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, tc.model, 2, tc.opts...)
			d := handle(t, n, 0)
			var pid uint32
			if tc.busy {
				var err error
				if pid, err = n.StartProcess(handleUUID(t, d)); err != nil {
					t.Fatal(err)
				}
			}
			act, ret := d.SetMigMode(nvml.DEVICE_MIG_ENABLE)
			if act != tc.wantActivation || ret != tc.wantRet {
				t.Fatalf("SetMigMode = (%v, %v), want (%v, %v)", act, ret, tc.wantActivation, tc.wantRet)
			}
			if got := migMode(t, d); got != tc.wantMode {
				t.Fatalf("mode %s, want %s", got, tc.wantMode)
			}
			if got := migMode(t, handle(t, n, 1)); got != "0/0" {
				t.Fatalf("other GPU changed: %s", got)
			}
			if tc.busy {
				if err := n.ResetGPU(0); err == nil {
					t.Fatal("reset with a process")
				}
				n.StopProcess(pid)
			}
			if err := n.ResetGPU(0); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMigModeLifecycle(t *testing.T) {
	for _, key := range []string{"a100-40gb", "h100-80gb"} {
		t.Run(key, func(t *testing.T) {
			n := started(t, key, 1)
			m := model(t, key)
			d := handle(t, n, 0)
			if max, _ := d.GetMaxMigDeviceCount(); max != 0 {
				t.Fatalf("max MIG devices with MIG off: %d", max)
			}
			enableMig(t, n, 0)
			if got := migMode(t, d); got != "1/1" {
				t.Fatalf("mode %s", got)
			}
			if max, _ := d.GetMaxMigDeviceCount(); max != 7 {
				t.Fatalf("max MIG devices: %d", max)
			}
			gi := mustCreateAt(t, d, m, m.Profiles[0].Name, 0)
			// Disabling with an instance present fails; activationStatus
			// is never written then.
			if act, ret := d.SetMigMode(nvml.DEVICE_MIG_DISABLE); act != nvml.SUCCESS || ret != nvml.ERROR_IN_USE {
				t.Fatalf("disable with GI: (%v, %v)", act, ret)
			}
			if got := migMode(t, d); got != "1/1" {
				t.Fatalf("mode after refused disable: %s", got)
			}
			if r := gi.Destroy(); r != nvml.SUCCESS {
				t.Fatal(r)
			}
			act, ret := d.SetMigMode(nvml.DEVICE_MIG_DISABLE)
			if ret != nvml.SUCCESS {
				t.Fatal(ret)
			}
			if m.Architecture.ModeChangeNeedsReset() {
				if act != nvml.ERROR_RESET_REQUIRED || migMode(t, d) != "1/0" {
					t.Fatalf("ampere disable: %v, %s", act, migMode(t, d))
				}
				// Pending disable: the current mode still allows instances.
				mustCreateAt(t, d, m, m.Profiles[0].Name, 0)
				n.Reboot()
			}
			if got := migMode(t, d); got != "0/0" {
				t.Fatalf("mode after disable: %s", got)
			}
			if act, ret := d.SetMigMode(7); ret != nvml.ERROR_INVALID_ARGUMENT || act != nvml.SUCCESS {
				t.Fatalf("SetMigMode(7): (%v, %v)", act, ret)
			}
		})
	}
}

func TestReboot(t *testing.T) {
	if n := New(model(t, "a30"), 0); len(n.gpus) != 1 {
		t.Fatalf("New with count 0 built %d GPUs", len(n.gpus))
	}
	cat := migconfig.Builtin()
	n, err := NewFromSpec(cat, "a100-40gb:1,h100-80gb:1", WithMigEnabled())
	if err != nil {
		t.Fatal(err)
	}
	n.Init()
	defer n.Shutdown()
	for i, key := range []string{"a100-40gb", "h100-80gb"} {
		d := handle(t, n, i)
		full, _ := model(t, key).ProfileByIndex(migconfig.ProfileIndex7Slice)
		gi := mustCreateAt(t, d, model(t, key), full.Name, 0)
		_, uuid := fullCI(t, n, gi)
		if _, err := n.StartProcess(uuid); err != nil {
			t.Fatal(err)
		}
	}
	n.Reboot()
	if len(n.Processes()) != 0 {
		t.Fatalf("processes survived reboot: %v", n.Processes())
	}
	if got := migMode(t, handle(t, n, 0)); got != "1/1" {
		t.Fatalf("ampere mode after reboot: %s", got)
	}
	if got := migMode(t, handle(t, n, 1)); got != "0/0" {
		t.Fatalf("hopper mode after reboot: %s", got)
	}
	gis, r := handle(t, n, 0).GetGpuInstances(&nvml.GpuInstanceProfileInfo{Id: 0})
	if r != nvml.SUCCESS || len(gis) != 0 {
		t.Fatalf("GIs survived reboot: %d %v", len(gis), r)
	}
}

func TestFaultInjection(t *testing.T) {
	gpu1 := 1
	cases := []struct {
		name  string
		fault Fault
		// calls on GPU gpu[i]; fail[i] says which fail.
		gpus []int
		fail []bool
	}{
		{"second call", Fault{Call: "CreateGpuInstanceWithPlacement", Nth: 2, Return: nvml.ERROR_UNKNOWN}, []int{0, 0, 0, 0}, []bool{false, true, false, false}},
		{"next call", Fault{Call: "CreateGpuInstanceWithPlacement"}, []int{0, 0}, []bool{true, false}},
		{"interface name", Fault{Call: "DeviceCreateGpuInstanceWithPlacement", Nth: 1, Return: nvml.ERROR_GPU_IS_LOST}, []int{0, 0}, []bool{true, false}},
		{"gpu scoped", Fault{Call: "CreateGpuInstanceWithPlacement", GPU: &gpu1, Nth: 2, Return: nvml.ERROR_UNKNOWN}, []int{0, 1, 0, 1, 1}, []bool{false, false, false, true, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 2)
			m := model(t, "a100-40gb")
			enableMig(t, n, 0)
			enableMig(t, n, 1)
			n.InjectFault(tc.fault)
			start := map[int]int{}
			for i, g := range tc.gpus {
				d := handle(t, n, g)
				_, r := createAt(t, d, m, "1g.5gb", start[g])
				want := tc.fault.Return
				if want == nvml.SUCCESS {
					want = nvml.ERROR_UNKNOWN
				}
				if !tc.fail[i] {
					want = nvml.SUCCESS
				}
				if r != want {
					t.Fatalf("call %d on GPU %d: %v, want %v", i, g, r, want)
				}
				if r == nvml.SUCCESS {
					start[g]++
				}
				// A failed call has no effect.
				info := gipInfo(t, d, m, "1g.5gb")
				if gis, _ := d.GetGpuInstances(&info); len(gis) != start[g] {
					t.Fatalf("call %d: %d GIs on GPU %d, want %d", i, len(gis), g, start[g])
				}
			}
			if p := n.PendingFaults(); p != 0 {
				t.Fatalf("%d faults still pending", p)
			}
		})
	}
}

func TestFaultOnDestroyAndMode(t *testing.T) {
	n := started(t, "h100-80gb", 1)
	m := model(t, "h100-80gb")
	d := handle(t, n, 0)
	n.InjectFault(Fault{Call: "SetMigMode", Return: nvml.ERROR_NO_PERMISSION})
	if act, ret := d.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.ERROR_NO_PERMISSION || act != nvml.SUCCESS {
		t.Fatalf("faulted SetMigMode: (%v, %v)", act, ret)
	}
	if migMode(t, d) != "0/0" {
		t.Fatal("faulted SetMigMode changed the mode")
	}
	enableMig(t, n, 0)
	gi := mustCreateAt(t, d, m, "3g.40gb", 0)
	n.InjectFault(Fault{Call: "GpuInstanceDestroy", Return: nvml.ERROR_UNKNOWN})
	if r := gi.Destroy(); r != nvml.ERROR_UNKNOWN {
		t.Fatalf("faulted destroy: %v", r)
	}
	if _, r := gi.GetInfo(); r != nvml.SUCCESS {
		t.Fatalf("GI gone after faulted destroy: %v", r)
	}
	if r := gi.Destroy(); r != nvml.SUCCESS {
		t.Fatalf("destroy after fault: %v", r)
	}
	// Faults also apply through the Interface's forwarding functions.
	n.InjectFault(Fault{Call: "GetUUID", Return: nvml.ERROR_GPU_IS_LOST})
	if _, r := n.DeviceGetUUID(d); r != nvml.ERROR_GPU_IS_LOST {
		t.Fatalf("DeviceGetUUID with fault: %v", r)
	}
}

func TestCallCounters(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := enableMig(t, n, 0)
	n.ResetCounters()
	gi := mustCreateAt(t, d, m, "3g.20gb", 0)
	mustCreateAt(t, d, m, "3g.20gb", 4)
	if _, r := createAt(t, d, m, "1g.5gb", 0); r != nvml.ERROR_INSUFFICIENT_RESOURCES {
		t.Fatal(r)
	}
	ci, _ := fullCI(t, n, gi)
	ci.Destroy()
	gi.Destroy()
	n.DeviceGetName(d) // forwarded: counted once, as GetName
	calls := n.Calls()
	want := map[string]int{
		"CreateGpuInstanceWithPlacement":   3,
		"GpuInstanceCreateComputeInstance": 1,
		"ComputeInstanceDestroy":           1,
		"GpuInstanceDestroy":               1,
		"GetName":                          1,
	}
	for k, v := range want {
		if calls[k] != v {
			t.Errorf("Calls()[%s] = %d, want %d (all: %v)", k, calls[k], v, calls)
		}
	}
	if got := n.MutatingCalls(); got != 6 {
		t.Errorf("MutatingCalls = %d, want 6", got)
	}
	if got := n.DestroyedInstances(); got != 1 {
		t.Errorf("DestroyedInstances = %d, want 1", got)
	}
	n.ResetCounters()
	if len(n.Calls()) != 0 || n.MutatingCalls() != 0 || n.DestroyedInstances() != 0 {
		t.Error("ResetCounters left counts")
	}
}

func TestMigDeviceHandles(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	m := model(t, "a100-40gb")
	d := enableMig(t, n, 0)
	var cis []nvml.ComputeInstance
	var uuids []string
	for _, s := range []step{{"1g.5gb", 0, 0}, {"2g.10gb", 2, 0}, {"3g.20gb", 4, 0}} {
		gi := mustCreateAt(t, d, m, s.profile, s.start)
		ci, uuid := fullCI(t, n, gi)
		cis = append(cis, ci)
		uuids = append(uuids, uuid)
	}
	if r := cis[1].Destroy(); r != nvml.SUCCESS {
		t.Fatal(r)
	}
	max, _ := d.GetMaxMigDeviceCount()
	var got []string
	for i := range max {
		mig, r := d.GetMigDeviceHandleByIndex(i)
		switch r {
		case nvml.ERROR_NOT_FOUND:
			got = append(got, "-")
			continue
		case nvml.SUCCESS:
		default:
			t.Fatalf("index %d: %v", i, r)
		}
		isMig, _ := mig.IsMigDeviceHandle()
		parent, _ := mig.GetDeviceHandleFromMigDeviceHandle()
		name, _ := mig.GetName()
		uuid, _ := mig.GetUUID()
		mem, _ := mig.GetMemoryInfo()
		if !isMig || parent != d || !strings.HasPrefix(uuid, "MIG-") || len(uuid) != 40 {
			t.Fatalf("index %d: mig %v parent %v uuid %q", i, isMig, parent == d, uuid)
		}
		got = append(got, fmt.Sprintf("%s/%d", strings.TrimPrefix(name, "NVIDIA A100-SXM4-40GB MIG "), mem.Total>>20))
	}
	p1g, _ := m.ProfileByName("1g.5gb")
	p3g, _ := m.ProfileByName("3g.20gb")
	if want := fmt.Sprintf("1g.5gb/%d - 3g.20gb/%d - - - -", p1g.MemoryMiB, p3g.MemoryMiB); strings.Join(got, " ") != want {
		t.Fatalf("MIG devices %q, want %q", strings.Join(got, " "), want)
	}
	if _, r := d.GetMigDeviceHandleByIndex(7); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("index 7: %v", r)
	}
	if isMig, _ := d.IsMigDeviceHandle(); isMig {
		t.Fatal("GPU handle is a MIG handle")
	}
	if _, r := d.GetGpuInstanceId(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("GetGpuInstanceId on a GPU: %v", r)
	}
	// The old UUID is gone; the re-created device gets a new one, in the
	// hole.
	if _, r := n.DeviceGetHandleByUUID(uuids[1]); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("destroyed MIG UUID: %v", r)
	}
	oldMig, _ := n.DeviceGetHandleByUUID(uuids[0])
	if u, _ := oldMig.GetUUID(); u != uuids[0] {
		t.Fatal("MIG UUID not stable")
	}
	gi2, _ := d.GetGpuInstances(&nvml.GpuInstanceProfileInfo{Id: 14})
	_, uuid := fullCI(t, n, gi2[0])
	if slices.Contains(uuids, uuid) {
		t.Fatalf("re-created MIG device reused UUID %s", uuid)
	}
	if mig, r := d.GetMigDeviceHandleByIndex(1); r != nvml.SUCCESS {
		t.Fatalf("hole not reused: %v", r)
	} else if u, _ := mig.GetUUID(); u != uuid {
		t.Fatalf("index 1 is %s, want %s", u, uuid)
	}
	// A stale MIG handle fails.
	mig0, _ := d.GetMigDeviceHandleByIndex(0)
	cis[0].Destroy()
	if _, r := mig0.GetUUID(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("stale MIG handle: %v", r)
	}
}

func TestDevicesAndLibrary(t *testing.T) {
	cat := migconfig.Builtin()
	n, err := NewFromSpec(cat, "a100-40gb:2", WithSeed(42), WithDriverVersion("550.54.15"))
	if err != nil {
		t.Fatal(err)
	}
	if _, r := n.DeviceGetCount(); r != nvml.ERROR_UNINITIALIZED {
		t.Fatalf("before Init: %v", r)
	}
	if r := n.Shutdown(); r != nvml.ERROR_UNINITIALIZED {
		t.Fatalf("Shutdown before Init: %v", r)
	}
	n.Init()
	defer n.Shutdown()
	if c, r := n.DeviceGetCount(); c != 2 || r != nvml.SUCCESS {
		t.Fatalf("count %d %v", c, r)
	}
	if v, _ := n.SystemGetDriverVersion(); v != "550.54.15" {
		t.Fatalf("driver %q", v)
	}
	if _, r := n.DeviceGetHandleByIndex(2); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("index 2: %v", r)
	}
	d := handle(t, n, 1)
	uuid := handleUUID(t, d)
	if !strings.HasPrefix(uuid, "GPU-") || len(uuid) != 40 {
		t.Fatalf("UUID %q", uuid)
	}
	byUUID, r := n.DeviceGetHandleByUUID(uuid)
	if r != nvml.SUCCESS || byUUID != d {
		t.Fatalf("DeviceGetHandleByUUID: %v", r)
	}
	if _, r := n.DeviceGetHandleByUUID("GPU-nope"); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("unknown UUID: %v", r)
	}
	pci, _ := d.GetPciInfo()
	busID := cString(pci.BusId[:])
	if pci.PciDeviceId != 0x20B010DE || busID != "00000000:0F:00.0" || cString(pci.BusIdLegacy[:]) != "0000:0F:00.0" || pci.Bus != 0x0F {
		t.Fatalf("PCI %#x %q %q", pci.PciDeviceId, busID, cString(pci.BusIdLegacy[:]))
	}
	if byBus, r := n.DeviceGetHandleByPciBusId("0000:0f:00.0"); r != nvml.SUCCESS || byBus != d {
		t.Fatalf("DeviceGetHandleByPciBusId: %v", r)
	}
	name, _ := d.GetName()
	arch, _ := d.GetArchitecture()
	major, minor, _ := d.GetCudaComputeCapability()
	mem, _ := d.GetMemoryInfo()
	idx, _ := d.GetIndex()
	if name != "NVIDIA A100-SXM4-40GB" || arch != nvml.DEVICE_ARCH_AMPERE || major != 8 || minor != 0 || mem.Total != uint64(model(t, "a100-40gb").MemoryMiB)<<20 || mem.Free != mem.Total || idx != 1 {
		t.Fatalf("name %q arch %d cc %d.%d mem %+v idx %d", name, arch, major, minor, mem, idx)
	}
	// Interface forwarding and stubs.
	if fwd, r := n.DeviceGetName(d); fwd != name || r != nvml.SUCCESS {
		t.Fatalf("DeviceGetName: %q %v", fwd, r)
	}
	if _, r := n.DeviceGetFanSpeed(d); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("DeviceGetFanSpeed: %v", r)
	}
	if _, r := d.GetFanSpeed(); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("GetFanSpeed: %v", r)
	}
	if mw, r := n.DeviceGetPowerUsage(d); r != nvml.SUCCESS || mw != IdleTelemetry().PowerMilliwatts {
		t.Fatalf("DeviceGetPowerUsage (simulated): %d %v", mw, r)
	}
	if _, r := n.GetExcludedDeviceCount(); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("GetExcludedDeviceCount: %v", r)
	}
	if _, r := n.DeviceGetName(nil); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("DeviceGetName(nil): %v", r)
	}
	if err := n.Extensions().LookupSymbol("nvmlDeviceGetGpuInstanceProfileInfoV"); err == nil {
		t.Fatal("LookupSymbol reports the V symbol present")
	}
	// Same seed, same UUIDs; another seed, others.
	same, _ := NewFromSpec(cat, "a100-40gb:2", WithSeed(42))
	other, _ := NewFromSpec(cat, "a100-40gb:2", WithSeed(43))
	if same.gpus[1].uuid != uuid || other.gpus[1].uuid == uuid || same.gpus[0].uuid == uuid {
		t.Fatal("UUIDs not derived from seed and index")
	}
}

func cString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func TestNewFromSpec(t *testing.T) {
	cat := migconfig.Builtin()
	cases := []struct {
		spec  string
		count int
		err   string
	}{
		{"a100-40gb:8", 8, ""},
		{"a100-40gb", 8, ""},
		{"a30", 4, ""},
		{"A30:2", 2, ""},
		{"h100-80gb:4, a30:2", 6, ""},
		{"h100-nvl", 8, ""},
		{"v100:8", 0, "unknown model"},
		{"a100-40gb:0", 0, "count"},
		{"a100-40gb:x", 0, "count"},
		{"", 0, "empty model"},
	}
	for _, tc := range cases {
		n, err := NewFromSpec(cat, tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || len(n.gpus) != tc.count {
			t.Errorf("%q: %v, %d GPUs", tc.spec, err, len(n.gpus))
		}
	}
}

func TestMachines(t *testing.T) {
	cat := migconfig.Builtin()
	ms := Machines()
	if len(ms) != 5 {
		t.Fatalf("%d machines", len(ms))
	}
	for _, mc := range ms {
		t.Run(mc.Name, func(t *testing.T) {
			n, err := mc.Build(cat, WithMigEnabled())
			if err != nil {
				t.Fatal(err)
			}
			n.Init()
			defer n.Shutdown()
			m := model(t, mc.Model)
			if c, _ := n.DeviceGetCount(); c != mc.Count {
				t.Fatalf("%d GPUs", c)
			}
			uuids := map[string]bool{}
			for i := range mc.Count {
				d := handle(t, n, i)
				uuids[handleUUID(t, d)] = true
				pci, _ := d.GetPciInfo()
				if got, ok := cat.ByDeviceID(pci.PciDeviceId); !ok || got.Key != mc.Model {
					t.Fatalf("GPU %d: device ID %#x", i, pci.PciDeviceId)
				}
				name, _ := d.GetName()
				if got, ok := cat.ByName(name); !ok || got.Key != mc.Model {
					t.Fatalf("GPU %d: name %q", i, name)
				}
			}
			if len(uuids) != mc.Count {
				t.Fatal("duplicate GPU UUIDs")
			}
			// Every profile can be created alone at each of its placements.
			d := handle(t, n, 0)
			for _, p := range m.Profiles {
				for _, pl := range p.Placements {
					gi := mustCreateAt(t, d, m, p.Name, pl.Start)
					_, uuid := fullCI(t, n, gi)
					mig, _ := n.DeviceGetHandleByUUID(uuid)
					if mem, _ := mig.GetMemoryInfo(); mem.Total != uint64(p.MemoryMiB)<<20 {
						t.Fatalf("%s: MIG memory %d", p.Name, mem.Total>>20)
					}
					ci, _ := gi.GetComputeInstanceById(0)
					if ci.Destroy() != nvml.SUCCESS || gi.Destroy() != nvml.SUCCESS {
						t.Fatalf("%s at %s: destroy failed", p.Name, pl)
					}
				}
			}
		})
	}
}

func TestPersistenceRoundTrip(t *testing.T) {
	cat := migconfig.Builtin()
	n, err := NewFromSpec(cat, "a100-40gb:2,h100-80gb:1", WithSeed(7), WithAmpereAutoReset())
	if err != nil {
		t.Fatal(err)
	}
	n.Init()
	a100 := model(t, "a100-40gb")
	d0 := enableMig(t, n, 0)
	gi := mustCreateAt(t, d0, a100, "3g.20gb", 4)
	_, uuidA := fullCI(t, n, gi)
	gi2 := mustCreateAt(t, d0, a100, "1g.5gb", 0)
	ci2, _ := fullCI(t, n, gi2)
	ci2.Destroy() // leaves a hole and a GI without CIs
	pid, _ := n.StartProcess(uuidA)
	d1 := handle(t, n, 1)
	d1.SetMigMode(nvml.DEVICE_MIG_ENABLE) // auto reset: enabled at once
	pidGPU, err := n.StartProcess(handleUUID(t, handle(t, n, 2)))
	if err != nil {
		t.Fatal(err)
	}

	data, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(cat, data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(loaded)
	if string(again) != string(data) {
		t.Fatalf("round trip changed the state:\n%s\n%s", data, again)
	}
	if _, r := loaded.DeviceGetCount(); r != nvml.ERROR_UNINITIALIZED {
		t.Fatalf("loaded node initialized: %v", r)
	}
	loaded.Init()
	defer loaded.Shutdown()
	for i := range 3 {
		if a, b := handleUUID(t, handle(t, n, i)), handleUUID(t, handle(t, loaded, i)); a != b {
			t.Fatalf("GPU %d UUID %s became %s", i, a, b)
		}
	}
	mig, r := loaded.DeviceGetHandleByUUID(uuidA)
	if r != nvml.SUCCESS {
		t.Fatalf("MIG UUID lost: %v", r)
	}
	procs, _ := mig.GetComputeRunningProcesses()
	if len(procs) != 1 || procs[0].Pid != pid {
		t.Fatalf("processes %+v", procs)
	}
	if !slices.Equal(loaded.Processes(), []uint32{pid, pidGPU}) {
		t.Fatalf("processes %v", loaded.Processes())
	}
	ld0 := handle(t, loaded, 0)
	if _, r := ld0.GetMigDeviceHandleByIndex(0); r != nvml.SUCCESS {
		t.Fatalf("MIG index 0: %v", r)
	}
	if _, r := ld0.GetMigDeviceHandleByIndex(1); r != nvml.ERROR_NOT_FOUND {
		t.Fatalf("hole lost: %v", r)
	}
	giInfo, _ := gi.GetInfo()
	lgi, r := ld0.GetGpuInstanceById(int(giInfo.Id))
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	if lInfo, _ := lgi.GetInfo(); lInfo.Placement != giInfo.Placement || lInfo.ProfileId != giInfo.ProfileId {
		t.Fatalf("GI %+v became %+v", giInfo, lInfo)
	}
	lci, _ := lgi.GetComputeInstanceById(0)
	if r := lci.Destroy(); r != nvml.ERROR_IN_USE {
		t.Fatalf("busy CI after load: %v", r)
	}
	if got := migMode(t, handle(t, loaded, 1)); got != "1/1" {
		t.Fatalf("GPU 1 mode %s", got)
	}
	// New things after the load get fresh UUIDs and PIDs, as in the
	// original node.
	lgi2, _ := ld0.GetGpuInstances(&nvml.GpuInstanceProfileInfo{Id: 19})
	_, uuidNew := fullCI(t, loaded, lgi2[0])
	_, uuidOrig := fullCI(t, n, gi2)
	if uuidNew != uuidOrig || uuidNew == uuidA {
		t.Fatalf("MIG UUID after load %s, original node %s", uuidNew, uuidOrig)
	}
	if p, _ := loaded.StartProcess(uuidNew); p <= pidGPU {
		t.Fatalf("PID %d reused", p)
	}
}

func TestLoadRefusesBadState(t *testing.T) {
	cat := migconfig.Builtin()
	n, _ := NewFromSpec(cat, "a100-40gb:2", WithMigEnabled())
	n.Init()
	d := handle(t, n, 0)
	mustCreateAt(t, d, model(t, "a100-40gb"), "3g.20gb", 0)
	data, _ := json.Marshal(n)
	good := string(data)
	cases := []struct{ name, from, to string }{
		{"duplicate GPU UUID", n.gpus[1].uuid, n.gpus[0].uuid},
		{"bad placement", `"start":0,`, `"start":2,`},
		{"unknown model", `"a100-40gb"`, `"v100"`},
		{"mig off with GIs", `"migCurrent":true`, `"migCurrent":false`},
		{"bad version", `"version":1`, `"version":9`},
	}
	for _, tc := range cases {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if bad == good {
			t.Fatalf("%s: %q not in %s", tc.name, tc.from, good)
		}
		if _, err := Load(cat, []byte(bad)); err == nil {
			t.Errorf("%s: loaded", tc.name)
		}
	}
	over, err := Load(cat, data, WithDriverVersion("535.183.01"))
	if err != nil {
		t.Fatal(err)
	}
	over.Init()
	if v, _ := over.SystemGetDriverVersion(); v != "535.183.01" {
		t.Errorf("option not applied on load: %q", v)
	}
	if _, err := Load(cat, []byte("{")); err == nil {
		t.Error("loaded bad JSON")
	}
}

func TestReturnErrorWithoutLibrary(t *testing.T) {
	// go-nvml's Return.Error uses a Go table until libnvidia-ml is loaded;
	// the simulation never loads it.
	if got := nvml.ERROR_IN_USE.Error(); got != "ERROR_IN_USE" {
		t.Fatalf("Return.Error() = %q", got)
	}
	cases := map[nvml.Return]string{
		nvml.SUCCESS:                      "Success",
		nvml.ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
		nvml.ERROR_IN_USE:                 "In use by another client",
		nvml.ERROR_NOT_SUPPORTED:          "Not Supported",
		nvml.Return(1234):                 "Unknown Error (NVML return code 1234)",
	}
	n := New(model(t, "a30"), 1)
	for r, want := range cases {
		if got := n.ErrorString(r); got != want {
			t.Errorf("ErrorString(%d) = %q, want %q", int(r), got, want)
		}
	}
}

func TestUnsupportedVersionedProfileInfoPanicsClearly(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	d := handle(t, n, 0)
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "GetGpuInstanceProfileInfo") {
			t.Fatalf("panic %v", p)
		}
	}()
	d.GetGpuInstanceProfileInfoV(0)
}

func TestConcurrentUse(t *testing.T) {
	n := started(t, "h100-80gb", 8, WithMigEnabled())
	m := model(t, "h100-80gb")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, _ := n.DeviceGetHandleByIndex(g)
			info, _ := d.GetGpuInstanceProfileInfo(0)
			for round := range 20 {
				var gis []nvml.GpuInstance
				for s := range 7 {
					gi, r := d.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: uint32(s), Size: 1})
					if r != nvml.SUCCESS {
						t.Errorf("GPU %d round %d: %v", g, round, r)
						return
					}
					gis = append(gis, gi)
				}
				for _, gi := range gis {
					if r := gi.Destroy(); r != nvml.SUCCESS {
						t.Errorf("destroy: %v", r)
						return
					}
				}
				_ = m
			}
		}()
	}
	wg.Wait()
	if got := n.DestroyedInstances(); got != 8*20*7 {
		t.Fatalf("DestroyedInstances = %d", got)
	}
}

func TestTelemetryCalls(t *testing.T) {
	n := New(model(t, "h100-80gb"), 2)
	if err := n.SetTelemetry(1, Telemetry{UtilizationPercent: 55, MemoryUtilizationPercent: 20, PowerMilliwatts: 250_000, TemperatureC: 58, SMClockMHz: 1755, ECCCorrected: 7, ECCUncorrected: 2}); err != nil {
		t.Fatal(err)
	}
	if err := n.SetTelemetry(2, Telemetry{}); err == nil {
		t.Fatal("SetTelemetry on a missing GPU succeeded")
	}
	n.Init()
	defer n.Shutdown()
	d, _ := n.DeviceGetHandleByIndex(1)
	if u, r := d.GetUtilizationRates(); r != nvml.SUCCESS || u.Gpu != 55 || u.Memory != 20 {
		t.Fatalf("GetUtilizationRates = %+v %v", u, r)
	}
	if v, r := d.GetTemperature(nvml.TEMPERATURE_GPU); r != nvml.SUCCESS || v != 58 {
		t.Fatalf("GetTemperature = %d %v", v, r)
	}
	if v, r := d.GetClockInfo(nvml.CLOCK_SM); r != nvml.SUCCESS || v != 1755 {
		t.Fatalf("GetClockInfo(SM) = %d %v", v, r)
	}
	if _, r := d.GetClockInfo(nvml.CLOCK_MEM); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("GetClockInfo(MEM) = %v, want not supported", r)
	}
	if v, r := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); r != nvml.SUCCESS || v != 2 {
		t.Fatalf("GetTotalEccErrors(uncorrected) = %d %v", v, r)
	}
	if _, r := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("aggregate ECC = %v, want not supported", r)
	}
	// NVML does not measure utilisation of a GPU in MIG mode.
	if _, r := d.SetMigMode(nvml.DEVICE_MIG_ENABLE); r != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", r)
	}
	if _, r := d.GetUtilizationRates(); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("GetUtilizationRates under MIG = %v, want not supported", r)
	}
	if mw, r := d.GetPowerUsage(); r != nvml.SUCCESS || mw != 250_000 {
		t.Fatalf("GetPowerUsage under MIG = %d %v", mw, r)
	}
	if err := n.SetTelemetry(1, Telemetry{ECCDisabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, r := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC); r != nvml.ERROR_NOT_SUPPORTED {
		t.Fatalf("ECC disabled: %v, want not supported", r)
	}
}
