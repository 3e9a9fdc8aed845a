package migconfig

// This file holds Tessera's built-in MIG catalog. Every figure is transcribed
// from the project reference, /work/shared/reference/mig.md (cited below as
// "ref §N"), which in turn cites public `nvidia-smi mig -lgip` / `-lgipp`
// captures, the MIG User Guide and mig-parted's config-default.yaml.
//
// Conventions used in the tables:
//
//   - One Profile per line, in ascending NVML index order (0, 1, 2, 3, 4, 7,
//     9 on 8-slice GPUs; 0, 1, 3, 7, 8 on the A30). The comment before each
//     model names the reference table the lines mirror.
//   - MemoryMiB is NVML's memorySizeMB. Where a reference table gives only
//     GiB, MiB = GiB × 1024 (ref §2: "MiB = NVML memorySizeMB (GiB × 1024;
//     values are multiples of 1/8 GiB)").
//   - Placements are those of ref §3.1 on 8-slice GPUs and of ref §2.11 /
//     §3.1 ("A30 / 4-slot parts") on the A30.
//   - A figure the reference does not give is 0, and its profile is marked
//     Uncertain. A profile is also Uncertain when the reference marks its
//     row [UNCERTAIN], writes "?" or "≈" in it, or gives two conflicting
//     values for a figure encoded here. Uncertain figures must be read from
//     NVML at run time (CompareModels reports the difference).
//   - Product names are NVML GetName strings as NVIDIA's driver lists them
//     (open-gpu-kernel-modules README, "Supported GPUs" table); device IDs
//     are ref §2.13 in mig-parted's 0xDDDDVVVV form.

// Builtin returns Tessera's built-in catalog of MIG-capable GPU models. It
// builds a fresh catalog on every call, so callers may not share state
// through it. It panics if the built-in tables are inconsistent, which the
// package's tests rule out.
func Builtin() *Catalog {
	c, err := NewCatalog(builtinModels()...)
	if err != nil {
		panic("migconfig: built-in catalog: " + err.Error())
	}
	return c
}

// builtinModels returns freshly allocated copies of the built-in models.
func builtinModels() []GPUModel {
	return []GPUModel{
		modelA30(),
		modelA100x40GB(),
		modelA100x80GB(),
		modelH100x80GB(),
		modelH100NVL(),
		modelH100x96GB(),
		modelH200(),
		modelGH200x144GB(),
		modelB200(),
	}
}

// placementsAt returns the placements of the given size at each start, in
// the order given (the tables list them ascending).
func placementsAt(size int, starts ...int) []Placement {
	out := make([]Placement, len(starts))
	for i, s := range starts {
		out[i] = Placement{Start: s, Size: size}
	}
	return out
}

// modelA30 mirrors ref §2.11 (A30-24GB, 4 memory / 4 compute slices;
// driver 535.183.01 capture) with placements from ref §2.11 / §3.1.
func modelA30() GPUModel {
	return GPUModel{
		Key:           "a30",
		Name:          "A30-24GB",
		ProductNames:  []string{"NVIDIA A30"},
		DeviceIDs:     []uint32{0x20B710DE},
		Architecture:  Ampere,
		MemorySlices:  4,
		ComputeSlices: 4,
		// The reference gives no full-GPU total for the A30: 24576 MiB is
		// what nvidia-smi reports on the card [UNCERTAIN: read from NVML].
		// Profile names follow from it (ref §6): 5952 MiB → 1g.6gb.
		MemoryMiB: 24576,
		Profiles: []Profile{
			// 1g.6gb: DEC is 1 in the capture, 0 in the MIG guide (ref §2.11) → Uncertain.
			{Name: "1g.6gb", Index: ProfileIndex1Slice, ID: 14, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 5952, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 4, Placements: placementsAt(1, 0, 1, 2, 3), Uncertain: true},
			{Name: "2g.12gb", Index: ProfileIndex2Slice, ID: 5, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 11968, Multiprocessors: 28, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 2, Placements: placementsAt(2, 0, 2)},
			// 4g.24gb: MiB "≈24000" (23.44 GiB) → Uncertain.
			{Name: "4g.24gb", Index: ProfileIndex4Slice, ID: 0, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 24000, Multiprocessors: 56, CopyEngines: 4, Decoders: 4, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(4, 0), Uncertain: true},
			{Name: "1g.6gb+me", Index: ProfileIndex1SliceRev1, ID: 21, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 5952, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3)},
			{Name: "2g.12gb+me", Index: ProfileIndex2SliceRev1, ID: 6, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 11968, Multiprocessors: 28, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(2, 0, 2)},
		},
	}
}

// modelA100x40GB mirrors ref §2.1 (A100-SXM4/PCIE-40GB; MIG User Guide
// -lgip) with placements from ref §3.1.
func modelA100x40GB() GPUModel {
	return GPUModel{
		Key:  "a100-40gb",
		Name: "A100-SXM4-40GB",
		ProductNames: []string{
			"NVIDIA A100-SXM4-40GB",
			"NVIDIA A100-PCIE-40GB",
			"NVIDIA A800 40GB Active", // 0x20F6, grouped with the A100-40GB by ref §2.1/§2.13
		},
		DeviceIDs: []uint32{
			0x20B010DE, // A100 SXM4 40GB
			0x20B110DE, // A100 PCIe 40GB
			0x20F110DE, // A100 PCIe 40GB
			0x20F610DE, // A800 40GB PCIe
		},
		Architecture:  Ampere,
		MemorySlices:  8,
		ComputeSlices: 7,
		// The reference gives no full-GPU total: 40960 MiB is what
		// nvidia-smi reports on the card [UNCERTAIN: read from NVML]; the
		// profile names follow from it (ref §6): 40192 MiB → 7g.40gb.
		MemoryMiB: 40960,
		Profiles: []Profile{
			{Name: "1g.5gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 4864, Multiprocessors: 14, CopyEngines: 1, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.10gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 9856, Multiprocessors: 28, CopyEngines: 2, Decoders: 1, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4)},
			{Name: "3g.20gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 19968, Multiprocessors: 42, CopyEngines: 3, Decoders: 2, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4)},
			{Name: "4g.20gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 19968, Multiprocessors: 56, CopyEngines: 4, Decoders: 2, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0)},
			{Name: "7g.40gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 40192, Multiprocessors: 98, CopyEngines: 7, Decoders: 5, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0)},
			{Name: "1g.5gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 4864, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			// 1g.10gb (REV2): [UNCERTAIN] which driver first offers it (ref §2.1) → Uncertain.
			{Name: "1g.10gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 9856, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}

// modelA100x80GB mirrors ref §2.2 (A100-SXM4/PCIE-80GB; driver 515.86.01
// capture) with placements from ref §3.1.
func modelA100x80GB() GPUModel {
	return GPUModel{
		Key:  "a100-80gb",
		Name: "A100-SXM4-80GB",
		ProductNames: []string{
			"NVIDIA A100-SXM4-80GB",
			"NVIDIA A100 80GB PCIe",
			"NVIDIA A800-SXM4-80GB",    // 0x20F3
			"NVIDIA A800 80GB PCIe",    // 0x20F5
			"NVIDIA A800 80GB PCIe LC", // 0x20F5
		},
		DeviceIDs: []uint32{
			0x20B210DE, // A100 SXM4 80GB
			0x20B510DE, // A100 PCIe 80GB
			0x20F310DE, // A800 SXM4 80GB
			0x20F510DE, // A800 PCIe 80GB
		},
		Architecture:  Ampere,
		MemorySlices:  8,
		ComputeSlices: 7,
		// The reference gives no full-GPU total: 81920 MiB is what
		// nvidia-smi reports on the card [UNCERTAIN: read from NVML]. With a
		// total of 80896 the name formula (ref §6) would yield 7g.79gb, the
		// drift gpu-operator #351 reports.
		MemoryMiB: 81920,
		Profiles: []Profile{
			{Name: "1g.10gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 9728, Multiprocessors: 14, CopyEngines: 1, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.20gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 19968, Multiprocessors: 28, CopyEngines: 2, Decoders: 1, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4)},
			{Name: "3g.40gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 40192, Multiprocessors: 42, CopyEngines: 3, Decoders: 2, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4)},
			{Name: "4g.40gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 40192, Multiprocessors: 56, CopyEngines: 4, Decoders: 2, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0)},
			// 7g.80gb: MiB "80896 / 81152" (515.86 / other listings) → 80896, Uncertain;
			// also named 7g.79gb by one driver (ref §2.2, §6).
			{Name: "7g.80gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 80896, Multiprocessors: 98, CopyEngines: 7, Decoders: 5, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.10gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 9728, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			// 1g.20gb (REV2): [UNCERTAIN], MiB "≈19968" inferred from 2g.20gb (ref §2.2) → Uncertain.
			{Name: "1g.20gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 19968, Multiprocessors: 14, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}

// modelH100x80GB mirrors ref §2.3 (H100 SXM5 / PCIe / H800; recent-driver
// -lgip, full GPU 81559 MiB) with placements from ref §3.1.
func modelH100x80GB() GPUModel {
	return GPUModel{
		Key:  "h100-80gb",
		Name: "H100-80GB",
		ProductNames: []string{
			"NVIDIA H100 80GB HBM3",
			"NVIDIA H100 PCIe",
			"NVIDIA H800 PCIe", // 0x2322
			"NVIDIA H800",      // 0x2324
		},
		DeviceIDs: []uint32{
			0x233010DE, // H100 SXM5 80GB
			0x233110DE, // H100 PCIe
			0x232210DE, // H800 PCIe
			0x232410DE, // H800
		},
		Architecture:  Hopper,
		MemorySlices:  8,
		ComputeSlices: 7,
		MemoryMiB:     81559, // ref §2.3 (MIG guide v580, driver 580.65.06)
		Profiles: []Profile{
			{Name: "1g.10gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 9984, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.20gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 20096, Multiprocessors: 32, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 2, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4)},
			{Name: "3g.40gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 40448, Multiprocessors: 60, CopyEngines: 3, Decoders: 3, Encoders: 0, JPEGs: 3, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4)},
			{Name: "4g.40gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 40448, Multiprocessors: 64, CopyEngines: 4, Decoders: 4, Encoders: 0, JPEGs: 4, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0)},
			{Name: "7g.80gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 81152, Multiprocessors: 132, CopyEngines: 8, Decoders: 7, Encoders: 0, JPEGs: 7, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0)},
			{Name: "1g.10gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 9984, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "1g.20gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 20096, Multiprocessors: 26, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6)},
		},
	}
}

// modelH100NVL mirrors ref §2.4 (H100 NVL 94GB; driver 550.127.06 capture,
// full GPU 95830 MiB); placements identical to ref §3.1 per the reference.
// The table has no ENC column: Encoders is 0 as in every row of the
// H100-80GB table (ref §2.3), same GH100 silicon.
func modelH100NVL() GPUModel {
	return GPUModel{
		Key:  "h100-nvl",
		Name: "H100-NVL-94GB",
		ProductNames: []string{
			"NVIDIA H100 NVL",
			"NVIDIA H800 NVL", // 0x233A
		},
		DeviceIDs: []uint32{
			0x232110DE, // H100 NVL
			0x233A10DE, // H800 NVL
		},
		Architecture:  Hopper,
		MemorySlices:  8,
		ComputeSlices: 7,
		MemoryMiB:     95830, // ref §2.4
		Profiles: []Profile{
			{Name: "1g.12gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 10880, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "2g.24gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 22016, Multiprocessors: 32, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 2, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4)},
			{Name: "3g.47gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 47232, Multiprocessors: 60, CopyEngines: 3, Decoders: 3, Encoders: 0, JPEGs: 3, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4)},
			{Name: "4g.47gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 47232, Multiprocessors: 64, CopyEngines: 4, Decoders: 4, Encoders: 0, JPEGs: 4, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0)},
			// 7g.94gb: the other-driver GiB is "?" (ref §2.4) → Uncertain.
			{Name: "7g.94gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 94848, Multiprocessors: 132, CopyEngines: 8, Decoders: 7, Encoders: 0, JPEGs: 7, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.12gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 10880, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6)},
			{Name: "1g.24gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 22016, Multiprocessors: 26, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6)},
		},
	}
}

// modelH100x96GB mirrors ref §2.5 (H100 96GB / GH200 96GB / H20; "one
// public capture"). MiB = GiB × 1024. The table has no OFA column, so OFAs
// are unknown (0) and every profile is Uncertain; Encoders is 0 as in
// ref §2.3 (same GH100 silicon). 4g.48gb and 7g.96gb are [UNCERTAIN] with
// GiB "?" and SMs "64?"/"132?": MiB is left 0 and the tentative SM counts
// are kept. PG506 (0x20B6), which config-default groups with these IDs, is
// an Ampere board and is not part of this Hopper model.
func modelH100x96GB() GPUModel {
	return GPUModel{
		Key:  "h100-96gb",
		Name: "H100-96GB",
		ProductNames: []string{
			"NVIDIA GH200 480GB", // 0x2342
			"NVIDIA GH200 120GB", // 0x2342
			"NVIDIA H20",         // 0x2329
		},
		DeviceIDs: []uint32{
			0x233D10DE, // H100 96GB
			0x234210DE, // GH200 (96 GB class)
			0x232910DE, // H20
		},
		Architecture:  Hopper,
		MemorySlices:  8,
		ComputeSlices: 7,
		// Unknown: the reference gives neither a full-GPU total nor the
		// 7g.96gb profile's MiB.
		MemoryMiB: 0,
		Profiles: []Profile{
			{Name: "1g.12gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 11264, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "2g.24gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 23552, Multiprocessors: 32, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 2, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4), Uncertain: true},
			{Name: "3g.48gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 47616, Multiprocessors: 60, CopyEngines: 3, Decoders: 3, Encoders: 0, JPEGs: 3, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4), Uncertain: true},
			{Name: "4g.48gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 0, Multiprocessors: 64, CopyEngines: 0, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0), Uncertain: true},
			{Name: "7g.96gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 0, Multiprocessors: 132, CopyEngines: 0, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.12gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 11264, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "1g.24gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 23552, Multiprocessors: 26, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}

// modelH200 mirrors ref §2.6 (H200 SXM and NVL; mig-parted #120 -lgip and
// the MIG guide v580). No public -lgipp exists for the H200, so the ref §3.1
// placements are [UNCERTAIN] here and every profile is Uncertain (ref §3.1);
// 1g.18gb's MiB is also [UNCERTAIN] (ref §2.6). The table has no ENC column:
// Encoders is 0 as in ref §2.3 (same GH100 silicon).
func modelH200() GPUModel {
	return GPUModel{
		Key:  "h200",
		Name: "H200-141GB",
		ProductNames: []string{
			"NVIDIA H200",
			"NVIDIA H200 NVL",
		},
		DeviceIDs: []uint32{
			0x233510DE, // H200 SXM 141GB
			0x233B10DE, // H200 NVL
		},
		Architecture:  Hopper,
		MemorySlices:  8,
		ComputeSlices: 7,
		// The reference gives no full-GPU total: 143771 MiB is what
		// nvidia-smi reports on H200 SXM [UNCERTAIN: read from NVML]; the
		// profile names follow from it (ref §6): 71168 MiB → 3g.71gb.
		MemoryMiB: 143771,
		Profiles: []Profile{
			{Name: "1g.18gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 16384, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "2g.35gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 33024, Multiprocessors: 32, CopyEngines: 2, Decoders: 2, Encoders: 0, JPEGs: 2, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4), Uncertain: true},
			{Name: "3g.71gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 71168, Multiprocessors: 60, CopyEngines: 3, Decoders: 3, Encoders: 0, JPEGs: 3, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4), Uncertain: true},
			{Name: "4g.71gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 71168, Multiprocessors: 64, CopyEngines: 4, Decoders: 4, Encoders: 0, JPEGs: 4, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0), Uncertain: true},
			{Name: "7g.141gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 143104, Multiprocessors: 132, CopyEngines: 8, Decoders: 7, Encoders: 0, JPEGs: 7, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.18gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 16384, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "1g.35gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 33024, Multiprocessors: 26, CopyEngines: 1, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}

// modelGH200x144GB mirrors ref §2.7 (GH200 144G HBM3e; mig-parted PR #139
// -lgip). The table gives only GiB (MiB = GiB × 1024), SMs and max counts:
// engine counts are unknown (0), and 3g.72gb/4g.72gb/7g.144gb were not
// captured ([UNCERTAIN]: MiB and SMs 0). Placements are [UNCERTAIN] on
// GH200 (ref §3.1). Every profile is Uncertain.
func modelGH200x144GB() GPUModel {
	return GPUModel{
		Key:           "gh200-144gb",
		Name:          "GH200-144GB",
		ProductNames:  []string{"NVIDIA GH200 144G HBM3e"},
		DeviceIDs:     []uint32{0x234810DE},
		Architecture:  Hopper,
		MemorySlices:  8,
		ComputeSlices: 7,
		// Unknown: the reference gives neither a full-GPU total nor the
		// 7g.144gb profile's MiB.
		MemoryMiB: 0,
		Profiles: []Profile{
			{Name: "1g.18gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 17920, Multiprocessors: 16, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "2g.36gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 36096, Multiprocessors: 32, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4), Uncertain: true},
			{Name: "3g.72gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 0, Multiprocessors: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4), Uncertain: true},
			{Name: "4g.72gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 0, Multiprocessors: 0, MaxCount: 1, Placements: placementsAt(4, 0), Uncertain: true},
			{Name: "7g.144gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 0, Multiprocessors: 0, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.18gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 17920, Multiprocessors: 16, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "1g.36gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 36096, Multiprocessors: 26, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}

// modelB200 mirrors ref §2.8 (B200; mig-parted PR #166/#187 -lgip and the
// MIG guide v580). The table has no ENC column (Encoders unknown, 0);
// placements are [UNCERTAIN] on B200 (ref §3.1); 1g.23gb's memory drifted
// between drivers (22.00 → 20.50 GiB: the later 20.50 GiB = 20992 MiB is
// used); 2g.45gb's CE is 4 by -lgip, 3 by the guide (4 kept, as the
// reference says to trust NVML); 3g/4g/7g GiB and SMs are "?" (0) with the
// guide's CE counts. Every profile is Uncertain.
func modelB200() GPUModel {
	return GPUModel{
		Key:           "b200",
		Name:          "B200",
		ProductNames:  []string{"NVIDIA B200"},
		DeviceIDs:     []uint32{0x290110DE},
		Architecture:  Blackwell,
		MemorySlices:  8,
		ComputeSlices: 7,
		// Unknown: the reference gives neither a full-GPU total nor the
		// 7g.180gb profile's MiB.
		MemoryMiB: 0,
		Profiles: []Profile{
			{Name: "1g.23gb", Index: ProfileIndex1Slice, ID: 19, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 20992, Multiprocessors: 18, CopyEngines: 2, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 7, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "2g.45gb", Index: ProfileIndex2Slice, ID: 14, ComputeSlices: 2, MemorySlices: 2, MemoryMiB: 45312, Multiprocessors: 36, CopyEngines: 4, Decoders: 2, Encoders: 0, JPEGs: 2, OFAs: 0, MaxCount: 3, Placements: placementsAt(2, 0, 2, 4), Uncertain: true},
			{Name: "3g.90gb", Index: ProfileIndex3Slice, ID: 9, ComputeSlices: 3, MemorySlices: 4, MemoryMiB: 0, Multiprocessors: 0, CopyEngines: 6, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 2, Placements: placementsAt(4, 0, 4), Uncertain: true},
			{Name: "4g.90gb", Index: ProfileIndex4Slice, ID: 5, ComputeSlices: 4, MemorySlices: 4, MemoryMiB: 0, Multiprocessors: 0, CopyEngines: 8, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 0, MaxCount: 1, Placements: placementsAt(4, 0), Uncertain: true},
			{Name: "7g.180gb", Index: ProfileIndex7Slice, ID: 0, ComputeSlices: 7, MemorySlices: 8, MemoryMiB: 0, Multiprocessors: 0, CopyEngines: 16, Decoders: 0, Encoders: 0, JPEGs: 0, OFAs: 1, MaxCount: 1, Placements: placementsAt(8, 0), Uncertain: true},
			{Name: "1g.23gb+me", Index: ProfileIndex1SliceRev1, ID: 20, ComputeSlices: 1, MemorySlices: 1, MemoryMiB: 20992, Multiprocessors: 18, CopyEngines: 2, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 1, MaxCount: 1, Placements: placementsAt(1, 0, 1, 2, 3, 4, 5, 6), Uncertain: true},
			{Name: "1g.45gb", Index: ProfileIndex1SliceRev2, ID: 15, ComputeSlices: 1, MemorySlices: 2, MemoryMiB: 45312, Multiprocessors: 30, CopyEngines: 2, Decoders: 1, Encoders: 0, JPEGs: 1, OFAs: 0, MaxCount: 4, Placements: placementsAt(2, 0, 2, 4, 6), Uncertain: true},
		},
	}
}
