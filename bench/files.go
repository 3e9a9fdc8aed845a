package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/tessera-gpu/tessera/scheduler"
)

// Files of an exported scenario, inside DIR/<scenario name>/.
const (
	// WorkloadFile holds the scenario's Workload (scheduler.Workload YAML).
	WorkloadFile = "workload.yaml"
	// ClusterFile holds the scenario's Cluster (scheduler.Cluster YAML).
	ClusterFile = "cluster.yaml"
)

// StepFile returns the file name of step i (0-based) of a scenario:
// "step-01-grow-10.yaml" for the first step named grow-10.
func StepFile(i int, step Step) string {
	return fmt.Sprintf("step-%02d-%s.yaml", i+1, step.Name)
}

// safeName matches scenario and step names usable in file names.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// WriteScenarios writes every scenario with WriteScenario.
func WriteScenarios(dir string, scenarios []Scenario) error {
	for _, s := range scenarios {
		if err := WriteScenario(dir, s); err != nil {
			return err
		}
	}
	return nil
}

// WriteScenario writes s into the directory dir/<s.Name>, creating it:
// WorkloadFile, ClusterFile and, for each step, its StepFile (a workload),
// in the YAML of the scheduler's types, which `tessera plan -f
// workload.yaml --cluster cluster.yaml` reads. Step files of an earlier
// export that s no longer has are removed.
func WriteScenario(dir string, s Scenario) error {
	if !safeName.MatchString(s.Name) {
		return fmt.Errorf("bench: scenario name %q is not usable as a directory name", s.Name)
	}
	for i, st := range s.Steps {
		if !safeName.MatchString(st.Name) {
			return fmt.Errorf("bench: scenario %s: step %d name %q is not usable in a file name", s.Name, i+1, st.Name)
		}
	}
	sdir := filepath.Join(dir, s.Name)
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(sdir, "step-*.yaml"))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	source := fmt.Sprintf("# Throughput per replica derived from %s@%s (%s)\n# by the rule of scheduling.md §6.2 (NoMPS).\n",
		ParvaGPURepo, ParvaGPUCommit[:12], ParvaGPULicense)
	seed := ""
	if s.Seed != 0 {
		seed = fmt.Sprintf(" (seed %d)", s.Seed)
	}
	type outFile struct {
		name    string
		comment string
		v       any
	}
	files := []outFile{
		{WorkloadFile, fmt.Sprintf("# Tessera benchmark scenario %s%s: the workload (demand in req/s).\n%s", s.Name, seed, source), s.Workload},
		{ClusterFile, fmt.Sprintf("# Tessera benchmark scenario %s: %d empty %s GPUs.\n", s.Name, countGPUs(s.Cluster), GPUModel), s.Cluster},
	}
	for i, st := range s.Steps {
		files = append(files, outFile{StepFile(i, st), fmt.Sprintf("# Tessera benchmark scenario %s%s, step %d of %d: %s.\n%s", s.Name, seed, i+1, len(s.Steps), st.Name, source), st.Workload})
	}
	written := map[string]bool{}
	for _, f := range files {
		data, err := marshalCompact(f.v)
		if err != nil {
			return fmt.Errorf("bench: scenario %s: %s: %w", s.Name, f.name, err)
		}
		name := filepath.Join(sdir, f.name)
		if err := os.WriteFile(name, append([]byte(f.comment), data...), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		written[name] = true
	}
	for _, name := range stale {
		if !written[name] {
			if err := os.Remove(name); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
	}
	return nil
}

// countGPUs returns the number of GPUs of c.
func countGPUs(c scheduler.Cluster) int {
	n := 0
	for _, node := range c.Nodes {
		n += len(node.GPUs)
	}
	return n
}

// flowKeys are the keys whose sequence items marshalCompact writes on one
// line each.
var flowKeys = map[string]bool{"throughput": true, "gpus": true}

// marshalCompact marshals v as YAML with two-space indentation, writing the
// items of the sequences under flowKeys in flow style, one per line
// ("- {gpuModel: a100-80gb, profile: 1g.10gb, rps: 135.144}"), which keeps
// the large scenarios' files a third of their block-style size.
func marshalCompact(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	compact(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// compact sets flow style on the mapping items of sequences under flowKeys.
func compact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if flowKeys[k.Value] && v.Kind == yaml.SequenceNode {
				for _, item := range v.Content {
					if item.Kind == yaml.MappingNode {
						item.Style = yaml.FlowStyle
					}
				}
			}
		}
	}
	for _, c := range n.Content {
		compact(c)
	}
}

// WriteInstance writes one planning instance into dir, which must exist:
// the workload as WorkloadFile and the cluster (with its current slices,
// if any) as ClusterFile, in the YAML WriteScenario writes. It returns
// the two paths. `tessera bench` uses it to plan in a child process.
func WriteInstance(dir string, c scheduler.Cluster, w scheduler.Workload) (workload, cluster string, err error) {
	workload, cluster = filepath.Join(dir, WorkloadFile), filepath.Join(dir, ClusterFile)
	for _, f := range []struct {
		name string
		v    any
	}{{workload, w}, {cluster, c}} {
		data, err := marshalCompact(f.v)
		if err != nil {
			return "", "", fmt.Errorf("bench: %s: %w", f.name, err)
		}
		if err := os.WriteFile(f.name, data, 0o644); err != nil {
			return "", "", fmt.Errorf("bench: %w", err)
		}
	}
	return workload, cluster, nil
}
