package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/metrics"
	"github.com/tessera-gpu/tessera/metrics/triton"
	"github.com/tessera-gpu/tessera/podresources"
)

// demoMetrics serves the simulated node's metrics as `tessera agent` does,
// with a simulated Triton server on one slice, scrapes /metrics twice and
// prints a few of the series.
func (d *demo) demoMetrics(ctx context.Context, s *sim.Node, node *gpu.Node, inv agent.Inventory) error {
	slices := inv.Slices()
	if len(slices) == 0 {
		return fmt.Errorf("demo: no slices to show metrics for")
	}
	sl := slices[0]
	d.title("Metrics: GET /metrics of the agent (GPU, slice and Triton series, labelled with the pod)")
	for i := range inv.GPUs {
		t := sim.Telemetry{PowerMilliwatts: uint32(180_000 + 60_000*i), TemperatureC: uint32(52 + 5*i), SMClockMHz: 1980}
		if err := s.SetTelemetry(i, t); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	pid, err := s.StartProcess(sl.UUID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() { _ = s.StopProcess(pid) }()

	// A simulated Triton server: 40 requests a second, each queued 3 ms.
	tritonSrv, err := serveDemoTriton(ctx)
	if err != nil {
		return err
	}
	defer tritonSrv.Close()

	collector := metrics.NewCollector(node, metrics.Options{CacheTTL: -1})
	owner := podresources.Owner{Namespace: "demo", Pod: "resnet-0", Container: "triton", Resource: "nvidia.com/mig-" + sl.Profile}
	collector.SetOwners(map[string]podresources.Owner{sl.UUID: owner})
	scraper := triton.New(triton.Options{Window: 10 * time.Second, MinInterval: -1})
	scraper.SetTargets([]triton.Target{{
		URL: "http://" + tritonSrv.Addr + "/metrics", Slice: sl.UUID, MigProfile: sl.Profile, GPU: fmt.Sprint(sl.GPUIndex),
		Pod: owner.Pod, Namespace: owner.Namespace, Container: owner.Container,
	}})
	reg, err := metrics.NewRegistry("demo-node", collector, scraper)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	srv := &http.Server{Handler: metrics.Handler(reg), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/metrics"

	if _, err := fetchFamilies(ctx, url); err != nil { // the first scrape: Triton's counters start
		return err
	}
	select {
	case <-time.After(1500 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	fams, err := fetchFamilies(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.w, "curl %s (%d families; a few series):\n", "http://<node>:9472/metrics", len(fams))
	show := []struct {
		name  string
		match map[string]string
	}{
		{"tessera_gpu_power_watts", nil},
		{"tessera_gpu_temperature_celsius", map[string]string{"gpu": "0"}},
		{"tessera_gpu_mig_mode", map[string]string{"gpu": "0"}},
		{"tessera_slice_memory_used_bytes", map[string]string{"uuid": sl.UUID}},
		{"tessera_slice_healthy", map[string]string{"uuid": sl.UUID}},
		{"tessera_triton_up", nil},
		{"tessera_triton_requests_per_second", nil},
		{"tessera_triton_queue_time_per_request_seconds", nil},
	}
	for _, sh := range show {
		mf, ok := fams[sh.name]
		if !ok {
			return fmt.Errorf("demo: /metrics has no %s", sh.name)
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if !matches(labels, sh.match) {
				continue
			}
			fmt.Fprintf(d.w, "  %s{%s} %s\n", sh.name, shortLabels(labels), formatValue(m.GetGauge().GetValue()))
		}
	}
	fmt.Fprintf(d.w, "\nIn-process signals for the autoscaler (triton.Scraper.Signals):\n")
	for _, sig := range scraper.Signals() {
		fmt.Fprintf(d.w, "  %s/%s on %s (pod %s/%s): %.1f req/s, queue %v, compute %v per request\n",
			sig.Model, sig.Version, sig.Target.MigProfile, sig.Target.Namespace, sig.Target.Pod,
			sig.RequestsPerSecond, sig.QueueTimePerRequest.Round(10*time.Microsecond), sig.ComputeTimePerRequest.Round(10*time.Microsecond))
	}
	return nil
}

// fetchFamilies GETs a metrics page and parses it.
func fetchFamilies(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("demo: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("demo: GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("demo: parse %s: %w", url, err)
	}
	return fams, nil
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// shortLabels prints the labels a reader needs, UUIDs shortened.
func shortLabels(labels map[string]string) string {
	var parts []string
	for _, k := range []string{"gpu", "uuid", "mig_profile", "pod", "namespace", "model", "version"} {
		v, ok := labels[k]
		if !ok || v == "" {
			continue
		}
		if strings.HasPrefix(v, "MIG-") || strings.HasPrefix(v, "GPU-") {
			v = v[:12] + "…"
		}
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	return strings.Join(parts, ",")
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

// demoTriton is a simulated Triton server whose counters grow with time.
type demoTriton struct {
	*http.Server
	Addr  string
	start time.Time
}

// serveDemoTriton serves Triton's metrics format for one model, resnet50
// version 1, receiving 40 requests a second that wait 3 ms in the queue
// and compute for 9 ms.
func serveDemoTriton(ctx context.Context) (*demoTriton, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	t := &demoTriton{Addr: ln.Addr().String(), start: time.Now()}
	t.Server = &http.Server{Handler: http.HandlerFunc(t.serve), ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = t.Serve(ln) }()
	return t, nil
}

func (t *demoTriton) serve(w http.ResponseWriter, _ *http.Request) {
	n := int64(time.Since(t.start).Seconds()*40) + 1000
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	const m = `{model="resnet50",version="1"}`
	fmt.Fprintf(w, "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes\n# TYPE nv_inference_request_success counter\nnv_inference_request_success%s %d\n", m, n)
	fmt.Fprintf(w, "# HELP nv_inference_count Number of inferences performed (does not include cached requests)\n# TYPE nv_inference_count counter\nnv_inference_count%s %d\n", m, n)
	fmt.Fprintf(w, "# HELP nv_inference_exec_count Number of model executions performed (does not include cached requests)\n# TYPE nv_inference_exec_count counter\nnv_inference_exec_count%s %d\n", m, n)
	for _, reason := range []string{"REJECTED", "CANCELED", "BACKEND", "OTHER"} {
		fmt.Fprintf(w, "nv_inference_request_failure{model=\"resnet50\",reason=%q,version=\"1\"} 0\n", reason)
	}
	fmt.Fprintf(w, "# TYPE nv_inference_request_duration_us counter\nnv_inference_request_duration_us%s %d\n", m, n*12500)
	fmt.Fprintf(w, "# TYPE nv_inference_queue_duration_us counter\nnv_inference_queue_duration_us%s %d\n", m, n*3000)
	fmt.Fprintf(w, "# TYPE nv_inference_compute_input_duration_us counter\nnv_inference_compute_input_duration_us%s %d\n", m, n*500)
	fmt.Fprintf(w, "# TYPE nv_inference_compute_infer_duration_us counter\nnv_inference_compute_infer_duration_us%s %d\n", m, n*8000)
	fmt.Fprintf(w, "# TYPE nv_inference_compute_output_duration_us counter\nnv_inference_compute_output_duration_us%s %d\n", m, n*500)
	fmt.Fprintf(w, "# TYPE nv_inference_pending_request_count gauge\nnv_inference_pending_request_count%s 2\n", m)
	_, _ = io.WriteString(w, "# TYPE nv_gpu_power_usage gauge\nnv_gpu_power_usage{gpu_uuid=\"GPU-0\"} 180.000000\n")
}
