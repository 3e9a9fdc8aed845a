// Package metrics turns a node's GPUs, MIG slices and Triton servers into
// Prometheus metrics, labelled with the pod that owns each slice.
//
// The Collector reads the node once per scrape (or from a short cache)
// through gpu.Node, adds each slice's owner from the kubelet's
// pod-resources API (SetOwners), its health from the device plugin
// (SetUnhealthy) and the Xid events seen (ObserveXid), and, where a
// Profiler is given, DCGM's per-instance profiling fields. Triton servers
// are scraped by the metrics/triton package, which the agent registers
// beside the Collector.
package metrics
