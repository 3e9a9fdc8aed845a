package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tessera-gpu/tessera/migconfig"
	"go.yaml.in/yaml/v3"
)

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// writeStructured writes v as JSON or YAML. YAML goes through JSON so both
// use the same field names.
func writeStructured(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	switch format {
	case "json":
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case "yaml":
		var generic any
		if err := json.Unmarshal(data, &generic); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		out, err := yaml.Marshal(generic)
		if err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		_, err = w.Write(out)
		return err
	default:
		return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or yaml", format))
	}
}

// printNode prints one line per GPU: index, model, MIG mode and its
// instances with placements and GPU-instance IDs.
func printNode(w io.Writer, cat *migconfig.Catalog, state migconfig.NodeState) error {
	t := newTable(w, "GPU", "MODEL", "MIG", "INSTANCES (profile@start:size/GI)")
	for _, g := range state.GPUs {
		model := g.Model
		if model == "" {
			model = g.Name
		}
		t.row(fmt.Sprint(g.Index), model, migModeString(g.Mig), instancesString(cat, g))
	}
	return t.flush()
}

func migModeString(m migconfig.MigMode) string {
	switch {
	case m.Current && m.Pending:
		return "on"
	case !m.Current && !m.Pending:
		return "off"
	case m.Pending:
		return "off (on after reset)"
	default:
		return "on (off after reset)"
	}
}

func instancesString(cat *migconfig.Catalog, g migconfig.GPUState) string {
	m, ok := cat.Lookup(g)
	if !ok || len(g.Instances) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(g.Instances))
	for _, in := range g.Instances {
		name := fmt.Sprintf("profile %d", in.Profile)
		if p, ok := m.ProfileByID(in.Profile); ok {
			name = p.Name
		}
		s := fmt.Sprintf("%s@%s/%d", name, in.Placement, in.GPUInstanceID)
		if in.Busy {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}
