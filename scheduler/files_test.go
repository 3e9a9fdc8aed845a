package scheduler_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/bench"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		name string
		data string
		want scheduler.Workload
		errs []string // substrings of the error; none means success
	}{
		{
			name: "yaml",
			data: `services:
  - name: resnet50
    model: resnet50
    demand: 1200
    minReplicas: 2
    memoryMiB: 5000
    throughput:
      - {gpuModel: a100-80gb, profile: 1g.10gb, rps: 410}
      - {gpuModel: a100-80gb, profile: 3g.40gb, rps: 1300.5}
  - name: bert
    demand: 0
    throughput: []
`,
			want: scheduler.Workload{Services: []scheduler.Service{
				{Name: "resnet50", Model: "resnet50", Demand: 1200, MinReplicas: 2, MemoryMiB: 5000, Throughput: []scheduler.Rate{
					{GPUModel: "a100-80gb", Profile: "1g.10gb", RPS: 410},
					{GPUModel: "a100-80gb", Profile: "3g.40gb", RPS: 1300.5},
				}},
				{Name: "bert", Throughput: []scheduler.Rate{}},
			}},
		},
		{
			name: "json",
			data: `{"services": [{"name": "a", "demand": 1.5, "throughput": [{"gpuModel": "a30", "profile": "1g.6gb", "rps": 3}]}]}`,
			want: scheduler.Workload{Services: []scheduler.Service{
				{Name: "a", Demand: 1.5, Throughput: []scheduler.Rate{{GPUModel: "a30", Profile: "1g.6gb", RPS: 3}}},
			}},
		},
		{name: "empty file", data: "", errs: []string{"w.yaml: the file is empty"}},
		{name: "no services", data: "services: []\n", errs: []string{"w.yaml: line 1: workload has no services"}},
		{name: "unknown field", data: "services:\n  - name: a\n    demnad: 3\n", errs: []string{"w.yaml:", "line 3", "demnad"}},
		{name: "unknown top-level field", data: "service: []\n", errs: []string{"w.yaml:", "line 1", "service"}},
		{name: "wrong type", data: "services:\n  - name: a\n    demand: lots\n", errs: []string{"w.yaml:", "line 3", "lots"}},
		{name: "bad yaml", data: "services: [\n", errs: []string{"w.yaml:"}},
		{name: "two documents", data: "services: [{name: a}]\n---\nservices: []\n", errs: []string{"w.yaml: line 2: more than one YAML document"}},
		{name: "no name", data: "services:\n  - demand: 3\n", errs: []string{"w.yaml: line 2: service 1 has no name"}},
		{name: "spaces in name", data: "services:\n  - name: ' a'\n", errs: []string{`w.yaml: line 2: service " a": the name has leading or trailing spaces`}},
		{
			name: "duplicate names",
			data: "services:\n  - name: a\n    demand: 1\n  - name: b\n  - name: a\n",
			errs: []string{`w.yaml: line 5: service "a" is listed twice (first as service 1, line 2)`},
		},
		{name: "negative demand", data: "services:\n  - name: a\n    demand: -1\n", errs: []string{`w.yaml: line 3: service "a": demand -1 is not a finite non-negative rate`}},
		{name: "NaN demand", data: "services:\n  - name: a\n    demand: .nan\n", errs: []string{`line 3: service "a": demand NaN`}},
		{name: "infinite demand", data: "services:\n  - name: a\n    demand: .inf\n", errs: []string{`line 3: service "a": demand +Inf`}},
		{name: "negative minReplicas", data: "services:\n  - name: a\n    minReplicas: -2\n", errs: []string{`line 3: service "a": minReplicas -2 is negative`}},
		{name: "negative memory", data: "services:\n  - name: a\n    memoryMiB: -2\n", errs: []string{`line 3: service "a": memoryMiB -2 is negative`}},
		{
			name: "negative rate",
			data: "services:\n  - name: a\n    throughput:\n      - {gpuModel: a30, profile: 1g.6gb, rps: -3}\n",
			errs: []string{`w.yaml: line 4: service "a": throughput on a30/1g.6gb: rps -3 is not a finite non-negative rate`},
		},
		{
			name: "rate without model or profile",
			data: "services:\n  - name: a\n    throughput:\n      - {profile: 1g.6gb, rps: 3}\n      - {gpuModel: a30, rps: 3}\n",
			errs: []string{`line 4: service "a": throughput entry 1 has no gpuModel`, `line 5: service "a": throughput entry 2 has no profile`},
		},
		{
			name: "duplicate rate",
			data: "services:\n  - name: a\n    throughput:\n      - {gpuModel: a30, profile: 1g.6gb, rps: 3}\n      - {gpuModel: a30, profile: 1g.6gb, rps: 4}\n",
			errs: []string{`line 5: service "a": throughput on a30/1g.6gb is listed twice (entries 1 and 2)`},
		},
		{
			name: "every problem reported",
			data: "services:\n  - name: a\n    demand: -1\n  - name: a\n    minReplicas: -1\n",
			errs: []string{"line 3: service \"a\": demand -1", "line 4: service \"a\" is listed twice", "line 5: service \"a\": minReplicas -1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scheduler.ParseWorkload("w.yaml", []byte(tc.data))
			checkParse(t, got, tc.want, err, tc.errs)
		})
	}
}

func TestParseCluster(t *testing.T) {
	tests := []struct {
		name string
		data string
		want scheduler.Cluster
		errs []string
	}{
		{
			name: "yaml",
			data: `nodes:
  - name: node-0
    gpus:
      - {index: 0, model: a100-80gb}
      - index: 1
        model: a100-80gb
        cordoned: true
        slices:
          - {profile: 3g.40gb, placement: {start: 4, size: 4}, service: resnet50}
          - {profile: 1g.10gb, placement: {start: 0, size: 1}}
  - name: node-1
    gpus:
      - {index: 0, model: h100-80gb}
`,
			want: scheduler.Cluster{Nodes: []scheduler.Node{
				{Name: "node-0", GPUs: []scheduler.GPU{
					{Index: 0, Model: "a100-80gb"},
					{Index: 1, Model: "a100-80gb", Cordoned: true, Slices: []scheduler.Slice{
						{Profile: "3g.40gb", Placement: migconfig.Placement{Start: 4, Size: 4}, Service: "resnet50"},
						{Profile: "1g.10gb", Placement: migconfig.Placement{Start: 0, Size: 1}},
					}},
				}},
				{Name: "node-1", GPUs: []scheduler.GPU{{Index: 0, Model: "h100-80gb"}}},
			}},
		},
		{
			name: "json",
			data: `{"nodes": [{"name": "n", "gpus": [{"index": 3, "model": "a30"}]}]}`,
			want: scheduler.Cluster{Nodes: []scheduler.Node{{Name: "n", GPUs: []scheduler.GPU{{Index: 3, Model: "a30"}}}}},
		},
		{name: "empty file", data: "\n", errs: []string{"c.yaml: the file is empty"}},
		{name: "no nodes", data: "nodes: []\n", errs: []string{"c.yaml: line 1: cluster has no nodes"}},
		{name: "unknown field", data: "nodes:\n  - name: n\n    gpus:\n      - {index: 0, modle: a30}\n", errs: []string{"c.yaml:", "line 4", "modle"}},
		{name: "wrong type", data: "nodes:\n  - name: n\n    gpus:\n      - {index: zero, model: a30}\n", errs: []string{"c.yaml:", "line 4", "zero"}},
		{name: "node without name", data: "nodes:\n  - gpus: []\n", errs: []string{"c.yaml: line 2: node 1 has no name"}},
		{
			name: "duplicate node",
			data: "nodes:\n  - name: n\n  - name: m\n  - name: n\n",
			errs: []string{`c.yaml: line 4: node "n" is listed twice (first as node 1, line 2)`},
		},
		{
			name: "duplicate GPU index",
			data: "nodes:\n  - name: n\n    gpus:\n      - {index: 0, model: a30}\n      - {index: 0, model: a30}\n",
			errs: []string{`c.yaml: line 5: node "n": GPU index 0 is listed twice (line 4)`},
		},
		{name: "negative index", data: "nodes:\n  - name: n\n    gpus:\n      - {index: -1, model: a30}\n", errs: []string{`line 4: node "n": GPU index -1 is negative`}},
		{name: "no model", data: "nodes:\n  - name: n\n    gpus:\n      - {index: 0}\n", errs: []string{`line 4: node "n" gpu 0 has no model`}},
		{
			name: "slice without profile or placement",
			data: "nodes:\n  - name: n\n    gpus:\n      - index: 0\n        model: a30\n        slices:\n          - {placement: {start: 0, size: 1}}\n          - {profile: 1g.6gb}\n",
			errs: []string{`line 7: node "n" gpu 0: slice 1 has no profile`, `line 8: node "n" gpu 0: slice 2 (1g.6gb) needs a placement`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scheduler.ParseCluster("c.yaml", []byte(tc.data))
			checkParse(t, got, tc.want, err, tc.errs)
		})
	}
}

func checkParse[T any](t *testing.T, got, want T, err error, errs []string) {
	t.Helper()
	if len(errs) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", errs)
	}
	for _, e := range errs {
		if !strings.Contains(err.Error(), e) {
			t.Errorf("error %q does not contain %q", err, e)
		}
	}
	var zero T
	if !reflect.DeepEqual(got, zero) {
		t.Errorf("on error, got %+v, want the zero value", got)
	}
}

// TestParseRoundTrip reads back the files `tessera bench --export` writes:
// every scenario's workload, cluster and dynamic steps.
func TestParseRoundTrip(t *testing.T) {
	ss, err := bench.Scenarios("s2", "s6", "zipf200", "dynamic")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := bench.WriteScenarios(dir, ss); err != nil {
		t.Fatal(err)
	}
	read := func(s bench.Scenario, file string) (string, []byte) {
		name := filepath.Join(dir, s.Name, file)
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return name, data
	}
	for _, s := range ss {
		w, err := scheduler.ParseWorkload(read(s, bench.WorkloadFile))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if !reflect.DeepEqual(w, s.Workload) {
			t.Errorf("%s: workload does not round-trip", s.Name)
		}
		c, err := scheduler.ParseCluster(read(s, bench.ClusterFile))
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if !reflect.DeepEqual(c, s.Cluster) {
			t.Errorf("%s: cluster does not round-trip", s.Name)
		}
		for i, st := range s.Steps {
			w, err := scheduler.ParseWorkload(read(s, bench.StepFile(i, st)))
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			if !reflect.DeepEqual(w, st.Workload) {
				t.Errorf("%s step %s: workload does not round-trip", s.Name, st.Name)
			}
		}
	}
}
