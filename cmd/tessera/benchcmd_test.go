package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/bench"
)

// TestMain lets `tessera bench --peak-rss` run its child `tessera plan`
// processes from the test binary: os.Executable is the test binary here,
// and the child is started with benchChildEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestBenchPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is measured on Linux only")
	}
	code, stdout, stderr := tessera(t, "bench", "--scenario", "s2,dynamic", "--planner", "tessera", "-o", "json", "--runs", "1", "--seeds", "1", "--exact-budget", "0")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	rs, err := bench.ReadJSONLines(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) < 3 {
		t.Fatalf("%d results", len(rs))
	}
	for _, r := range rs {
		name := r.Scenario + "/" + r.Step
		if r.PeakRSSMiB == nil || r.BaseRSSMiB == nil || r.InputRSSMiB == nil {
			t.Fatalf("%s: no memory figures", name)
		}
		// A Go program holds a few MiB at least; a plan of ~100 GPUs far
		// less than a GiB.
		if *r.BaseRSSMiB < 1 || *r.PeakRSSMiB < *r.BaseRSSMiB || *r.PeakRSSMiB > 1024 || *r.InputRSSMiB < 1 {
			t.Errorf("%s: peak %.1f MiB, base %.1f, input %.1f", name, *r.PeakRSSMiB, *r.BaseRSSMiB, *r.InputRSSMiB)
		}
		if r.Exact != nil || r.ExactLower != nil || r.Sweep != nil {
			t.Errorf("%s: exact search or seed sweep despite --exact-budget 0 --seeds 1", name)
		}
	}
	if !strings.Contains(stderr, "peak RSS") {
		t.Errorf("progress does not mention the peak RSS: %s", stderr)
	}

	// Without --peak-rss nothing is measured.
	code, stdout, stderr = tessera(t, "bench", "--scenario", "s2", "--planner", "tessera", "-o", "json", "--runs", "1", "--peak-rss=false")
	if code != exitOK || strings.Contains(stdout, "peak_rss_mib") {
		t.Fatalf("--peak-rss=false: code %d, stdout %s, stderr %s", code, stdout, stderr)
	}
}

func TestPlanRSSStats(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is measured on Linux only")
	}
	wf, cf := exportScenario(t, "s3")
	stats := filepath.Join(t.TempDir(), "rss.json")
	code, stdout, stderr := tessera(t, "plan", "-f", wf, "--cluster", cf, "-o", "json", "--rss-stats", stats)
	if code != exitOK || !json.Valid([]byte(stdout)) {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	data, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	var st rssStats
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.InputKiB <= 0 || st.BaseKiB <= 0 || st.PlanKiB < st.BaseKiB {
		t.Errorf("stats %s", data)
	}
	// The flag is for tessera bench: hidden from the help.
	_, help, _ := tessera(t, "plan", "--help")
	if strings.Contains(help, "rss-stats") {
		t.Errorf("--rss-stats shows in the help:\n%s", help)
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\ttessera\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n"
	if got, err := parseVmHWM([]byte(status)); err != nil || got != 20480 {
		t.Errorf("parseVmHWM = %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\ttessera\n", "VmHWM:\t 12 MB\n", "VmHWM:\tlots kB\n"} {
		if _, err := parseVmHWM([]byte(bad)); err == nil {
			t.Errorf("parseVmHWM(%q): no error", bad)
		}
	}
}

func TestBenchSeedsAndExactFlags(t *testing.T) {
	code, stdout, stderr := tessera(t, "bench", "--scenario", "zipf200,s3", "--planner", "tessera", "-o", "json", "--runs", "1", "--seeds", "2", "--peak-rss=false")
	if code != exitOK {
		t.Fatalf("code %d, stderr %s", code, stderr)
	}
	rs, err := bench.ReadJSONLines(strings.NewReader(stdout))
	if err != nil || len(rs) != 2 {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	for _, r := range rs {
		if r.Exact == nil || *r.Exact != r.GPUs {
			t.Errorf("%s: exact %v, GPUs %d", r.Scenario, r.Exact, r.GPUs)
		}
		if seeded := r.Scenario == "zipf200"; (r.Sweep != nil) != seeded || seeded && r.Sweep.Seeds != 2 {
			t.Errorf("%s: sweep %+v", r.Scenario, r.Sweep)
		}
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--seeds", "0"}, "--seeds 0"},
		{[]string{"--exact-budget", "-1"}, "--exact-budget -1"},
	} {
		code, _, stderr := tessera(t, append([]string{"bench"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}
