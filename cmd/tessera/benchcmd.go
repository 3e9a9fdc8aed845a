package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tessera-gpu/tessera/bench"
	"github.com/tessera-gpu/tessera/scheduler"
)

// benchOptions are the flags of `tessera bench`.
type benchOptions struct {
	scenarios []string
	planners  []string
	output    string
	runs      int
	export    string
	seeds     int
	exact     int
	peakRSS   bool
}

func newBenchCommand() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the scheduler benchmark: Tessera's planner against the baselines",
		Long: `Run the scheduler benchmark (bench/): plan every scenario with every planner,
check each plan (bench.Evaluate and scheduler.Check), and report the GPUs
used against the LP lower bound LB3 and the baselines, slice utilisation,
demand met, plan time and, for the dynamic replay, the layout changes of
each re-plan.

Scenarios: ` + strings.Join(bench.ScenarioNames(), ", ") + `.
Planners:  ` + strings.Join(bench.PlannerNames(), ", ") + `.

-o json writes one JSON object per line, one per (scenario, planner) and,
for the dynamic replay, per (scenario, planner, step); -o markdown writes
the report checked in as bench/RESULTS.md, with every target of the issue
marked PASS or FAIL; -o table a compact table. Progress goes to standard
error.

The exact search (scheduler.ExactMinGPUs) runs on every scenario's initial
workload within --exact-budget search nodes and reports the proven fewest
GPUs where it decides them. The seeded scenarios (zipf200, zipf2000,
zipf20000, dynamic) are also planned by Tessera with --seeds seeds: the
report gives plan time percentiles and GPUs over the seeds. With
--peak-rss (the default on Linux) every plan of Tessera's is made again
by a child ` + "`tessera plan`" + ` process on the same inputs, written to a temporary
directory, which reports its peak resident memory while planning.

--export DIR writes each selected scenario's workload, cluster and steps as
the files ` + "`tessera plan`" + ` reads (DIR/<scenario>/workload.yaml, cluster.yaml,
step-NN-<name>.yaml) and runs nothing, so any solver can be run on exactly
the same instances.

Exit status: 0 success; 1 error, or a plan that is not legal; 2 usage error.`,
		Example: `  tessera bench --scenario s2 --scenario dynamic
  tessera bench --planner tessera --planner greedy -o json > results.jsonl
  tessera bench -o markdown > bench/RESULTS.md
  tessera bench --export /tmp/scenarios`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.scenarios, "scenario", nil, "scenario to run, repeatable or comma-separated (default: all)")
	f.StringSliceVar(&o.planners, "planner", nil, "planner to run, repeatable or comma-separated (default: all)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json (one object per line) or markdown")
	f.IntVar(&o.runs, "runs", 0, "timed runs per plan (default 5, or 3 when one plan takes more than a second)")
	f.StringVar(&o.export, "export", "", "write the selected scenarios' files into this directory and exit")
	f.IntVar(&o.seeds, "seeds", bench.DefaultSeeds, "seeds to plan each seeded scenario with (Tessera only); 1 plans the scenario's own seed only")
	f.IntVar(&o.exact, "exact-budget", bench.DefaultExactBudget, "search nodes of the exact search per scenario; 0 skips it")
	f.BoolVar(&o.peakRSS, "peak-rss", runtime.GOOS == "linux", "measure the peak memory of Tessera's plans in child processes (Linux)")
	return cmd
}

func (o *benchOptions) run(cmd *cobra.Command) error {
	switch o.output {
	case "table", "json", "markdown":
	default:
		return withStatus(exitUsage, fmt.Errorf("unknown output format %q: want table, json or markdown", o.output))
	}
	if o.runs < 0 {
		return withStatus(exitUsage, fmt.Errorf("--runs %d: want a positive count", o.runs))
	}
	if o.seeds < 1 {
		return withStatus(exitUsage, fmt.Errorf("--seeds %d: want at least 1", o.seeds))
	}
	if o.exact < 0 {
		return withStatus(exitUsage, fmt.Errorf("--exact-budget %d: want 0 (skip) or a positive count", o.exact))
	}
	scenarios, err := bench.Scenarios(o.scenarios...)
	if err != nil {
		return withStatus(exitUsage, err)
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.export != "" {
		if err := bench.WriteScenarios(o.export, scenarios); err != nil {
			return err
		}
		names := make([]string, len(scenarios))
		for i, s := range scenarios {
			names[i] = s.Name
		}
		fmt.Fprintf(stdout, "wrote %s to %s\n", strings.Join(names, ", "), o.export)
		return nil
	}
	planners, err := bench.SelectPlanners(o.planners...)
	if err != nil {
		return withStatus(exitUsage, err)
	}
	ropts := bench.RunOptions{Runs: o.runs, Progress: stderr, Seeds: o.seeds, ExactBudget: o.exact}
	if o.exact == 0 {
		ropts.ExactBudget = -1
	}
	if o.peakRSS {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: --peak-rss: %w", err)
		}
		tmp, err := os.MkdirTemp("", "tessera-bench-")
		if err != nil {
			return fmt.Errorf("bench: --peak-rss: %w", err)
		}
		defer os.RemoveAll(tmp)
		ropts.PeakRSS = childPeakRSS(exe, tmp)
	}
	loadBefore := loadAverage()
	results, err := bench.Run(cmd.Context(), scenarios, planners, ropts)
	if err != nil {
		return err
	}
	load := ""
	if loadBefore != "" {
		load = fmt.Sprintf("%s at the start, %s at the end (1, 5, 15 min)", loadBefore, loadAverage())
	}
	switch o.output {
	case "json":
		err = bench.WriteJSONLines(stdout, results)
	case "markdown":
		info := bench.ReportInfo{Command: commandLine(cmd), Date: time.Now().UTC().Format("2006-01-02"), Load: load}
		_, err = io.WriteString(stdout, bench.Markdown(results, info))
	default:
		err = printResults(stdout, results)
	}
	if err != nil {
		return err
	}
	var bad []string
	for _, r := range results {
		if !r.Legal {
			where := r.Scenario + "/" + r.Planner
			if r.Step != "" {
				where += " " + r.Step
			}
			bad = append(bad, where+": "+r.Error)
		}
	}
	if len(bad) > 0 {
		return errors.New("bench: plans that are not legal: " + strings.Join(bad, "; "))
	}
	return nil
}

// commandLine reconstructs the command with the flags given.
func commandLine(cmd *cobra.Command) string {
	parts := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				parts = append(parts, "--"+f.Name, v)
			}
			return
		}
		if f.Shorthand != "" {
			parts = append(parts, "-"+f.Shorthand, f.Value.String())
			return
		}
		parts = append(parts, "--"+f.Name, f.Value.String())
	})
	return strings.Join(parts, " ")
}

// printResults prints one line per result.
func printResults(w io.Writer, results []bench.Result) error {
	t := newTable(w, "SCENARIO", "STEP", "PLANNER", "GPUS", "LB3", "RATIO", "SAVED/WHOLE", "SAVED/STATIC", "MET", "PLAN P50", "CHANGED", "LEGAL")
	for _, r := range results {
		static := "-"
		if r.SavedVsBestStatic != nil {
			static = fmt.Sprintf("%.1f%%", 100**r.SavedVsBestStatic)
		}
		changed := "-"
		if r.ChangedGPUs != nil {
			changed = fmt.Sprint(*r.ChangedGPUs)
		}
		legal := "yes"
		if !r.Legal {
			legal = "NO: " + r.Error
		}
		t.row(r.Scenario, cmp.Or(r.Step, "-"), r.Planner, fmt.Sprint(r.GPUs), fmt.Sprint(r.LB3), fmt.Sprintf("%.3f", r.RatioLB3),
			fmt.Sprintf("%.1f%%", 100*r.SavedVsWholeGPU), static, fmt.Sprintf("%.1f%%", 100*r.DemandMet),
			time.Duration(r.PlanSeconds*float64(time.Second)).Round(time.Microsecond).String(), changed, legal)
	}
	return t.flush()
}

// benchChildEnv is set (to "1") in the environment of the child processes
// --peak-rss starts; the command's tests use it to run the command from
// their test binary.
const benchChildEnv = "TESSERA_BENCH_CHILD"

// childPeakRSS returns a bench.RunOptions.PeakRSS that writes each plan's
// inputs into a new directory under tmp and plans them with `exe plan
// --rss-stats`, exe being this program. The child reports VmHWM itself: the
// ru_maxrss that wait4 returns for a child on Linux starts at the peak of
// the process that spawned it (the kernel keeps the high-water mark of
// the address space it leaves at exec, and Go starts children with
// CLONE_VM), which here is the benchmark, much larger than a plan.
func childPeakRSS(exe, tmp string) func(context.Context, scheduler.Cluster, scheduler.Workload, scheduler.Options) (bench.RSS, error) {
	return func(ctx context.Context, c scheduler.Cluster, w scheduler.Workload, opts scheduler.Options) (bench.RSS, error) {
		dir, err := os.MkdirTemp(tmp, "plan-")
		if err != nil {
			return bench.RSS{}, err
		}
		defer os.RemoveAll(dir)
		wf, cf, err := bench.WriteInstance(dir, c, w)
		if err != nil {
			return bench.RSS{}, err
		}
		statsFile := filepath.Join(dir, "rss.json")
		// Every flag is given, so that TESSERA_* variables of the
		// benchmark's environment cannot change the child's plan.
		child := exec.CommandContext(ctx, exe, "plan", "-f", wf, "--cluster", cf, "-o", "json",
			"--fresh="+strconv.FormatBool(opts.Fresh), "--migrate="+strconv.FormatBool(opts.Migrate),
			"--max-changed-gpus="+strconv.Itoa(opts.MaxChangedGPUs), "--rss-stats", statsFile)
		child.Env = append(os.Environ(), benchChildEnv+"=1")
		var stderr bytes.Buffer
		child.Stderr = &stderr
		if err := child.Run(); err != nil {
			var exit *exec.ExitError
			// Exit status 3: some demand is not met; the plan was made.
			if !errors.As(err, &exit) || exit.ExitCode() != exitNotInSync {
				return bench.RSS{}, fmt.Errorf("%s plan: %w: %s", exe, err, strings.TrimSpace(stderr.String()))
			}
		}
		data, err := os.ReadFile(statsFile)
		if err != nil {
			return bench.RSS{}, fmt.Errorf("child plan: %w", err)
		}
		var st rssStats
		if err := json.Unmarshal(data, &st); err != nil {
			return bench.RSS{}, fmt.Errorf("child plan: %s: %w", statsFile, err)
		}
		if st.PlanKiB <= 0 || st.InputKiB <= 0 || st.BaseKiB <= 0 || st.BaseKiB > st.PlanKiB {
			return bench.RSS{}, fmt.Errorf("child plan: implausible memory figures in %s", data)
		}
		return bench.RSS{PeakMiB: mib(st.PlanKiB), BaseMiB: mib(st.BaseKiB), InputMiB: mib(st.InputKiB)}, nil
	}
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// loadAverage returns the 1, 5 and 15 minute load averages of the machine
// ("0.52 0.58 0.59"), empty where /proc/loadavg cannot be read.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
