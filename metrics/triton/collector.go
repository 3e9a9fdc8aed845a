package triton

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// descs are the descriptions of every exported family. Each Scraper has
// its own (no package state).
type descs struct {
	up, scrapeDuration *prometheus.Desc

	requests, failures, inferences, executions   *prometheus.Desc
	queueSeconds, computeSeconds, requestSeconds *prometheus.Desc

	pending                                      *prometheus.Desc
	requestsRate, failuresRate, inferencesRate   *prometheus.Desc
	queuePerRequest, computePerRequest, reqPerRq *prometheus.Desc
}

func newDescs() *descs {
	targetLabels := []string{"target", "slice", "mig_profile", "gpu", "pod", "namespace", "container"}
	modelLabels := append(append([]string(nil), targetLabels...), "model_namespace", "model", "version")
	failureLabels := append(append([]string(nil), modelLabels...), "reason")
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("tessera_triton_"+name, help, labels, nil)
	}
	return &descs{
		up:             d("up", "Whether the last scrape of the Triton metrics endpoint succeeded (1) or not (0).", targetLabels),
		scrapeDuration: d("scrape_duration_seconds", "Duration of the last scrape of the Triton metrics endpoint.", targetLabels),

		requests:       d("requests_total", "Successful inference requests (Triton nv_inference_request_success), corrected for Triton restarts and model reloads.", modelLabels),
		failures:       d("request_failures_total", "Failed inference requests by reason (Triton nv_inference_request_failure), corrected for restarts and reloads.", failureLabels),
		inferences:     d("inferences_total", "Inferences performed, batch elements (Triton nv_inference_count), corrected for restarts and reloads.", modelLabels),
		executions:     d("executions_total", "Model executions (Triton nv_inference_exec_count), corrected for restarts and reloads.", modelLabels),
		queueSeconds:   d("queue_duration_seconds_total", "Cumulative time requests waited in the queue (Triton nv_inference_queue_duration_us), corrected for restarts and reloads.", modelLabels),
		computeSeconds: d("compute_duration_seconds_total", "Cumulative compute time: input, infer and output (Triton nv_inference_compute_*_duration_us), corrected for restarts and reloads.", modelLabels),
		requestSeconds: d("request_duration_seconds_total", "Cumulative end-to-end request time (Triton nv_inference_request_duration_us), corrected for restarts and reloads.", modelLabels),

		pending:           d("pending_requests", "Requests waiting for execution (Triton nv_inference_pending_request_count).", modelLabels),
		requestsRate:      d("requests_per_second", "Successful requests per second over the window.", modelLabels),
		failuresRate:      d("request_failures_per_second", "Failed requests per second over the window, by reason.", failureLabels),
		inferencesRate:    d("inferences_per_second", "Inferences (batch elements) per second over the window.", modelLabels),
		queuePerRequest:   d("queue_time_per_request_seconds", "Average queue time of the requests that succeeded in the window.", modelLabels),
		computePerRequest: d("compute_time_per_request_seconds", "Average compute time of the requests executed (not served from the response cache) in the window.", modelLabels),
		reqPerRq:          d("request_time_per_request_seconds", "Average end-to-end time of the requests that succeeded in the window.", modelLabels),
	}
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.up, d.scrapeDuration,
		d.requests, d.failures, d.inferences, d.executions, d.queueSeconds, d.computeSeconds, d.requestSeconds,
		d.pending, d.requestsRate, d.failuresRate, d.inferencesRate, d.queuePerRequest, d.computePerRequest, d.reqPerRq,
	}
}

// Describe sends the description of every family the Scraper exports.
func (s *Scraper) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs.all() {
		ch <- d
	}
}

// Collect scrapes first when the last round is older than
// Options.MinInterval, or always when it is negative (joining a round
// already in progress instead of starting another), then sends the
// metrics of every target.
func (s *Scraper) Collect(ch chan<- prometheus.Metric) {
	s.roundMu.Lock()
	stale := s.inflight != nil || s.minInterval < 0 || s.lastRound.IsZero() || s.now().Sub(s.lastRound) >= s.minInterval
	s.roundMu.Unlock()
	if stale {
		s.Scrape(context.Background())
	}
	for _, m := range s.metrics() {
		ch <- m
	}
}

// metrics builds the constant metrics of every target.
func (s *Scraper) metrics() []prometheus.Metric {
	d := s.descs
	var out []prometheus.Metric
	emit := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(desc, t, v, labels...)
		if err != nil { // a label value that is not UTF-8: report it, do not panic
			m = prometheus.NewInvalidMetric(desc, err)
		}
		out = append(out, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.targets {
		tl := []string{st.target.URL, st.target.Slice, st.target.MigProfile, st.target.GPU,
			st.target.Pod, st.target.Namespace, st.target.Container}
		up := 0.0
		if st.up {
			up = 1
		}
		emit(d.up, prometheus.GaugeValue, up, tl...)
		if st.scraped {
			emit(d.scrapeDuration, prometheus.GaugeValue, st.duration.Seconds(), tl...)
		}
		if !st.up {
			continue
		}
		for k, m := range st.models {
			ml := append(append(make([]string, 0, len(tl)+4), tl...), k.namespace, k.model, k.version)
			counter := func(desc *prometheus.Desc, divisor float64, kinds ...counterKind) {
				sum, seen := 0.0, false
				for _, kind := range kinds {
					if v, ok := m.totalOf(counterID{kind: kind}); ok {
						sum, seen = sum+v, true
					}
				}
				if seen {
					emit(desc, prometheus.CounterValue, sum/divisor, ml...)
				}
			}
			counter(d.requests, 1, kindSuccess)
			counter(d.inferences, 1, kindInferences)
			counter(d.executions, 1, kindExecutions)
			counter(d.queueSeconds, 1e6, kindQueueDur)
			counter(d.computeSeconds, 1e6, kindComputeInput, kindComputeInfer, kindComputeOutput)
			counter(d.requestSeconds, 1e6, kindRequestDur)
			reasons := m.reasons()
			for _, r := range reasons {
				v, _ := m.totalOf(counterID{kind: kindFailure, reason: r})
				emit(d.failures, prometheus.CounterValue, v, append(ml, r)...)
			}
			emit(d.pending, prometheus.GaugeValue, m.pending, ml...)

			sig := m.signals()
			if sig.HaveRates {
				emit(d.requestsRate, prometheus.GaugeValue, sig.RequestsPerSecond, ml...)
				emit(d.inferencesRate, prometheus.GaugeValue, sig.InferencesPerSecond, ml...)
				for _, r := range reasons {
					emit(d.failuresRate, prometheus.GaugeValue, sig.FailuresPerSecond[r], append(ml, r)...)
				}
			}
			if sig.HaveLatency {
				emit(d.queuePerRequest, prometheus.GaugeValue, sig.QueueTimePerRequest.Seconds(), ml...)
				emit(d.reqPerRq, prometheus.GaugeValue, sig.RequestTimePerRequest.Seconds(), ml...)
			}
			if sig.HaveComputeTime {
				emit(d.computePerRequest, prometheus.GaugeValue, sig.ComputeTimePerRequest.Seconds(), ml...)
			}
		}
	}
	return out
}
