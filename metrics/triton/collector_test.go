package triton

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// gatherValue registers s in a fresh registry, gathers (which collects,
// and scrapes when the last round is stale) and returns the value of the
// one series of family name whose labels include the given name/value
// pairs. It reports problems with t.Errorf (it runs in goroutines too) and
// then returns NaN.
func gatherValue(t *testing.T, s *Scraper, name string, labelPairs ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	families, err := reg.Gather()
	if err != nil {
		t.Errorf("gather: %v", err)
		return math.NaN()
	}
	var found []*dto.Metric
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				ok := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labelPairs[i] && l.GetValue() == labelPairs[i+1] {
						ok = true
					}
				}
				if !ok {
					continue metrics
				}
			}
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Errorf("%s%v: %d series, want 1", name, labelPairs, len(found))
		return math.NaN()
	}
	m := found[0]
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	t.Errorf("%s: neither counter nor gauge", name)
	return math.NaN()
}

const wantExposition = `
# HELP tessera_triton_compute_duration_seconds_total Cumulative compute time: input, infer and output (Triton nv_inference_compute_*_duration_us), corrected for restarts and reloads.
# TYPE tessera_triton_compute_duration_seconds_total counter
tessera_triton_compute_duration_seconds_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 3.85
# HELP tessera_triton_compute_time_per_request_seconds Average compute time of the requests executed (not served from the response cache) in the window.
# TYPE tessera_triton_compute_time_per_request_seconds gauge
tessera_triton_compute_time_per_request_seconds{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 0.0035
# HELP tessera_triton_executions_total Model executions (Triton nv_inference_exec_count), corrected for restarts and reloads.
# TYPE tessera_triton_executions_total counter
tessera_triton_executions_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 1100
# HELP tessera_triton_inferences_per_second Inferences (batch elements) per second over the window.
# TYPE tessera_triton_inferences_per_second gauge
tessera_triton_inferences_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 40
# HELP tessera_triton_inferences_total Inferences performed, batch elements (Triton nv_inference_count), corrected for restarts and reloads.
# TYPE tessera_triton_inferences_total counter
tessera_triton_inferences_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 4400
# HELP tessera_triton_pending_requests Requests waiting for execution (Triton nv_inference_pending_request_count).
# TYPE tessera_triton_pending_requests gauge
tessera_triton_pending_requests{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 4
# HELP tessera_triton_queue_duration_seconds_total Cumulative time requests waited in the queue (Triton nv_inference_queue_duration_us), corrected for restarts and reloads.
# TYPE tessera_triton_queue_duration_seconds_total counter
tessera_triton_queue_duration_seconds_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 2.75
# HELP tessera_triton_queue_time_per_request_seconds Average queue time of the requests that succeeded in the window.
# TYPE tessera_triton_queue_time_per_request_seconds gauge
tessera_triton_queue_time_per_request_seconds{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 0.0025
# HELP tessera_triton_request_duration_seconds_total Cumulative end-to-end request time (Triton nv_inference_request_duration_us), corrected for restarts and reloads.
# TYPE tessera_triton_request_duration_seconds_total counter
tessera_triton_request_duration_seconds_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 5.5
# HELP tessera_triton_request_failures_per_second Failed requests per second over the window, by reason.
# TYPE tessera_triton_request_failures_per_second gauge
tessera_triton_request_failures_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="BACKEND",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="CANCELED",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="OTHER",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="REJECTED",slice="MIG-1",target="URL_A",version="1"} 1
# HELP tessera_triton_request_failures_total Failed inference requests by reason (Triton nv_inference_request_failure), corrected for restarts and reloads.
# TYPE tessera_triton_request_failures_total counter
tessera_triton_request_failures_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="BACKEND",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="CANCELED",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="OTHER",slice="MIG-1",target="URL_A",version="1"} 0
tessera_triton_request_failures_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",reason="REJECTED",slice="MIG-1",target="URL_A",version="1"} 20
# HELP tessera_triton_request_time_per_request_seconds Average end-to-end time of the requests that succeeded in the window.
# TYPE tessera_triton_request_time_per_request_seconds gauge
tessera_triton_request_time_per_request_seconds{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 0.005
# HELP tessera_triton_requests_per_second Successful requests per second over the window.
# TYPE tessera_triton_requests_per_second gauge
tessera_triton_requests_per_second{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 10
# HELP tessera_triton_requests_total Successful inference requests (Triton nv_inference_request_success), corrected for Triton restarts and model reloads.
# TYPE tessera_triton_requests_total counter
tessera_triton_requests_total{container="server",gpu="0",mig_profile="1g.10gb",model="resnet",model_namespace="",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A",version="1"} 1100
# HELP tessera_triton_scrape_duration_seconds Duration of the last scrape of the Triton metrics endpoint.
# TYPE tessera_triton_scrape_duration_seconds gauge
tessera_triton_scrape_duration_seconds{container="server",gpu="0",mig_profile="1g.10gb",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A"} 0
tessera_triton_scrape_duration_seconds{container="server",gpu="1",mig_profile="2g.20gb",namespace="ml",node="gpu-node-1",pod="triton-b",slice="MIG-2",target="URL_B"} 0
# HELP tessera_triton_up Whether the last scrape of the Triton metrics endpoint succeeded (1) or not (0).
# TYPE tessera_triton_up gauge
tessera_triton_up{container="server",gpu="0",mig_profile="1g.10gb",namespace="ml",node="gpu-node-1",pod="triton-a",slice="MIG-1",target="URL_A"} 1
tessera_triton_up{container="server",gpu="1",mig_profile="2g.20gb",namespace="ml",node="gpu-node-1",pod="triton-b",slice="MIG-2",target="URL_B"} 0
tessera_triton_up{container="",gpu="",mig_profile="",namespace="",node="gpu-node-1",pod="",slice="",target="URL_C"} 0
`

// TestCollectorExposition pins names, types, help texts, labels and values
// of everything the collector exports, registered the way the agent does
// (a registry that adds node).
func TestCollectorExposition(t *testing.T) {
	first := mc{model: "resnet", version: "1", success: 1000, inferences: 4000, executions: 1000,
		requestUS: 5e6, queueUS: 2.5e6, inputUS: 1e6, inferUS: 2e6, outputUS: 0.5e6,
		failures:  map[string]float64{"REJECTED": 10, "CANCELED": 0, "BACKEND": 0, "OTHER": 0},
		withCache: true, pending: 3}
	second := first
	second.success, second.inferences, second.executions = 1100, 4400, 1100
	second.requestUS, second.queueUS = 5.5e6, 2.75e6
	second.inputUS, second.inferUS, second.outputUS = 1.1e6, 2.2e6, 0.55e6
	second.failures = map[string]float64{"REJECTED": 20, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}
	second.pending = 4

	a := newFakeTriton(t, tritonPage(first))
	b := newFakeTriton(t, tritonPage(first))
	b.configure(func(f *fakeTriton) { f.status = http.StatusInternalServerError })
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.SetTargets([]Target{
		{URL: a.URL(), Slice: "MIG-1", MigProfile: "1g.10gb", GPU: "0", Pod: "triton-a", Namespace: "ml", Container: "server"},
		{URL: b.URL(), Slice: "MIG-2", MigProfile: "2g.20gb", GPU: "1", Pod: "triton-b", Namespace: "ml", Container: "server"},
	})
	s.Scrape(context.Background())
	clock.Advance(10 * time.Second)
	a.set(tritonPage(second))
	s.Scrape(context.Background())
	// A target added after the last round, never scraped: up 0, no
	// duration, empty labels exported as "".
	s.SetTargets(append(targetsOf(s), Target{URL: "URL_C"}))

	reg := prometheus.NewPedanticRegistry()
	prometheus.WrapRegistererWith(prometheus.Labels{"node": "gpu-node-1"}, reg).MustRegister(s)
	want := strings.NewReplacer("URL_A", a.URL(), "URL_B", b.URL()).Replace(wantExposition)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := b.hits.Load(); n != 2 {
		t.Errorf("collect scraped again within MinInterval (%d requests to b)", n)
	}
}

// targetsOf returns the Scraper's current targets.
func targetsOf(s *Scraper) []Target {
	var out []Target
	for _, st := range s.Targets() {
		out = append(out, st.Target)
	}
	return out
}

func TestCollectorLintAndDescribe(t *testing.T) {
	srv := newFakeTriton(t, string(readFixture(t, "capture_b.prom")))
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.SetTargets([]Target{{URL: srv.URL()}})
	s.Scrape(context.Background())
	clock.Advance(time.Second)
	s.Scrape(context.Background())

	problems, err := testutil.CollectAndLint(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	ch := make(chan *prometheus.Desc, 100)
	s.Describe(ch)
	close(ch)
	described := map[string]bool{}
	for d := range ch {
		described[d.String()] = true
	}
	if len(described) != 16 {
		t.Errorf("%d descriptions, want 16", len(described))
	}
	// Every family a full page produces is described (the pedantic
	// registry checks the same; this says which is missing).
	mch := make(chan prometheus.Metric, 1000)
	s.Collect(mch)
	close(mch)
	for m := range mch {
		if !described[m.Desc().String()] {
			t.Errorf("collected %s, not described", m.Desc())
		}
	}
}
