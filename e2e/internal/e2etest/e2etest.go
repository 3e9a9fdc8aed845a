// Package e2etest holds what several end-to-end test packages need: the
// repository's root, a running agent's log, and its status.
package e2etest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/agent"
)

// ProductModule is the module path whose go.mod marks the repository root.
const ProductModule = "github.com/tessera-gpu/tessera"

// RepoRoot returns the repository root: $TESSERA_REPO when set, else the
// nearest folder above the test's working directory whose go.mod declares
// the product module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("TESSERA_REPO"); dir != "" {
		if !isProductRoot(dir) {
			t.Fatalf("TESSERA_REPO=%s: no go.mod declaring module %s there", dir, ProductModule)
		}
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if isProductRoot(dir) {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no folder above %s has a go.mod declaring module %s; set TESSERA_REPO to the repository root", wd, ProductModule)
		}
	}
}

func isProductRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == ProductModule
		}
	}
	return false
}

// AgentLog collects a `tessera agent` process's JSON log (its stderr) and
// reports the status and metrics servers' addresses from the log lines
// that name them.
type AgentLog struct {
	mu  sync.Mutex
	buf strings.Builder
	// Addr receives the status server's address once.
	Addr chan string
	// MetricsAddr receives the metrics server's address once.
	MetricsAddr chan string
}

// NewAgentLog returns an empty AgentLog.
func NewAgentLog() *AgentLog {
	return &AgentLog{Addr: make(chan string, 1), MetricsAddr: make(chan string, 1)}
}

// Read consumes r (the agent's stderr) until it ends.
func (l *AgentLog) Read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.buf.WriteString(line + "\n")
		l.mu.Unlock()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		var ch chan string
		switch m["msg"] {
		case "status server":
			ch = l.Addr
		case "metrics server":
			ch = l.MetricsAddr
		}
		if a, ok := m["address"].(string); ok && ch != nil {
			select {
			case ch <- a:
			default:
			}
		}
	}
}

// String returns everything logged so far.
func (l *AgentLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Status reads a running agent's Inventory from its status server at addr.
func Status(t testing.TB, addr string) agent.Inventory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inv, err := agent.FetchStatus(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// BuildTessera builds cmd/tessera into dir and returns the binary's path.
func BuildTessera(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tessera")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tessera")
	cmd.Dir = RepoRoot(t)
	cmd.Env = os.Environ()
	if os.Getenv("CGO_CFLAGS") == "" {
		// As the Makefile: NVML's header declares deprecated functions.
		cmd.Env = append(cmd.Env, "CGO_CFLAGS=-O2 -Wno-deprecated-declarations")
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tessera: %v\n%s", err, out)
	}
	t.Logf("built tessera in %v", time.Since(start).Round(time.Millisecond))
	return bin
}
