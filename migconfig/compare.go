package migconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// CompareModels returns human-readable differences between a built-in model
// and the same model as observed (read from NVML at run time), one string
// per difference; it returns nil when they agree. The agent lets the
// observed table win and logs these strings.
//
// Profiles are matched by profile ID, not by name, because names drift
// between drivers ("7g.80gb" vs "7g.79gb"); a name change is reported as a
// difference. The model's memory slices, compute slices and total MiB are
// compared, then, for each profile ID in ascending order, every figure of
// the profile (name, index, slices, MiB, SMs, engines, max count,
// placements). Identity fields (key, names, device IDs, architecture) and
// the Uncertain flag are not compared. The order of the result is
// deterministic.
func CompareModels(builtin, observed *GPUModel) []string {
	switch {
	case builtin == nil && observed == nil:
		return nil
	case builtin == nil:
		return []string{"model: not in the built-in catalog"}
	case observed == nil:
		return []string{"model: not observed"}
	}
	var out []string
	diffInt := func(what string, b, o int) {
		if b != o {
			out = append(out, fmt.Sprintf("%s: built-in %d, observed %d", what, b, o))
		}
	}
	diffInt("memory slices", builtin.MemorySlices, observed.MemorySlices)
	diffInt("compute slices", builtin.ComputeSlices, observed.ComputeSlices)
	diffInt("memory MiB", builtin.MemoryMiB, observed.MemoryMiB)

	ids := map[ProfileID]bool{}
	for _, p := range builtin.Profiles {
		ids[p.ID] = true
	}
	for _, p := range observed.Profiles {
		ids[p.ID] = true
	}
	sorted := make([]ProfileID, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })

	for _, id := range sorted {
		b, inBuiltin := builtin.ProfileByID(id)
		o, inObserved := observed.ProfileByID(id)
		switch {
		case !inObserved:
			out = append(out, fmt.Sprintf("profile ID %d (%s): in the built-in catalog, not observed", id, b.Name))
		case !inBuiltin:
			out = append(out, fmt.Sprintf("profile ID %d (%s): observed, not in the built-in catalog", id, o.Name))
		default:
			out = append(out, compareProfile(b, o)...)
		}
	}
	return out
}

// compareProfile lists the differences between two profiles with the same
// ID, each prefixed with the ID and the built-in name.
func compareProfile(b, o *Profile) []string {
	prefix := fmt.Sprintf("profile ID %d (%s): ", b.ID, b.Name)
	var out []string
	if b.Name != o.Name {
		out = append(out, fmt.Sprintf("%sname: built-in %q, observed %q", prefix, b.Name, o.Name))
	}
	ints := []struct {
		what string
		b, o int
	}{
		{"index", int(b.Index), int(o.Index)},
		{"compute slices", b.ComputeSlices, o.ComputeSlices},
		{"memory slices", b.MemorySlices, o.MemorySlices},
		{"memory MiB", b.MemoryMiB, o.MemoryMiB},
		{"multiprocessors", b.Multiprocessors, o.Multiprocessors},
		{"copy engines", b.CopyEngines, o.CopyEngines},
		{"decoders", b.Decoders, o.Decoders},
		{"encoders", b.Encoders, o.Encoders},
		{"JPEG engines", b.JPEGs, o.JPEGs},
		{"OFA engines", b.OFAs, o.OFAs},
		{"max count", b.MaxCount, o.MaxCount},
	}
	for _, f := range ints {
		if f.b != f.o {
			out = append(out, fmt.Sprintf("%s%s: built-in %d, observed %d", prefix, f.what, f.b, f.o))
		}
	}
	if !equalPlacements(b.Placements, o.Placements) {
		out = append(out, fmt.Sprintf("%splacements: built-in %s, observed %s", prefix,
			placementSetString(b.Placements), placementSetString(o.Placements)))
	}
	return out
}

// equalPlacements reports whether two placement lists hold the same
// placements, in any order.
func equalPlacements(a, b []Placement) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[Placement]int{}
	for _, p := range a {
		count[p]++
	}
	for _, p := range b {
		count[p]--
		if count[p] < 0 {
			return false
		}
	}
	return true
}

// placementSetString formats placements as nvidia-smi mig -lgipp does when
// they share one size ("{0,2,4,6}:2"), else as "start:size" pairs; "{}" when
// there are none. Placements are sorted by start, then size.
func placementSetString(pls []Placement) string {
	if len(pls) == 0 {
		return "{}"
	}
	s := make([]Placement, len(pls))
	copy(s, pls)
	sort.Slice(s, func(i, j int) bool {
		if s[i].Start != s[j].Start {
			return s[i].Start < s[j].Start
		}
		return s[i].Size < s[j].Size
	})
	sameSize := true
	for _, p := range s[1:] {
		if p.Size != s[0].Size {
			sameSize = false
		}
	}
	parts := make([]string, len(s))
	for i, p := range s {
		if sameSize {
			parts[i] = strconv.Itoa(p.Start)
		} else {
			parts[i] = p.String()
		}
	}
	if sameSize {
		return "{" + strings.Join(parts, ",") + "}:" + strconv.Itoa(s[0].Size)
	}
	return "{" + strings.Join(parts, " ") + "}"
}
