package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// tessera runs the CLI in-process and returns its exit status and output.
func tessera(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVersion(t *testing.T) {
	code, out, _ := tessera(t, "version")
	if code != exitOK || !strings.HasPrefix(out, "tessera ") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nope"}, exitUsage, "unknown command"},
		{[]string{"mig", "bogus"}, exitUsage, `unknown command "bogus" for "tessera mig"`},
		{[]string{"mig", "apply", "--no-such-flag"}, exitUsage, "unknown flag"},
		{[]string{"mig", "plan", "-c", "all-balanced", "--backend", "gpu:9"}, exitError, `unknown backend "gpu:9"`},
		{[]string{"mig", "plan", "-c", "all-balanced", "--backend", "sim:a200:8"}, exitError, "a200"},
		{[]string{"mig", "plan", "--backend", "sim:a100-80gb:8"}, exitUsage, "choose one with -c"},
		{[]string{"mig", "plan", "-c", "no-such", "--backend", "sim:a100-80gb:8"}, exitError, "no-such"},
		{[]string{"mig", "export", "-o", "xml", "--backend", "sim:a30:4"}, exitUsage, `unknown output format "xml"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := tessera(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("code %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	code, out, stderr := tessera(t, "mig", "validate")
	if code != exitOK || !strings.Contains(out, "layouts valid") {
		t.Fatalf("built-in layouts: code %d, out %q, err %q", code, out, stderr)
	}
	bad := writeFile(t, "bad.yaml", `version: v1
mig-configs:
  all-balanced:
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "2g.10gb": 1
        "3g.21gb": 1
`)
	code, _, stderr = tessera(t, "mig", "validate", "-f", bad)
	if code != exitError || !strings.Contains(stderr, "bad.yaml:10:") || !strings.Contains(stderr, "did you mean 3g.20gb?") {
		t.Fatalf("bad file: code %d, stderr %q", code, stderr)
	}
	impossible := writeFile(t, "impossible.yaml", `version: v1
mig-configs:
  two-4g:
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices: {"4g.20gb": 2}
`)
	code, _, stderr = tessera(t, "mig", "validate", "-f", impossible)
	if code != exitError || !strings.Contains(stderr, "impossible.yaml:7:") || !strings.Contains(stderr, "allows at most 1") {
		t.Fatalf("impossible layout: code %d, stderr %q", code, stderr)
	}
}

func TestApplyAssertExportRoundTrip(t *testing.T) {
	state := filepath.Join(t.TempDir(), "node.json")
	sim := []string{"--backend", "sim:a100-40gb:8", "--sim-state", state}

	code, _, _ := tessera(t, append([]string{"mig", "assert", "-c", "all-balanced"}, sim...)...)
	if code != exitNotInSync {
		t.Fatalf("assert before apply: code %d, want %d", code, exitNotInSync)
	}
	code, out, stderr := tessera(t, append([]string{"mig", "apply", "--dry-run", "-c", "all-balanced"}, sim...)...)
	if code != exitOK || !strings.Contains(out, "create") {
		t.Fatalf("dry run: code %d, out %q, err %q", code, out, stderr)
	}
	if code, _, _ := tessera(t, append([]string{"mig", "assert", "-c", "all-balanced"}, sim...)...); code != exitNotInSync {
		t.Fatalf("a dry run changed the node")
	}
	code, out, stderr = tessera(t, append([]string{"mig", "apply", "-c", "all-balanced"}, sim...)...)
	if code != exitOK || !strings.Contains(out, `layout "all-balanced" applied`) {
		t.Fatalf("apply: code %d, out %q, err %q", code, out, stderr)
	}
	if code, out, _ := tessera(t, append([]string{"mig", "assert", "-c", "all-balanced"}, sim...)...); code != exitOK {
		t.Fatalf("assert after apply: code %d, out %q", code, out)
	}
	if code, out, _ := tessera(t, append([]string{"mig", "apply", "-c", "all-balanced"}, sim...)...); code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second apply: code %d, out %q", code, out)
	}

	code, exported, stderr := tessera(t, append([]string{"mig", "export"}, sim...)...)
	if code != exitOK {
		t.Fatalf("export: code %d, err %q", code, stderr)
	}
	file := writeFile(t, "exported.yaml", exported)
	if code, _, stderr := tessera(t, "mig", "validate", "-f", file); code != exitOK {
		t.Fatalf("exported file does not validate: %s\n%s", stderr, exported)
	}
	// The export applied to a fresh node reproduces the layout exactly.
	other := []string{"--backend", "sim:a100-40gb:8", "--sim-state", filepath.Join(t.TempDir(), "other.json")}
	if code, _, stderr := tessera(t, append([]string{"mig", "apply", "-f", file}, other...)...); code != exitOK {
		t.Fatalf("apply export: code %d, err %q", code, stderr)
	}
	if code, _, _ := tessera(t, append([]string{"mig", "assert", "-f", file}, sim...)...); code != exitOK {
		t.Fatalf("original node does not match its own export")
	}
	_, a, _ := tessera(t, append([]string{"mig", "export", "-o", "table"}, sim...)...)
	_, b, _ := tessera(t, append([]string{"mig", "export", "-o", "table"}, other...)...)
	if strip(a) != strip(b) {
		t.Fatalf("export applied elsewhere differs:\n%s\nvs\n%s", a, b)
	}
}

// strip drops GPU-instance IDs, which differ between nodes, from a node table.
func strip(table string) string {
	var b strings.Builder
	for _, f := range strings.Fields(table) {
		if i := strings.LastIndex(f, "/"); i > 0 && strings.Contains(f, "@") {
			f = f[:i]
		}
		b.WriteString(f + " ")
	}
	return b.String()
}

func TestApplyHoldsBackBusyInstance(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "node.json")
	flags := []string{"--backend", "sim:h100-80gb:8", "--sim-state", statePath}
	if code, _, stderr := tessera(t, append([]string{"mig", "apply", "-c", "all-balanced"}, flags...)...); code != exitOK {
		t.Fatalf("apply: %s", stderr)
	}
	// Start a process on GPU 2's 3g instance, inside the saved state.
	uuid := migUUIDOf(t, flags, 2, "3g.40gb")
	setProcess(t, statePath, uuid, true)

	code, out, stderr := tessera(t, append([]string{"mig", "apply", "-c", "all-1g.10gb"}, flags...)...)
	if code != exitNotInSync || !strings.Contains(stderr, "held-back") || !strings.Contains(out, "held") {
		t.Fatalf("apply over a busy slice: code %d, out %q, err %q", code, out, stderr)
	}
	if got := migUUIDOf(t, flags, 2, "3g.40gb"); got != uuid {
		t.Fatalf("busy 3g instance was replaced: %s -> %s", uuid, got)
	}
	// Every other GPU did change.
	if code, out, _ := tessera(t, append([]string{"mig", "plan", "-c", "all-1g.10gb", "-o", "json"}, flags...)...); code != exitOK {
		t.Fatalf("plan: %d", code)
	} else {
		var v planView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		for _, op := range append(v.Ops, v.HeldBack...) {
			if op.GPU != 2 {
				t.Errorf("gpu %d still has work: %s", op.GPU, op)
			}
		}
		if len(v.HeldBack) == 0 {
			t.Errorf("plan shows nothing held back: %s", out)
		}
	}
	// --force skips Tessera's own busy check, but NVML still refuses to
	// destroy a compute instance with processes: still held back.
	code, _, stderr = tessera(t, append([]string{"mig", "apply", "-c", "all-1g.10gb", "--force"}, flags...)...)
	if code != exitNotInSync || !strings.Contains(stderr, "ERROR_IN_USE") {
		t.Fatalf("forced apply over a running process: code %d, %s", code, stderr)
	}
	// Once the process ends, apply converges.
	setProcess(t, statePath, uuid, false)
	if code, _, stderr := tessera(t, append([]string{"mig", "apply", "-c", "all-1g.10gb"}, flags...)...); code != exitOK {
		t.Fatalf("apply after the process ended: code %d, %s", code, stderr)
	}
	if code, _, _ := tessera(t, append([]string{"mig", "assert", "-c", "all-1g.10gb"}, flags...)...); code != exitOK {
		t.Fatalf("assert after convergence: code %d", code)
	}
}

// setProcess starts (or stops every) process on a MIG device of the
// simulated node saved at statePath.
func setProcess(t *testing.T, statePath, uuid string, start bool) {
	t.Helper()
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	node, err := sim.Load(migconfig.Builtin(), data)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if _, err := node.StartProcess(uuid); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, pid := range node.Processes() {
			if err := node.StopProcess(pid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if data, err = node.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// migUUIDOf returns the MIG UUID of the first instance of profile on GPU gpu.
func migUUIDOf(t *testing.T, flags []string, gpuIndex int, profile string) string {
	t.Helper()
	cat := migconfig.Builtin()
	b, err := openBackend(context.Background(), cat, flags[1], flags[3], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	state, err := b.node.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g, _ := state.GPU(gpuIndex)
	m, _ := cat.Lookup(g)
	p, _ := m.ProfileByName(profile)
	for _, in := range g.Instances {
		if in.Profile == p.ID && len(in.ComputeInstances) > 0 {
			return in.ComputeInstances[0].UUID
		}
	}
	t.Fatalf("gpu %d has no %s", gpuIndex, profile)
	return ""
}

// TestBadOutputFormatChangesNothing checks that -o is refused before the
// node is touched.
func TestBadOutputFormatChangesNothing(t *testing.T) {
	state := filepath.Join(t.TempDir(), "node.json")
	flags := []string{"--backend", "sim:a100-80gb:2", "--sim-state", state}
	for _, args := range [][]string{
		{"mig", "apply", "-c", "all-balanced", "-o", "bogus"},
		{"mig", "apply", "-c", "all-balanced"}, // with TESSERA_OUTPUT below
	} {
		t.Setenv("TESSERA_OUTPUT", "xml")
		code, _, stderr := tessera(t, append(args, flags...)...)
		if code != exitUsage || !strings.Contains(stderr, "unknown output format") {
			t.Fatalf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
	t.Setenv("TESSERA_OUTPUT", "")
	os.Unsetenv("TESSERA_OUTPUT")
	if code, _, _ := tessera(t, append([]string{"mig", "assert", "-c", "all-disabled"}, flags...)...); code != exitOK {
		t.Fatalf("the node was changed by a refused command")
	}
}

func TestStructuredOutput(t *testing.T) {
	state := filepath.Join(t.TempDir(), "node.json")
	flags := []string{"--backend", "sim:h100-80gb:2", "--sim-state", state}
	code, out, _ := tessera(t, append([]string{"mig", "plan", "-c", "all-balanced", "-o", "json"}, flags...)...)
	if code != exitOK {
		t.Fatalf("plan: code %d", code)
	}
	var v struct {
		Ops []map[string]any `json:"ops"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Ops) == 0 || v.Ops[0]["kind"] != "set-mig-mode" {
		t.Fatalf("first op of enabling MIG is not a mode change: %s", out)
	}
	if _, ok := v.Ops[0]["instance"]; ok {
		t.Errorf("a mode change carries an instance: %v", v.Ops[0])
	}
	if _, ok := v.Ops[1]["instance"]; !ok {
		t.Errorf("a create carries no instance: %v", v.Ops[1])
	}
	if code, _, _ := tessera(t, append([]string{"mig", "apply", "-c", "all-balanced"}, flags...)...); code != exitOK {
		t.Fatal("apply failed")
	}
	code, out, _ = tessera(t, append([]string{"mig", "assert", "-c", "all-balanced", "-o", "yaml"}, flags...)...)
	if code != exitOK || !strings.Contains(out, "config: all-balanced") || !strings.Contains(out, "ops: []") {
		t.Fatalf("assert -o yaml on a matching node: code %d, out %q", code, out)
	}
}

// TestOverlappingEntriesLastWins checks mig-parted's rule for a GPU that
// several entries select, and that the user is warned.
func TestOverlappingEntriesLastWins(t *testing.T) {
	file := writeFile(t, "overlap.yaml", `version: v1
mig-configs:
  mixed:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
    - devices: [1]
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
`)
	state := filepath.Join(t.TempDir(), "node.json")
	flags := []string{"-f", file, "--backend", "sim:h100-80gb:2", "--sim-state", state}
	code, _, stderr := tessera(t, append([]string{"mig", "apply"}, flags...)...)
	if code != exitOK || !strings.Contains(stderr, "warning: ") || !strings.Contains(stderr, "GPU 1: overrides") {
		t.Fatalf("apply: code %d, stderr %q", code, stderr)
	}
	_, out, _ := tessera(t, append([]string{"mig", "export", "-o", "table"}, flags...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "7g.80gb@0:8") || strings.Count(lines[2], "1g.10gb@") != 7 {
		t.Fatalf("node after apply:\n%s", out)
	}
}

func TestEnvironmentTwins(t *testing.T) {
	t.Setenv("TESSERA_BACKEND", "sim:a30:4")
	t.Setenv("TESSERA_SELECTED_CONFIG", "all-balanced")
	code, out, stderr := tessera(t, "mig", "plan")
	if code != exitOK || !strings.Contains(out, "2g.12gb") {
		t.Fatalf("plan from environment: code %d, out %q, err %q", code, out, stderr)
	}
	t.Setenv("TESSERA_OUTPUT", "bogus")
	if code, _, _ := tessera(t, "mig", "plan", "-o", "json"); code != exitOK {
		t.Fatalf("a flag must win over its variable: code %d", code)
	}
}

func TestDemo(t *testing.T) {
	code, out, stderr := tessera(t, "demo")
	if code != exitOK {
		t.Fatalf("demo: code %d, err %q\n%s", code, stderr, out)
	}
	for _, want := range []string{"all-balanced", "mig-parted would wipe GPU 3", "held", `layout "demo" is applied`} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
