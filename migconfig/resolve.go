package migconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Resolve turns the named config into the desired layout of each GPU of
// node, with mig-parted's semantics:
//
//   - an entry selects the GPUs that match its device-filter (if it has
//     one) and its devices; a GPU selected by no entry is absent from the
//     result, and so left untouched;
//   - mig-parted applies a config's entries in order, so a GPU that several
//     entries select ends with the last one's layout: that entry overrides
//     the earlier ones for that GPU (ResolveDetail reports each override),
//     and problems of the layouts it overrides do not count;
//   - "devices: all" skips GPUs that are not MIG-capable; an index that
//     does not exist, or a GPU that is not MIG-capable named by index in an
//     entry with mig-enabled: true, is an error (a non-capable GPU named in
//     an entry with mig-enabled: false needs nothing and is left out);
//   - each mig-devices name is resolved on the GPU's own model (found with
//     cat.Lookup), since one name can mean different profiles on different
//     GPUs; counts become instances, "<c>c." names become GPU instances
//     split into compute instances of C slices (floor(G/C) per GPU
//     instance, the last one holding the rest), and the placements
//     extension fixes the starts of the first instances of a name;
//   - the layout must pass ValidateLayout on the model.
//
// An entry with mig-enabled: false gives {MigEnabled: false} and needs no
// catalog model. config may be "" when the file has exactly one config.
// Instances are sorted with SortInstances. Every problem is reported, each
// as a *FileError in an ErrorList.
func (f *File) Resolve(cat *Catalog, config string, node NodeState) (map[int]GPULayout, error) {
	r, err := f.ResolveDetail(cat, config, node)
	if err != nil {
		return nil, err
	}
	return r.Layouts, nil
}

// Resolution is what ResolveDetail returns: the layouts and how the
// config's entries combined to give them.
type Resolution struct {
	// Layouts maps GPU index to desired layout, as Resolve returns it.
	Layouts map[int]GPULayout
	// Overrides lists every time an entry replaced, for one GPU, the layout
	// an earlier entry of the config gave it, in entry order and then in
	// the node's GPU order. Legal (mig-parted does the same), but often
	// a mistake worth a warning.
	Overrides []Override
}

// Override is one GPU that two entries of a config select: the later
// entry's layout replaces the earlier one's.
type Override struct {
	// File is the file's path, as ParseFile was given it.
	File string
	// Config is the config's name.
	Config string
	// GPU is the GPU's index.
	GPU int
	// Entry is the index, in the config, of the entry whose layout
	// replaces the other, and EntryPos its position in the file.
	Entry    int
	EntryPos Pos
	// Replaced is the index of the entry whose layout is replaced, and
	// ReplacedPos its position in the file.
	Replaced    int
	ReplacedPos Pos
}

// String formats the override as a FileError formats an error, positioned
// at the entry that wins:
//
//	layouts.yaml:14:7: mig-configs.c[3]: GPU 0: overrides the layout of mig-configs.c[1] (line 7)
func (o Override) String() string {
	e := FileError{
		File:   o.File,
		Line:   o.EntryPos.Line,
		Column: o.EntryPos.Column,
		Field:  entryField(o.Config, o.Entry, ""),
		Msg:    fmt.Sprintf("GPU %d: overrides the layout of %s", o.GPU, entryRef(o.Config, o.Replaced, o.ReplacedPos)),
	}
	return e.Error()
}

// ResolveDetail is Resolve, also reporting which entries override others
// (see Resolution). It returns a nil Resolution with its error.
func (f *File) ResolveDetail(cat *Catalog, config string, node NodeState) (*Resolution, error) {
	sink := &errorSink{file: f.Path}
	if cat == nil {
		cat = &Catalog{} // every MIG-enabled GPU is then of an unknown model
	}
	config, entries, err := f.selectConfig(config)
	if err != nil {
		return nil, err
	}
	byIndex := make(map[int]int, len(node.GPUs))
	for i, g := range node.GPUs {
		if _, dup := byIndex[g.Index]; !dup {
			byIndex[g.Index] = i
		}
	}
	// First pass: which GPUs each entry selects, and which entry is the
	// last to select each GPU.
	res := &Resolution{Layouts: map[int]GPULayout{}}
	selected := make([][]int, len(entries)) // positions in node.GPUs
	owner := map[int]int{}                  // GPU index → entry index
	for ei := range entries {
		e := &entries[ei]
		selected[ei] = f.selectGPUs(sink, config, ei, e, node, byIndex)
		for _, gi := range selected[ei] {
			idx := node.GPUs[gi].Index
			if prev, taken := owner[idx]; taken {
				res.Overrides = append(res.Overrides, Override{
					File: f.Path, Config: config, GPU: idx,
					Entry: ei, EntryPos: e.Source.Pos,
					Replaced: prev, ReplacedPos: entries[prev].Source.Pos,
				})
			}
			owner[idx] = ei
		}
	}
	// Second pass: each entry's layout on the GPUs it decides. Build the
	// layout once per model; report problems once per model, naming every
	// GPU they hit.
	for ei := range entries {
		e := &entries[ei]
		entryPos := e.Source.Pos
		type built struct {
			layout GPULayout
			errs   []*FileError
			gpus   []int
		}
		var order []string
		byModel := map[string]*built{}
		for _, gi := range selected[ei] {
			g := node.GPUs[gi]
			if owner[g.Index] != ei {
				continue // a later entry overrides this one
			}
			if !e.MigEnabled {
				res.Layouts[g.Index] = GPULayout{MigEnabled: false}
				continue
			}
			m, ok := cat.Lookup(g)
			if !ok {
				sink.add(entryPos, entryField(config, ei, ""), ErrUnknownGPUModel,
					"GPU %d (%s, device ID %s): %v", g.Index, gpuLabel(g), DeviceFilter{DeviceID: g.DeviceID}, ErrUnknownGPUModel)
				continue
			}
			b, ok := byModel[m.Key]
			if !ok {
				l, errs := e.layoutFor(m, f.Path, config, ei)
				b = &built{layout: l, errs: errs}
				byModel[m.Key] = b
				order = append(order, m.Key)
			}
			b.gpus = append(b.gpus, g.Index)
		}
		for _, key := range order {
			b := byModel[key]
			if len(b.errs) > 0 {
				for _, fe := range b.errs {
					c := *fe
					c.Msg = fmt.Sprintf("%s: %s", plural("GPU", b.gpus), c.Msg)
					sink.errs = append(sink.errs, &c)
				}
				continue
			}
			for _, idx := range b.gpus {
				res.Layouts[idx] = cloneLayout(b.layout)
			}
		}
	}
	if err := sink.errs.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// selectGPUs returns the positions in node.GPUs of the GPUs entry ei
// selects, each once, recording an error for each index that does not
// exist and each GPU without MIG that it names while enabling MIG.
func (f *File) selectGPUs(sink *errorSink, config string, ei int, e *ConfigEntry, node NodeState, byIndex map[int]int) []int {
	var selected []int
	if e.Devices.All {
		for gi, g := range node.GPUs {
			if g.MigCapable && matchesFilters(e.DeviceFilter, g) {
				selected = append(selected, gi)
			}
		}
		return selected
	}
	pos := orPos(e.Source.Devices, e.Source.Pos)
	seen := map[int]bool{}
	for _, idx := range e.Devices.Indexes {
		if seen[idx] {
			continue
		}
		seen[idx] = true
		gi, ok := byIndex[idx]
		if !ok {
			sink.add(pos, entryField(config, ei, keyDevices), nil,
				"GPU %d does not exist; the node has %s", idx, describeIndexes(node))
			continue
		}
		g := node.GPUs[gi]
		if !matchesFilters(e.DeviceFilter, g) {
			continue
		}
		if !g.MigCapable {
			if e.MigEnabled {
				sink.add(pos, entryField(config, ei, keyDevices), nil,
					"GPU %d (%s) does not support MIG", idx, gpuLabel(g))
			}
			continue
		}
		selected = append(selected, gi)
	}
	return selected
}

// selectConfig returns the named config's entries; "" selects the only
// config of a one-config file.
func (f *File) selectConfig(config string) (string, []ConfigEntry, error) {
	if config == "" && len(f.Names) == 1 {
		config = f.Names[0]
	}
	entries, ok := f.Configs[config]
	if !ok {
		msg := fmt.Sprintf("%v %q; the file has %s", ErrUnknownConfig, config, strings.Join(f.Names, ", "))
		if len(f.Names) == 0 {
			msg = fmt.Sprintf("%v %q; the file has no configs", ErrUnknownConfig, config)
		} else if s := Suggest(config, f.Names); s != "" {
			msg += "; did you mean " + s + "?"
		}
		return "", nil, ErrorList{&FileError{File: f.Path, Field: keyMigConfigs, Msg: msg, Err: ErrUnknownConfig}}
	}
	return config, entries, nil
}

// Validate checks every entry of every config against the catalog without
// a node: an entry with a device-filter must resolve and validate on every
// catalog model whose device IDs it names (a filter that names no catalog
// model is not checked: mig-parted files name GPUs Tessera may not
// catalog); an entry without one must resolve and validate on at least one
// catalog model. When it fits none, the error explains why: when several
// models have all of the entry's profile names, it gives each of those
// models' own reasons, each naming its model (one name can be different
// profiles on different models: "1g.10gb" has 2 memory slices on the
// A100-40GB and 1 on the A100-80GB); otherwise it explains why not on the
// closest model. Every problem is reported, each as a *FileError in an ErrorList.
func (f *File) Validate(cat *Catalog) error {
	sink := &errorSink{file: f.Path}
	var models []GPUModel
	if cat != nil {
		models = cat.Models()
	}
	for _, config := range f.Names {
		for ei := range f.Configs[config] {
			e := &f.Configs[config][ei]
			if !e.MigEnabled {
				continue
			}
			if len(e.DeviceFilter) > 0 {
				seen := map[string]bool{}
				for _, df := range e.DeviceFilter {
					if cat == nil {
						break
					}
					m, ok := cat.ByDeviceID(df.DeviceID)
					if !ok || seen[m.Key] {
						continue
					}
					seen[m.Key] = true
					if _, errs := e.layoutFor(m, f.Path, config, ei); len(errs) > 0 {
						sink.errs = append(sink.errs, errs...)
					}
				}
				continue
			}
			if len(models) == 0 {
				sink.add(e.Source.Pos, entryField(config, ei, keyMigDevices), nil, "cannot be checked: the catalog has no GPU models")
				continue
			}
			var best []*FileError
			var bestModel *GPUModel
			var complete [][]*FileError // errors on each model that has all the entry's profiles
			fits := false
			for mi := range models {
				m := &models[mi]
				_, errs := e.layoutFor(m, f.Path, config, ei)
				if len(errs) == 0 {
					fits = true
					break
				}
				if countUnknownNames(errs) == 0 {
					complete = append(complete, errs)
				}
				if bestModel == nil || closer(errs, best) {
					best, bestModel = errs, m
				}
			}
			if fits {
				continue
			}
			if len(complete) > 1 {
				// One name can mean different profiles on different
				// models ("1g.10gb"): give each model's own facts.
				sink.errs = append(sink.errs, mergeModelErrors(complete,
					"fits no GPU model in the catalog; on the models that have its profiles: ")...)
				continue
			}
			for _, fe := range best {
				c := *fe
				c.Msg = fmt.Sprintf("fits no GPU model in the catalog; closest is %s: %s", bestModel.Name, c.Msg)
				sink.errs = append(sink.errs, &c)
			}
		}
	}
	return sink.errs.Err()
}

// mergeModelErrors merges the errors of one entry on several models into
// one error per position and field, whose message is prefix followed by
// each distinct message there (each names its model where its fact is the
// model's), in model order and joined by "; ".
func mergeModelErrors(perModel [][]*FileError, prefix string) []*FileError {
	type key struct {
		pos   Pos
		field string
	}
	var order []key
	groups := map[key][]*FileError{}
	for _, errs := range perModel {
		for _, fe := range errs {
			k := key{fe.Pos(), fe.Field}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], fe)
		}
	}
	out := make([]*FileError, 0, len(order))
	for _, k := range order {
		var msgs []string
		var causes []error
		seen := map[string]bool{}
		for _, fe := range groups[k] {
			if seen[fe.Msg] {
				continue
			}
			seen[fe.Msg] = true
			msgs = append(msgs, fe.Msg)
			if fe.Err != nil {
				causes = append(causes, fe.Err)
			}
		}
		c := *groups[k][0]
		c.Msg = prefix + strings.Join(msgs, "; ")
		c.Err = errors.Join(causes...)
		out = append(out, &c)
	}
	return out
}

// closer reports whether errors a describe a nearer miss than b: fewer
// unknown names first, then fewer problems.
func closer(a, b []*FileError) bool {
	ua, ub := countUnknownNames(a), countUnknownNames(b)
	if ua != ub {
		return ua < ub
	}
	return len(a) < len(b)
}

func countUnknownNames(errs []*FileError) int {
	n := 0
	for _, e := range errs {
		if errors.Is(e.Err, errUnknownProfileName) {
			n++
		}
	}
	return n
}

// errUnknownProfileName marks name-resolution failures, to rank models.
var errUnknownProfileName = errors.New("unknown MIG profile name")

// layoutFor builds the entry's desired layout on model m and checks it
// with ValidateLayout. Errors are positioned at the offending key.
func (e *ConfigEntry) layoutFor(m *GPUModel, file, config string, ei int) (GPULayout, []*FileError) {
	sink := &errorSink{file: file}
	field := entryField(config, ei, keyMigDevices)
	l := GPULayout{MigEnabled: true, Instances: []Instance{}}
	for _, md := range e.MigDevices {
		if md.Count <= 0 {
			continue
		}
		pos := orPos(md.Pos, orPos(e.Source.MigDevices, e.Source.Pos))
		dn, err := ParseDeviceName(md.Name)
		if err != nil {
			sink.add(pos, field, err, "invalid MIG device name %q: %v", md.Name, err)
			continue
		}
		prof, ok := profileByDeviceName(m, dn)
		if !ok {
			if s := suggestProfileName(m, dn); s != "" {
				sink.add(pos, field, errUnknownProfileName, "%q is not a profile of %s; did you mean %s?", md.Name, m.Name, s)
			} else {
				sink.add(pos, field, errUnknownProfileName, "%q is not a profile of %s (it has %s)", md.Name, m.Name, profileNames(m))
			}
			continue
		}
		if !dn.validComputeSplit() {
			sink.add(pos, field, nil, "%q: compute instances of %d slices cannot split a %dg GPU instance (C must equal G, or 2C ≤ G+1)",
				md.Name, dn.ComputeSlices(), dn.G)
			continue
		}
		gis := dn.gpuInstancesFor(md.Count)
		limit := prof.MaxCount
		if limit <= 0 {
			limit = m.MemorySlices
		}
		if gis > limit {
			if dn.SplitsCompute() {
				sink.add(pos, field, nil, "%d × %s need %d %s GPU instances; %s allows at most %d", md.Count, md.Name, gis, prof.Name, m.Name, limit)
			} else {
				sink.add(pos, field, nil, "%d × %s: %s allows at most %d", md.Count, md.Name, m.Name, limit)
			}
			continue
		}
		starts := e.Placement(md.Name)
		ppos := pos
		for _, pp := range e.Placements {
			if pp.Name == md.Name && pp.Pos.IsValid() {
				ppos = pp.Pos
			}
		}
		if len(starts) > gis {
			sink.add(ppos, entryField(config, ei, keyPlacements), nil, "%d placements for %q, but it takes %d GPU instances", len(starts), md.Name, gis)
			continue
		}
		badStart := false
		for _, s := range starts {
			if !prof.ValidPlacement(Placement{Start: s, Size: prof.MemorySlices}) {
				sink.add(ppos, entryField(config, ei, keyPlacements), nil, "%d is not a start of %s on %s (starts: %s)", s, prof.Name, m.Name, profileStarts(prof))
				badStart = true
			}
		}
		if badStart {
			continue
		}
		per := dn.computePerInstance()
		for k := 0; k < gis; k++ {
			in := Instance{Profile: prof.ID}
			if dn.SplitsCompute() {
				n := per
				if k == gis-1 {
					n = md.Count - per*(gis-1)
				}
				in.Compute = Compute{Slices: dn.C, Count: n}
			}
			if k < len(starts) {
				in.Placement = Placement{Start: starts[k], Size: prof.MemorySlices}
			}
			l.Instances = append(l.Instances, in)
		}
	}
	for _, pp := range e.Placements {
		found := false
		for _, md := range e.MigDevices {
			found = found || md.Name == pp.Name
		}
		if !found {
			sink.add(orPos(pp.Pos, e.Source.Placements), entryField(config, ei, keyPlacements), nil, "%q is not a key of mig-devices", pp.Name)
		}
	}
	if len(sink.errs) > 0 {
		return GPULayout{}, sink.errs
	}
	SortInstances(l.Instances)
	if err := ValidateLayout(m, l); err != nil {
		sink.add(orPos(e.Source.MigDevices, e.Source.Pos), field, err, "not possible on %s: %v", m.Name, err)
		return GPULayout{}, sink.errs
	}
	return l, nil
}

// matchesFilters reports whether g matches one of the filters, or there
// are none.
func matchesFilters(filters []DeviceFilter, g GPUState) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if f.Matches(g) {
			return true
		}
	}
	return false
}

// entryRef names an entry, with its line when known.
func entryRef(config string, i int, pos Pos) string {
	if pos.IsValid() {
		return fmt.Sprintf("%s (line %d)", entryField(config, i, ""), pos.Line)
	}
	return entryField(config, i, "")
}

// orPos returns p if it is valid and q otherwise.
func orPos(p, q Pos) Pos {
	if p.IsValid() {
		return p
	}
	return q
}

// gpuLabel names a GPU for messages.
func gpuLabel(g GPUState) string {
	if g.Name != "" {
		return g.Name
	}
	if g.Model != "" {
		return g.Model
	}
	return "unknown model"
}

// describeIndexes lists the node's GPU indices for messages.
func describeIndexes(node NodeState) string {
	if len(node.GPUs) == 0 {
		return "no GPUs"
	}
	idx := make([]int, 0, len(node.GPUs))
	for _, g := range node.GPUs {
		idx = append(idx, g.Index)
	}
	sort.Ints(idx)
	return plural("GPU", idx)
}

// plural formats "GPU 0" or "GPUs 0, 1".
func plural(noun string, idx []int) string {
	parts := make([]string, len(idx))
	for i, x := range idx {
		parts[i] = strconv.Itoa(x)
	}
	if len(idx) == 1 {
		return noun + " " + parts[0]
	}
	return noun + "s " + strings.Join(parts, ", ")
}

// profileNames lists a model's profile names for messages.
func profileNames(m *GPUModel) string {
	names := make([]string, len(m.Profiles))
	for i, p := range m.Profiles {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// profileStarts lists a profile's valid starts for messages.
func profileStarts(p *Profile) string {
	parts := make([]string, len(p.Placements))
	for i, pl := range p.Placements {
		parts[i] = strconv.Itoa(pl.Start)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// cloneLayout copies a layout so GPUs do not share instance slices.
func cloneLayout(l GPULayout) GPULayout {
	l.Instances = append([]Instance{}, l.Instances...)
	return l
}
