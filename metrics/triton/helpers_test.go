package triton

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// readFixture returns a file of testdata/.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeTriton is a loopback HTTP server that answers like Triton's metrics
// endpoint, with a page, status and delay the test can change.
type fakeTriton struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu          sync.Mutex
	body        []byte
	status      int
	contentType string
	delay       time.Duration
	handler     http.HandlerFunc // replaces everything above when set
}

func newFakeTriton(t testing.TB, body string) *fakeTriton {
	t.Helper()
	f := &fakeTriton{body: []byte(body), status: http.StatusOK, contentType: "text/plain; charset=utf-8"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTriton) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	body, status, ct, delay, h := f.body, f.status, f.contentType, f.delay, f.handler
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *fakeTriton) URL() string { return f.srv.URL + "/metrics" }

func (f *fakeTriton) set(body string) {
	f.mu.Lock()
	f.body = []byte(body)
	f.mu.Unlock()
}

func (f *fakeTriton) configure(fn func(f *fakeTriton)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mc is one model's counters, written as Triton would by tritonPage.
type mc struct {
	model, version string
	success        float64
	failures       map[string]float64 // by reason; nil means the four reasons at 0
	inferences     float64
	executions     float64
	requestUS      float64
	queueUS        float64
	inputUS        float64
	inferUS        float64
	outputUS       float64
	cacheHits      float64
	withCache      bool // write nv_cache_num_hits_per_model
	noLatency      bool // counter_latencies=false: no *_duration_us families
	pending        float64
}

// tritonPage writes a Triton-shaped page (families in Triton's order,
// alphabetical labels, shortest numbers) for the given models.
func tritonPage(models ...mc) string {
	var b strings.Builder
	family := func(name, typ string, value func(m mc) (float64, bool)) {
		fmt.Fprintf(&b, "# HELP %s Triton family %s\n# TYPE %s %s\n", name, name, name, typ)
		for _, m := range models {
			if v, ok := value(m); ok {
				fmt.Fprintf(&b, "%s{model=%q,version=%q} %s\n", name, m.model, m.version, num(v))
			}
		}
	}
	always := func(f func(m mc) float64) func(m mc) (float64, bool) {
		return func(m mc) (float64, bool) { return f(m), true }
	}
	latency := func(f func(m mc) float64) func(m mc) (float64, bool) {
		return func(m mc) (float64, bool) { return f(m), !m.noLatency }
	}
	family("nv_inference_request_success", "counter", always(func(m mc) float64 { return m.success }))
	b.WriteString("# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes\n# TYPE nv_inference_request_failure counter\n")
	for _, m := range models {
		f := m.failures
		if f == nil {
			f = map[string]float64{"REJECTED": 0, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}
		}
		reasons := make([]string, 0, len(f))
		for r := range f {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(&b, "nv_inference_request_failure{model=%q,reason=%q,version=%q} %s\n", m.model, r, m.version, num(f[r]))
		}
	}
	family("nv_inference_count", "counter", always(func(m mc) float64 { return m.inferences }))
	family("nv_inference_exec_count", "counter", always(func(m mc) float64 { return m.executions }))
	family("nv_inference_request_duration_us", "counter", latency(func(m mc) float64 { return m.requestUS }))
	family("nv_inference_queue_duration_us", "counter", latency(func(m mc) float64 { return m.queueUS }))
	family("nv_inference_compute_input_duration_us", "counter", latency(func(m mc) float64 { return m.inputUS }))
	family("nv_inference_compute_infer_duration_us", "counter", latency(func(m mc) float64 { return m.inferUS }))
	family("nv_inference_compute_output_duration_us", "counter", latency(func(m mc) float64 { return m.outputUS }))
	family("nv_cache_num_hits_per_model", "counter", func(m mc) (float64, bool) { return m.cacheHits, m.withCache })
	family("nv_inference_pending_request_count", "gauge", always(func(m mc) float64 { return m.pending }))
	b.WriteString("# HELP nv_pinned_memory_pool_total_bytes Pinned memory pool total memory size, in bytes\n# TYPE nv_pinned_memory_pool_total_bytes gauge\nnv_pinned_memory_pool_total_bytes 268435456\n")
	return b.String()
}

// num writes a number the way recent prometheus-cpp does: shortest
// round-trip, never an exponent.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// logRecorder is a slog.Handler that keeps the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many times msg was logged.
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// flatten turns a parsed page into model → counter → value for comparisons.
func flatten(p page) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for k, rm := range p {
		vals := map[string]float64{}
		for id, v := range rm.counters {
			vals[id.String()] = v
		}
		if rm.hasPending {
			vals["pending"] = rm.pending
		}
		out[k.String()] = vals
	}
	return out
}

// String names a counter in test output.
func (id counterID) String() string {
	names := map[counterKind]string{
		kindSuccess: "success", kindFailure: "failure", kindInferences: "inferences", kindExecutions: "executions",
		kindRequestDur: "request_us", kindQueueDur: "queue_us", kindComputeInput: "input_us",
		kindComputeInfer: "infer_us", kindComputeOutput: "output_us", kindCacheHits: "cache_hits", kindPending: "pending",
	}
	if id.kind == kindFailure {
		return "failure/" + id.reason
	}
	return names[id.kind]
}
