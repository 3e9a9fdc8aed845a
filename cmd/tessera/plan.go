package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// planOptions are the flags of `tessera plan`.
type planOptions struct {
	workload string
	cluster  string
	fresh    bool
	migrate  bool
	// maxChanged is scheduler.Options.MaxChangedGPUs.
	maxChanged int
	output     string
	// rssStats, when set, names the file the peak resident memory of
	// reading the inputs and of planning is written to (see rssStats).
	rssStats string
}

func newPlanCommand() *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan -f WORKLOAD --cluster CLUSTER",
		Short: "Choose MIG layouts and place replicas to serve a workload with the fewest GPUs",
		Long: `Plan how to serve a workload on a cluster: choose every GPU's MIG layout and
place the services' replicas on the slices so that all demand is served with
the fewest GPUs. Nothing is changed; the plan is printed.

When the cluster file lists slices (the layouts and replicas running now),
the plan is an incremental re-plan: running replicas stay where the demand
still needs them and as few GPUs as possible change layout: at most
--max-changed-gpus of the GPUs in use before and after (by default 2% of the
GPUs the plan uses, at least one). Within that budget it re-lays out GPUs in
use to free others; running replicas move only with --migrate. --fresh
plans as if every GPU were empty.

The workload file (YAML or JSON) lists the services, each with its demand
in requests per second and the throughput one replica achieves within the
latency SLO on each (GPU model, MIG profile); a pair that is absent does
not fit:

  services:
    - name: resnet50
      model: resnet50        # optional, informational
      demand: 1200           # requests per second
      minReplicas: 1         # optional
      memoryMiB: 0           # optional: memory one replica needs
      throughput:
        - {gpuModel: a100-80gb, profile: 1g.10gb, rps: 410}
        - {gpuModel: a100-80gb, profile: 3g.40gb, rps: 1300}

The cluster file lists the nodes and their GPUs (models: ` + strings.Join(migconfig.Builtin().Keys(), ", ") + `),
optionally with the current slices and the service running on each:

  nodes:
    - name: node-0
      gpus:
        - {index: 0, model: a100-80gb}
        - index: 1
          model: a100-80gb
          cordoned: false    # optional: no new replicas
          slices:
            - {profile: 3g.40gb, placement: {start: 4, size: 4}, service: resnet50}

Unknown keys are refused. ` + "`tessera bench --export DIR`" + ` writes the benchmark's
scenarios in these formats.

Exit status: 0 all demand is met; 1 error; 2 usage error; 3 some demand
cannot be met (the services are listed on standard error; the plan still
serves what it can).`,
		Example: `  tessera bench --export /tmp/scenarios --scenario s6
  tessera plan -f /tmp/scenarios/s6/workload.yaml --cluster /tmp/scenarios/s6/cluster.yaml
  tessera plan -f workload.yaml --cluster running.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.workload, "workload", "f", "", `workload file, YAML or JSON ("-" for standard input)`)
	f.StringVar(&o.cluster, "cluster", "", `cluster file, YAML or JSON ("-" for standard input)`)
	f.BoolVar(&o.fresh, "fresh", false, "plan as if every GPU were empty (ignore current layouts and replicas)")
	f.BoolVar(&o.migrate, "migrate", false, "in an incremental re-plan, let running replicas move (make-before-break) to free GPUs")
	f.IntVar(&o.maxChanged, "max-changed-gpus", 0, "in an incremental re-plan, the most GPUs in use whose layout may change (0: 2% of the GPUs used, at least 1; -1: no budget and no repack)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	// For `tessera bench`, which plans in child processes to measure
	// their memory; Linux only.
	f.StringVar(&o.rssStats, "rss-stats", "", "write the peak resident memory of reading the inputs and of planning to this file (JSON, KiB; Linux)")
	_ = f.MarkHidden("rss-stats")
	return cmd
}

func (o *planOptions) run(cmd *cobra.Command) error {
	switch {
	case o.workload == "":
		return withStatus(exitUsage, errors.New("plan: the workload file is required (-f FILE)"))
	case o.cluster == "":
		return withStatus(exitUsage, errors.New("plan: the cluster file is required (--cluster FILE)"))
	case o.workload == "-" && o.cluster == "-":
		return withStatus(exitUsage, errors.New("plan: only one of -f and --cluster can read standard input"))
	}
	switch o.output {
	case "table", "json", "yaml":
	default:
		return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or yaml", o.output))
	}
	cat := migconfig.Builtin()
	w, c, err := loadPlanInput(cat, cmd.InOrStdin(), o.workload, o.cluster)
	if err != nil {
		return err
	}
	var probe *rssProbe
	if o.rssStats != "" {
		if probe, err = startRSSProbe(); err != nil {
			return fmt.Errorf("plan: --rss-stats: %w", err)
		}
	}
	plan, err := scheduler.NewPlanner(cat).Plan(c, w, scheduler.Options{Fresh: o.fresh, Migrate: o.migrate, MaxChangedGPUs: o.maxChanged})
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if probe != nil {
		if err := probe.finish(o.rssStats); err != nil {
			return fmt.Errorf("plan: --rss-stats: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	if o.output == "table" {
		err = printSchedulerPlan(out, plan)
	} else {
		err = writeStructured(out, o.output, plan)
	}
	if err != nil {
		return err
	}
	var unmet []string
	for _, s := range plan.Services {
		if s.Unmet != "" {
			unmet = append(unmet, fmt.Sprintf("%s (%s)", s.Name, s.Unmet))
		}
	}
	if len(unmet) > 0 {
		return withStatus(exitNotInSync, fmt.Errorf("plan: demand not met for %d of %d services: %s", len(unmet), len(plan.Services), strings.Join(unmet, "; ")))
	}
	return nil
}

// loadPlanInput reads and parses the workload and cluster files and
// checks their GPU models and profiles against the catalog.
func loadPlanInput(cat *migconfig.Catalog, stdin io.Reader, workloadFile, clusterFile string) (scheduler.Workload, scheduler.Cluster, error) {
	name, data, err := readInput(stdin, workloadFile)
	if err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, fmt.Errorf("read workload file: %w", err)
	}
	w, err := scheduler.ParseWorkload(name, data)
	if err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, err
	}
	if err := checkWorkloadModels(cat, name, w); err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, err
	}
	name, data, err = readInput(stdin, clusterFile)
	if err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, fmt.Errorf("read cluster file: %w", err)
	}
	c, err := scheduler.ParseCluster(name, data)
	if err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, err
	}
	if err := checkClusterModels(cat, name, c); err != nil {
		return scheduler.Workload{}, scheduler.Cluster{}, err
	}
	return w, c, nil
}

// readInput reads a file, or standard input for "-".
func readInput(stdin io.Reader, path string) (string, []byte, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		return "<stdin>", data, err
	}
	data, err := os.ReadFile(path)
	return path, data, err
}

// checkClusterModels checks that every GPU's model is in the catalog and
// every current slice is a profile of it at a valid placement.
func checkClusterModels(cat *migconfig.Catalog, name string, c scheduler.Cluster) error {
	var errs []error
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			m, ok := cat.ByKey(g.Model)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: node %q gpu %d: unknown GPU model %q (known: %s)", name, n.Name, g.Index, g.Model, strings.Join(cat.Keys(), ", ")))
				continue
			}
			for _, s := range g.Slices {
				p, ok := m.ProfileByName(s.Profile)
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("%s: node %q gpu %d: %q is not a MIG profile of %s", name, n.Name, g.Index, s.Profile, m.Key))
				case !p.ValidPlacement(s.Placement):
					errs = append(errs, fmt.Errorf("%s: node %q gpu %d: %s cannot be placed at %s", name, n.Name, g.Index, s.Profile, s.Placement))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// checkWorkloadModels checks that every throughput entry names a GPU model
// of the catalog and one of its profiles.
func checkWorkloadModels(cat *migconfig.Catalog, name string, w scheduler.Workload) error {
	var errs []error
	for _, s := range w.Services {
		for _, r := range s.Throughput {
			m, ok := cat.ByKey(r.GPUModel)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: service %q: throughput on unknown GPU model %q (known: %s)", name, s.Name, r.GPUModel, strings.Join(cat.Keys(), ", ")))
				continue
			}
			if _, ok := m.ProfileByName(r.Profile); !ok {
				errs = append(errs, fmt.Errorf("%s: service %q: throughput on %q, which is not a MIG profile of %s", name, s.Name, r.Profile, m.Key))
			}
		}
	}
	return errors.Join(errs...)
}

// printSchedulerPlan prints the plan as three tables: the GPUs with a layout (or
// one that changes), the services, and a summary.
func printSchedulerPlan(w io.Writer, p scheduler.Plan) error {
	t := newTable(w, "NODE", "GPU", "MODEL", "LAYOUT (profile@start:size=service)", "CHANGED")
	for _, g := range p.GPUs {
		if len(g.Slices) == 0 && !g.LayoutChanged {
			continue
		}
		parts := make([]string, len(g.Slices))
		for i, s := range g.Slices {
			parts[i] = fmt.Sprintf("%s@%s=%s", s.Profile, s.Placement, cmp.Or(s.Service, "free"))
		}
		layout := strings.Join(parts, " ")
		if layout == "" {
			layout = "(released)"
		}
		changed := ""
		if g.LayoutChanged {
			changed = "yes"
		}
		t.row(g.Node, fmt.Sprint(g.Index), g.Model, layout, changed)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "SERVICE", "DEMAND", "CAPACITY", "REPLICAS", "UNMET")
	for _, s := range p.Services {
		t.row(s.Name, fmt.Sprintf("%.1f", s.Demand), fmt.Sprintf("%.1f", s.Capacity), fmt.Sprint(s.Replicas), cmp.Or(s.Unmet, "-"))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	ratio := "-"
	if p.LowerBound > 0 {
		ratio = fmt.Sprintf("%.3f", float64(p.GPUsUsed)/float64(p.LowerBound))
	}
	t = newTable(w, "GPUS USED", "OF", "LB3", "RATIO", "CHANGED GPUS", "ADDED", "RELEASED", "CHANGES", "CAPACITY DIP")
	t.row(fmt.Sprint(p.GPUsUsed), fmt.Sprint(len(p.GPUs)), fmt.Sprint(p.LowerBound), ratio, fmt.Sprint(p.ChangedGPUs),
		fmt.Sprint(p.AddedGPUs), fmt.Sprint(p.ReleasedGPUs), fmt.Sprint(len(p.Changes)), fmt.Sprintf("%.3f", p.CapacityDip))
	return t.flush()
}
