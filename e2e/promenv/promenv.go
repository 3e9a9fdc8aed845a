// Package promenv runs a real Prometheus server for an end-to-end test: its
// own configuration and storage in a temporary folder, a free loopback
// port, and the HTTP API (plain JSON, read with the standard library) to
// ask it what it scraped.
//
//	prom := promenv.Start(t, promenv.Options{Targets: []string{addr}})
//	samples, err := prom.WaitFor(ctx, `up{job="e2e"}`, promenv.AllEqual(1))
//
// The binary is Debian's prometheus package (2.42 on bookworm): it is found
// on $PATH, else at /usr/bin/prometheus. A machine without it fails the test
// with a message naming `apt-get install prometheus`; it is never skipped,
// so CI (which installs it in .ci/run) proves what the tests claim.
package promenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/e2e/internal/testproc"
)

// KeepEnvVar, when set, keeps a failed test's Prometheus folder (config,
// log, TSDB) for inspection, as kubeenv does.
const KeepEnvVar = testproc.KeepEnvVar

// DefaultBinary is where Debian's prometheus package installs the server;
// it is tried when $PATH has no prometheus.
const DefaultBinary = "/usr/bin/prometheus"

// installHint ends every "not found" error.
const installHint = "install Debian's prometheus package (apt-get install prometheus); CI installs it in .ci/run"

// Options configures a Server. The zero value scrapes nothing every second.
type Options struct {
	// Binary is the prometheus executable; empty means "prometheus" on
	// $PATH, else DefaultBinary.
	Binary string
	// ScrapeInterval is the global scrape_interval (and scrape_timeout);
	// default 1 s. Prometheus accepts whole milliseconds.
	ScrapeInterval time.Duration
	// JobName is the one scrape job's name; default "e2e".
	JobName string
	// Targets are the job's static targets, host:port.
	Targets []string
	// MetricsPath is the path scraped on each target; default "/metrics".
	MetricsPath string
	// ReadyTimeout bounds the wait for /-/ready; default 30 s.
	ReadyTimeout time.Duration
	// Dir is the folder for the config, the log and the TSDB; empty means a
	// new temporary folder, removed by Stop.
	Dir string
}

// Server is a running Prometheus.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// Binary is the prometheus executable that runs.
	Binary string
	// Dir holds ConfigPath, LogPath and the TSDB ("data").
	Dir        string
	ConfigPath string
	LogPath    string
	// Options are the options the server runs with, defaults filled in.
	Options Options

	removeDir bool
	client    *http.Client
	proc      *testproc.Process
}

// Start launches Prometheus for the test, failing it with the reason if it
// cannot, and stops it and removes its folder when the test ends. If the
// test failed, the tail of Prometheus's log and its targets' health are
// logged first, and the folder is kept if $TESSERA_E2E_KEEP is set.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := testproc.TestContext(t)
	defer cancel()
	s, err := Launch(ctx, opts)
	if err != nil {
		t.Fatalf("promenv: %v", err)
	}
	testproc.Cleanup(t, "promenv", func() {
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if targets, err := s.Targets(tctx); err != nil {
			t.Logf("promenv: targets: %v", err)
		} else {
			t.Logf("promenv: targets:\n%s", FormatTargets(targets))
		}
		cancel()
		t.Logf("promenv: prometheus log (%s), last lines:\n%s", s.LogPath, s.LogTail(40))
	}, s.Dir, &s.removeDir, s.Stop)
	return s
}

// Launch starts Prometheus on a free loopback port and returns once its
// /-/ready answers 200. ctx bounds the start only; the server runs until
// Stop. On error nothing is left running.
func Launch(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.ScrapeInterval%time.Millisecond != 0 {
		return nil, fmt.Errorf("scrape interval %v: Prometheus takes whole milliseconds", opts.ScrapeInterval)
	}
	if opts.JobName == "" {
		opts.JobName = "e2e"
	}
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	bin, err := findBinary(opts.Binary)
	if err != nil {
		return nil, err
	}
	s := &Server{Binary: bin, Dir: opts.Dir, Options: opts, client: &http.Client{Timeout: 10 * time.Second}}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "tessera-promenv-"); err != nil {
			return nil, fmt.Errorf("creating Prometheus's folder: %w", err)
		}
		s.removeDir = true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating Prometheus's folder: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()
	s.ConfigPath = filepath.Join(s.Dir, "prometheus.yml")
	s.LogPath = filepath.Join(s.Dir, "prometheus.log")
	cfg, err := configFile(opts)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ConfigPath, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", s.ConfigPath, err)
	}

	// Prometheus cannot listen on port 0 and report the port, so take one
	// that was free a moment ago and try again if another process won it.
	const attempts = 5
	for attempt := 1; ; attempt++ {
		port, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "http://" + addr
		s.proc, err = testproc.Start("prometheus", bin, s.LogPath,
			"--config.file="+s.ConfigPath,
			"--storage.tsdb.path="+filepath.Join(s.Dir, "data"),
			"--web.listen-address="+addr,
			"--log.level=info",
		)
		if err != nil {
			return nil, err
		}
		err = s.waitReady(ctx)
		if err == nil {
			return s, nil
		}
		if s.proc.Exited() && testproc.AddrInUse(s.LogTail(50)) && attempt < attempts {
			continue
		}
		return nil, err
	}
}

// configFile renders the Prometheus configuration as JSON, which is YAML.
func configFile(opts Options) ([]byte, error) {
	interval := opts.ScrapeInterval.String()
	targets := opts.Targets
	if targets == nil {
		targets = []string{}
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     interval,
			"scrape_timeout":      interval,
			"evaluation_interval": interval,
		},
		"scrape_configs": []any{map[string]any{
			"job_name":       opts.JobName,
			"metrics_path":   opts.MetricsPath,
			"static_configs": []any{map[string]any{"targets": targets}},
		}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rendering the Prometheus config: %w", err)
	}
	return append(data, '\n'), nil
}

// findBinary returns explicit if set, else prometheus on $PATH, else
// DefaultBinary.
func findBinary(explicit string) (string, error) {
	return findBinaryIn(explicit, DefaultBinary)
}

func findBinaryIn(explicit, fallback string) (string, error) {
	if explicit != "" {
		if _, err := exec.LookPath(explicit); err != nil {
			return "", fmt.Errorf("prometheus binary %s: %v; %s", explicit, err, installHint)
		}
		return explicit, nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	if _, err := exec.LookPath(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("no prometheus binary on $PATH or at %s: %s", fallback, installHint)
}

// waitReady polls /-/ready every 100 ms until it answers 200, the process
// exits, ctx ends or ReadyTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.Options.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		lastErr = err
		select {
		case <-s.proc.Done():
			return s.proc.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("waiting for Prometheus at %s to be ready: %w (last probe: %v); last lines of %s:\n%s",
				s.URL, ctx.Err(), lastErr, s.LogPath, s.LogTail(30))
		case <-tick.C:
		}
	}
}

// Stop ends Prometheus by its PID (SIGTERM, SIGKILL after 5 s) and removes
// the folder if Launch created it. It is safe to call more than once.
func (s *Server) Stop() error {
	var errs []error
	if s.proc != nil {
		errs = append(errs, s.proc.Stop())
	}
	if s.removeDir && s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", s.Dir, err))
		}
		s.removeDir = false
	}
	return errors.Join(errs...)
}

// LogTail returns up to the last n lines of Prometheus's log.
func (s *Server) LogTail(n int) string { return testproc.Tail(s.LogPath, n) }

// Sample is one element of an instant vector: its labels (with __name__
// when the expression keeps it) and value at time T.
type Sample struct {
	Labels map[string]string
	Value  float64
	T      time.Time
}

// String formats a sample as Prometheus's UI does: `name{a="b"} => 1.5`.
func (s Sample) String() string {
	var b strings.Builder
	b.WriteString(s.Labels["__name__"])
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, s.Labels[k])
	}
	b.WriteString("} => ")
	b.WriteString(strconv.FormatFloat(s.Value, 'g', -1, 64))
	return b.String()
}

// FormatSamples returns one sample per line, or "(empty)".
func FormatSamples(samples []Sample) string {
	if len(samples) == 0 {
		return "(empty)"
	}
	lines := make([]string, len(samples))
	for i, s := range samples {
		lines[i] = s.String()
	}
	return strings.Join(lines, "\n")
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// get calls GET path?query on the API and returns the data field of a
// successful answer.
func (s *Server) get(ctx context.Context, path string, query url.Values) (json.RawMessage, error) {
	u := s.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("GET %s: %s: not an API answer (%v): %.200s", path, resp.Status, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("GET %s: %s: %s: %s", path, resp.Status, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// Query evaluates promql now (GET /api/v1/query). A vector gives one Sample
// per series; a scalar gives one Sample with no labels; a range vector or
// string is an error (wrap a range selector in a function such as rate).
func (s *Server) Query(ctx context.Context, promql string) ([]Sample, error) {
	data, err := s.get(ctx, "/api/v1/query", url.Values{"query": {promql}})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", promql, err)
	}
	samples, err := parseQueryData(data)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", promql, err)
	}
	return samples, nil
}

func parseQueryData(data json.RawMessage) ([]Sample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding the result: %w", err)
	}
	switch d.ResultType {
	case "vector":
		var rows []struct {
			Metric map[string]string `json:"metric"`
			Value  json.RawMessage   `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &rows); err != nil {
			return nil, fmt.Errorf("decoding the vector: %w", err)
		}
		out := make([]Sample, 0, len(rows))
		for _, r := range rows {
			t, v, err := parsePoint(r.Value)
			if err != nil {
				return nil, err
			}
			if r.Metric == nil {
				r.Metric = map[string]string{}
			}
			out = append(out, Sample{Labels: r.Metric, Value: v, T: t})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
		return out, nil
	case "scalar":
		t, v, err := parsePoint(d.Result)
		if err != nil {
			return nil, err
		}
		return []Sample{{Labels: map[string]string{}, Value: v, T: t}}, nil
	default:
		return nil, fmt.Errorf("result type %q; want an instant vector or a scalar", d.ResultType)
	}
}

// parsePoint decodes [<unix seconds>, "<value>"]. Values are strings so
// that "NaN", "+Inf" and "-Inf" survive JSON.
func parsePoint(raw json.RawMessage) (time.Time, float64, error) {
	var pt []json.RawMessage
	if err := json.Unmarshal(raw, &pt); err != nil || len(pt) != 2 {
		return time.Time{}, 0, fmt.Errorf("sample %s: want [time, \"value\"]", raw)
	}
	var ts float64
	var vs string
	if err := json.Unmarshal(pt[0], &ts); err != nil {
		return time.Time{}, 0, fmt.Errorf("sample %s: time: %v", raw, err)
	}
	if err := json.Unmarshal(pt[1], &vs); err != nil {
		return time.Time{}, 0, fmt.Errorf("sample %s: value: %v", raw, err)
	}
	v, err := parseValue(vs)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("sample %s: %v", raw, err)
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))), v, nil
}

// parseValue parses a sample value as Prometheus writes it.
func parseValue(s string) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %v", s, err)
	}
	return v, nil
}

// WaitFor evaluates promql every 250 ms until ok accepts the result, and
// returns that result. When ctx ends first, or Prometheus exits, the error
// names the last result (or query error) and the targets' health, so that a
// failed scrape explains itself.
func (s *Server) WaitFor(ctx context.Context, promql string, ok func([]Sample) bool) ([]Sample, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last []Sample
	var lastErr error
	polls := 0
	for {
		samples, err := s.Query(ctx, promql)
		polls++
		if err == nil {
			last, lastErr = samples, nil
			if ok(samples) {
				return samples, nil
			}
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-s.proc.Done():
			return last, fmt.Errorf("waiting for %s: %w", promql, s.proc.ExitError())
		case <-ctx.Done():
			return last, s.waitError(promql, polls, last, lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) waitError(promql string, polls int, last []Sample, lastErr, cause error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "waiting for %s: %v after %d queries; ", promql, cause, polls)
	if lastErr != nil {
		fmt.Fprintf(&b, "last query failed: %v", lastErr)
	} else {
		fmt.Fprintf(&b, "last result:\n%s", indent(FormatSamples(last)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if targets, err := s.Targets(ctx); err != nil {
		fmt.Fprintf(&b, "\ntargets: %v", err)
	} else {
		fmt.Fprintf(&b, "\ntargets:\n%s", indent(FormatTargets(targets)))
	}
	return errors.New(b.String())
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// Target is one active scrape target as /api/v1/targets reports it.
type Target struct {
	// Labels are the target's labels after relabelling (job, instance).
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	// Health is "up", "down" or "unknown" (not scraped yet).
	Health string `json:"health"`
	// LastError is why the last scrape failed; empty when it worked.
	LastError          string    `json:"lastError"`
	LastScrape         time.Time `json:"lastScrape"`
	LastScrapeDuration float64   `json:"lastScrapeDuration"`
}

// String formats a target on one line.
func (t Target) String() string {
	s := fmt.Sprintf("%s %s", t.ScrapeURL, t.Health)
	if !t.LastScrape.IsZero() {
		s += fmt.Sprintf(" (last scrape %s, %.3fs)", t.LastScrape.Format(time.RFC3339Nano), t.LastScrapeDuration)
	}
	if t.LastError != "" {
		s += ": " + t.LastError
	}
	return s
}

// FormatTargets returns one target per line, or "(none)".
func FormatTargets(targets []Target) string {
	if len(targets) == 0 {
		return "(none)"
	}
	lines := make([]string, len(targets))
	for i, t := range targets {
		lines[i] = t.String()
	}
	return strings.Join(lines, "\n")
}

// Targets returns the active targets (GET /api/v1/targets?state=active):
// their health and the last scrape's error.
func (s *Server) Targets(ctx context.Context) ([]Target, error) {
	data, err := s.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("GET /api/v1/targets: decoding: %w", err)
	}
	return d.ActiveTargets, nil
}

// AllEqual returns a WaitFor condition: at least one sample, and every
// sample's value is want.
func AllEqual(want float64) func([]Sample) bool {
	return func(ss []Sample) bool {
		if len(ss) == 0 {
			return false
		}
		for _, s := range ss {
			if s.Value != want {
				return false
			}
		}
		return true
	}
}

// Nonempty is a WaitFor condition: the result has at least one sample.
func Nonempty(ss []Sample) bool { return len(ss) > 0 }
