package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

func TestAgentUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"agent", "--source", "etcd", "--backend", "sim:a30:1"}, exitUsage, `unknown --source "etcd"`},
		{[]string{"agent", "--busy-policy", "later", "--backend", "sim:a30:1"}, exitUsage, "wait, fail or force"},
		{[]string{"agent", "--log-format", "xml"}, exitUsage, "want text or json"},
		{[]string{"agent", "--backend", "sim:nope:1", "--status-address", ""}, exitError, "nope"},
		{[]string{"agent", "status", "--status-address", "127.0.0.1:1"}, exitError, "is the agent running"},
		{[]string{"agent", "status", "-o", "xml"}, exitUsage, `unknown output format "xml"`},
		{[]string{"agent", "--mig-strategy", "all", "--backend", "sim:a30:1", "--status-address", ""}, exitUsage, "mixed, single or none"},
		{[]string{"agent", "--device-list-strategy", "mounts", "--backend", "sim:a30:1", "--status-address", ""}, exitUsage, "envvar, cdi-annotations or cdi-cri"},
		{[]string{"agent", "--dcgm", "maybe", "--backend", "sim:a30:1", "--status-address", ""}, exitUsage, "--dcgm \"maybe\": want auto, on or off"},
		{[]string{"agent", "--triton-target", "10.0.0.1:8002", "--backend", "sim:a30:1", "--status-address", ""}, exitUsage, "want an http:// or https:// URL"},
		{[]string{"agent", "--triton-window", "10ms", "--backend", "sim:a30:1", "--status-address", ""}, exitUsage, "--triton-window must be at least 1s"},
		{[]string{"agent", "--dcgm", "on", "--backend", "sim:a30:1", "--status-address", "", "--metrics-address", "127.0.0.1:0"}, exitError, "--dcgm on: dcgm: DCGM support not built in"},
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

// TestAgentCommandAppliesFileSource runs `tessera agent` on a simulated
// node with a file source and reads the node it saved.
func TestAgentCommandAppliesFileSource(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "node.json")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("layouts: "+writeFile(t, "layouts.yaml", string(migconfig.DefaultLayoutFile()))+"\nconfig: all-balanced\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--backend", "sim:a100-80gb:2", "--sim-state", state,
			"--agent-config", cfg, "--status-address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0", "--node-name", "gpu-7"}, &bytes.Buffer{}, &stderr)
	}()
	cat := migconfig.Builtin()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(state); err == nil {
			if s, err := sim.Load(cat, data); err == nil && balanced(t, s) {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the agent did not apply all-balanced; log:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("agent exited %d; log:\n%s", code, stderr.String())
	}
	for _, want := range []string{"agent started", "node=gpu-7", "state=success", "agent stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// balanced reports whether every GPU of s holds A100-80GB's all-balanced
// layout: 2×1g.10gb, 1×2g.20gb, 1×3g.40gb.
func balanced(t *testing.T, s *sim.Node) bool {
	t.Helper()
	st := snapshotSim(t, s)
	for _, g := range st.GPUs {
		if len(g.Instances) != 4 {
			return false
		}
	}
	return len(st.GPUs) == 2
}

// snapshotSim reads a simulated node through the gpu package.
func snapshotSim(t *testing.T, s *sim.Node) migconfig.NodeState {
	t.Helper()
	n, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: migconfig.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	st, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAgentCommandReloadsOnSIGHUP changes agent.yaml with polling off
// (--poll 1h): only SIGHUP makes the agent see it.
func TestAgentCommandReloadsOnSIGHUP(t *testing.T) {
	// The test catches SIGHUP too, so that a signal sent before the agent
	// listens cannot kill the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dir := t.TempDir()
	state := filepath.Join(dir, "node.json")
	cfg := filepath.Join(dir, "agent.yaml")
	layouts := writeFile(t, "layouts.yaml", string(migconfig.DefaultLayoutFile()))
	if err := os.WriteFile(cfg, []byte("layouts: "+layouts+"\nconfig: all-balanced\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--backend", "sim:a100-80gb:2", "--sim-state", state, "--poll", "1h",
			"--agent-config", cfg, "--status-address", "", "--metrics-address", ""}, &bytes.Buffer{}, &stderr)
	}()
	instancesPerGPU := func(want int) bool {
		data, err := os.ReadFile(state)
		if err != nil {
			return false
		}
		s, err := sim.Load(migconfig.Builtin(), data)
		if err != nil {
			return false
		}
		st := snapshotSim(t, s)
		for _, g := range st.GPUs {
			if len(g.Instances) != want {
				return false
			}
		}
		return true
	}
	waitUntil := func(what string, ok func() bool, kick func()) {
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("timed out waiting for %s; log:\n%s", what, stderr.String())
			}
			if kick != nil {
				kick()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("all-balanced", func() bool { return instancesPerGPU(4) }, nil)
	if err := os.WriteFile(cfg, []byte("layouts: "+layouts+"\nconfig: all-7g.80gb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if !instancesPerGPU(4) {
		t.Fatal("the agent saw the change without SIGHUP while polling is off")
	}
	waitUntil("all-7g.80gb after SIGHUP", func() bool { return instancesPerGPU(1) }, func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("agent exited %d", code)
	}
	if !strings.Contains(stderr.String(), "SIGHUP: reloading") {
		t.Errorf("log lacks the reload:\n%s", stderr.String())
	}
}
