package migconfig

import (
	"fmt"
	"sort"
	"strings"
)

// ValidateLayout checks that layout l is possible on model m: every profile
// exists, counts are within MaxCount and the media-engine limit, compute
// splits are legal, explicit placements are valid and disjoint, and the
// unplaced instances can be packed around them. The error says why not.
func ValidateLayout(m *GPUModel, l GPULayout) error {
	_, err := Pack(m, l)
	return err
}

// Pack returns a copy of l with every unplaced instance given a placement,
// keeping the placed ones where they are. The search is exact over the
// memory-slice bitmasks and deterministic. Among all packings it prefers,
// in order: the most compute slices that could still be added in the free
// memory slices; the largest single instance that could still be added;
// the longest run of contiguous usable free memory slices (the largest
// usable free region); the most usable free memory slices; and finally the
// lowest starts.
func Pack(m *GPUModel, l GPULayout) (GPULayout, error) {
	if err := checkInstances(m, l); err != nil {
		return GPULayout{}, err
	}
	s := newSearch(m, l.Instances, nil)
	best, ok := s.run()
	if !ok {
		return GPULayout{}, fmt.Errorf("no placement of %s fits on %s (%d memory slices)",
			FormatInstances(m, l.Instances), m.Name, m.MemorySlices)
	}
	out := GPULayout{MigEnabled: l.MigEnabled, Instances: make([]Instance, len(l.Instances))}
	copy(out.Instances, l.Instances)
	for i := range out.Instances {
		out.Instances[i].Placement = best.placements[i]
	}
	SortInstances(out.Instances)
	return out, nil
}

// checkInstances verifies everything about a layout except whether the
// unplaced instances fit: mode, profiles, counts, compute splits, explicit
// placements.
func checkInstances(m *GPUModel, l GPULayout) error {
	if !l.MigEnabled {
		if len(l.Instances) > 0 {
			return fmt.Errorf("%d instances requested with MIG disabled", len(l.Instances))
		}
		return nil
	}
	counts := map[ProfileID]int{}
	mediaExtended := 0
	compute := 0
	for _, in := range l.Instances {
		p, ok := m.ProfileByID(in.Profile)
		if !ok {
			return fmt.Errorf("profile ID %d is not a MIG profile of %s", in.Profile, m.Name)
		}
		counts[in.Profile]++
		if p.HasMediaExtensions() {
			mediaExtended++
		}
		compute += p.ComputeSlices
		if err := checkCompute(p, in.Compute); err != nil {
			return err
		}
		if in.Placement.IsSet() && !p.ValidPlacement(in.Placement) {
			return fmt.Errorf("%s cannot be placed at %s on %s; valid placements: %s",
				p.Name, in.Placement, m.Name, formatPlacements(p.Placements))
		}
	}
	for _, p := range m.Profiles {
		if n := counts[p.ID]; n > p.MaxCount {
			return fmt.Errorf("%d× %s exceeds the maximum of %d on %s", n, p.Name, p.MaxCount, m.Name)
		}
	}
	if mediaExtended > 1 && countMediaProfiles(m) > 1 {
		return fmt.Errorf("%d +me instances requested; %s has media engines for one", mediaExtended, m.Name)
	}
	if compute > m.ComputeSlices {
		return fmt.Errorf("%s needs %d compute slices; %s has %d", FormatInstances(m, l.Instances), compute, m.Name, m.ComputeSlices)
	}
	for i, a := range l.Instances {
		for _, b := range l.Instances[i+1:] {
			if a.Placement.IsSet() && b.Placement.IsSet() && a.Placement.Overlaps(b.Placement) {
				pa, _ := m.ProfileByID(a.Profile)
				pb, _ := m.ProfileByID(b.Profile)
				return fmt.Errorf("%s at %s overlaps %s at %s", pa.Name, a.Placement, pb.Name, b.Placement)
			}
		}
	}
	return nil
}

// checkCompute verifies a compute-instance split of a GPU instance of
// profile p: C ≤ G, and when C < G also 2C ≤ G+1 (no 3c in a 4g, no 5c or
// 6c in a 7g), and at most G/C compute instances.
func checkCompute(p *Profile, c Compute) error {
	g := p.ComputeSlices
	n := c.Normalize(g)
	if n.Slices < 1 || n.Count < 1 || n.Slices > g || (n.Slices < g && 2*n.Slices > g+1) {
		return fmt.Errorf("%dc.%s is not a compute-instance profile", n.Slices, p.Name)
	}
	if n.Count*n.Slices > g {
		return fmt.Errorf("%d compute instances of %d slices do not fit in %s (%d compute slices)", n.Count, n.Slices, p.Name, g)
	}
	return nil
}

func countMediaProfiles(m *GPUModel) int {
	n := 0
	for _, p := range m.Profiles {
		if p.HasMediaExtensions() {
			n++
		}
	}
	return n
}

// SortInstances orders instances by placement start, then profile ID, so
// layouts compare and print deterministically. Unplaced instances sort
// after placed ones.
func SortInstances(in []Instance) {
	sort.SliceStable(in, func(i, j int) bool {
		a, b := in[i], in[j]
		if a.Placement.IsSet() != b.Placement.IsSet() {
			return a.Placement.IsSet()
		}
		if a.Placement.Start != b.Placement.Start {
			return a.Placement.Start < b.Placement.Start
		}
		if a.Profile != b.Profile {
			return a.Profile < b.Profile
		}
		return a.Compute.Slices < b.Compute.Slices
	})
}

// FormatInstances describes instances compactly: "2×1g.5gb + 2g.10gb +
// 3g.20gb@4:4". Explicitly placed instances show their placement.
func FormatInstances(m *GPUModel, in []Instance) string {
	if len(in) == 0 {
		return "no instances"
	}
	type key struct {
		name string
		pl   Placement
	}
	var order []key
	count := map[key]int{}
	for _, i := range in {
		name := fmt.Sprintf("profile %d", i.Profile)
		if p, ok := m.ProfileByID(i.Profile); ok {
			name = p.Name
			if c := i.Compute.Normalize(p.ComputeSlices); c.Slices != p.ComputeSlices {
				name = fmt.Sprintf("%dc.%s", c.Slices, p.Name)
			}
		}
		k := key{name, i.Placement}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		s := k.name
		if k.pl.IsSet() {
			s += "@" + k.pl.String()
		}
		if n := count[k]; n > 1 {
			s = fmt.Sprintf("%d×%s", n, s)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " + ")
}

func formatPlacements(pls []Placement) string {
	parts := make([]string, len(pls))
	for i, p := range pls {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// search is the exact placement search shared by Pack and Diff. It places
// every instance of want (honouring set placements), scoring complete
// packings; keep, when non-nil, lists observed instances whose reuse scores
// higher (busy ones highest).
type search struct {
	m     *GPUModel
	want  []Instance
	order []int // indices into want, placed first to last
	keep  []Instance

	cur  []Placement
	best candidate
	any  bool

	spare map[uint16]int // memo: compute slices that still fit in a free mask
}

type candidate struct {
	placements []Placement
	score      [6]int
}

func newSearch(m *GPUModel, want []Instance, keep []Instance) *search {
	s := &search{m: m, want: want, keep: keep, spare: map[uint16]int{}}
	s.order = make([]int, len(want))
	for i := range s.order {
		s.order[i] = i
	}
	// Fixed placements first, then larger instances, then by profile so
	// identical instances are adjacent (needed for symmetry breaking).
	sort.SliceStable(s.order, func(a, b int) bool {
		x, y := want[s.order[a]], want[s.order[b]]
		if x.Placement.IsSet() != y.Placement.IsSet() {
			return x.Placement.IsSet()
		}
		px, _ := m.ProfileByID(x.Profile)
		py, _ := m.ProfileByID(y.Profile)
		if px.MemorySlices != py.MemorySlices {
			return px.MemorySlices > py.MemorySlices
		}
		if x.Profile != y.Profile {
			return x.Profile < y.Profile
		}
		return computeKey(x, px) < computeKey(y, py)
	})
	s.cur = make([]Placement, len(want))
	return s
}

func computeKey(in Instance, p *Profile) int {
	c := in.Compute.Normalize(p.ComputeSlices)
	return c.Slices*16 + c.Count
}

func (s *search) run() (candidate, bool) {
	s.dfs(0, 0)
	return s.best, s.any
}

func (s *search) dfs(k int, used uint16) {
	if k == len(s.order) {
		s.consider(used)
		return
	}
	i := s.order[k]
	in := s.want[i]
	if in.Placement.IsSet() {
		if used&in.Placement.Mask() != 0 {
			return
		}
		s.cur[i] = in.Placement
		s.dfs(k+1, used|in.Placement.Mask())
		return
	}
	p, _ := s.m.ProfileByID(in.Profile)
	// Symmetry breaking: an instance identical to the previous unplaced
	// one takes a strictly later start.
	minStart := -1
	if k > 0 {
		prev := s.want[s.order[k-1]]
		if !prev.Placement.IsSet() && prev.Profile == in.Profile && computeKey(prev, p) == computeKey(in, p) {
			minStart = s.cur[s.order[k-1]].Start
		}
	}
	for _, pl := range p.Placements {
		if pl.Start <= minStart || used&pl.Mask() != 0 {
			continue
		}
		s.cur[i] = pl
		s.dfs(k+1, used|pl.Mask())
	}
}

// consider scores a complete packing and keeps it if it beats the best so
// far. Ties keep the first found, which is the lowest-start packing.
func (s *search) consider(used uint16) {
	var sc [6]int
	if s.keep != nil {
		sc[0], sc[1] = s.kept()
	}
	free := s.m.FullMask() &^ used
	usable := s.usable(free)
	sc[2] = s.spareCompute(free)
	sc[3] = s.largestFit(free)
	sc[4] = longestRun(usable)
	sc[5] = popcount16(usable)
	if s.any && !better(sc, s.best.score) {
		return
	}
	s.any = true
	s.best.score = sc
	s.best.placements = append(s.best.placements[:0], s.cur...)
}

func better(a, b [6]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

// kept counts the observed instances the current packing reuses: busy ones
// and all ones.
func (s *search) kept() (busy, all int) {
	for _, k := range s.keep {
		for i, in := range s.want {
			if s.cur[i] == k.Placement && Reusable(s.m, k, in) {
				all++
				if k.Busy {
					busy++
				}
				break
			}
		}
	}
	return busy, all
}

// spareCompute returns the most compute slices that instances could still
// add inside the free mask.
func (s *search) spareCompute(free uint16) int {
	if v, ok := s.spare[free]; ok {
		return v
	}
	best := 0
	for _, p := range s.m.Profiles {
		for _, pl := range p.Placements {
			if pl.Mask()&^free != 0 {
				continue
			}
			if v := p.ComputeSlices + s.spareCompute(free&^pl.Mask()); v > best {
				best = v
			}
		}
	}
	s.spare[free] = best
	return best
}

// largestFit returns the compute slices of the largest single instance that
// fits in the free mask.
func (s *search) largestFit(free uint16) int {
	best := 0
	for _, p := range s.m.Profiles {
		for _, pl := range p.Placements {
			if pl.Mask()&^free == 0 && p.ComputeSlices > best {
				best = p.ComputeSlices
			}
		}
	}
	return best
}

// longestRun returns the length of the longest run of set bits.
func longestRun(x uint16) int {
	best, run := 0, 0
	for ; x != 0 || run > 0; x >>= 1 {
		if x&1 == 1 {
			run++
			best = max(best, run)
			continue
		}
		run = 0
		if x == 0 {
			break
		}
	}
	return best
}

// usable returns the free memory slices some placement could cover.
func (s *search) usable(free uint16) uint16 {
	var u uint16
	for _, p := range s.m.Profiles {
		for _, pl := range p.Placements {
			if pl.Mask()&^free == 0 {
				u |= pl.Mask()
			}
		}
	}
	return u
}

// ObservedCompute returns the compute split of an observed instance from
// its compute instances, and false if the instance has none or a mix that
// no layout describes (so it must be re-created to match any layout).
func ObservedCompute(m *GPUModel, in Instance) (Compute, bool) {
	p, ok := m.ProfileByID(in.Profile)
	if !ok || len(in.ComputeInstances) == 0 {
		return Compute{}, false
	}
	slices := in.ComputeInstances[0].Slices
	for _, ci := range in.ComputeInstances[1:] {
		if ci.Slices != slices {
			return Compute{}, false
		}
	}
	return Compute{Slices: slices, Count: len(in.ComputeInstances)}.Normalize(p.ComputeSlices), true
}

// Reusable reports whether observed instance have can serve as desired
// instance want without being re-created: same profile, same compute split,
// and the same placement if want has one.
func Reusable(m *GPUModel, have, want Instance) bool {
	if have.Profile != want.Profile {
		return false
	}
	if want.Placement.IsSet() && want.Placement != have.Placement {
		return false
	}
	p, ok := m.ProfileByID(want.Profile)
	if !ok {
		return false
	}
	hc, ok := ObservedCompute(m, have)
	if !ok {
		return false
	}
	return hc == want.Compute.Normalize(p.ComputeSlices)
}
