package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseWorkload reads a workload file: YAML (or JSON, which is YAML) with
// the keys of Workload's yaml tags, for example
//
//	services:
//	  - name: resnet50
//	    model: resnet50
//	    demand: 1200          # requests per second
//	    minReplicas: 1
//	    memoryMiB: 0          # optional: the memory one replica needs
//	    throughput:           # one replica's rate within the SLO
//	      - {gpuModel: a100-80gb, profile: 1g.10gb, rps: 410}
//	      - {gpuModel: a100-80gb, profile: 3g.40gb, rps: 1300}
//
// name is the file's name, used in errors only. Unknown keys are refused,
// and every error names the file and, where it can, the line. Besides the
// YAML types it checks that every service has a unique, non-empty name, a
// finite non-negative demand, non-negative minReplicas and memoryMiB, and
// throughput entries with a GPU model, a profile, a finite non-negative
// rate and no (GPU model, profile) pair twice. It does not check GPU
// models or profiles against a catalog: the caller does, or Plan refuses
// them.
func ParseWorkload(name string, data []byte) (Workload, error) {
	var w Workload
	root, err := decodeStrict(name, data, &w)
	if err != nil {
		return Workload{}, err
	}
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fileError(name, line, fmt.Sprintf(format, args...)))
	}
	if len(w.Services) == 0 {
		fail(lineOf(root, "services"), "workload has no services")
	}
	first := map[string]int{}
	for i, s := range w.Services {
		line := lineOf(root, "services", i)
		field := func(key string) int {
			if l := lineOf(root, "services", i, key); l > 0 {
				return l
			}
			return line
		}
		what := fmt.Sprintf("service %d", i+1)
		if s.Name != "" {
			what = fmt.Sprintf("service %q", s.Name)
		}
		switch strings.TrimSpace(s.Name) {
		case "":
			fail(field("name"), "%s has no name", what)
		case s.Name:
			if j, dup := first[s.Name]; dup {
				fail(field("name"), "%s is listed twice (first as service %d, line %d)", what, j+1, lineOf(root, "services", j))
			} else {
				first[s.Name] = i
			}
		default:
			fail(field("name"), "%s: the name has leading or trailing spaces", what)
		}
		if !finiteNonNegative(s.Demand) {
			fail(field("demand"), "%s: demand %v is not a finite non-negative rate (requests per second)", what, s.Demand)
		}
		if s.MinReplicas < 0 {
			fail(field("minReplicas"), "%s: minReplicas %d is negative", what, s.MinReplicas)
		}
		if s.MemoryMiB < 0 {
			fail(field("memoryMiB"), "%s: memoryMiB %d is negative", what, s.MemoryMiB)
		}
		seen := map[Resource]int{}
		for j, r := range s.Throughput {
			rline := lineOf(root, "services", i, "throughput", j)
			if rline == 0 {
				rline = field("throughput")
			}
			switch {
			case r.GPUModel == "":
				fail(rline, "%s: throughput entry %d has no gpuModel", what, j+1)
			case r.Profile == "":
				fail(rline, "%s: throughput entry %d has no profile", what, j+1)
			case !finiteNonNegative(r.RPS):
				fail(rline, "%s: throughput on %s/%s: rps %v is not a finite non-negative rate", what, r.GPUModel, r.Profile, r.RPS)
			}
			key := Resource{GPUModel: r.GPUModel, Profile: r.Profile}
			if k, dup := seen[key]; dup && r.GPUModel != "" && r.Profile != "" {
				fail(rline, "%s: throughput on %s is listed twice (entries %d and %d)", what, key, k+1, j+1)
			} else {
				seen[key] = j
			}
		}
	}
	if len(errs) > 0 {
		return Workload{}, errors.Join(errs...)
	}
	return w, nil
}

// ParseCluster reads a cluster file: YAML (or JSON) with the keys of
// Cluster's yaml tags, for example
//
//	nodes:
//	  - name: node-0
//	    gpus:
//	      - {index: 0, model: a100-80gb}
//	      - index: 1
//	        model: a100-80gb
//	        cordoned: false
//	        slices:           # the current layout, with running replicas
//	          - {profile: 3g.40gb, placement: {start: 4, size: 4}, service: resnet50}
//
// name is the file's name, used in errors only. Unknown keys are refused,
// and every error names the file and, where it can, the line. It checks
// that node names are non-empty and unique, that GPU indexes are
// non-negative and unique on their node, that every GPU names a model,
// and that every slice names a profile and a placement of non-negative
// start and positive size. GPU models and profiles are not checked
// against a catalog: the caller does, or Plan refuses them.
func ParseCluster(name string, data []byte) (Cluster, error) {
	var c Cluster
	root, err := decodeStrict(name, data, &c)
	if err != nil {
		return Cluster{}, err
	}
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fileError(name, line, fmt.Sprintf(format, args...)))
	}
	if len(c.Nodes) == 0 {
		fail(lineOf(root, "nodes"), "cluster has no nodes")
	}
	nodes := map[string]int{}
	for i, n := range c.Nodes {
		line := lineOf(root, "nodes", i)
		what := fmt.Sprintf("node %d", i+1)
		if n.Name != "" {
			what = fmt.Sprintf("node %q", n.Name)
		}
		if n.Name == "" {
			fail(line, "%s has no name", what)
		} else if j, dup := nodes[n.Name]; dup {
			fail(line, "%s is listed twice (first as node %d, line %d)", what, j+1, lineOf(root, "nodes", j))
		} else {
			nodes[n.Name] = i
		}
		indexes := map[int]int{}
		for j, g := range n.GPUs {
			gline := lineOf(root, "nodes", i, "gpus", j)
			gwhat := fmt.Sprintf("%s gpu %d", what, g.Index)
			if g.Index < 0 {
				fail(gline, "%s: GPU index %d is negative", what, g.Index)
			} else if k, dup := indexes[g.Index]; dup {
				fail(gline, "%s: GPU index %d is listed twice (line %d)", what, g.Index, lineOf(root, "nodes", i, "gpus", k))
			} else {
				indexes[g.Index] = j
			}
			if g.Model == "" {
				fail(gline, "%s has no model", gwhat)
			}
			for k, s := range g.Slices {
				sline := lineOf(root, "nodes", i, "gpus", j, "slices", k)
				switch {
				case s.Profile == "":
					fail(sline, "%s: slice %d has no profile", gwhat, k+1)
				case s.Placement.Start < 0 || s.Placement.Size <= 0:
					fail(sline, "%s: slice %d (%s) needs a placement with start ≥ 0 and size > 0, has %s", gwhat, k+1, s.Profile, s.Placement)
				}
			}
		}
	}
	if len(errs) > 0 {
		return Cluster{}, errors.Join(errs...)
	}
	return c, nil
}

// decodeStrict decodes the single YAML document in data into v, refusing
// unknown keys, and returns the document's node tree for line numbers.
func decodeStrict(name string, data []byte, v any) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty", name)
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, fileError(name, line, "more than one YAML document; a file holds one")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	return root, nil
}

// lineOf follows path (mapping keys as strings, sequence positions as
// ints) from n and returns the line of the node it reaches, or of the
// deepest node on the way; 0 when n is nil.
func lineOf(n *yaml.Node, path ...any) int {
	if n == nil {
		return 0
	}
	line := n.Line
	for _, step := range path {
		var next *yaml.Node
		switch k := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// fileError formats a problem found at a line of a file.
func fileError(name string, line int, msg string) error {
	if line > 0 {
		return fmt.Errorf("%s: line %d: %s", name, line, msg)
	}
	return fmt.Errorf("%s: %s", name, msg)
}

func finiteNonNegative(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}
