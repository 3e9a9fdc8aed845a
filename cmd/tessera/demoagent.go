package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// demoAgent runs the node agent on a simulated 2× H100-80GB node with a
// file source, edits the file and shows the agent converge each time.
func (d *demo) demoAgent(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "tessera-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(filepath.Join(dir, "layouts.yaml"), migconfig.DefaultLayoutFile(), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	setConfig := func(name string) error {
		return os.WriteFile(cfg, []byte("layouts: layouts.yaml\nconfig: "+name+"\n"), 0o644)
	}
	if err := setConfig("all-balanced"); err != nil {
		return err
	}

	s, err := sim.NewFromSpec(d.cat, "h100-80gb:2")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	node, err := gpu.Open(ctx, s, gpu.Options{Catalog: d.cat, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer node.Close()
	a := agent.New(node, agent.NewFileSource(cfg, 50*time.Millisecond), agent.Options{
		NodeName: "demo-node", BusyPoll: 50 * time.Millisecond, Resync: time.Minute,
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	events, stop := a.Subscribe()
	defer stop()

	// await prints the agent's state changes until ok holds.
	last := agent.State("-")
	await := func(what string, ok func(agent.Inventory) bool) (agent.Inventory, error) {
		timeout := time.After(10 * time.Second)
		for {
			select {
			case inv := <-events:
				if inv.State != last {
					last = inv.State
					line := fmt.Sprintf("  agent: %s", displayState(inv.State))
					if inv.Reason != "" && inv.State != agent.StateSuccess {
						line += " — " + inv.Reason
					}
					fmt.Fprintln(d.w, line)
				}
				if ok(inv) {
					return inv, nil
				}
			case <-timeout:
				return agent.Inventory{}, fmt.Errorf("demo: the agent did not reach %s", what)
			case <-ctx.Done():
				return agent.Inventory{}, ctx.Err()
			}
		}
	}
	configIs := func(name string, state agent.State) func(agent.Inventory) bool {
		return func(inv agent.Inventory) bool {
			return inv.State == state && inv.Desired != nil && inv.Desired.Config == name
		}
	}

	d.title("The node agent: tessera agent --agent-config agent.yaml on 2× H100-80GB")
	fmt.Fprintf(d.w, "agent.yaml:\n  layouts: layouts.yaml\n  config: all-balanced\n\n")
	inv, err := await("all-balanced", configIs("all-balanced", agent.StateSuccess))
	if err != nil {
		return err
	}
	fmt.Fprintln(d.w)
	if err := agent.WriteStatus(d.w, inv); err != nil {
		return err
	}

	before := inv
	d.title("Edit agent.yaml: config: all-1g.10gb — the agent sees the file change and converges")
	if err := setConfig("all-1g.10gb"); err != nil {
		return err
	}
	if inv, err = await("all-1g.10gb", configIs("all-1g.10gb", agent.StateSuccess)); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "  %d operations, %d slices now\n\n", inv.LastApply.Planned, len(inv.Slices()))
	if err := writeGPUTable(d, inv); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\nthe device plugin's resources for these slices (mixed strategy; before → after):\n")
	if err := writeResources(d, before, inv); err != nil {
		return err
	}

	d.title("A pod runs on GPU 0's first slice; config: all-3g.40gb waits for it (busy policy wait)")
	pid, err := s.StartProcess(inv.GPUs[0].Slices[0].UUID)
	if err != nil {
		return err
	}
	if err := setConfig("all-3g.40gb"); err != nil {
		return err
	}
	held := func(inv agent.Inventory) bool {
		return configIs("all-3g.40gb", agent.StatePending)(inv) && len(inv.HeldBack) > 0
	}
	if inv, err = await("a hold-back", held); err != nil {
		return err
	}
	if err := writeGPUTable(d, inv); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\nthe process ends:\n")
	if err := s.StopProcess(pid); err != nil {
		return err
	}
	if inv, err = await("all-3g.40gb", configIs("all-3g.40gb", agent.StateSuccess)); err != nil {
		return err
	}
	fmt.Fprintln(d.w)
	if err := writeGPUTable(d, inv); err != nil {
		return err
	}
	return d.demoMetrics(ctx, s, node, inv)
}

// writeResources prints the resources the device plugin advertises for
// two inventories, one line per resource.
func writeResources(d *demo, before, after agent.Inventory) error {
	was, err := deviceplugin.Resources(deviceplugin.StrategyMixed, before, nil)
	if err != nil {
		return err
	}
	now, err := deviceplugin.Resources(deviceplugin.StrategyMixed, after, nil)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for r := range was {
		names[r] = true
	}
	for r := range now {
		names[r] = true
	}
	for _, r := range slices.Sorted(maps.Keys(names)) {
		fmt.Fprintf(d.w, "  %-26s %d → %d\n", r, len(was[r]), len(now[r]))
	}
	return nil
}

// writeGPUTable prints only the GPU rows of an agent status.
func writeGPUTable(d *demo, inv agent.Inventory) error {
	short := inv
	short.GPUs = append([]agent.GPU(nil), inv.GPUs...)
	for i := range short.GPUs {
		short.GPUs[i].Slices = nil
	}
	short.Notes, short.HeldBack = nil, inv.HeldBack
	return agent.WriteStatus(d.w, short)
}

func displayState(s agent.State) string {
	if s == agent.StateNone {
		return "observing"
	}
	return string(s)
}
