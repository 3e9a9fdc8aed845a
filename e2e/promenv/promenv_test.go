package promenv

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestScrapesAStaticPage runs the real Prometheus against a Go httptest
// /metrics page and reads back, through the HTTP API, a gauge, a counter's
// rate, the special values NaN and +Inf, a scalar, and the target's health.
func TestScrapesAStaticPage(t *testing.T) {
	t.Parallel()
	var scrapes atomic.Int64
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, `# HELP e2e_gauge A fixed gauge.
# TYPE e2e_gauge gauge
e2e_gauge{kind="answer"} 42
e2e_gauge{kind="nan"} NaN
e2e_gauge{kind="inf"} +Inf
# HELP e2e_scrapes_total Scrapes served.
# TYPE e2e_scrapes_total counter
e2e_scrapes_total %d
`, n)
	}))
	t.Cleanup(page.Close)
	target := strings.TrimPrefix(page.URL, "http://")

	prom := Start(t, Options{ScrapeInterval: 500 * time.Millisecond, Targets: []string{target}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	up, err := prom.WaitFor(ctx, `up{job="e2e"}`, AllEqual(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != 1 || up[0].Labels["instance"] != target {
		t.Errorf("up = %s; want one series with instance=%q", FormatSamples(up), target)
	}

	got, err := prom.Query(ctx, `e2e_gauge`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("e2e_gauge:\n%s", FormatSamples(got))
	byKind := map[string]float64{}
	for _, s := range got {
		if s.Labels["__name__"] != "e2e_gauge" || s.Labels["job"] != "e2e" {
			t.Errorf("sample %s: want __name__ e2e_gauge and job e2e", s)
		}
		if time.Since(s.T) > time.Minute || time.Until(s.T) > time.Minute {
			t.Errorf("sample %s has time %v, not now", s, s.T)
		}
		byKind[s.Labels["kind"]] = s.Value
	}
	if len(byKind) != 3 || byKind["answer"] != 42 || !math.IsNaN(byKind["nan"]) || !math.IsInf(byKind["inf"], 1) {
		t.Errorf("e2e_gauge by kind = %v; want answer 42, nan NaN, inf +Inf", byKind)
	}

	// Two scrapes a second: once the series is older than the window, the
	// rate is 2/s (less while the window still reaches before its start).
	// Prometheus scrapes a new target only after its scrape manager's first
	// 5-second reload, so this takes about 8 s.
	rate, err := prom.WaitFor(ctx, `rate(e2e_scrapes_total[3s])`, func(ss []Sample) bool {
		return len(ss) == 1 && math.Abs(ss[0].Value-2) <= 0.1
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rate(e2e_scrapes_total[3s]): %s", FormatSamples(rate))

	sc, err := prom.Query(ctx, `scalar(e2e_gauge{kind="answer"}) * 2`)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc) != 1 || sc[0].Value != 84 || len(sc[0].Labels) != 0 {
		t.Errorf("scalar query = %s; want one unlabelled 84", FormatSamples(sc))
	}

	targets, err := prom.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].Health != "up" || targets[0].LastError != "" || targets[0].ScrapeURL != page.URL+"/metrics" {
		t.Errorf("targets:\n%s\nwant one, up, scraping %s/metrics", FormatTargets(targets), page.URL)
	}
}

// TestFailedScrapeExplained checks that a target that cannot be scraped
// shows as down with its error, and that WaitFor's error on timeout names
// the last result and that error.
func TestFailedScrapeExplained(t *testing.T) {
	t.Parallel()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no metrics here", http.StatusInternalServerError)
	}))
	t.Cleanup(page.Close)
	prom := Start(t, Options{Targets: []string{strings.TrimPrefix(page.URL, "http://")}, JobName: "broken"})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := prom.WaitFor(ctx, `up{job="broken"}`, AllEqual(0)); err != nil {
		t.Fatal(err)
	}
	targets, err := prom.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].Health != "down" || !strings.Contains(targets[0].LastError, "500") {
		t.Errorf("targets:\n%s\nwant one, down, with the HTTP 500 as its error", FormatTargets(targets))
	}

	short, cancel2 := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel2()
	_, err = prom.WaitFor(short, `up{job="broken"}`, AllEqual(1))
	if err == nil {
		t.Fatal("WaitFor for up == 1 on a broken target succeeded")
	}
	t.Logf("WaitFor's error:\n%v", err)
	for _, want := range []string{`up{job="broken"}`, "last result", "=> 0", "down", "500"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("WaitFor's error does not contain %q", want)
		}
	}
}

// TestQueryErrors checks that a PromQL syntax error and a range vector come
// back as errors that say why.
func TestQueryErrors(t *testing.T) {
	t.Parallel()
	prom := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := prom.Query(ctx, `sum(`); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("Query(`sum(`) error = %v; want Prometheus's bad_data", err)
	}
	if _, err := prom.Query(ctx, `up[1m]`); err == nil || !strings.Contains(err.Error(), `"matrix"`) {
		t.Errorf("Query(`up[1m]`) error = %v; want a refused matrix", err)
	}
	// An empty vector is a result, not an error.
	got, err := prom.Query(ctx, `up{job="nothing"}`)
	if err != nil || len(got) != 0 {
		t.Errorf("Query of nothing = %v, %v; want empty, nil", got, err)
	}
}

// TestStopCleansUp checks that Stop ends the process and removes the folder.
func TestStopCleansUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Launch(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir
	cfg, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal(cfg, &parsed); err != nil {
		t.Errorf("config is not JSON/YAML: %v\n%s", err, cfg)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !s.proc.Exited() {
		t.Error("prometheus still runs after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (%v)", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestMissingBinaryNamesThePackage checks the message a machine without
// Prometheus gets.
func TestMissingBinaryNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaryIn("", "/nonexistent/prometheus")
	if err == nil || !strings.Contains(err.Error(), "apt-get install prometheus") {
		t.Errorf("no binary anywhere: error %v; want one naming apt-get install prometheus", err)
	}
	_, err = Launch(context.Background(), Options{Binary: "/nonexistent/prometheus"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install prometheus") {
		t.Errorf("Launch with a missing Binary: error %v; want one naming apt-get install prometheus", err)
	}
}

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{{"1", 1}, {"0.0025", 0.0025}, {"1e+06", 1e6}, {"+Inf", math.Inf(1)}, {"-Inf", math.Inf(-1)}} {
		got, err := parseValue(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseValue(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if v, err := parseValue("NaN"); err != nil || !math.IsNaN(v) {
		t.Errorf("parseValue(NaN) = %v, %v", v, err)
	}
	if _, err := parseValue("x"); err == nil {
		t.Error("parseValue(x) succeeded")
	}
}
