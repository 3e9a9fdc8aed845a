package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tessera-gpu/tessera/bench"
	"github.com/tessera-gpu/tessera/scheduler"
)

// exportScenario writes a benchmark scenario's files and returns the
// workload and cluster paths.
func exportScenario(t *testing.T, name string) (workload, cluster string) {
	t.Helper()
	ss, err := bench.Scenarios(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := bench.WriteScenario(dir, ss[0]); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name, bench.WorkloadFile), filepath.Join(dir, name, bench.ClusterFile)
}

func TestPlanExportedScenario(t *testing.T) {
	wf, cf := exportScenario(t, "s2")
	code, stdout, stderr := tessera(t, "plan", "-f", wf, "--cluster", cf, "-o", "json")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	var plan scheduler.Plan
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatalf("output is not a JSON plan: %v\n%s", err, stdout)
	}
	if plan.GPUsUsed == 0 || plan.LowerBound == 0 || plan.GPUsUsed < plan.LowerBound || len(plan.Services) != 11 {
		t.Fatalf("plan uses %d GPUs, LB3 %d, %d services", plan.GPUsUsed, plan.LowerBound, len(plan.Services))
	}
	for _, s := range plan.Services {
		if s.Unmet != "" || s.Capacity < s.Demand {
			t.Errorf("service %s: capacity %v of %v (%s)", s.Name, s.Capacity, s.Demand, s.Unmet)
		}
	}

	// The same plan as a table and as YAML.
	code, stdout, stderr = tessera(t, "plan", "-f", wf, "--cluster", cf)
	if code != exitOK {
		t.Fatalf("table: code %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"NODE", "LAYOUT", "=resnet50", "SERVICE", "densenet121", "GPUS USED", "LB3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = tessera(t, "plan", "-f", wf, "--cluster", cf, "-o", "yaml")
	var generic map[string]any
	if code != exitOK || yaml.Unmarshal([]byte(stdout), &generic) != nil || generic["gpusUsed"] == nil {
		t.Fatalf("yaml: code %d, output %s", code, stdout)
	}

	// Re-plan from the cluster running the plan: nothing needs to change.
	running := scheduler.Cluster{}
	cluster, err := os.ReadFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	if running, err = scheduler.ParseCluster(cf, cluster); err != nil {
		t.Fatal(err)
	}
	i := 0
	for n := range running.Nodes {
		for g := range running.Nodes[n].GPUs {
			running.Nodes[n].GPUs[g].Slices = plan.GPUs[i].Slices
			i++
		}
	}
	data, err := yaml.Marshal(running)
	if err != nil {
		t.Fatal(err)
	}
	rf := writeFile(t, "running.yaml", string(data))
	code, stdout, stderr = tessera(t, "plan", "-f", wf, "--cluster", rf, "-o", "json")
	if code != exitOK {
		t.Fatalf("re-plan: code %d, stderr %s", code, stderr)
	}
	var replan scheduler.Plan
	if err := json.Unmarshal([]byte(stdout), &replan); err != nil {
		t.Fatal(err)
	}
	if replan.ChangedGPUs != 0 || len(replan.Changes) != 0 || replan.GPUsUsed != plan.GPUsUsed {
		t.Errorf("re-plan of a running plan changes %d GPUs (%d changes), uses %d GPUs (was %d)",
			replan.ChangedGPUs, len(replan.Changes), replan.GPUsUsed, plan.GPUsUsed)
	}
}

func TestPlanUnmetDemand(t *testing.T) {
	wf, _ := exportScenario(t, "s2")
	cf := writeFile(t, "small.yaml", "nodes:\n  - name: n\n    gpus:\n      - {index: 0, model: a100-80gb}\n")
	code, stdout, stderr := tessera(t, "plan", "-f", wf, "--cluster", cf)
	if code != exitNotInSync {
		t.Fatalf("code %d, want %d; stderr %s", code, exitNotInSync, stderr)
	}
	if !strings.Contains(stderr, "demand not met for") || !strings.Contains(stdout, "GPUS USED") {
		t.Errorf("stderr %q, stdout %q", stderr, stdout)
	}
	// A service that fits nothing is named with its reason.
	wf = writeFile(t, "w.yaml", "services:\n  - name: huge\n    demand: 10\n    throughput: []\n")
	code, _, stderr = tessera(t, "plan", "-f", wf, "--cluster", cf, "-o", "json")
	if code != exitNotInSync || !strings.Contains(stderr, "huge (") {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
}

func TestPlanErrors(t *testing.T) {
	wf, cf := exportScenario(t, "s2")
	badWorkload := writeFile(t, "bad-workload.yaml", "services:\n  - name: a\n    demand: 1\n    replicas: 3\n")
	badCluster := writeFile(t, "bad-cluster.yaml", "nodes:\n  - name: n\n    gpus:\n      - {index: 0, model: a100-80gb}\n      - {index: 0, model: a100-80gb}\n")
	unknownModel := writeFile(t, "model.yaml", "nodes:\n  - name: n7\n    gpus:\n      - {index: 2, model: a200}\n")
	badSlice := writeFile(t, "slice.yaml", "nodes:\n  - name: n\n    gpus:\n      - index: 0\n        model: a100-80gb\n        slices:\n          - {profile: 3g.40gb, placement: {start: 2, size: 4}}\n")
	badRate := writeFile(t, "rate.yaml", "services:\n  - name: a\n    demand: 1\n    throughput:\n      - {gpuModel: a100-80gb, profile: 5g.50gb, rps: 3}\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name string
		args []string
		code int
		msgs []string
	}{
		{"unknown field", []string{"-f", badWorkload, "--cluster", cf}, exitError, []string{badWorkload, "line 4", "replicas"}},
		{"duplicate GPU", []string{"-f", wf, "--cluster", badCluster}, exitError, []string{badCluster + ": line 5:", "GPU index 0 is listed twice"}},
		{"unknown model", []string{"-f", wf, "--cluster", unknownModel}, exitError, []string{unknownModel, `node "n7" gpu 2: unknown GPU model "a200"`}},
		{"bad placement", []string{"-f", wf, "--cluster", badSlice}, exitError, []string{badSlice, "3g.40gb cannot be placed at 2:4"}},
		{"unknown profile", []string{"-f", badRate, "--cluster", cf}, exitError, []string{badRate, `service "a"`, "5g.50gb"}},
		{"missing file", []string{"-f", missing, "--cluster", cf}, exitError, []string{"read workload file", missing}},
		{"no workload", []string{"--cluster", cf}, exitUsage, []string{"workload file is required"}},
		{"no cluster", []string{"-f", wf}, exitUsage, []string{"cluster file is required"}},
		{"bad output", []string{"-f", wf, "--cluster", cf, "-o", "xml"}, exitUsage, []string{`unknown output format "xml"`}},
		{"arguments", []string{"-f", wf, "--cluster", cf, "extra"}, exitUsage, []string{"unknown command"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := tessera(t, append([]string{"plan"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("code %d, want %d; stderr %s", code, tc.code, stderr)
			}
			for _, m := range tc.msgs {
				if !strings.Contains(stderr, m) {
					t.Errorf("stderr %q lacks %q", stderr, m)
				}
			}
			if tc.code == exitError && stdout != "" {
				t.Errorf("output on error: %s", stdout)
			}
		})
	}
}

// TestPlanChangeBudget re-plans two GPUs, each running one whole-GPU
// replica whose demand has dropped: with --migrate, one GPU re-laid out
// serves both, unless --max-changed-gpus=-1 turns the repack off.
func TestPlanChangeBudget(t *testing.T) {
	var rates strings.Builder
	for i, p := range []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"} {
		fmt.Fprintf(&rates, "      - {gpuModel: a100-80gb, profile: %s, rps: %d}\n", p, 100*[]int{1, 2, 3, 4, 7}[i])
	}
	wf := writeFile(t, "w.yaml", "services:\n  - name: a\n    demand: 300\n    throughput:\n"+rates.String()+
		"  - name: b\n    demand: 300\n    throughput:\n"+rates.String())
	cf := writeFile(t, "c.yaml", `nodes:
  - name: n
    gpus:
      - index: 0
        model: a100-80gb
        slices: [{profile: 7g.80gb, placement: {start: 0, size: 8}, service: a}]
      - index: 1
        model: a100-80gb
        slices: [{profile: 7g.80gb, placement: {start: 0, size: 8}, service: b}]
`)
	for _, tc := range []struct {
		args          []string
		gpus, changed int
	}{
		{[]string{"--migrate"}, 1, 1},
		{[]string{"--migrate", "--max-changed-gpus", "1"}, 1, 1},
		{[]string{"--migrate", "--max-changed-gpus=-1"}, 2, 0},
		{nil, 2, 0}, // without --migrate the running replicas stay
	} {
		code, stdout, stderr := tessera(t, append([]string{"plan", "-f", wf, "--cluster", cf, "-o", "json"}, tc.args...)...)
		if code != exitOK {
			t.Fatalf("%v: code %d, stderr %s", tc.args, code, stderr)
		}
		var plan scheduler.Plan
		if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
			t.Fatal(err)
		}
		if plan.GPUsUsed != tc.gpus || plan.ChangedGPUs != tc.changed {
			t.Errorf("%v: %d GPUs, %d changed; want %d, %d", tc.args, plan.GPUsUsed, plan.ChangedGPUs, tc.gpus, tc.changed)
		}
	}
}

func TestPlanEnvironment(t *testing.T) {
	wf, cf := exportScenario(t, "s2")
	t.Setenv("TESSERA_WORKLOAD", wf)
	t.Setenv("TESSERA_CLUSTER", cf)
	t.Setenv("TESSERA_OUTPUT", "json")
	code, stdout, stderr := tessera(t, "plan")
	if code != exitOK || !json.Valid([]byte(stdout)) {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
}

func TestBenchJSON(t *testing.T) {
	code, stdout, stderr := tessera(t, "bench", "--scenario", "s2", "--planner", "tessera", "-o", "json", "--runs", "1")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stderr, "bench: s2/tessera:") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1:\n%s", len(lines), stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "planner", "gpus", "lb3", "demand_met", "plan_seconds", "ratio_lb3", "saved_vs_whole_gpu", "saved_vs_best_static", "legal"} {
		if _, ok := m[k]; !ok {
			t.Errorf("result lacks %q: %s", k, lines[0])
		}
	}
	if m["scenario"] != "s2" || m["planner"] != "tessera" || m["legal"] != true || m["demand_met"] != 1.0 || m["runs"] != 1.0 {
		t.Errorf("result %s", lines[0])
	}
}

func TestBenchDynamicJSON(t *testing.T) {
	// One seed: the sweep over seeds (tens of seconds) is tested in
	// bench and by TestBenchSeedsAndExactFlags.
	code, stdout, stderr := tessera(t, "bench", "--scenario", "dynamic", "--planner", "tessera,all-balanced", "-o", "json", "--runs", "1", "--seeds", "1")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	rs, err := bench.ReadJSONLines(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, r := range rs {
		if r.Step != "" {
			steps++
			if r.ChangedGPUs == nil {
				t.Errorf("%s/%s: no changed_gpus", r.Planner, r.Step)
			}
		}
	}
	if steps == 0 || len(rs) != 2*(steps/2+1) {
		t.Errorf("%d results, %d re-plans", len(rs), steps)
	}
}

func TestBenchOutputs(t *testing.T) {
	code, stdout, stderr := tessera(t, "bench", "--scenario", "s2", "--planner", "tessera,greedy", "--runs", "1")
	if code != exitOK || !strings.Contains(stdout, "SCENARIO") || !strings.Contains(stdout, "greedy") {
		t.Fatalf("table: code %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	code, stdout, stderr = tessera(t, "bench", "--scenario", "s2", "--runs", "1", "-o", "markdown")
	if code != exitOK || !strings.Contains(stdout, "## Targets") || !strings.Contains(stdout, "Generated by `tessera bench -o markdown --runs 1 --scenario s2`") {
		t.Fatalf("markdown: code %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if _, err := os.Stat("/proc/loadavg"); err == nil && !regexp.MustCompile(`; load average [0-9.]+ [0-9.]+ [0-9.]+ at the start, [0-9.]+ [0-9.]+ [0-9.]+ at the end`).MatchString(stdout) {
		t.Errorf("markdown header lacks the load average:\n%s", strings.SplitN(stdout, "\n\n", 3)[1])
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--scenario", "s9"}, `unknown scenario "s9"`},
		{[]string{"--planner", "magic"}, `unknown planner "magic"`},
		{[]string{"-o", "csv"}, `unknown output format "csv"`},
		{[]string{"--runs", "-1"}, "--runs -1"},
	} {
		code, _, stderr := tessera(t, append([]string{"bench"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}

func TestBenchExport(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := tessera(t, "bench", "--export", dir, "--scenario", "s3,dynamic")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "s3, dynamic") {
		t.Errorf("stdout %q", stdout)
	}
	for _, name := range []string{"s3/workload.yaml", "s3/cluster.yaml", "dynamic/workload.yaml", "dynamic/cluster.yaml", "dynamic/step-01-grow-10.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, bench.ClusterFile) {
			_, err = scheduler.ParseCluster(name, data)
		} else {
			_, err = scheduler.ParseWorkload(name, data)
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "s2")); !os.IsNotExist(err) {
		t.Errorf("an unselected scenario was exported: %v", err)
	}
}
