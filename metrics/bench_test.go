package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/metrics"
	"github.com/tessera-gpu/tessera/metrics/triton"
	"github.com/tessera-gpu/tessera/podresources"
)

// BenchmarkScrape measures one scrape of the agent's /metrics on a node of
// 8 GPUs × 7 slices whose 56 slices each run a Triton server: a full
// reading of the node through NVML (simulated), a round over the 56
// Triton targets (HTTP on loopback, capture-B-sized pages), and the
// encoding of the page, through the same handler the agent serves. Caches
// are off, so every iteration does all of it. The baseline is the same
// scrape without Triton targets.
func BenchmarkScrape(b *testing.B) {
	page, err := os.ReadFile("triton/testdata/capture_b.prom")
	if err != nil {
		b.Fatal(err)
	}
	for _, targets := range []int{0, 56} {
		b.Run(fmt.Sprintf("gpus=8,slices=56,triton=%d", targets), func(b *testing.B) {
			h := benchNode(b, page, targets)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				lat = append(lat, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET /metrics: %d", rec.Code)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// benchNode builds the 8 × 7-slice node, its owners and Triton targets,
// and returns the /metrics handler; it checks one page before timing.
func benchNode(b *testing.B, page []byte, targets int) http.Handler {
	n := openNode(b, "a100-80gb:8", sim.WithMigEnabled())
	for g := range 8 {
		n.layout(g, "1g.10gb@0", "1g.10gb@1", "1g.10gb@2", "1g.10gb@3", "1g.10gb@4", "1g.10gb@5", "1g.10gb@6")
	}
	c := metrics.NewCollector(n.gpu, metrics.Options{CacheTTL: -1})
	st, err := n.gpu.Snapshot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	owners := map[string]podresources.Owner{}
	var ts []triton.Target
	i := 0
	for _, g := range st.GPUs {
		for _, in := range g.Instances {
			for _, ci := range in.ComputeInstances {
				pod := fmt.Sprintf("triton-%d", i)
				owners[ci.UUID] = podresources.Owner{Namespace: "serving", Pod: pod, Container: "server", Resource: "nvidia.com/mig-1g.10gb"}
				if i < targets {
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
						w.Header().Set("Content-Type", "text/plain; charset=utf-8")
						_, _ = w.Write(page)
					}))
					b.Cleanup(srv.Close)
					ts = append(ts, triton.Target{URL: srv.URL + "/metrics", Slice: ci.UUID, MigProfile: "1g.10gb", GPU: fmt.Sprint(g.Index), Pod: pod, Namespace: "serving", Container: "server"})
				}
				i++
			}
		}
	}
	if i != 56 {
		b.Fatalf("node has %d slices, want 56", i)
	}
	c.SetOwners(owners)
	sc := triton.New(triton.Options{MinInterval: -1})
	sc.SetTargets(ts)
	reg, err := metrics.NewRegistry("bench-node", c, sc)
	if err != nil {
		b.Fatal(err)
	}
	h := metrics.Handler(reg)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if got := strings.Count(string(body), "\ntessera_slice_info{"); got != 56 {
		b.Fatalf("page has %d slices, want 56", got)
	}
	up := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "tessera_triton_up{") {
			if !strings.HasSuffix(line, " 1") {
				b.Fatalf("a Triton target is down: %s", line)
			}
			up++
		}
	}
	if up != targets {
		b.Fatalf("page has %d Triton targets up, want %d", up, targets)
	}
	return h
}
