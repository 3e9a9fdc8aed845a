// Package triton scrapes Triton Inference Server /metrics pages, keeps
// reset-corrected per-model counters, derives windowed signals from them
// and offers the result twice: as a prometheus.Collector and in-process
// through Scraper.Signals, for the scheduler's autoscaler.
//
// A Scraper is built with New, told what to scrape with SetTargets (see
// PodTargets for turning pods that own MIG slices into targets), and
// refreshed by Run, by Scrape, or by Collect when its last round is older
// than Options.MinInterval.
//
// # Counters and resets
//
// Per target and model (model, version and Triton's model namespace; series
// split by gpu_uuid are summed) every Triton counter is reset-corrected:
// when any counter of a model decreases, Triton restarted or reloaded the
// model, and every counter of that model adds its new raw value instead of
// the difference. Totals therefore only grow and rates are never negative.
// Samples of the corrected values are kept for Options.Window plus the
// newest sample older than the window, so the deltas cover the whole
// window; rates are the deltas divided by the span between the oldest and
// newest sample kept. A model that leaves the page is dropped; a target that
// cannot be scraped is down and its models are neither exported nor
// returned by Signals until it answers again (their counters are kept).
//
// # Exported metrics
//
// Every series carries the target's labels target (its URL), slice,
// mig_profile, gpu, pod, namespace and container; per-model series add
// model_namespace (Triton's model namespace, usually ""), model and
// version. The agent's registry adds node.
//
//	tessera_triton_up                                 gauge    1 if the last scrape of the target succeeded
//	tessera_triton_scrape_duration_seconds            gauge    duration of the last scrape of the target
//	tessera_triton_requests_total                     counter  successful requests (nv_inference_request_success)
//	tessera_triton_request_failures_total{reason}     counter  failed requests (nv_inference_request_failure)
//	tessera_triton_inferences_total                   counter  inferences, batch elements (nv_inference_count)
//	tessera_triton_executions_total                   counter  model executions (nv_inference_exec_count)
//	tessera_triton_queue_duration_seconds_total       counter  nv_inference_queue_duration_us / 1e6
//	tessera_triton_compute_duration_seconds_total     counter  nv_inference_compute_{input,infer,output}_duration_us / 1e6
//	tessera_triton_request_duration_seconds_total     counter  nv_inference_request_duration_us / 1e6
//	tessera_triton_pending_requests                   gauge    nv_inference_pending_request_count
//	tessera_triton_requests_per_second                gauge    Δrequests / span
//	tessera_triton_request_failures_per_second{reason} gauge   Δfailures / span
//	tessera_triton_inferences_per_second              gauge    Δinferences / span
//	tessera_triton_queue_time_per_request_seconds     gauge    Δqueue duration / Δrequests
//	tessera_triton_compute_time_per_request_seconds   gauge    Δcompute duration / (Δrequests − Δcache hits)
//	tessera_triton_request_time_per_request_seconds   gauge    Δrequest duration / Δrequests
//
// The counters are emitted once the family was seen on the page; the
// per-second gauges once two samples span a positive time; the
// per-request gauges only when a request succeeded in the window (the
// compute one only when a request was executed, not served from the
// response cache).
package triton
