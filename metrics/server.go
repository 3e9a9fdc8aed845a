package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tessera-gpu/tessera/internal/httpserve"
)

// DefaultAddress is where the agent serves /metrics: every interface, so
// that Prometheus can scrape the node (dcgm-exporter uses :9400).
const DefaultAddress = ":9472"

// NewRegistry returns a registry with the Go runtime and process metrics
// of the agent itself and the given collectors, whose every series gets a
// node label.
func NewRegistry(node string, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("metrics: register Go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("metrics: register process collector: %w", err)
	}
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)
	for _, c := range cs {
		if err := wrapped.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register %T: %w", c, err)
		}
	}
	return reg, nil
}

// Handler serves a registry's metrics in Prometheus' text or protobuf
// format, as the scraper asks.
func Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><body><a href="/metrics">/metrics</a></body></html>`)
	})
	return mux
}

// Serve serves Handler(reg) on addr until ctx is done; ready, if not nil,
// is called with the listening address.
func Serve(ctx context.Context, reg *prometheus.Registry, addr string, ready func(net.Addr)) error {
	return httpserve.Serve(ctx, "metrics server", addr, Handler(reg), ready)
}
