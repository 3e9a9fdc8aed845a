package migconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// FileVersion is the only layout-file version: "version: v1".
const FileVersion = "v1"

// File is a parsed layout file in mig-parted's format (NVIDIA mig-parted
// v0.15, api/spec/v1):
//
//	version: v1
//	mig-configs:
//	  all-balanced:
//	    - device-filter: ["0x20B010DE", "0x20B110DE"]
//	      devices: all
//	      mig-enabled: true
//	      mig-devices:
//	        "1g.5gb": 2
//	        "2g.10gb": 1
//	        "3g.20gb": 1
//	      placements:            # Tessera extension, optional
//	        "3g.20gb": [4]
//	        "1g.5gb": [0, 1]
//
// Every file mig-parted accepts is accepted, with these exceptions, each a
// file whose meaning was surely not what its author intended: duplicate
// keys, a device-filter that is not a PCI ID, a subsystem qualifier of 0, a
// negative GPU index, a missing or empty mig-configs, and more than one YAML
// document. Counts of 0 are allowed, even when every count is 0.
//
// # The placements extension
//
// An entry may carry a "placements" mapping, which mig-parted does not
// know: from a key of the entry's mig-devices to a list of memory-slice
// start offsets, as nvidia-smi's -lgipp prints them ("3g.20gb": [4] puts
// the 3g instance on memory slices 4–7). A profile may list fewer starts
// than its count; its other instances are placed automatically. For a name
// that splits compute ("1c.3g.20gb") the starts place its GPU instances,
// of which there are ceil(count / floor(G/C)). Each start must be one of the
// profile's placements on the GPU's model, and the placed instances must
// not overlap. Export always writes placements, so that applying an
// exported file rebuilds exactly the layout it was exported from.
type File struct {
	// Path is the file name given to ParseFile; errors name it.
	Path string
	// Version is the file's version, always FileVersion.
	Version string
	// Names are the config names in the order the file lists them.
	Names []string
	// Configs maps each config name to its entries.
	Configs map[string][]ConfigEntry
}

// ConfigNames returns the config names in file order.
func (f *File) ConfigNames() []string {
	return append([]string(nil), f.Names...)
}

// Config returns the entries of the named config.
func (f *File) Config(name string) ([]ConfigEntry, bool) {
	e, ok := f.Configs[name]
	return e, ok
}

// ConfigEntry is one item of a config: which GPUs it selects and what they
// should hold.
type ConfigEntry struct {
	// DeviceFilter limits the entry to GPUs with one of these PCI IDs;
	// empty means any GPU.
	DeviceFilter []DeviceFilter
	// Devices selects GPUs by NVML index, or all of them.
	Devices Devices
	// MigEnabled is the desired MIG mode.
	MigEnabled bool
	// MigDevices are the MIG devices to create, in file order.
	MigDevices []MigDevice
	// Placements are the Tessera extension's explicit placements, in file
	// order.
	Placements []ProfilePlacements
	// Source locates the entry and its fields in the file.
	Source EntrySource
}

// Placement returns the explicit starts for the mig-devices key name.
func (e *ConfigEntry) Placement(name string) []int {
	for _, p := range e.Placements {
		if p.Name == name {
			return p.Starts
		}
	}
	return nil
}

// EntrySource is where an entry and its fields are in the file; zero
// positions are unknown (an entry built in Go rather than parsed).
type EntrySource struct {
	// Pos is the position of the entry's mapping.
	Pos Pos
	// DeviceFilter, Devices, MigEnabled, MigDevices and Placements are the
	// positions of those keys.
	DeviceFilter, Devices, MigEnabled, MigDevices, Placements Pos
}

// DeviceFilter matches GPUs by PCI ID, as mig-parted's device-filter values
// "0xDDDDVVVV" (device << 16 | vendor) and "0xDDDDVVVV:0xSSSSVVVV" (with
// the subsystem device and vendor) do.
type DeviceFilter struct {
	// DeviceID is compared with GPUState.DeviceID.
	DeviceID uint32
	// SubsystemID is compared with GPUState.SubsystemID; 0 matches any.
	SubsystemID uint32
}

// String formats the filter as mig-parted writes it: "0x20B010DE" or
// "0x20B010DE:0x145F10DE".
func (d DeviceFilter) String() string {
	if d.SubsystemID != 0 {
		return fmt.Sprintf("0x%08X:0x%08X", d.DeviceID, d.SubsystemID)
	}
	return fmt.Sprintf("0x%08X", d.DeviceID)
}

// Matches reports whether the GPU has the filter's PCI IDs.
func (d DeviceFilter) Matches(g GPUState) bool {
	return g.DeviceID == d.DeviceID && (d.SubsystemID == 0 || g.SubsystemID == d.SubsystemID)
}

// ParseDeviceFilter parses a device-filter value: a 32-bit number in Go
// syntax, normally hex ("0x20B010DE", any case), optionally followed by ':'
// and a subsystem ID in the same syntax. mig-parted parses it the same way.
func ParseDeviceFilter(s string) (DeviceFilter, error) {
	main, sub, hasSub := strings.Cut(s, ":")
	if strings.Contains(sub, ":") {
		return DeviceFilter{}, fmt.Errorf("%q: expected 0xDDDDVVVV or 0xDDDDVVVV:0xSSSSVVVV", s)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(main), 0, 32)
	if err != nil {
		return DeviceFilter{}, fmt.Errorf("%q is not a PCI ID (expected 0xDDDDVVVV, device << 16 | vendor)", s)
	}
	f := DeviceFilter{DeviceID: uint32(id)}
	if hasSub {
		sid, err := strconv.ParseUint(strings.TrimSpace(sub), 0, 32)
		if err != nil {
			return DeviceFilter{}, fmt.Errorf("%q: subsystem %q is not a PCI ID (expected 0xSSSSVVVV)", s, sub)
		}
		if sid == 0 {
			return DeviceFilter{}, fmt.Errorf("%q: subsystem ID 0 matches no GPU", s)
		}
		f.SubsystemID = uint32(sid)
	}
	return f, nil
}

// Devices selects GPUs by index: All, or the NVML indices in Indexes.
type Devices struct {
	// All selects every MIG-capable GPU ("devices: all").
	All bool
	// Indexes are the selected NVML indices when All is false.
	Indexes []int
}

// Selects reports whether the GPU with NVML index i is selected.
func (d Devices) Selects(i int) bool {
	if d.All {
		return true
	}
	for _, x := range d.Indexes {
		if x == i {
			return true
		}
	}
	return false
}

// MigDevice is one key of mig-devices: a device name and how many.
type MigDevice struct {
	// Name is the key as written ("1g.5gb", "1c.3g.20gb", "1g.10gb+me").
	Name string
	// Count is how many such MIG devices; 0 is allowed and means none.
	Count int
	// Pos is the position of the key.
	Pos Pos
}

// ProfilePlacements is one key of the placements extension: explicit
// memory-slice starts for the GPU instances of one mig-devices key.
type ProfilePlacements struct {
	// Name is a key of the entry's mig-devices.
	Name string
	// Starts are memory-slice start offsets, one per GPU instance.
	Starts []int
	// Pos is the position of the key.
	Pos Pos
}

// Field names of a config entry.
const (
	keyVersion      = "version"
	keyMigConfigs   = "mig-configs"
	keyDeviceFilter = "device-filter"
	keyDevices      = "devices"
	keyMigEnabled   = "mig-enabled"
	keyMigDevices   = "mig-devices"
	keyPlacements   = "placements"
)

// entryKeys returns the keys a config entry may have, in file order.
func entryKeys() []string {
	return []string{keyDeviceFilter, keyDevices, keyMigEnabled, keyMigDevices, keyPlacements}
}

// entryField is the field path of key in entry i of config.
func entryField(config string, i int, key string) string {
	if key == "" {
		return fmt.Sprintf("%s.%s[%d]", keyMigConfigs, config, i)
	}
	return fmt.Sprintf("%s.%s[%d].%s", keyMigConfigs, config, i, key)
}

// yamlLineError matches yaml's "yaml: line N: msg" errors.
var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// splitYAMLError returns the message of a yaml.v3 error without its
// "yaml: " and "line N: " prefixes, and N (0 when there is none).
func splitYAMLError(err error) (msg string, line int) {
	msg = err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		return m[2], line
	}
	return strings.TrimPrefix(msg, "yaml: "), 0
}

// MaxConfigNameLen is the longest config name ParseFile accepts, in bytes.
// Config names are node-label values (nvidia.com/mig.config, at most 63
// characters); the bound keeps every name writable as a YAML simple key.
const MaxConfigNameLen = 128

// parseBudget bounds the nodes visited while parsing, so that aliases
// cannot make a small file expensive.
const parseBudget = 1 << 20

// maxMergeDepth bounds nested YAML merge keys ("<<: *base").
const maxMergeDepth = 16

// ParseFile parses a layout file in mig-parted's format (YAML or JSON).
// name is used in error messages. It reports every problem it finds, each
// as a *FileError with line, column and field path, in an ErrorList; it
// never panics. Every error has a line (problems with the whole file, such
// as an empty one, are at line 1), and a column except in UTF-16 files. A
// YAML syntax error is reported at the problem itself — the tab, the
// unclosed quote or bracket, the misplaced key or ':' — rather than at the
// line yaml.v3 names, which is the start of the enclosing construct. The result is not checked against a GPU catalog: use
// Validate or Resolve for that.
func ParseFile(name string, data []byte) (*File, error) {
	p := &fileParser{errorSink: errorSink{file: name}, budget: parseBudget, data: data}
	root := p.decode(data)
	if root == nil {
		return nil, p.errs.Err()
	}
	f := p.file(root)
	if err := p.errs.Err(); err != nil {
		return nil, err
	}
	f.Path = name
	return f, nil
}

// fileParser walks the yaml.Node tree of one file.
type fileParser struct {
	errorSink
	data       []byte // the file, to locate YAML syntax errors in
	budget     int
	overBudget bool
}

// filePos is where errors about the file as a whole are reported: its
// first line, so that every error ParseFile returns has a line.
var filePos = Pos{Line: 1, Column: 1}

// decode parses the YAML and returns the root node of its only document,
// or nil after recording why there is none.
func (p *fileParser) decode(data []byte) (root *yaml.Node) {
	if len(bytes.TrimSpace(data)) == 0 {
		p.add(filePos, "", nil, "file is empty; expected version: v1 and mig-configs")
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := safeDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(filePos, "", nil, "file is empty; expected version: v1 and mig-configs")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := safeDecode(dec, &next); {
	case err == nil:
		p.add(Pos{Line: next.Line, Column: next.Column}, "", nil, "a layout file holds one YAML document; found a second one")
	case errors.Is(err, io.EOF):
	default:
		p.yamlError(err)
	}
	if len(doc.Content) == 0 || doc.Content[0] == nil {
		p.add(filePos, "", nil, "file is empty; expected version: v1 and mig-configs")
		return nil
	}
	root = p.deref(doc.Content[0], "")
	if root == nil {
		return nil
	}
	if isNull(root) {
		p.add(filePos, "", nil, "file is empty; expected version: v1 and mig-configs")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.add(posOf(root), "", nil, "expected a mapping with version and mig-configs, found %s", describe(root))
		return nil
	}
	return root
}

// safeDecode runs the YAML decoder, turning a panic inside it into an
// error: the file is input from users and the decoder is not ours.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

// yamlError records a YAML syntax error at the line and column of the
// problem (see locateYAMLError).
func (p *fileParser) yamlError(err error) {
	msg, line := splitYAMLError(err)
	pos, hint := locateYAMLError(p.data, msg, line)
	p.add(pos, "", err, "invalid YAML: %s%s", msg, hint)
}

// spend takes one unit of the parse budget and reports whether any is
// left; the first time it runs out it records an error.
func (p *fileParser) spend(n *yaml.Node, field string) bool {
	if p.budget > 0 {
		p.budget--
		return true
	}
	if !p.overBudget {
		p.overBudget = true
		p.add(posOf(n), field, nil, "file is too complex: its aliases expand to more than %d nodes", parseBudget)
	}
	return false
}

// deref follows aliases; it returns nil (after recording an error) for a
// broken alias or when the budget is spent.
func (p *fileParser) deref(n *yaml.Node, field string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxMergeDepth || n.Alias == nil {
			p.add(posOf(n), field, nil, "alias %q cannot be resolved", n.Value)
			return nil
		}
		n = n.Alias
	}
	if n == nil || !p.spend(n, field) {
		return nil
	}
	return n
}

// pair is one key and value of a mapping.
type pair struct {
	key   *yaml.Node
	name  string
	value *yaml.Node
}

// pairs returns the keys and values of mapping n in order, with YAML merge
// keys ("<<") expanded: explicit keys win over merged ones, and earlier
// merged mappings over later ones. A repeated explicit key is an error.
func (p *fileParser) pairs(n *yaml.Node, field string) []pair {
	return p.pairsDepth(n, field, 0)
}

func (p *fileParser) pairsDepth(n *yaml.Node, field string, depth int) []pair {
	if depth > maxMergeDepth {
		p.add(posOf(n), field, nil, "merge keys (<<) nested too deeply")
		return nil
	}
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := p.deref(n.Content[i], field)
		if k == nil {
			return out
		}
		v := n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, p.mergePairs(v, field, depth)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.add(posOf(k), field, nil, "mapping keys must be strings, found %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(posOf(k), field, nil, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{key: k, name: k.Value, value: v})
	}
	for _, m := range merged {
		if _, ok := seen[m.name]; ok {
			continue
		}
		seen[m.name] = m.key
		out = append(out, m)
	}
	return out
}

// mergePairs returns the pairs a merge key's value contributes.
func (p *fileParser) mergePairs(v *yaml.Node, field string, depth int) []pair {
	v = p.deref(v, field)
	if v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return p.pairsDepth(v, field, depth+1)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range v.Content {
			m := p.deref(item, field)
			if m == nil {
				return out
			}
			if m.Kind != yaml.MappingNode {
				p.add(posOf(m), field, nil, "a merge key (<<) takes mappings, found %s", describe(m))
				continue
			}
			for _, pr := range p.pairsDepth(m, field, depth+1) {
				if !seen[pr.name] {
					seen[pr.name] = true
					out = append(out, pr)
				}
			}
		}
		return out
	default:
		p.add(posOf(v), field, nil, "a merge key (<<) takes a mapping, found %s", describe(v))
		return nil
	}
}

// file parses the root mapping.
func (p *fileParser) file(root *yaml.Node) *File {
	f := &File{Configs: map[string][]ConfigEntry{}}
	var version, configs *pair
	for _, pr := range p.pairs(root, "") {
		switch pr.name {
		case keyVersion:
			version = &pr
		case keyMigConfigs:
			configs = &pr
		default:
			p.unknownKey(pr.key, "", pr.name, []string{keyVersion, keyMigConfigs})
		}
	}
	if version == nil {
		p.add(posOf(root), keyVersion, nil, "missing; expected version: %s", FileVersion)
	} else if v := p.deref(version.value, keyVersion); v != nil {
		if v.Kind != yaml.ScalarNode || v.Value != FileVersion || isNull(v) {
			p.add(posOf(v), keyVersion, nil, "unknown version %s; expected %s", describe(v), FileVersion)
		} else {
			f.Version = v.Value
		}
	}
	if configs == nil {
		p.add(posOf(root), keyMigConfigs, nil, "missing; at least one config is required")
		return f
	}
	p.configs(f, configs)
	return f
}

// configs parses mig-configs.
func (p *fileParser) configs(f *File, pr *pair) {
	n := p.deref(pr.value, keyMigConfigs)
	if n == nil {
		return
	}
	if isNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
		p.add(posOf(pr.key), keyMigConfigs, nil, "at least one config is required")
		return
	}
	if n.Kind != yaml.MappingNode {
		p.add(posOf(n), keyMigConfigs, nil, "expected a mapping from config names to lists of entries, found %s", describe(n))
		return
	}
	for _, c := range p.pairs(n, keyMigConfigs) {
		name := c.name
		if len(name) > MaxConfigNameLen {
			p.add(posOf(c.key), keyMigConfigs, nil, "config name %s is %d bytes long; at most %d are allowed", describe(c.key), len(name), MaxConfigNameLen)
			continue
		}
		field := keyMigConfigs + "." + name
		list := p.deref(c.value, field)
		if list == nil {
			continue
		}
		f.Names = append(f.Names, name)
		if isNull(list) || (list.Kind == yaml.SequenceNode && len(list.Content) == 0) {
			p.add(posOf(c.key), field, nil, "at least one entry is required")
			continue
		}
		if list.Kind != yaml.SequenceNode {
			p.add(posOf(list), field, nil, "expected a list of entries, found %s", describe(list))
			continue
		}
		entries := make([]ConfigEntry, 0, len(list.Content))
		for i, item := range list.Content {
			item = p.deref(item, entryField(name, i, ""))
			if item == nil {
				continue
			}
			if item.Kind != yaml.MappingNode {
				p.add(posOf(item), entryField(name, i, ""), nil, "expected a mapping with devices, mig-enabled and mig-devices, found %s", describe(item))
				continue
			}
			entries = append(entries, p.entry(item, name, i))
		}
		f.Configs[name] = entries
	}
}

// entry parses one item of a config.
func (p *fileParser) entry(n *yaml.Node, config string, idx int) ConfigEntry {
	e := ConfigEntry{Source: EntrySource{Pos: posOf(n)}}
	fields := map[string]pair{}
	for _, pr := range p.pairs(n, entryField(config, idx, "")) {
		switch pr.name {
		case keyDeviceFilter, keyDevices, keyMigEnabled, keyMigDevices, keyPlacements:
			fields[pr.name] = pr
		default:
			p.unknownKey(pr.key, entryField(config, idx, ""), pr.name, entryKeys())
		}
	}
	field := func(key string) string { return entryField(config, idx, key) }

	enabledOK := false
	if pr, ok := fields[keyMigEnabled]; ok {
		e.Source.MigEnabled = posOf(pr.key)
		if v := p.deref(pr.value, field(keyMigEnabled)); v != nil {
			b, ok := yamlBool(v)
			if ok {
				e.MigEnabled, enabledOK = b, true
			} else {
				p.add(posOf(v), field(keyMigEnabled), nil, "expected true or false, found %s", describe(v))
			}
		}
	} else {
		p.add(posOf(n), field(keyMigEnabled), nil, "missing required field")
	}

	if pr, ok := fields[keyDevices]; ok {
		e.Source.Devices = posOf(pr.key)
		e.Devices = p.devices(pr.value, field(keyDevices))
	} else {
		p.add(posOf(n), field(keyDevices), nil, "missing required field (all, or a list of GPU indices)")
	}

	if pr, ok := fields[keyDeviceFilter]; ok {
		e.Source.DeviceFilter = posOf(pr.key)
		e.DeviceFilter = p.deviceFilter(pr.value, field(keyDeviceFilter))
	}

	migDevicesOK := true // no mig-devices is a valid empty set
	if pr, ok := fields[keyMigDevices]; ok {
		e.Source.MigDevices = posOf(pr.key)
		var present bool
		e.MigDevices, present, migDevicesOK = p.migDevices(pr.value, field(keyMigDevices))
		switch {
		case enabledOK && e.MigEnabled && !present:
			p.add(posOf(pr.key), field(keyMigDevices), nil, "is null; it is required when mig-enabled is true (use {} for no MIG devices)")
		case enabledOK && !e.MigEnabled && len(e.MigDevices) > 0:
			p.add(posOf(pr.key), field(keyMigDevices), nil, "must be empty when mig-enabled is false")
		}
	} else if enabledOK && e.MigEnabled {
		p.add(posOf(n), field(keyMigDevices), nil, "missing; it is required when mig-enabled is true (use {} for no MIG devices)")
	}

	if pr, ok := fields[keyPlacements]; ok {
		e.Source.Placements = posOf(pr.key)
		e.Placements = p.placements(pr.value, field(keyPlacements), e.MigDevices, migDevicesOK)
	}
	return e
}

// unknownKey records an unknown field, suggesting the closest known one.
func (p *fileParser) unknownKey(k *yaml.Node, field, name string, known []string) {
	if s := Suggest(name, known); s != "" {
		p.add(posOf(k), field, nil, "unknown field %q; did you mean %s?", name, s)
		return
	}
	p.add(posOf(k), field, nil, "unknown field %q; expected one of %s", name, strings.Join(known, ", "))
}

// devices parses "devices": "all" or a list of GPU indices.
func (p *fileParser) devices(v *yaml.Node, field string) Devices {
	v = p.deref(v, field)
	if v == nil {
		return Devices{}
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Value == "all" && v.Tag == "!!str" {
			return Devices{All: true}
		}
	case yaml.SequenceNode:
		d := Devices{Indexes: make([]int, 0, len(v.Content))}
		for _, item := range v.Content {
			item = p.deref(item, field)
			if item == nil {
				return d
			}
			i, ok := yamlInt(item)
			if !ok || i < 0 {
				p.add(posOf(item), field, nil, "expected a GPU index (an integer ≥ 0), found %s", describe(item))
				continue
			}
			d.Indexes = append(d.Indexes, i)
		}
		return d
	}
	p.add(posOf(v), field, nil, "expected all or a list of GPU indices, found %s", describe(v))
	return Devices{}
}

// deviceFilter parses "device-filter": one PCI ID or a list of them.
func (p *fileParser) deviceFilter(v *yaml.Node, field string) []DeviceFilter {
	v = p.deref(v, field)
	if v == nil || isNull(v) {
		return nil
	}
	one := func(n *yaml.Node) (DeviceFilter, bool) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			p.add(posOf(n), field, nil, "expected a PCI ID such as \"0x20B010DE\", found %s", describe(n))
			return DeviceFilter{}, false
		}
		df, err := ParseDeviceFilter(n.Value)
		if err != nil {
			p.add(posOf(n), field, err, "%v", err)
			return DeviceFilter{}, false
		}
		return df, true
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Value == "" {
			return nil // mig-parted treats "" as no filter
		}
		if df, ok := one(v); ok {
			return []DeviceFilter{df}
		}
		return nil
	case yaml.SequenceNode:
		var out []DeviceFilter
		for _, item := range v.Content {
			item = p.deref(item, field)
			if item == nil {
				return out
			}
			if df, ok := one(item); ok {
				out = append(out, df)
			}
		}
		return out
	}
	p.add(posOf(v), field, nil, "expected a PCI ID or a list of PCI IDs, found %s", describe(v))
	return nil
}

// migDevices parses "mig-devices". present is false when the value is
// null; ok is false when any key or count was wrong.
func (p *fileParser) migDevices(v *yaml.Node, field string) (devs []MigDevice, present, ok bool) {
	v = p.deref(v, field)
	if v == nil {
		return nil, true, false
	}
	if isNull(v) {
		return nil, false, true
	}
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), field, nil, "expected a mapping from MIG device names to counts, found %s", describe(v))
		return nil, true, false
	}
	ok = true
	devs = []MigDevice{}
	for _, pr := range p.pairs(v, field) {
		if _, err := ParseDeviceName(pr.name); err != nil {
			p.add(posOf(pr.key), field, err, "invalid MIG device name %q: %v", pr.name, err)
			ok = false
			continue
		}
		c := p.deref(pr.value, field)
		if c == nil {
			return devs, true, false
		}
		n, isInt := yamlInt(c)
		if !isInt || n < 0 {
			p.add(posOf(c), field, nil, "count of %q must be an integer ≥ 0, found %s", pr.name, describe(c))
			ok = false
			continue
		}
		devs = append(devs, MigDevice{Name: pr.name, Count: n, Pos: posOf(pr.key)})
	}
	return devs, true, ok
}

// placements parses the Tessera "placements" extension.
func (p *fileParser) placements(v *yaml.Node, field string, devs []MigDevice, devsOK bool) []ProfilePlacements {
	v = p.deref(v, field)
	if v == nil || isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), field, nil, "expected a mapping from mig-devices names to lists of memory-slice starts, found %s", describe(v))
		return nil
	}
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = d.Name
	}
	var out []ProfilePlacements
	for _, pr := range p.pairs(v, field) {
		var dev *MigDevice
		for i := range devs {
			if devs[i].Name == pr.name {
				dev = &devs[i]
			}
		}
		if dev == nil && devsOK {
			if s := Suggest(pr.name, names); s != "" {
				p.add(posOf(pr.key), field, nil, "%q is not a key of mig-devices; did you mean %s?", pr.name, s)
			} else {
				p.add(posOf(pr.key), field, nil, "%q is not a key of mig-devices", pr.name)
			}
			continue
		}
		list := p.deref(pr.value, field)
		if list == nil {
			return out
		}
		if isNull(list) {
			list = &yaml.Node{Kind: yaml.SequenceNode}
		}
		if list.Kind != yaml.SequenceNode {
			p.add(posOf(list), field, nil, "placements of %q must be a list of memory-slice starts, found %s", pr.name, describe(list))
			continue
		}
		pp := ProfilePlacements{Name: pr.name, Starts: make([]int, 0, len(list.Content)), Pos: posOf(pr.key)}
		good := true
		seen := map[int]bool{}
		for _, item := range list.Content {
			item = p.deref(item, field)
			if item == nil {
				return out
			}
			s, ok := yamlInt(item)
			if !ok || s < 0 {
				p.add(posOf(item), field, nil, "placement of %q must be a memory-slice start (an integer ≥ 0), found %s", pr.name, describe(item))
				good = false
				continue
			}
			if seen[s] {
				p.add(posOf(item), field, nil, "placement %d of %q is listed twice", s, pr.name)
				good = false
				continue
			}
			seen[s] = true
			pp.Starts = append(pp.Starts, s)
		}
		if !good {
			continue
		}
		if dev != nil {
			dn, err := ParseDeviceName(dev.Name)
			if err == nil {
				if gis := dn.gpuInstancesFor(dev.Count); len(pp.Starts) > gis {
					if dn.SplitsCompute() {
						p.add(posOf(pr.key), field, nil, "%d placements for %q, but its %d compute instances take %d GPU instances", len(pp.Starts), pr.name, dev.Count, gis)
					} else {
						p.add(posOf(pr.key), field, nil, "%d placements for %q, but mig-devices asks for %d", len(pp.Starts), pr.name, dev.Count)
					}
					continue
				}
			}
		}
		out = append(out, pp)
	}
	return out
}

// isNull reports whether n is a YAML null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// posOf returns the node's position.
func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Column: n.Column}
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		v := []rune(n.Value)
		if len(v) > 40 {
			return strconv.Quote(string(v[:40]) + "…")
		}
		return strconv.Quote(string(v))
	default:
		return "an unexpected node"
	}
}

// yamlInt returns the value of an integer scalar (decimal, 0x, 0o, as
// YAML spells them, or a float with an integral value, as mig-parted's
// YAML-to-JSON conversion accepts). Quoted strings are not integers.
func yamlInt(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	switch n.Tag {
	case "!!int":
		var v int
		if err := n.Decode(&v); err != nil {
			return 0, false
		}
		return v, true
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			return 0, false
		}
		return int(f), true
	}
	return 0, false
}

// yamlBool returns the value of a boolean scalar. Besides YAML 1.2's
// true/false it accepts YAML 1.1's yes/no/on/off/y/n, as mig-parted (whose
// YAML parser is YAML 1.1) does; quoted strings are not booleans.
func yamlBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false, false
	}
	if n.Tag != "!!bool" && n.Tag != "!!str" {
		return false, false
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true, true
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N":
		return false, true
	}
	return false, false
}

// yamlParserErrors are the beginnings of yaml.v3's parser messages, as
// opposed to its scanner's. yaml.v3 (v3.0.4) reports a parser error at the
// 0-based line of the construct around the problem (one less than the line
// it means) and a scanner error at the 1-based line of that construct; both
// report no line when the construct begins on the first line, and neither
// reports a column.
var yamlParserErrors = []string{
	"did not find expected",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// yamlReaderErrors are yaml.v3's messages for UTF-8 input that is not
// YAML text; they carry no line at all.
var yamlReaderErrors = []string{
	"invalid leading UTF-8 octet",
	"incomplete UTF-8 octet sequence",
	"invalid trailing UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid Unicode character",
	"control characters are not allowed",
}

// yamlUnknownAnchor matches the error for an alias without its anchor.
var yamlUnknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// Bounds on the work locateYAMLError does: the number of prefixes of the
// file it decodes, and their total size.
const (
	maxLocateDecodes = 256
	maxLocateBytes   = 4 << 20
)

// locateYAMLError returns the position of a YAML syntax error in data,
// given yaml.v3's message (without prefixes) and line (0 when it gave
// none), and a hint to add to the message, or "".
//
// yaml.v3 gives no column and a line that is often not the problem's (see
// yamlParserErrors), so the position is found again:
//   - bytes that are not YAML text are found by scanning the file;
//   - an alias without an anchor is found by its name;
//   - otherwise the line is the first, from the one yaml.v3's line means
//     on, where the file cut after that line fails with the same message:
//     the line where the parser meets the problem, or where the unclosed
//     quote or bracket it ran off the end in begins. The column is that of
//     the character the message is about on that line (the tab or other
//     character that cannot start a token, the unclosed quote or bracket,
//     the misplaced ':'), or else of the line's first token.
//
// The result always has a line; UTF-16 files, whose bytes are not their
// characters, get no column.
func locateYAMLError(data []byte, msg string, line int) (pos Pos, hint string) {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return Pos{Line: max(line, 1)}, ""
	}
	lines := splitLines(data)
	if len(lines) == 0 {
		return filePos, ""
	}
	if hasPrefixAny(msg, yamlReaderErrors) {
		if off := firstNonText(data); off >= 0 {
			return offsetPos(data, lines, off), ""
		}
	}
	if m := yamlUnknownAnchor.FindStringSubmatch(msg); m != nil {
		if off := findAlias(data, m[1]); off >= 0 {
			return offsetPos(data, lines, off), ""
		}
	}
	lo := max(line, 1)
	if line > 0 && hasPrefixAny(msg, yamlParserErrors) {
		lo = line + 1
	}
	lo = min(lo, len(lines))
	at := lo
	decodes, spent := 0, 0
	for k := lo; k <= len(lines) && decodes < maxLocateDecodes && spent < maxLocateBytes; k++ {
		prefix := data[:lines[k-1].next]
		decodes++
		spent += len(prefix)
		if decodeErrorMsg(prefix) == msg {
			at = k
			break
		}
	}
	l := lines[at-1]
	col, hint := yamlErrorColumn([]rune(string(data[l.start:l.end])), msg)
	return Pos{Line: at, Column: col}, hint
}

// decodeErrorMsg decodes every document of data and returns the message
// of the first error (as splitYAMLError returns it), or "" if there is none.
func decodeErrorMsg(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for range len(data) + 2 {
		var n yaml.Node
		err := safeDecode(dec, &n)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			msg, _ := splitYAMLError(err)
			return msg
		}
	}
	return ""
}

// yamlErrorColumn returns the 1-based column, on the line text, of the
// character a YAML error with message msg is about, and a hint for the
// message.
func yamlErrorColumn(text []rune, msg string) (int, string) {
	t := scanYAMLLine(text)
	switch {
	case msg == "found character that cannot start any token" || strings.Contains(msg, "tab character"):
		if t.badStart >= 0 {
			if text[t.badStart] == '\t' && !strings.Contains(msg, "tab") {
				return t.badStart + 1, " (a tab; YAML indents with spaces)"
			}
			return t.badStart + 1, ""
		}
	case msg == "found unexpected end of stream":
		if t.openQuote >= 0 {
			return t.openQuote + 1, " (the quoted string that starts here is never closed)"
		}
	case msg == "found unexpected document indicator":
		if t.openQuote >= 0 {
			return t.openQuote + 1, ""
		}
	case msg == "did not find expected ',' or '}'":
		if i := t.lastOpen(text, '{'); i >= 0 {
			return i + 1, ""
		}
	case msg == "did not find expected ',' or ']'":
		if i := t.lastOpen(text, '['); i >= 0 {
			return i + 1, ""
		}
	case msg == "did not find expected node content":
		if t.strayClose >= 0 {
			return t.strayClose + 1, ""
		}
		if len(t.opens) > 0 {
			return t.opens[len(t.opens)-1] + 1, ""
		}
	case msg == "mapping values are not allowed in this context":
		// The first ':' is allowed unless it is the only one (a key that
		// continues the line above); the second never is.
		if len(t.colons) > 1 {
			return t.colons[1] + 1, ""
		}
		if len(t.colons) == 1 {
			return t.colons[0] + 1, ""
		}
	}
	if t.firstToken >= 0 {
		return t.firstToken + 1, ""
	}
	return 1, ""
}

// yamlLine is what scanYAMLLine finds on one line; indexes are rune
// indexes into the line, -1 when there is none.
type yamlLine struct {
	firstToken int   // the first character that is not a space or tab
	badStart   int   // the first tab, '@', '`' or '%' where a token may begin (outside brackets for a tab)
	openQuote  int   // a quote that the line does not close
	opens      []int // '[' and '{' the line does not close
	strayClose int   // the first ']' or '}' that closes nothing on the line
	colons     []int // the ':' that are mapping-value indicators
}

// lastOpen returns the last unclosed bracket c, or -1.
func (t *yamlLine) lastOpen(text []rune, c rune) int {
	for i := len(t.opens) - 1; i >= 0; i-- {
		if text[t.opens[i]] == c {
			return t.opens[i]
		}
	}
	return -1
}

// scanYAMLLine tokenizes one line of YAML roughly: enough to find the
// characters syntax errors are about. It skips quoted strings and stops at
// a comment.
func scanYAMLLine(text []rune) yamlLine {
	t := yamlLine{firstToken: -1, badStart: -1, openQuote: -1, strayClose: -1}
	blankAt := func(i int) bool { return i >= len(text) || text[i] == ' ' || text[i] == '\t' }
	boundary := true // a token may begin here
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == ' ' {
			boundary = true
			continue
		}
		if c == '\t' {
			if boundary && len(t.opens) == 0 && t.badStart < 0 {
				t.badStart = i
			}
			boundary = true
			continue
		}
		if t.firstToken < 0 {
			t.firstToken = i
		}
		switch {
		case c == '#' && boundary:
			return t
		case (c == '"' || c == '\'') && boundary:
			j := closingQuote(text, i)
			if j < 0 {
				t.openQuote = i
				return t
			}
			i = j
		case c == '[' || c == '{':
			t.opens = append(t.opens, i)
			boundary = true
			continue
		case c == ']' || c == '}':
			if n := len(t.opens); n > 0 && text[t.opens[n-1]] == map[rune]rune{']': '[', '}': '{'}[c] {
				t.opens = t.opens[:n-1]
			} else if t.strayClose < 0 {
				t.strayClose = i
			}
		case c == ',' && len(t.opens) > 0:
			boundary = true
			continue
		case c == ':' && (blankAt(i+1) || (len(t.opens) > 0 && strings.ContainsRune(",[]{}", text[i+1]))):
			t.colons = append(t.colons, i)
			boundary = true
			continue
		case (c == '-' || c == '?') && boundary && blankAt(i+1):
			boundary = true
			continue
		case (c == '@' || c == '`' || c == '%') && boundary:
			if t.badStart < 0 {
				t.badStart = i
			}
		}
		boundary = false
	}
	return t
}

// closingQuote returns the index of the quote that closes the one at
// text[open], or -1 if the line does not close it.
func closingQuote(text []rune, open int) int {
	q := text[open]
	for j := open + 1; j < len(text); j++ {
		switch {
		case q == '"' && text[j] == '\\':
			j++
		case text[j] == q && q == '\'' && j+1 < len(text) && text[j+1] == '\'':
			j++
		case text[j] == q:
			return j
		}
	}
	return -1
}

// lineSpan is one line of a file: its text is data[start:end], and the
// next line begins at next (after the line break).
type lineSpan struct{ start, end, next int }

// splitLines splits data into lines at the line breaks YAML knows (LF,
// CR LF, CR, NEL, LS, PS), so that line numbers agree with yaml.v3's.
func splitLines(data []byte) []lineSpan {
	var out []lineSpan
	start := 0
	for i := 0; i < len(data); {
		w := lineBreakLen(data[i:])
		if w == 0 {
			i++
			continue
		}
		out = append(out, lineSpan{start: start, end: i, next: i + w})
		i += w
		start = i
	}
	if start < len(data) {
		out = append(out, lineSpan{start: start, end: len(data), next: len(data)})
	}
	return out
}

// lineBreakLen returns the length of the line break at the start of b, or 0.
func lineBreakLen(b []byte) int {
	switch {
	case len(b) >= 2 && b[0] == '\r' && b[1] == '\n':
		return 2
	case b[0] == '\r' || b[0] == '\n':
		return 1
	case bytes.HasPrefix(b, []byte("\u0085")):
		return 2
	case bytes.HasPrefix(b, []byte("\u2028")), bytes.HasPrefix(b, []byte("\u2029")):
		return 3
	}
	return 0
}

// offsetPos returns the position of byte offset off of data.
func offsetPos(data []byte, lines []lineSpan, off int) Pos {
	for i, l := range lines {
		if off < l.next || i == len(lines)-1 {
			return Pos{Line: i + 1, Column: utf8.RuneCount(data[l.start:min(off, l.end)]) + 1}
		}
	}
	return filePos
}

// firstNonText returns the offset of the first byte of data that is not
// UTF-8 or is a character YAML does not allow in a file, or -1.
func firstNonText(data []byte) int {
	for i := 0; i < len(data); {
		r, w := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && w <= 1 {
			return i
		}
		if !yamlAllowedRune(r) {
			return i
		}
		i += w
	}
	return -1
}

// yamlAllowedRune reports whether YAML allows r in a file (YAML 1.2
// c-printable, as yaml.v3 checks it).
func yamlAllowedRune(r rune) bool {
	switch {
	case r == 0x09, r == 0x0A, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85,
		r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// findAlias returns the offset of the first alias "*name" in data, or -1.
func findAlias(data []byte, name string) int {
	alias := []byte("*" + name)
	for from := 0; from < len(data); {
		i := bytes.Index(data[from:], alias)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(alias)
		before := i == 0 || bytes.IndexByte([]byte(" \t\r\n[{,"), data[i-1]) >= 0
		after := end == len(data) || bytes.IndexByte([]byte(" \t\r\n]},"), data[end]) >= 0
		if before && after {
			return i
		}
		from = i + 1
	}
	return -1
}

// hasPrefixAny reports whether s begins with one of prefixes.
func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
