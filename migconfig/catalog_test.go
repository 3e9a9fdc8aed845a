package migconfig_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// The expected tables below are transcribed from the reference
// (/work/shared/reference/mig.md §2 and §3.1) independently of
// catalog_data.go, row for row in the reference's own row order, so that a
// typo in the catalog fails a test. Columns: name | index | ID | compute
// slices | memory slices | MiB | SM | CE | DEC | ENC | JPEG | OFA | max |
// placement starts | uncertain.

type catWantProfile struct {
	name      string
	index     migconfig.ProfileIndex
	id        migconfig.ProfileID
	g, mem    int
	mib, sm   int
	ce, dec   int
	enc, jpeg int
	ofa, max  int
	starts    []int
	uncertain bool
}

type catWantModel struct {
	key           string
	name          string
	arch          migconfig.Architecture
	memorySlices  int
	computeSlices int
	memoryMiB     int
	deviceIDs     []uint32
	productNames  []string
	profiles      []catWantProfile
}

const (
	catI1   = migconfig.ProfileIndex1Slice
	catI2   = migconfig.ProfileIndex2Slice
	catI3   = migconfig.ProfileIndex3Slice
	catI4   = migconfig.ProfileIndex4Slice
	catI7   = migconfig.ProfileIndex7Slice
	catI1R1 = migconfig.ProfileIndex1SliceRev1
	catI2R1 = migconfig.ProfileIndex2SliceRev1
	catI1R2 = migconfig.ProfileIndex1SliceRev2
)

func catWantModels() []catWantModel {
	// §3.1 starts on 8-slice GPUs.
	var (
		catS1g   = []int{0, 1, 2, 3, 4, 5, 6}
		catSRev2 = []int{0, 2, 4, 6}
		catS2g   = []int{0, 2, 4}
		catS3g   = []int{0, 4}
		catS0    = []int{0}
	)
	return []catWantModel{
		{ // §2.11
			key: "a30", name: "A30-24GB", arch: migconfig.Ampere, memorySlices: 4, computeSlices: 4, memoryMiB: 24576,
			deviceIDs:    []uint32{0x20B710DE},
			productNames: []string{"NVIDIA A30"},
			profiles: []catWantProfile{
				{"1g.6gb", catI1, 14, 1, 1, 5952, 14, 1, 1, 0, 0, 0, 4, []int{0, 1, 2, 3}, true}, // DEC 1 (guide: 0)
				{"1g.6gb+me", catI1R1, 21, 1, 1, 5952, 14, 1, 1, 0, 1, 1, 1, []int{0, 1, 2, 3}, false},
				{"2g.12gb", catI2, 5, 2, 2, 11968, 28, 2, 2, 0, 0, 0, 2, []int{0, 2}, false},
				{"2g.12gb+me", catI2R1, 6, 2, 2, 11968, 28, 2, 2, 0, 1, 1, 1, []int{0, 2}, false},
				{"4g.24gb", catI4, 0, 4, 4, 24000, 56, 4, 4, 0, 1, 1, 1, []int{0}, true}, // ≈24000
			},
		},
		{ // §2.1
			key: "a100-40gb", name: "A100-SXM4-40GB", arch: migconfig.Ampere, memorySlices: 8, computeSlices: 7, memoryMiB: 40960,
			deviceIDs:    []uint32{0x20B010DE, 0x20B110DE, 0x20F110DE, 0x20F610DE},
			productNames: []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"},
			profiles: []catWantProfile{
				{"1g.5gb", catI1, 19, 1, 1, 4864, 14, 1, 0, 0, 0, 0, 7, catS1g, false},
				{"1g.5gb+me", catI1R1, 20, 1, 1, 4864, 14, 1, 1, 0, 1, 1, 1, catS1g, false},
				{"1g.10gb", catI1R2, 15, 1, 2, 9856, 14, 1, 1, 0, 0, 0, 4, catSRev2, true}, // first driver [UNCERTAIN]
				{"2g.10gb", catI2, 14, 2, 2, 9856, 28, 2, 1, 0, 0, 0, 3, catS2g, false},
				{"3g.20gb", catI3, 9, 3, 4, 19968, 42, 3, 2, 0, 0, 0, 2, catS3g, false},
				{"4g.20gb", catI4, 5, 4, 4, 19968, 56, 4, 2, 0, 0, 0, 1, catS0, false},
				{"7g.40gb", catI7, 0, 7, 8, 40192, 98, 7, 5, 0, 1, 1, 1, catS0, false},
			},
		},
		{ // §2.2
			key: "a100-80gb", name: "A100-SXM4-80GB", arch: migconfig.Ampere, memorySlices: 8, computeSlices: 7, memoryMiB: 81920,
			deviceIDs:    []uint32{0x20B210DE, 0x20B510DE, 0x20F310DE, 0x20F510DE},
			productNames: []string{"NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"},
			profiles: []catWantProfile{
				{"1g.10gb", catI1, 19, 1, 1, 9728, 14, 1, 0, 0, 0, 0, 7, catS1g, false},
				{"1g.10gb+me", catI1R1, 20, 1, 1, 9728, 14, 1, 1, 0, 1, 1, 1, catS1g, false},
				{"1g.20gb", catI1R2, 15, 1, 2, 19968, 14, 1, 1, 0, 0, 0, 4, catSRev2, true}, // ≈, [UNCERTAIN]
				{"2g.20gb", catI2, 14, 2, 2, 19968, 28, 2, 1, 0, 0, 0, 3, catS2g, false},
				{"3g.40gb", catI3, 9, 3, 4, 40192, 42, 3, 2, 0, 0, 0, 2, catS3g, false},
				{"4g.40gb", catI4, 5, 4, 4, 40192, 56, 4, 2, 0, 0, 0, 1, catS0, false},
				{"7g.80gb", catI7, 0, 7, 8, 80896, 98, 7, 5, 0, 1, 1, 1, catS0, true}, // 80896 / 81152
			},
		},
		{ // §2.3
			key: "h100-80gb", name: "H100-80GB", arch: migconfig.Hopper, memorySlices: 8, computeSlices: 7, memoryMiB: 81559,
			deviceIDs:    []uint32{0x233010DE, 0x233110DE, 0x232410DE, 0x232210DE},
			productNames: []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"},
			profiles: []catWantProfile{
				{"1g.10gb", catI1, 19, 1, 1, 9984, 16, 1, 1, 0, 1, 0, 7, catS1g, false},
				{"1g.10gb+me", catI1R1, 20, 1, 1, 9984, 16, 1, 1, 0, 1, 1, 1, catS1g, false},
				{"1g.20gb", catI1R2, 15, 1, 2, 20096, 26, 1, 1, 0, 1, 0, 4, catSRev2, false},
				{"2g.20gb", catI2, 14, 2, 2, 20096, 32, 2, 2, 0, 2, 0, 3, catS2g, false},
				{"3g.40gb", catI3, 9, 3, 4, 40448, 60, 3, 3, 0, 3, 0, 2, catS3g, false},
				{"4g.40gb", catI4, 5, 4, 4, 40448, 64, 4, 4, 0, 4, 0, 1, catS0, false},
				{"7g.80gb", catI7, 0, 7, 8, 81152, 132, 8, 7, 0, 7, 1, 1, catS0, false},
			},
		},
		{ // §2.4 (MiB: the 550.127 column; no ENC column → 0 as on H100-80GB)
			key: "h100-nvl", name: "H100-NVL-94GB", arch: migconfig.Hopper, memorySlices: 8, computeSlices: 7, memoryMiB: 95830,
			deviceIDs:    []uint32{0x232110DE, 0x233A10DE},
			productNames: []string{"NVIDIA H100 NVL"},
			profiles: []catWantProfile{
				{"1g.12gb", catI1, 19, 1, 1, 10880, 16, 1, 1, 0, 1, 0, 7, catS1g, false},
				{"1g.12gb+me", catI1R1, 20, 1, 1, 10880, 16, 1, 1, 0, 1, 1, 1, catS1g, false},
				{"1g.24gb", catI1R2, 15, 1, 2, 22016, 26, 1, 1, 0, 1, 0, 4, catSRev2, false},
				{"2g.24gb", catI2, 14, 2, 2, 22016, 32, 2, 2, 0, 2, 0, 3, catS2g, false},
				{"3g.47gb", catI3, 9, 3, 4, 47232, 60, 3, 3, 0, 3, 0, 2, catS3g, false},
				{"4g.47gb", catI4, 5, 4, 4, 47232, 64, 4, 4, 0, 4, 0, 1, catS0, false},
				{"7g.94gb", catI7, 0, 7, 8, 94848, 132, 8, 7, 0, 7, 1, 1, catS0, true}, // "?" in the row
			},
		},
		{ // §2.5 (MiB = GiB × 1024; no OFA column → 0, all uncertain)
			key: "h100-96gb", name: "H100-96GB", arch: migconfig.Hopper, memorySlices: 8, computeSlices: 7, memoryMiB: 0,
			deviceIDs:    []uint32{0x233D10DE, 0x234210DE, 0x232910DE},
			productNames: []string{"NVIDIA H20", "NVIDIA GH200 480GB"},
			profiles: []catWantProfile{
				{"1g.12gb", catI1, 19, 1, 1, 11 * 1024, 16, 1, 1, 0, 1, 0, 7, catS1g, true},
				{"1g.12gb+me", catI1R1, 20, 1, 1, 11 * 1024, 16, 1, 1, 0, 1, 0, 1, catS1g, true},
				{"1g.24gb", catI1R2, 15, 1, 2, 23 * 1024, 26, 1, 1, 0, 1, 0, 4, catSRev2, true},
				{"2g.24gb", catI2, 14, 2, 2, 23 * 1024, 32, 2, 2, 0, 2, 0, 3, catS2g, true},
				{"3g.48gb", catI3, 9, 3, 4, 46*1024 + 512, 60, 3, 3, 0, 3, 0, 2, catS3g, true},
				{"4g.48gb", catI4, 5, 4, 4, 0, 64, 0, 0, 0, 0, 0, 1, catS0, true},  // GiB "?", SM "64?"
				{"7g.96gb", catI7, 0, 7, 8, 0, 132, 0, 0, 0, 0, 0, 1, catS0, true}, // GiB "?", SM "132?"
			},
		},
		{ // §2.6 (placements [UNCERTAIN] per §3.1 → all uncertain)
			key: "h200", name: "H200-141GB", arch: migconfig.Hopper, memorySlices: 8, computeSlices: 7, memoryMiB: 143771,
			deviceIDs:    []uint32{0x233510DE, 0x233B10DE},
			productNames: []string{"NVIDIA H200", "NVIDIA H200 NVL"},
			profiles: []catWantProfile{
				{"1g.18gb", catI1, 19, 1, 1, 16384, 16, 1, 1, 0, 1, 0, 7, catS1g, true},
				{"1g.18gb+me", catI1R1, 20, 1, 1, 16384, 16, 1, 1, 0, 1, 1, 1, catS1g, true},
				{"1g.35gb", catI1R2, 15, 1, 2, 33024, 26, 1, 1, 0, 1, 0, 4, catSRev2, true},
				{"2g.35gb", catI2, 14, 2, 2, 33024, 32, 2, 2, 0, 2, 0, 3, catS2g, true},
				{"3g.71gb", catI3, 9, 3, 4, 71168, 60, 3, 3, 0, 3, 0, 2, catS3g, true},
				{"4g.71gb", catI4, 5, 4, 4, 71168, 64, 4, 4, 0, 4, 0, 1, catS0, true},
				{"7g.141gb", catI7, 0, 7, 8, 143104, 132, 8, 7, 0, 7, 1, 1, catS0, true},
			},
		},
		{ // §2.7 (GiB, SM and max only)
			key: "gh200-144gb", name: "GH200-144GB", arch: migconfig.Hopper, memorySlices: 8, computeSlices: 7, memoryMiB: 0,
			deviceIDs:    []uint32{0x234810DE},
			productNames: []string{"NVIDIA GH200 144G HBM3e"},
			profiles: []catWantProfile{
				{"1g.18gb", catI1, 19, 1, 1, 17*1024 + 512, 16, 0, 0, 0, 0, 0, 7, catS1g, true},
				{"1g.18gb+me", catI1R1, 20, 1, 1, 17*1024 + 512, 16, 0, 0, 0, 0, 0, 1, catS1g, true},
				{"1g.36gb", catI1R2, 15, 1, 2, 35*1024 + 256, 26, 0, 0, 0, 0, 0, 4, catSRev2, true},
				{"2g.36gb", catI2, 14, 2, 2, 35*1024 + 256, 32, 0, 0, 0, 0, 0, 3, catS2g, true},
				{"3g.72gb", catI3, 9, 3, 4, 0, 0, 0, 0, 0, 0, 0, 2, catS3g, true},
				{"4g.72gb", catI4, 5, 4, 4, 0, 0, 0, 0, 0, 0, 0, 1, catS0, true},
				{"7g.144gb", catI7, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1, catS0, true},
			},
		},
		{ // §2.8 (1g MiB: the later 20.50 GiB; CE of 3g/4g/7g from the guide)
			key: "b200", name: "B200", arch: migconfig.Blackwell, memorySlices: 8, computeSlices: 7, memoryMiB: 0,
			deviceIDs:    []uint32{0x290110DE},
			productNames: []string{"NVIDIA B200"},
			profiles: []catWantProfile{
				{"1g.23gb", catI1, 19, 1, 1, 20*1024 + 512, 18, 2, 1, 0, 1, 0, 7, catS1g, true},
				{"1g.23gb+me", catI1R1, 20, 1, 1, 20*1024 + 512, 18, 2, 1, 0, 1, 1, 1, catS1g, true},
				{"1g.45gb", catI1R2, 15, 1, 2, 45312, 30, 2, 1, 0, 1, 0, 4, catSRev2, true},
				{"2g.45gb", catI2, 14, 2, 2, 45312, 36, 4, 2, 0, 2, 0, 3, catS2g, true},
				{"3g.90gb", catI3, 9, 3, 4, 0, 0, 6, 0, 0, 0, 0, 2, catS3g, true},
				{"4g.90gb", catI4, 5, 4, 4, 0, 0, 8, 0, 0, 0, 0, 1, catS0, true},
				{"7g.180gb", catI7, 0, 7, 8, 0, 0, 16, 0, 0, 0, 1, 1, catS0, true},
			},
		},
	}
}

func TestCatalogModelsMatchReference(t *testing.T) {
	cat := migconfig.Builtin()
	want := catWantModels()
	var wantKeys []string
	for _, w := range want {
		wantKeys = append(wantKeys, w.key)
	}
	slices.Sort(wantKeys)
	if got := cat.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("Keys() = %v, want %v", got, wantKeys)
	}
	for _, w := range want {
		t.Run(w.key, func(t *testing.T) {
			m, ok := cat.ByKey(w.key)
			if !ok {
				t.Fatalf("ByKey(%q) not found", w.key)
			}
			if m.Key != w.key || m.Name != w.name || m.Architecture != w.arch ||
				m.MemorySlices != w.memorySlices || m.ComputeSlices != w.computeSlices || m.MemoryMiB != w.memoryMiB {
				t.Errorf("model = {%s %s %s mem %d compute %d %d MiB}, want {%s %s %s mem %d compute %d %d MiB}",
					m.Key, m.Name, m.Architecture, m.MemorySlices, m.ComputeSlices, m.MemoryMiB,
					w.key, w.name, w.arch, w.memorySlices, w.computeSlices, w.memoryMiB)
			}
			gotIDs := slices.Sorted(slices.Values(m.DeviceIDs))
			wantIDs := slices.Sorted(slices.Values(w.deviceIDs))
			if !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("DeviceIDs = %#x, want %#x", gotIDs, wantIDs)
			}
			for _, n := range w.productNames {
				if !slices.Contains(m.ProductNames, n) {
					t.Errorf("ProductNames %q lack %q", m.ProductNames, n)
				}
			}
			if len(m.Profiles) != len(w.profiles) {
				t.Errorf("%d profiles, want %d", len(m.Profiles), len(w.profiles))
			}
			for _, wp := range w.profiles {
				p, ok := m.ProfileByID(wp.id)
				if !ok {
					t.Errorf("profile ID %d (%s) missing", wp.id, wp.name)
					continue
				}
				if got, want := catRowOf(p), wp; !reflect.DeepEqual(got, want) {
					t.Errorf("profile ID %d:\n got %+v\nwant %+v", wp.id, got, want)
				}
			}
		})
	}
}

// catRowOf turns a catalog profile back into a reference row, checking on
// the way that every placement has the profile's size.
func catRowOf(p *migconfig.Profile) catWantProfile {
	r := catWantProfile{
		name: p.Name, index: p.Index, id: p.ID, g: p.ComputeSlices, mem: p.MemorySlices,
		mib: p.MemoryMiB, sm: p.Multiprocessors, ce: p.CopyEngines, dec: p.Decoders, enc: p.Encoders,
		jpeg: p.JPEGs, ofa: p.OFAs, max: p.MaxCount, uncertain: p.Uncertain,
	}
	for _, pl := range p.Placements {
		if pl.Size != p.MemorySlices {
			r.starts = append(r.starts, -1000*pl.Size) // makes the row differ
			continue
		}
		r.starts = append(r.starts, pl.Start)
	}
	return r
}

// TestCatalogProperties checks invariants over every built-in model.
func TestCatalogProperties(t *testing.T) {
	for _, m := range migconfig.Builtin().Models() {
		t.Run(m.Key, func(t *testing.T) {
			switch m.Architecture {
			case migconfig.Ampere, migconfig.Hopper, migconfig.Blackwell:
			default:
				t.Errorf("architecture %q", m.Architecture)
			}
			if len(m.DeviceIDs) == 0 || len(m.ProductNames) == 0 {
				t.Errorf("model needs device IDs and product names: %#x %q", m.DeviceIDs, m.ProductNames)
			}
			for _, id := range m.DeviceIDs {
				if id&0xFFFF != 0x10DE {
					t.Errorf("device ID %#08x: vendor is not NVIDIA (0x10DE)", id)
				}
			}
			for i := 1; i < len(m.Profiles); i++ {
				if m.Profiles[i-1].Index >= m.Profiles[i].Index {
					t.Errorf("profiles not in ascending index order: %s (%d) before %s (%d)",
						m.Profiles[i-1].Name, m.Profiles[i-1].Index, m.Profiles[i].Name, m.Profiles[i].Index)
				}
			}
			for _, p := range m.Profiles {
				if !strings.HasPrefix(p.Name, fmt.Sprintf("%dg.", p.ComputeSlices)) {
					t.Errorf("%s: name does not start with %dg.", p.Name, p.ComputeSlices)
				}
				if p.HasMediaExtensions() != strings.HasSuffix(p.Name, "+me") {
					t.Errorf("%s: index %d disagrees with the +me suffix", p.Name, p.Index)
				}
				if p.HasMediaExtensions() && p.MaxCount != 1 {
					t.Errorf("%s: every +me profile is ×1 (§3.2), got %d", p.Name, p.MaxCount)
				}
				if p.ComputeSlices > p.MemorySlices || p.ComputeSlices > m.ComputeSlices {
					t.Errorf("%s: %d compute slices for %d memory slices", p.Name, p.ComputeSlices, p.MemorySlices)
				}
				if (p.MemoryMiB == 0 || p.Multiprocessors == 0) && !p.Uncertain {
					t.Errorf("%s: unknown figures (0) must be marked Uncertain", p.Name)
				}
				if m.MemoryMiB != 0 && p.MemoryMiB > m.MemoryMiB {
					t.Errorf("%s: %d MiB exceeds the GPU's %d MiB", p.Name, p.MemoryMiB, m.MemoryMiB)
				}
				if p.MaxCount < 1 || p.MaxCount > catMaxDisjoint(p.Placements) {
					t.Errorf("%s: max count %d, but at most %d placements are disjoint", p.Name, p.MaxCount, catMaxDisjoint(p.Placements))
				}
				if len(p.Placements) == 0 {
					t.Errorf("%s: no placements", p.Name)
				}
				for i, pl := range p.Placements {
					if i > 0 && p.Placements[i-1].Start >= pl.Start {
						t.Errorf("%s: placements not ascending: %v", p.Name, p.Placements)
					}
					if pl.Mask()&^m.FullMask() != 0 || pl.Mask() == 0 {
						t.Errorf("%s: placement %s outside %d memory slices", p.Name, pl, m.MemorySlices)
					}
					if m.MemorySlices == 8 {
						if pl.Mask()&^0xFF != 0 {
							t.Errorf("%s: placement %s mask %#x outside 0xFF", p.Name, pl, pl.Mask())
						}
						if p.MemorySlices == 1 && pl.Start == 7 {
							t.Errorf("%s: a 1g placement starts at 7 (§3.1: never 7)", p.Name)
						}
					}
				}
			}
			// §3.2 rule 4: on 8-slice parts, any set of disjoint placements
			// uses at most 7 compute slices (no separate compute check).
			if m.MemorySlices == 8 {
				if got := catMaxCompute(m.Profiles, 0, 0); got != m.ComputeSlices {
					t.Errorf("disjoint placements can use %d compute slices, want exactly %d", got, m.ComputeSlices)
				}
			}
		})
	}
}

// catMaxDisjoint returns the largest number of pairwise-disjoint placements.
func catMaxDisjoint(pls []migconfig.Placement) int {
	var best func(i int, used uint16) int
	best = func(i int, used uint16) int {
		if i == len(pls) {
			return 0
		}
		n := best(i+1, used)
		if m := pls[i].Mask(); used&m == 0 {
			n = max(n, 1+best(i+1, used|m))
		}
		return n
	}
	return best(0, 0)
}

// catMaxCompute returns the most compute slices that a set of disjoint
// placements of any profiles (ignoring max counts) can use, from profile i
// on with the memory slices in used taken.
func catMaxCompute(ps []migconfig.Profile, i int, used uint16) int {
	best := 0
	for k := i; k < len(ps); k++ {
		for _, pl := range ps[k].Placements {
			if used&pl.Mask() == 0 {
				best = max(best, ps[k].ComputeSlices+catMaxCompute(ps, k, used|pl.Mask()))
			}
		}
	}
	return best
}

func TestCatalogBuiltinIsFresh(t *testing.T) {
	a := migconfig.Builtin()
	m, _ := a.ByKey("a100-40gb")
	m.Profiles[0].MemoryMiB = 1
	m.Profiles[0].Placements[0].Start = 5
	m.DeviceIDs[0] = 0
	b := migconfig.Builtin()
	n, _ := b.ByKey("a100-40gb")
	if n.Profiles[0].MemoryMiB != 4864 || n.Profiles[0].Placements[0].Start != 0 || n.DeviceIDs[0] != 0x20B010DE {
		t.Fatalf("Builtin() shares state between calls: %+v", n.Profiles[0])
	}
}

func TestCatalogLookups(t *testing.T) {
	cat := migconfig.Builtin()
	byID := []struct {
		id   uint32
		want string
	}{
		{0x20B010DE, "a100-40gb"},
		{0x20B110DE, "a100-40gb"},
		{0x20F110DE, "a100-40gb"},
		{0x20F610DE, "a100-40gb"},
		{0x20B210DE, "a100-80gb"},
		{0x20B510DE, "a100-80gb"},
		{0x20F310DE, "a100-80gb"},
		{0x20F510DE, "a100-80gb"},
		{0x20B710DE, "a30"},
		{0x233010DE, "h100-80gb"},
		{0x233110DE, "h100-80gb"},
		{0x232210DE, "h100-80gb"},
		{0x232410DE, "h100-80gb"},
		{0x232110DE, "h100-nvl"},
		{0x233A10DE, "h100-nvl"},
		{0x233D10DE, "h100-96gb"},
		{0x234210DE, "h100-96gb"},
		{0x232910DE, "h100-96gb"},
		{0x233510DE, "h200"},
		{0x233B10DE, "h200"},
		{0x234810DE, "gh200-144gb"},
		{0x290110DE, "b200"},
		{0x233310DE, ""}, // go-nvml's mock H200 ID (§2.13 warning)
		{0x2B0010DE, ""}, // go-nvml's mock B200 ID
		{0x294110DE, ""}, // GB200: not in the catalog
		{0x20B610DE, ""}, // PG506: not in the catalog
		{0, ""},
	}
	for _, tc := range byID {
		m, ok := cat.ByDeviceID(tc.id)
		if got := catKeyOf(m, ok); got != tc.want {
			t.Errorf("ByDeviceID(%#08x) = %q, want %q", tc.id, got, tc.want)
		}
	}

	byName := []struct {
		name string
		want string
	}{
		{"NVIDIA A100-SXM4-40GB", "a100-40gb"},
		{"A100-SXM4-40GB", "a100-40gb"},
		{"nvidia a100-sxm4-40gb", "a100-40gb"},
		{"NVIDIA A100-PCIE-40GB", "a100-40gb"},
		{"A100-PCIE-40GB", "a100-40gb"},
		{"NVIDIA A100-SXM4-80GB", "a100-80gb"},
		{"NVIDIA A100 80GB PCIe", "a100-80gb"},
		{"a100 80gb pcie", "a100-80gb"},
		{"NVIDIA A30", "a30"},
		{"A30", "a30"},
		{"NVIDIA H100 80GB HBM3", "h100-80gb"},
		{"H100 80GB HBM3", "h100-80gb"},
		{"NVIDIA H100 PCIe", "h100-80gb"},
		{"NVIDIA H100 NVL", "h100-nvl"},
		{"h100 nvl", "h100-nvl"},
		{"NVIDIA H200", "h200"},
		{"NVIDIA H200 NVL", "h200"},
		{"  NVIDIA H200  ", "h200"},
		{"NVIDIA GH200 144G HBM3e", "gh200-144gb"},
		{"NVIDIA B200", "b200"},
		{"Mock NVIDIA A100-SXM4-40GB", "a100-40gb"},
		{"NVIDIA H20", "h100-96gb"},
		{"NVIDIA GH200 480GB", "h100-96gb"},
		{"NVIDIA H100", ""},
		{"NVIDIA GeForce RTX 4090", ""},
		{"", ""},
	}
	for _, tc := range byName {
		m, ok := cat.ByName(tc.name)
		if got := catKeyOf(m, ok); got != tc.want {
			t.Errorf("ByName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}

	for _, key := range []string{"a30", "a100-40gb", "a100-80gb", "h100-80gb", "h100-nvl", "h100-96gb", "h200", "gh200-144gb", "b200"} {
		m, ok := cat.ByKey(key)
		if got := catKeyOf(m, ok); got != key {
			t.Errorf("ByKey(%q) = %q", key, got)
		}
		if m, ok := cat.ByKey(strings.ToUpper(key)); catKeyOf(m, ok) != key {
			t.Errorf("ByKey(%q) is case-sensitive", strings.ToUpper(key))
		}
	}
	if _, ok := cat.ByKey("a100"); ok {
		t.Error(`ByKey("a100") found a model`)
	}

	lookups := []struct {
		name string
		gpu  migconfig.GPUState
		want string
	}{
		{"device ID wins over name", migconfig.GPUState{DeviceID: 0x233510DE, Name: "NVIDIA A30"}, "h200"},
		{"name when the ID is unknown", migconfig.GPUState{DeviceID: 0x233310DE, Name: "NVIDIA H200"}, "h200"},
		{"neither", migconfig.GPUState{DeviceID: 0x1DB110DE, Name: "Tesla V100-SXM2-16GB"}, ""},
	}
	for _, tc := range lookups {
		m, ok := cat.Lookup(tc.gpu)
		if got := catKeyOf(m, ok); got != tc.want {
			t.Errorf("%s: Lookup = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func catKeyOf(m *migconfig.GPUModel, ok bool) string {
	if !ok {
		return ""
	}
	return m.Key
}

// catTinyModel is a minimal valid model for NewCatalog tests.
func catTinyModel(key string, id uint32, name string) migconfig.GPUModel {
	return migconfig.GPUModel{
		Key: key, Name: name, ProductNames: []string{"NVIDIA " + name}, DeviceIDs: []uint32{id},
		Architecture: migconfig.Ampere, MemorySlices: 4, ComputeSlices: 4,
		Profiles: []migconfig.Profile{
			{Name: "1g.6gb", Index: 0, ID: 14, ComputeSlices: 1, MemorySlices: 1, MaxCount: 4,
				Placements: []migconfig.Placement{{Start: 0, Size: 1}, {Start: 1, Size: 1}, {Start: 2, Size: 1}, {Start: 3, Size: 1}}},
			{Name: "4g.24gb", Index: 3, ID: 0, ComputeSlices: 4, MemorySlices: 4, MaxCount: 1,
				Placements: []migconfig.Placement{{Start: 0, Size: 4}}},
		},
	}
}

func TestCatalogNewCatalogRefuses(t *testing.T) {
	tests := []struct {
		name   string
		models func() []migconfig.GPUModel
		want   string // substring of the error; "" = accepted
	}{
		{"two distinct models", func() []migconfig.GPUModel {
			return []migconfig.GPUModel{catTinyModel("x", 0x111110DE, "X1"), catTinyModel("y", 0x222210DE, "Y1")}
		}, ""},
		{"duplicate key", func() []migconfig.GPUModel {
			return []migconfig.GPUModel{catTinyModel("x", 0x111110DE, "X1"), catTinyModel("x", 0x222210DE, "Y1")}
		}, "duplicate model key"},
		{"duplicate device ID", func() []migconfig.GPUModel {
			return []migconfig.GPUModel{catTinyModel("x", 0x111110DE, "X1"), catTinyModel("y", 0x111110DE, "Y1")}
		}, "device ID"},
		{"duplicate product name", func() []migconfig.GPUModel {
			return []migconfig.GPUModel{catTinyModel("x", 0x111110DE, "X1"), catTinyModel("y", 0x222210DE, "x1")}
		}, "product name"},
		{"duplicate profile ID", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.Profiles[1].ID = 14
			return []migconfig.GPUModel{m}
		}, "duplicate profile"},
		{"duplicate profile name", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.Profiles[1].Name = "1g.6gb"
			return []migconfig.GPUModel{m}
		}, "duplicate profile"},
		{"placement past the axis", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.Profiles[0].Placements = append(m.Profiles[0].Placements, migconfig.Placement{Start: 4, Size: 1})
			return []migconfig.GPUModel{m}
		}, "does not fit"},
		{"placement of the wrong size", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.Profiles[1].Placements = []migconfig.Placement{{Start: 0, Size: 3}}
			return []migconfig.GPUModel{m}
		}, "does not fit"},
		{"negative start", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.Profiles[0].Placements[0].Start = -1
			return []migconfig.GPUModel{m}
		}, "does not fit"},
		{"no memory slices", func() []migconfig.GPUModel {
			m := catTinyModel("x", 0x111110DE, "X1")
			m.MemorySlices = 0
			return []migconfig.GPUModel{m}
		}, "memory slices"},
		{"builtin plus a clash with it", func() []migconfig.GPUModel {
			return append(migconfig.Builtin().Models(), catTinyModel("new", 0x20B010DE, "New"))
		}, "device ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := migconfig.NewCatalog(tc.models()...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("NewCatalog: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("NewCatalog accepted the models, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("NewCatalog: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCatalogWithModelReplaces(t *testing.T) {
	cat := migconfig.Builtin()
	m, _ := cat.ByKey("a100-80gb")
	observed := *m
	observed.Profiles = slices.Clone(m.Profiles)
	observed.Profiles[4].Name = "7g.79gb"
	next, err := cat.WithModel(observed)
	if err != nil {
		t.Fatalf("WithModel: %v", err)
	}
	got, _ := next.ByDeviceID(0x20B210DE)
	if _, ok := got.ProfileByName("7g.79gb"); !ok {
		t.Errorf("WithModel did not replace the model")
	}
	if _, ok := m.ProfileByName("7g.80gb"); !ok {
		t.Errorf("WithModel changed the original catalog")
	}
	if len(next.Models()) != len(cat.Models()) {
		t.Errorf("WithModel changed the number of models: %d → %d", len(cat.Models()), len(next.Models()))
	}
}

// cmpModel returns a fresh copy of a built-in model, safe to modify.
func cmpModel(t *testing.T, key string) *migconfig.GPUModel {
	t.Helper()
	m, ok := migconfig.Builtin().ByKey(key)
	if !ok {
		t.Fatalf("no built-in model %q", key)
	}
	return m
}

func TestCompareModels(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		change func(m *migconfig.GPUModel)
		want   []string
	}{
		{"identical", "a100-80gb", func(*migconfig.GPUModel) {}, nil},
		{"name drift 7g.80gb → 7g.79gb", "a100-80gb", func(m *migconfig.GPUModel) {
			p, _ := m.ProfileByID(0)
			p.Name = "7g.79gb"
		}, []string{`profile ID 0 (7g.80gb): name: built-in "7g.80gb", observed "7g.79gb"`}},
		{"changed MiB", "a100-80gb", func(m *migconfig.GPUModel) {
			p, _ := m.ProfileByID(0)
			p.MemoryMiB = 81152
		}, []string{"profile ID 0 (7g.80gb): memory MiB: built-in 80896, observed 81152"}},
		{"missing profile", "a100-40gb", func(m *migconfig.GPUModel) {
			m.Profiles = slices.DeleteFunc(m.Profiles, func(p migconfig.Profile) bool { return p.ID == 15 })
		}, []string{"profile ID 15 (1g.10gb): in the built-in catalog, not observed"}},
		{"extra profile", "a30", func(m *migconfig.GPUModel) {
			m.Profiles = append(m.Profiles, migconfig.Profile{Name: "1g.6gb-me", Index: 0x0D, ID: 40, ComputeSlices: 1, MemorySlices: 1})
		}, []string{"profile ID 40 (1g.6gb-me): observed, not in the built-in catalog"}},
		{"placements, SMs and engines", "h100-80gb", func(m *migconfig.GPUModel) {
			p, _ := m.ProfileByID(15)
			p.Placements = p.Placements[:3]
			p.Multiprocessors = 16
			p.JPEGs = 0
		}, []string{
			"profile ID 15 (1g.20gb): multiprocessors: built-in 26, observed 16",
			"profile ID 15 (1g.20gb): JPEG engines: built-in 1, observed 0",
			"profile ID 15 (1g.20gb): placements: built-in {0,2,4,6}:2, observed {0,2,4}:2",
		}},
		{"placement order does not matter", "h100-80gb", func(m *migconfig.GPUModel) {
			p, _ := m.ProfileByID(9)
			slices.Reverse(p.Placements)
		}, nil},
		{"several differences come in a fixed order", "h200", func(m *migconfig.GPUModel) {
			m.MemoryMiB = 143360
			m.Profiles = slices.DeleteFunc(m.Profiles, func(p migconfig.Profile) bool { return p.ID == 20 })
			for i := range m.Profiles {
				switch m.Profiles[i].ID {
				case 19:
					m.Profiles[i].MemoryMiB = 17920
				case 0:
					m.Profiles[i].MaxCount = 2
					m.Profiles[i].Index = migconfig.ProfileIndex8Slice
				case 5:
					m.Profiles[i].CopyEngines, m.Profiles[i].Decoders, m.Profiles[i].Encoders, m.Profiles[i].OFAs = 5, 5, 1, 1
					m.Profiles[i].ComputeSlices, m.Profiles[i].MemorySlices = 3, 3
				}
			}
			slices.Reverse(m.Profiles)
		}, []string{
			"memory MiB: built-in 143771, observed 143360",
			"profile ID 0 (7g.141gb): index: built-in 4, observed 5",
			"profile ID 0 (7g.141gb): max count: built-in 1, observed 2",
			"profile ID 5 (4g.71gb): compute slices: built-in 4, observed 3",
			"profile ID 5 (4g.71gb): memory slices: built-in 4, observed 3",
			"profile ID 5 (4g.71gb): copy engines: built-in 4, observed 5",
			"profile ID 5 (4g.71gb): decoders: built-in 4, observed 5",
			"profile ID 5 (4g.71gb): encoders: built-in 0, observed 1",
			"profile ID 5 (4g.71gb): OFA engines: built-in 0, observed 1",
			"profile ID 19 (1g.18gb): memory MiB: built-in 16384, observed 17920",
			"profile ID 20 (1g.18gb+me): in the built-in catalog, not observed",
		}},
		{"model slices", "a30", func(m *migconfig.GPUModel) {
			m.MemorySlices, m.ComputeSlices = 8, 7
		}, []string{"memory slices: built-in 4, observed 8", "compute slices: built-in 4, observed 7"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			builtin := cmpModel(t, tc.key)
			observed := cmpModel(t, tc.key)
			tc.change(observed)
			got := migconfig.CompareModels(builtin, observed)
			if !slices.Equal(got, tc.want) {
				t.Errorf("CompareModels:\n got %q\nwant %q", got, tc.want)
			}
			if again := migconfig.CompareModels(builtin, observed); !slices.Equal(again, got) {
				t.Errorf("CompareModels is not deterministic:\n%q\n%q", got, again)
			}
			if len(tc.want) == 0 && got != nil {
				t.Errorf("CompareModels of equal models = %#v, want nil", got)
			}
		})
	}
}

func TestCompareModelsNil(t *testing.T) {
	m := cmpModel(t, "a30")
	if got := migconfig.CompareModels(nil, nil); got != nil {
		t.Errorf("CompareModels(nil, nil) = %q", got)
	}
	if got := migconfig.CompareModels(m, nil); len(got) != 1 {
		t.Errorf("CompareModels(m, nil) = %q, want one difference", got)
	}
	if got := migconfig.CompareModels(nil, m); len(got) != 1 {
		t.Errorf("CompareModels(nil, m) = %q, want one difference", got)
	}
}
