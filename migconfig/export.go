package migconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultExportConfig is the config name Export uses when given "", as
// mig-parted export's --config-label does.
const DefaultExportConfig = "current"

// Export describes node's current MIG state as a layout file with one
// config, as mig-parted's export does: one entry per GPU with
// device-filter [<its PCI ID>] and devices [<its index>], entries that are
// otherwise identical merged into one with several indexes, and GPUs with
// MIG disabled (current mode) as mig-enabled: false. Unlike mig-parted it
// always writes the placements extension, so that resolving the exported
// config on the same node rebuilds exactly the same layout; a GPU
// instance split into compute instances is written with its "<c>c." name.
//
// GPUs that are not MIG-capable are left out, and so are MIG-enabled GPUs
// whose model or one of whose instance profiles is not in the catalog:
// a file leaves GPUs it does not name untouched, so applying the export
// never changes them. Export is exact for the layouts the file format can
// express; two that it cannot are a GPU instance holding compute instances
// of different sizes (written as its first compute instance's size) and
// two GPU instances of one profile split into the same C but holding
// counts other than floor(G/C) on all but one of them.
func Export(cat *Catalog, node NodeState, configName string) *File {
	if configName == "" {
		configName = DefaultExportConfig
	}
	var entries []ConfigEntry
	byKey := map[string]int{}
	for _, g := range node.GPUs {
		if !g.MigCapable {
			continue
		}
		e, ok := exportEntry(cat, g)
		if !ok {
			continue
		}
		key := entryKey(e)
		if i, ok := byKey[key]; ok {
			entries[i].Devices.Indexes = append(entries[i].Devices.Indexes, g.Index)
			continue
		}
		byKey[key] = len(entries)
		entries = append(entries, e)
	}
	return &File{
		Version: FileVersion,
		Names:   []string{configName},
		Configs: map[string][]ConfigEntry{configName: entries},
	}
}

// exportEntry describes one GPU; ok is false when it cannot be described.
func exportEntry(cat *Catalog, g GPUState) (ConfigEntry, bool) {
	e := ConfigEntry{
		DeviceFilter: []DeviceFilter{{DeviceID: g.DeviceID}},
		Devices:      Devices{Indexes: []int{g.Index}},
		MigEnabled:   g.Mig.Current,
	}
	if !g.Mig.Current {
		return e, true
	}
	if cat == nil {
		return ConfigEntry{}, false
	}
	m, ok := cat.Lookup(g)
	if !ok {
		return ConfigEntry{}, false
	}
	type gi struct {
		placement Placement
		count     int // compute instances
	}
	groups := map[string][]gi{}
	for _, in := range g.Instances {
		p, ok := m.ProfileByID(in.Profile)
		if !ok {
			return ConfigEntry{}, false
		}
		dn, err := ParseDeviceName(p.Name)
		if err != nil {
			return ConfigEntry{}, false
		}
		c := in.Compute
		if len(in.ComputeInstances) > 0 {
			if oc, ok := ObservedCompute(m, in); ok {
				c = oc
			} else {
				c = Compute{Slices: in.ComputeInstances[0].Slices, Count: len(in.ComputeInstances)}
			}
		}
		c = c.Normalize(dn.G)
		name, count := p.Name, 1
		if c.Slices > 0 && c.Slices < dn.G {
			name, count = fmt.Sprintf("%dc.%s", c.Slices, p.Name), c.Count
		}
		groups[name] = append(groups[name], gi{placement: in.Placement, count: count})
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	e.MigDevices = []MigDevice{}
	for _, n := range names {
		gis := groups[n]
		// Placed instances first; fuller ones first, since Resolve gives
		// the remainder of a split name to its last GPU instance.
		sort.SliceStable(gis, func(i, j int) bool {
			a, b := gis[i], gis[j]
			if a.placement.IsSet() != b.placement.IsSet() {
				return a.placement.IsSet()
			}
			if a.count != b.count {
				return a.count > b.count
			}
			return a.placement.Start < b.placement.Start
		})
		total := 0
		var starts []int
		for _, x := range gis {
			total += x.count
			if x.placement.IsSet() {
				starts = append(starts, x.placement.Start)
			}
		}
		e.MigDevices = append(e.MigDevices, MigDevice{Name: n, Count: total})
		if len(starts) > 0 {
			e.Placements = append(e.Placements, ProfilePlacements{Name: n, Starts: starts})
		}
	}
	return e, true
}

// entryKey is everything about an entry except its devices, to merge
// entries that differ only in their GPU indexes.
func entryKey(e ConfigEntry) string {
	var b strings.Builder
	for _, f := range e.DeviceFilter {
		b.WriteString(f.String())
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, "|%t|", e.MigEnabled)
	for _, d := range e.MigDevices {
		fmt.Fprintf(&b, "%q=%d,", d.Name, d.Count)
	}
	b.WriteByte('|')
	for _, p := range e.Placements {
		fmt.Fprintf(&b, "%q=%v,", p.Name, p.Starts)
	}
	return b.String()
}

// Marshal writes the file in format "yaml" or "json". See MarshalYAML.
func (f *File) Marshal(format string) ([]byte, error) {
	switch strings.ToLower(format) {
	case "yaml", "yml", "":
		return f.MarshalYAML()
	case "json":
		b, err := f.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return nil, fmt.Errorf("migconfig: indenting the layout file: %w", err)
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	default:
		return nil, fmt.Errorf("migconfig: unknown output format %q (want yaml or json)", format)
	}
}

// MarshalYAML writes the file as YAML in mig-parted's layout, keys in a
// stable order (version, mig-configs; in an entry device-filter, devices,
// mig-enabled, mig-devices, placements), configs in Names order. ParseFile
// accepts the result and gives back an equal File. It refuses a file with
// no configs or a config with no entries, which ParseFile would reject.
// It is not a yaml.Marshaler: it returns the encoded bytes.
func (f *File) MarshalYAML() ([]byte, error) {
	if err := f.checkMarshalable(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f.yamlNode()); err != nil {
		return nil, fmt.Errorf("migconfig: encoding the layout file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("migconfig: encoding the layout file: %w", err)
	}
	return buf.Bytes(), nil
}

// MarshalJSON writes the file as JSON with the same keys and order as
// MarshalYAML; ParseFile accepts the result.
func (f *File) MarshalJSON() ([]byte, error) {
	if err := f.checkMarshalable(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"version":`)
	writeJSONString(&b, FileVersion)
	b.WriteString(`,"mig-configs":{`)
	for ci, name := range f.Names {
		if ci > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, name)
		b.WriteString(":[")
		for ei, e := range f.Configs[name] {
			if ei > 0 {
				b.WriteByte(',')
			}
			writeJSONEntry(&b, e)
		}
		b.WriteByte(']')
	}
	b.WriteString("}}")
	return b.Bytes(), nil
}

// checkMarshalable refuses files that ParseFile would reject for their
// shape alone.
func (f *File) checkMarshalable() error {
	if len(f.Names) == 0 {
		return fmt.Errorf("migconfig: cannot write a layout file with no configs")
	}
	seen := map[string]bool{}
	for _, n := range f.Names {
		if seen[n] {
			return fmt.Errorf("migconfig: config %q is listed twice", n)
		}
		seen[n] = true
		if len(f.Configs[n]) == 0 {
			return fmt.Errorf("migconfig: config %q has no entries", n)
		}
	}
	return nil
}

func writeJSONEntry(b *bytes.Buffer, e ConfigEntry) {
	b.WriteByte('{')
	if len(e.DeviceFilter) > 0 {
		b.WriteString(`"device-filter":[`)
		for i, f := range e.DeviceFilter {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, f.String())
		}
		b.WriteString("],")
	}
	b.WriteString(`"devices":`)
	if e.Devices.All {
		b.WriteString(`"all"`)
	} else {
		writeJSONInts(b, e.Devices.Indexes)
	}
	fmt.Fprintf(b, `,"mig-enabled":%t`, e.MigEnabled)
	if e.MigEnabled || len(e.MigDevices) > 0 {
		b.WriteString(`,"mig-devices":{`)
		for i, d := range e.MigDevices {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, d.Name)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Count))
		}
		b.WriteByte('}')
	}
	if len(e.Placements) > 0 {
		b.WriteString(`,"placements":{`)
		for i, p := range e.Placements {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, p.Name)
			b.WriteByte(':')
			writeJSONInts(b, p.Starts)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
}

func writeJSONInts(b *bytes.Buffer, xs []int) {
	b.WriteByte('[')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(x))
	}
	b.WriteByte(']')
}

// writeJSONString writes s as a JSON string that YAML parsers also read
// back unchanged: besides JSON's own escapes it escapes every character
// YAML does not allow raw in a stream or reads as a line break (DEL, C1
// controls, NEL, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF).
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20, r >= 0x7F && r <= 0x9F, r == 0x2028, r == 0x2029, r == 0xFEFF, r == 0xFFFE, r == 0xFFFF:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// yamlNode builds the file's YAML tree.
func (f *File) yamlNode() *yaml.Node {
	configs := &yaml.Node{Kind: yaml.MappingNode}
	for _, name := range f.Names {
		list := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range f.Configs[name] {
			list.Content = append(list.Content, entryNode(e))
		}
		style := yaml.Style(0)
		if name == "<<" { // the encoder would write a merge key
			style = yaml.DoubleQuotedStyle
		}
		configs.Content = append(configs.Content, strNode(name, style), list)
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{
		Kind: yaml.MappingNode,
		Content: []*yaml.Node{
			strNode(keyVersion, 0), strNode(FileVersion, 0),
			strNode(keyMigConfigs, 0), configs,
		},
	}}}
}

func entryNode(e ConfigEntry) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) { n.Content = append(n.Content, strNode(key, 0), v) }
	if len(e.DeviceFilter) > 0 {
		l := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, f := range e.DeviceFilter {
			l.Content = append(l.Content, strNode(f.String(), yaml.DoubleQuotedStyle))
		}
		add(keyDeviceFilter, l)
	}
	if e.Devices.All {
		add(keyDevices, strNode("all", 0))
	} else {
		add(keyDevices, intsNode(e.Devices.Indexes))
	}
	add(keyMigEnabled, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(e.MigEnabled)})
	if e.MigEnabled || len(e.MigDevices) > 0 {
		m := &yaml.Node{Kind: yaml.MappingNode}
		if len(e.MigDevices) == 0 {
			m.Style = yaml.FlowStyle
		}
		for _, d := range e.MigDevices {
			m.Content = append(m.Content, strNode(d.Name, yaml.DoubleQuotedStyle),
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(d.Count)})
		}
		add(keyMigDevices, m)
	}
	if len(e.Placements) > 0 {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, p := range e.Placements {
			m.Content = append(m.Content, strNode(p.Name, yaml.DoubleQuotedStyle), intsNode(p.Starts))
		}
		add(keyPlacements, m)
	}
	return n
}

func strNode(s string, style yaml.Style) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: style}
}

func intsNode(xs []int) *yaml.Node {
	l := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, x := range xs {
		l.Content = append(l.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(x)})
	}
	return l
}
