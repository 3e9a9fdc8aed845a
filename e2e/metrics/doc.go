// Package metrics holds the end-to-end test of the agent's /metrics: the
// real `tessera agent` binary on simulated GPUs scrapes a stand-in Triton
// server, and a real Prometheus (e2e/promenv) scrapes the agent; the test
// then asks Prometheus, in PromQL over its HTTP API, for the GPU, slice and
// Triton metrics. It has no non-test code.
package metrics
