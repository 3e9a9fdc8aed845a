package metrics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/e2e/promenv"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// The simulated node and the layout the agent applies to it.
const (
	simSpec = "h100-80gb:2"
	layout  = "all-1g.10gb"
)

// The stand-in Triton serves one busy model: every second it gains
// reqPerSec successful requests that queued queueUsPerReq µs each, so the
// queue time per request over any window is queueUsPerReq/1e6 s.
const (
	model            = "densenet_onnx"
	modelVersion     = "1"
	reqPerSec        = 100
	queueUsPerReq    = 2500 // 2.5 ms
	rejectedPerSec   = 2
	tritonWindow     = 10 * time.Second
	relTolerance     = 0.10
	wantQueuePerReqS = queueUsPerReq / 1e6
)

// TestPrometheusScrapesAgentMetrics runs `tessera agent` on a simulated
// 2× H100-80GB node with the all-1g.10gb layout of systemd/layouts.yaml,
// pointed at a stand-in Triton /metrics page whose counters grow with wall
// time, and a real Prometheus scraping the agent's /metrics every second.
// Through PromQL it checks the Triton-derived queue time per request
// (2.5 ms), tessera_triton_up, the per-slice and per-GPU metrics, and the
// request rate (100/s) Prometheus computes from the agent's counter.
func TestPrometheusScrapesAgentMetrics(t *testing.T) {
	t.Parallel()
	repo := e2etest.RepoRoot(t)
	layouts := filepath.Join(repo, "systemd", "layouts.yaml")
	wantSlices, gpuMemory := expectedSlices(t, layouts)
	wantGPUs := len(gpuMemory)
	t.Logf("%s on %s: %d slices on %d GPUs", layout, simSpec, wantSlices, wantGPUs)

	dir := t.TempDir()
	bin := buildTessera(t, filepath.Join(dir, "bin"))
	triton := startTriton(t)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	agentCfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(agentCfg, fmt.Appendf(nil, "layouts: %s\nconfig: %s\n", layouts, layout), 0o644); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(ctx, t, bin, dir,
		"agent",
		"--backend", "sim:"+simSpec,
		"--agent-config", agentCfg,
		"--status-address", "127.0.0.1:0",
		"--metrics-address", "127.0.0.1:0",
		"--device-plugin=false",
		"--pod-resources-socket", "",
		"--triton-target", triton.URL+"/metrics",
		"--triton-window", tritonWindow.String(),
		"--log-format", "json",
	)
	metricsAddr := ag.waitAddress(ctx, t, "metrics server")
	t.Logf("agent: /metrics on %s", metricsAddr)

	prom := promenv.Start(t, promenv.Options{ScrapeInterval: time.Second, JobName: "tessera-agent", Targets: []string{metricsAddr}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the agent's /metrics (tessera_* lines):\n%s", tesseraLines(metricsAddr, 120))
		}
	})
	start := time.Now()
	query := func(promql string, ok func([]promenv.Sample) bool) []promenv.Sample {
		t.Helper()
		got, err := prom.WaitFor(ctx, promql, ok)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after %4.1fs  %s\n%s", time.Since(start).Seconds(), promql, indent(promenv.FormatSamples(got)))
		return got
	}

	// The chain works: Prometheus scrapes the agent, the agent scrapes
	// Triton.
	query(`up{job="tessera-agent"}`, promenv.AllEqual(1))
	up := query(`tessera_triton_up`, promenv.Nonempty)
	if len(up) != 1 || up[0].Value != 1 || up[0].Labels["target"] != triton.URL+"/metrics" {
		t.Errorf("tessera_triton_up: want one series, value 1, target=%q", triton.URL+"/metrics")
	}

	// GPU and slice metrics: the layout applied on both simulated GPUs.
	query(`count(tessera_slice_memory_total_bytes)`, func(ss []promenv.Sample) bool {
		return len(ss) == 1 && ss[0].Value == float64(wantSlices)
	})
	gpus := query(`tessera_gpu_memory_total_bytes`, promenv.Nonempty)
	if len(gpus) != wantGPUs {
		t.Errorf("tessera_gpu_memory_total_bytes has %d series, want %d (one per GPU)", len(gpus), wantGPUs)
	}
	for _, s := range gpus {
		if s.Labels["node"] == "" {
			t.Errorf("%s: no node label", s)
		}
		if want, ok := gpuMemory[s.Labels["gpu"]]; !ok || s.Value != want {
			t.Errorf("%s: want GPU %q's memory, %v bytes (of %v)", s, s.Labels["gpu"], want, gpuMemory)
		}
	}

	// The proof: the queue time per request Tessera derives from
	// Triton's counters, as Prometheus stores it, from the first value on.
	sel := fmt.Sprintf(`{model=%q,version=%q}`, model, modelVersion)
	first := query(`tessera_triton_queue_time_per_request_seconds`+sel, func(ss []promenv.Sample) bool {
		return len(ss) > 0 && !math.IsNaN(ss[0].Value)
	})
	checkNear(t, "first tessera_triton_queue_time_per_request_seconds"+sel, first, wantQueuePerReqS)

	// Once the agent's counter has been scraped for longer than the rate
	// window, Prometheus's rate of it is Triton's request rate.
	const rateWindow = "10s"
	query(fmt.Sprintf(`count_over_time(tessera_triton_requests_total%s[%s])`, sel, rateWindow), func(ss []promenv.Sample) bool {
		return len(ss) == 1 && ss[0].Value >= 10
	})
	// One more scrape so that the oldest sample is older than the window.
	time.Sleep(1500 * time.Millisecond)
	rate := query(fmt.Sprintf(`rate(tessera_triton_requests_total%s[%s])`, sel, rateWindow), promenv.Nonempty)
	checkNearTol(t, "rate(tessera_triton_requests_total)", rate, reqPerSec, rateTolerance(reqPerSec))
	failures := query(fmt.Sprintf(`rate(tessera_triton_request_failures_total{model=%q,reason="REJECTED"}[%s])`, model, rateWindow), promenv.Nonempty)
	checkNearTol(t, `rate(tessera_triton_request_failures_total{reason="REJECTED"})`, failures, rejectedPerSec, rateTolerance(rejectedPerSec))
	// The agent's own rate, over its own Triton scrapes' times, has no such
	// lag.
	perSec := query(`tessera_triton_requests_per_second`+sel, promenv.Nonempty)
	checkNear(t, "tessera_triton_requests_per_second"+sel, perSec, reqPerSec)
	steady := query(`tessera_triton_queue_time_per_request_seconds`+sel, promenv.Nonempty)
	checkNear(t, "tessera_triton_queue_time_per_request_seconds"+sel, steady, wantQueuePerReqS)

	// The idle model is scraped too, but has no queue time per request.
	query(`tessera_triton_requests_total{model="cc_fraud_detect_model"}`, promenv.AllEqual(0))
	if idle, err := prom.Query(ctx, `tessera_triton_queue_time_per_request_seconds{model="cc_fraud_detect_model"}`); err != nil {
		t.Error(err)
	} else if len(idle) != 0 {
		t.Errorf("an idle model has a queue time per request:\n%s", promenv.FormatSamples(idle))
	}

	ag.stop(t)
}

// expectedSlices resolves the layout on a simulated node like the agent's
// and returns the MIG devices (compute instances) it asks for and each
// GPU's memory in bytes by index ("0", "1").
func expectedSlices(t *testing.T, layoutsPath string) (slices int, memory map[string]float64) {
	t.Helper()
	cat := migconfig.Builtin()
	data, err := os.ReadFile(layoutsPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := migconfig.ParseFile(layoutsPath, data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.NewFromSpec(cat, simSpec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node, err := gpu.Open(ctx, s, gpu.Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	state, err := node.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desired, err := f.Resolve(cat, layout, state)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range desired {
		for _, in := range l.Instances {
			slices += max(in.Compute.Count, 1)
		}
	}
	if slices == 0 {
		t.Fatalf("%s in %s gives no slices on %s", layout, layoutsPath, simSpec)
	}
	memory = map[string]float64{}
	for _, g := range state.GPUs {
		memory[strconv.Itoa(g.Index)] = float64(uint64(g.MemoryMiB) << 20)
	}
	return slices, memory
}

// rateTolerance is the relative error of Prometheus's rate() over
// rateWindow of a Tessera counter that grows perSec a second. The agent
// scrapes Triton when Prometheus scrapes it, but at most once a second
// (`--triton-interval` help), so with a 1 s scrape interval a sample can
// carry the previous round's value, up to 1 s old: over the 9 s between
// the first and last of the window's 10 samples the increase can be off by
// 1 s of traffic (±11 %, measured: 88.9 to 111.1 for 100/s), plus one count
// of rounding, plus 1 % for scrape timing.
func rateTolerance(perSec float64) float64 {
	const span = 9.0 // seconds between the first and last sample in the window
	return (1.0+1/perSec)/span + 0.01
}

// checkNear fails t unless samples is one series within relTolerance of want.
func checkNear(t *testing.T, what string, samples []promenv.Sample, want float64) {
	t.Helper()
	checkNearTol(t, what, samples, want, relTolerance)
}

// checkNearTol fails t unless samples is one series within tol (relative) of want.
func checkNearTol(t *testing.T, what string, samples []promenv.Sample, want, tol float64) {
	t.Helper()
	if len(samples) != 1 {
		t.Errorf("%s: %d series, want 1:\n%s", what, len(samples), promenv.FormatSamples(samples))
		return
	}
	if got := samples[0].Value; math.IsNaN(got) || math.Abs(got-want) > tol*want {
		t.Errorf("%s = %v, want %v ± %.1f%%", what, got, want, tol*100)
	}
}

// buildTessera builds cmd/tessera into dir, as the Makefile does.
func buildTessera(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tessera")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tessera")
	cmd.Dir = e2etest.RepoRoot(t)
	cmd.Env = os.Environ()
	if os.Getenv("CGO_CFLAGS") == "" {
		// As the Makefile: NVML's header declares deprecated functions.
		cmd.Env = append(cmd.Env, "CGO_CFLAGS=-O2 -Wno-deprecated-declarations")
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("built tessera in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// agentProcess is a running `tessera agent` and its JSON log.
type agentProcess struct {
	cmd    *exec.Cmd
	exited chan error

	mu      sync.Mutex
	log     strings.Builder
	addrs   map[string]string // log message → its address attribute
	changed chan struct{}     // closed and replaced on every new address
	stopped bool
}

// startAgent runs bin with args in dir; t's cleanup kills it if the test
// did not stop it, and logs its log if the test failed.
func startAgent(ctx context.Context, t *testing.T, bin, dir string, args ...string) *agentProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProcess{cmd: cmd, exited: make(chan error, 1), addrs: map[string]string{}, changed: make(chan struct{})}
	t.Logf("running %s %s", bin, strings.Join(quoteArgs(args), " "))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.read(stderr)
		a.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if !a.stopped {
			_ = cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logText())
		}
	})
	return a
}

// read consumes the agent's stderr, noting every logged address.
func (a *agentProcess) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		a.mu.Lock()
		a.log.WriteString(line + "\n")
		if msg, ok := m["msg"].(string); ok {
			if addr, ok := m["address"].(string); ok {
				a.addrs[msg] = addr
				close(a.changed)
				a.changed = make(chan struct{})
			}
		}
		a.mu.Unlock()
	}
}

func (a *agentProcess) logText() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// waitAddress returns the address of the log line whose msg is msg.
func (a *agentProcess) waitAddress(ctx context.Context, t *testing.T, msg string) string {
	t.Helper()
	for {
		a.mu.Lock()
		addr, ok := a.addrs[msg]
		changed := a.changed
		a.mu.Unlock()
		if ok {
			if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
				t.Fatalf("the agent logged %q with address %q; want 127.0.0.1:PORT", msg, addr)
			}
			return addr
		}
		select {
		case <-changed:
		case err := <-a.exited:
			a.stopped = true
			t.Fatalf("the agent exited (%v) before logging %q", err, msg)
		case <-ctx.Done():
			t.Fatalf("the agent logged no %q line with an address", msg)
		}
	}
}

// stop sends SIGTERM and expects a clean exit.
func (a *agentProcess) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		a.stopped = true
		if err != nil {
			t.Errorf("the agent exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the agent did not stop within 30 s of SIGTERM")
	}
}

// tritonServer is the stand-in Triton Inference Server's /metrics page.
type tritonServer struct {
	URL   string
	start time.Time
}

// startTriton serves Triton's exposition text on 127.0.0.1, shaped like a
// real server's (HELP and TYPE lines, labels in alphabetical order, the
// four failure reasons, fixed-notation GPU gauges; see
// shared/reference/kubelet-and-metrics.md §7.6). densenet_onnx's counters
// start from a history with a different queue time per request (10 ms) and
// then grow with wall time; cc_fraud_detect_model is loaded but idle.
func startTriton(t *testing.T) *tritonServer {
	t.Helper()
	ts := &tritonServer{start: time.Now()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, ts.page(time.Since(ts.start)))
	}))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// page renders the metrics after elapsed time of traffic.
func (ts *tritonServer) page(elapsed time.Duration) string {
	const (
		histReq     = 1000       // requests served before the test started
		histQueueUs = 10_000_000 // their queue time: 10 ms each
		gpuUUID     = "GPU-340cec52-80ba-c0df-8511-5f9680aae0ed"
	)
	sec := elapsed.Seconds()
	n := int64(sec * reqPerSec)              // new successful requests
	rejected := int64(sec * rejectedPerSec)  // new rejected requests
	req := histReq + n                       // nv_inference_request_success
	queueUs := histQueueUs + n*queueUsPerReq // nv_inference_queue_duration_us
	counters := []struct {
		name, help string
		dense      int64
	}{
		{"nv_inference_request_success", "Number of successful inference requests, all batch sizes", req},
		{"", "", 0}, // failures, below
		{"nv_inference_count", "Number of inferences performed (does not include cached requests)", 4 * req},
		{"nv_inference_exec_count", "Number of model executions performed (does not include cached requests)", req / 2},
		{"nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)", queueUs + 7500*req},
		{"nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)", queueUs},
		{"nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds (does not include cached requests)", 200 * req},
		{"nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)", 7000 * req},
		{"nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)", 300 * req},
	}
	var b strings.Builder
	for _, c := range counters {
		if c.name == "" {
			b.WriteString("# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes\n")
			b.WriteString("# TYPE nv_inference_request_failure counter\n")
			for _, m := range []string{model, "cc_fraud_detect_model"} {
				for _, reason := range []string{"OTHER", "BACKEND", "CANCELED", "REJECTED"} {
					v := int64(0)
					if m == model && reason == "REJECTED" {
						v = 7 + rejected
					}
					fmt.Fprintf(&b, "nv_inference_request_failure{model=%q,reason=%q,version=\"1\"} %d\n", m, reason, v)
				}
			}
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		fmt.Fprintf(&b, "%s{model=%q,version=%q} %d\n", c.name, model, modelVersion, c.dense)
		fmt.Fprintf(&b, "%s{model=\"cc_fraud_detect_model\",version=\"1\"} 0\n", c.name)
	}
	b.WriteString("# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.\n")
	b.WriteString("# TYPE nv_inference_pending_request_count gauge\n")
	fmt.Fprintf(&b, "nv_inference_pending_request_count{model=%q,version=%q} 3\n", model, modelVersion)
	b.WriteString("nv_inference_pending_request_count{model=\"cc_fraud_detect_model\",version=\"1\"} 0\n")
	b.WriteString("# HELP nv_pinned_memory_pool_total_bytes Pinned memory pool total memory size, in bytes\n")
	b.WriteString("# TYPE nv_pinned_memory_pool_total_bytes gauge\n")
	b.WriteString("nv_pinned_memory_pool_total_bytes 268435456\n")
	for _, g := range []struct{ name, help, typ, value string }{
		{"nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)", "gauge", "0.430000"},
		{"nv_gpu_memory_total_bytes", "GPU total memory, in bytes", "gauge", "85520809984.000000"},
		{"nv_gpu_memory_used_bytes", "GPU used memory, in bytes", "gauge", "10737418240.000000"},
		{"nv_gpu_power_usage", "GPU power usage in watts", "gauge", "182.085000"},
		{"nv_gpu_power_limit", "GPU power management limit in watts", "gauge", "700.000000"},
		{"nv_energy_consumption", "GPU energy consumption in joules since the Triton Server started", "counter", fmt.Sprintf("%f", 5000+182.085*sec)},
	} {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{gpu_uuid=%q} %s\n", g.name, g.help, g.name, g.typ, g.name, gpuUUID, g.value)
	}
	return b.String()
}

// tesseraLines fetches the agent's /metrics and returns up to n lines that
// mention tessera_, for a failed test's log.
func tesseraLines(addr string, n int) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return fmt.Sprintf("(GET /metrics: %v)", err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() && len(out) < n {
		if l := sc.Text(); strings.Contains(l, "tessera_") {
			out = append(out, l)
		}
	}
	return fmt.Sprintf("%s\n%s", resp.Status, strings.Join(out, "\n"))
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return out
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
