package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// readYAML decodes file into v, rejecting unknown fields.
func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteScenarioRoundTrip(t *testing.T) {
	ss, err := Scenarios("s2", "s5", "s6x63", "zipf200", "dynamic")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteScenarios(dir, ss); err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		t.Run(s.Name, func(t *testing.T) {
			sdir := filepath.Join(dir, s.Name)
			want := []string{ClusterFile, WorkloadFile}
			for i, st := range s.Steps {
				want = append(want, StepFile(i, st))
			}
			slices.Sort(want)
			if got := listDir(t, sdir); !slices.Equal(got, want) {
				t.Errorf("files %v, want %v", got, want)
			}
			var w scheduler.Workload
			readYAML(t, filepath.Join(sdir, WorkloadFile), &w)
			if !reflect.DeepEqual(w, s.Workload) {
				t.Error("workload.yaml does not read back as the scenario's workload")
			}
			var c scheduler.Cluster
			readYAML(t, filepath.Join(sdir, ClusterFile), &c)
			if !reflect.DeepEqual(c, s.Cluster) {
				t.Error("cluster.yaml does not read back as the scenario's cluster")
			}
			for i, st := range s.Steps {
				var sw scheduler.Workload
				readYAML(t, filepath.Join(sdir, StepFile(i, st)), &sw)
				if !reflect.DeepEqual(sw, st.Workload) {
					t.Errorf("%s does not read back as step %d", StepFile(i, st), i+1)
				}
			}
			data, err := os.ReadFile(filepath.Join(sdir, WorkloadFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"ParvaGPU_SC24@5f3de1e18582", "MIT", "\n      - {gpuModel: a100-80gb, profile: 1g.10gb, rps: "} {
				if !bytes.Contains(data, []byte(want)) {
					t.Errorf("workload.yaml lacks %q", want)
				}
			}
		})
	}
	if got := StepFile(0, Step{Name: "grow-10"}); got != "step-01-grow-10.yaml" {
		t.Errorf("StepFile = %q", got)
	}
}

func TestWriteScenarioRemovesStaleSteps(t *testing.T) {
	s := mustScenario(t, "dynamic")
	dir := t.TempDir()
	if err := WriteScenario(dir, s); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, s.Name, "notes.txt")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Steps = s.Steps[:2]
	if err := WriteScenario(dir, s); err != nil {
		t.Fatal(err)
	}
	want := []string{ClusterFile, "notes.txt", StepFile(0, s.Steps[0]), StepFile(1, s.Steps[1]), WorkloadFile}
	if got := listDir(t, filepath.Join(dir, s.Name)); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestWriteScenarioBadNames(t *testing.T) {
	good := mustScenario(t, "s2")
	for _, c := range []struct {
		name string
		s    Scenario
		want string
	}{
		{"empty", Scenario{}, `scenario name ""`},
		{"parent", Scenario{Name: ".."}, `scenario name ".."`},
		{"slash", Scenario{Name: "a/b"}, `scenario name "a/b"`},
		{"step", Scenario{Name: "x", Workload: good.Workload, Steps: []Step{{Name: "ok"}, {Name: "../up"}}}, `step 2 name "../up"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WriteScenario(dir, c.s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if got := listDir(t, dir); len(got) != 0 {
				t.Errorf("wrote %v despite the error", got)
			}
		})
	}
}

func TestWriteInstance(t *testing.T) {
	s := mustScenario(t, "s3")
	// A running cluster: one GPU with a slice and its replica.
	running := s.Cluster
	running.Nodes = slices.Clone(running.Nodes)
	running.Nodes[0].GPUs = slices.Clone(running.Nodes[0].GPUs)
	running.Nodes[0].GPUs[1].Slices = []scheduler.Slice{{Profile: "7g.80gb", Placement: migconfig.Placement{Start: 0, Size: 8}, Service: "bert"}}
	dir := t.TempDir()
	wf, cf, err := WriteInstance(dir, running, s.Workload)
	if err != nil {
		t.Fatal(err)
	}
	if wf != filepath.Join(dir, WorkloadFile) || cf != filepath.Join(dir, ClusterFile) {
		t.Errorf("paths %s, %s", wf, cf)
	}
	data, err := os.ReadFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	w, err := scheduler.ParseWorkload(wf, data)
	if err != nil || !reflect.DeepEqual(w, s.Workload) {
		t.Errorf("workload does not round-trip: %v", err)
	}
	if data, err = os.ReadFile(cf); err != nil {
		t.Fatal(err)
	}
	c, err := scheduler.ParseCluster(cf, data)
	if err != nil || !reflect.DeepEqual(c, running) {
		t.Errorf("cluster does not round-trip: %v", err)
	}
	if _, _, err := WriteInstance(filepath.Join(dir, "missing"), running, s.Workload); err == nil {
		t.Error("writing into a missing directory did not fail")
	}
}
