package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, data string
		want       Config
		err        string
	}{
		{"full", "layouts: layouts.yaml\nconfig: all-balanced\n", Config{Layouts: "layouts.yaml", Config: "all-balanced"}, ""},
		{"observe only", "layouts: layouts.yaml\n", Config{Layouts: "layouts.yaml"}, ""},
		{"empty file", "", Config{}, ""},
		{"comments only", "# nothing yet\n", Config{}, ""},
		{"unknown key", "layouts: l.yaml\nconifg: x\n", Config{}, "agent.yaml:2: field conifg not found (the keys are layouts, config and triton)"},
		{"config without layouts", "config: all-1g.10gb\n", Config{}, `agent.yaml: config "all-1g.10gb" is selected but no layouts file`},
		{"not a mapping", "- a\n", Config{}, "agent.yaml:1: cannot unmarshal !!seq; want a mapping"},
		{"triton targets", "triton:\n  - url: http://127.0.0.1:8002/metrics\n    slice: MIG-1\n  - url: https://[::1]:9000/m\n",
			Config{Triton: []TritonTarget{{URL: "http://127.0.0.1:8002/metrics", Slice: "MIG-1"}, {URL: "https://[::1]:9000/m"}}}, ""},
		{"triton target without scheme", "triton:\n  - url: 127.0.0.1:8002\n", Config{}, `agent.yaml: triton[0].url "127.0.0.1:8002": want an http:// or https:// URL`},
		{"triton target misspelt key", "triton:\n  - ulr: http://x/metrics\n", Config{}, "agent.yaml:2: field ulr not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig("agent.yaml", []byte(tt.data))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// receive waits for the next Desired from a source.
func receive(t *testing.T, ch <-chan Desired) Desired {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no desired state from the source")
		return Desired{}
	}
}

// write replaces path's content atomically (a new file renamed over it),
// so that the source, polling every 10 ms, never reads a file that
// os.WriteFile has truncated and not yet written: each step of a test
// must produce exactly one new desired state.
func write(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileSourceFollowsBothFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	layouts := filepath.Join(dir, "layouts.yaml")
	write(t, layouts, testLayouts)
	write(t, cfg, "layouts: layouts.yaml\nconfig: all-1g\n")

	src := NewFileSource(cfg, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan Desired)
	go func() { _ = src.Run(ctx, ch) }()

	d := receive(t, ch)
	if d.Err != nil || d.Config != "all-1g" || d.File == nil || !strings.Contains(d.Source, layouts) {
		t.Fatalf("first desired: %+v", d)
	}
	first := d.Revision

	// The selected config changes.
	write(t, cfg, "layouts: layouts.yaml\nconfig: all-balanced\n")
	d = receive(t, ch)
	if d.Config != "all-balanced" || d.Revision == first {
		t.Fatalf("after changing agent.yaml: %+v", d)
	}

	// The layouts file breaks: the error names the place, nothing else.
	write(t, layouts, "version: v1\nmig-configs:\n  all-balanced:\n    - devices: all\n      mig-enabled: maybe\n")
	d = receive(t, ch)
	if d.Err == nil || !strings.Contains(d.Err.Error(), "layouts.yaml:5") {
		t.Fatalf("broken layouts: %+v", d)
	}

	// Fixed again, with the selected config missing.
	write(t, layouts, strings.Replace(testLayouts, "all-balanced:", "all-mixed:", 1))
	d = receive(t, ch)
	if d.Err == nil || !strings.Contains(d.Err.Error(), `no config "all-balanced"`) {
		t.Fatalf("missing config: %+v", d)
	}

	// Reload sends the same state again.
	write(t, layouts, testLayouts)
	d = receive(t, ch)
	src.Reload()
	again := receive(t, ch)
	if again.Revision != d.Revision || again.Err != nil {
		t.Fatalf("reload: %+v, want revision %s", again, d.Revision)
	}

	// No config selected: nothing desired.
	write(t, cfg, "layouts: layouts.yaml\n")
	d = receive(t, ch)
	if !d.empty() {
		t.Fatalf("observe-only config: %+v", d)
	}
}

func TestFileSourceMissingFile(t *testing.T) {
	src := NewFileSource(filepath.Join(t.TempDir(), "agent.yaml"), time.Hour)
	d := src.read()
	if d.Err == nil || !strings.Contains(d.Err.Error(), "no such file") {
		t.Fatalf("missing file: %+v", d)
	}
}

func TestAgentWithFileSourceConverges(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	write(t, filepath.Join(dir, "layouts.yaml"), testLayouts)
	write(t, cfg, "layouts: layouts.yaml\nconfig: all-7g\n")
	_, node := simNode(t, "h100-80gb", 2)
	a := New(node, NewFileSource(cfg, 10*time.Millisecond), fastOptions())
	running(t, a)
	waitFor(t, a, "all-7g", func(inv Inventory) bool { return inv.State == StateSuccess && inv.Desired.Config == "all-7g" })
	write(t, cfg, "layouts: layouts.yaml\nconfig: all-balanced\n")
	inv := waitFor(t, a, "all-balanced", func(inv Inventory) bool {
		return inv.State == StateSuccess && inv.Desired.Config == "all-balanced"
	})
	if len(inv.Slices()) != 8 {
		t.Errorf("%d slices, want 8", len(inv.Slices()))
	}
}
