package triton

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// step is one scrape of a signals test: the clock moves by after, the
// server serves page, the scraper scrapes.
type step struct {
	after time.Duration
	page  string
}

// traffic returns the counters of a model after n requests of a steady
// load: every request queues 2500 µs, runs 1000+2000+500 µs of compute
// (when not a cache hit) and takes 5000 µs end to end; one in ten is
// rejected.
func traffic(model string, n float64) mc {
	return mc{
		model: model, version: "1",
		success: n, inferences: 4 * n, executions: n,
		requestUS: 5000 * n, queueUS: 2500 * n,
		inputUS: 1000 * n, inferUS: 2000 * n, outputUS: 500 * n,
		failures: map[string]float64{"REJECTED": n / 10, "CANCELED": 0, "BACKEND": 0, "OTHER": 0},
		pending:  n / 100,
	}
}

func TestSignals(t *testing.T) {
	base := mc{model: "m", version: "1", success: 1000, inferences: 4000, executions: 900,
		requestUS: 9e6, queueUS: 5e6, inputUS: 1000, inferUS: 2e6, outputUS: 1000,
		failures:  map[string]float64{"REJECTED": 5, "CANCELED": 1, "BACKEND": 0, "OTHER": 0},
		withCache: true, cacheHits: 50, pending: 2}
	later := base
	later.success += 100
	later.inferences += 400
	later.executions += 80
	later.requestUS += 500000
	later.queueUS += 250000
	later.inputUS += 1000
	later.inferUS += 200000
	later.outputUS += 1000
	later.cacheHits += 20
	later.failures = map[string]float64{"REJECTED": 15, "CANCELED": 1, "BACKEND": 0, "OTHER": 0}
	later.pending = 7

	idle := base
	idle.queueUS += 10 // a counter moves, no request succeeds

	allCached := base
	allCached.success += 100
	allCached.cacheHits += 100
	allCached.requestUS += 1000
	allCached.queueUS += 100

	noLatency := base
	noLatency.noLatency = true
	noLatencyLater := later
	noLatencyLater.noLatency = true

	restarted := traffic("m", 30) // after a restart: 30 requests since

	tests := []struct {
		name   string
		window time.Duration
		steps  []step
		want   ModelSignals
	}{
		{
			name:  "one sample has no rates",
			steps: []step{{0, tritonPage(base)}},
			want:  ModelSignals{Pending: 2},
		},
		{
			name:  "exact rates and averages",
			steps: []step{{0, tritonPage(base)}, {10 * time.Second, tritonPage(later)}},
			want: ModelSignals{
				Span: 10 * time.Second, HaveRates: true,
				RequestsPerSecond: 10, InferencesPerSecond: 40,
				FailuresPerSecond: map[string]float64{"REJECTED": 1, "CANCELED": 0, "BACKEND": 0, "OTHER": 0},
				Pending:           7,
				HaveLatency:       true,
				// Δqueue 250000 µs / Δsuccess 100
				QueueTimePerRequest: 2500 * time.Microsecond,
				// Δrequest 500000 µs / 100
				RequestTimePerRequest: 5 * time.Millisecond,
				// Δ(1000+200000+1000) µs / (100 − 20 cache hits)
				HaveComputeTime: true, ComputeTimePerRequest: 2525 * time.Microsecond,
			},
		},
		{
			name:  "no request succeeded in the window",
			steps: []step{{0, tritonPage(base)}, {5 * time.Second, tritonPage(idle)}},
			want: ModelSignals{Span: 5 * time.Second, HaveRates: true,
				FailuresPerSecond: map[string]float64{"REJECTED": 0, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}, Pending: 2},
		},
		{
			name:  "every request answered from the cache",
			steps: []step{{0, tritonPage(base)}, {10 * time.Second, tritonPage(allCached)}},
			want: ModelSignals{Span: 10 * time.Second, HaveRates: true, RequestsPerSecond: 10,
				FailuresPerSecond: map[string]float64{"REJECTED": 0, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}, Pending: 2,
				HaveLatency: true, QueueTimePerRequest: time.Microsecond, RequestTimePerRequest: 10 * time.Microsecond},
		},
		{
			name:  "latency counters off",
			steps: []step{{0, tritonPage(noLatency)}, {10 * time.Second, tritonPage(noLatencyLater)}},
			want: ModelSignals{Span: 10 * time.Second, HaveRates: true, RequestsPerSecond: 10, InferencesPerSecond: 40,
				FailuresPerSecond: map[string]float64{"REJECTED": 1, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}, Pending: 7},
		},
		{
			// Triton restarts between the second and third scrape: the
			// counters fall to what the new process counted. The window
			// sees 100 + 30 requests over 20 s, no negative rate, no spike.
			name: "counter reset (Triton restart)",
			steps: []step{
				{0, tritonPage(traffic("m", 1000))},
				{10 * time.Second, tritonPage(traffic("m", 1100))},
				{10 * time.Second, tritonPage(restarted)},
			},
			want: ModelSignals{Span: 20 * time.Second, HaveRates: true,
				RequestsPerSecond: 130.0 / 20, InferencesPerSecond: 4 * 130.0 / 20,
				FailuresPerSecond: map[string]float64{"REJECTED": 13.0 / 20, "CANCELED": 0, "BACKEND": 0, "OTHER": 0},
				Pending:           0.3, HaveLatency: true,
				QueueTimePerRequest: 2500 * time.Microsecond, RequestTimePerRequest: 5 * time.Millisecond,
				HaveComputeTime: true, ComputeTimePerRequest: 3500 * time.Microsecond},
		},
		{
			// A restart after which one counter has already grown past its
			// old value (REJECTED: 2 → 3) while another fell (success:
			// 50 → 5): the whole model restarted, so REJECTED counts its
			// new 3, not 3 − 2, and success its new 5.
			name: "reset detected by any counter",
			steps: []step{
				{0, tritonPage(mc{model: "m", version: "1", success: 50, noLatency: true, failures: map[string]float64{"REJECTED": 2}})},
				{10 * time.Second, tritonPage(mc{model: "m", version: "1", success: 5, noLatency: true, failures: map[string]float64{"REJECTED": 3}})},
			},
			want: ModelSignals{Span: 10 * time.Second, HaveRates: true, RequestsPerSecond: 0.5,
				FailuresPerSecond: map[string]float64{"REJECTED": 0.3}},
		},
		{
			// Window 30 s, a scrape every 10 s: 10 requests/s for the first
			// 20 s, then none. At 80 s the window keeps the samples of 50 s
			// (the newest at or before 80−30) to 80 s.
			name:   "window expiry",
			window: 30 * time.Second,
			steps: []step{
				{0, tritonPage(traffic("m", 0))}, {10 * time.Second, tritonPage(traffic("m", 100))},
				{10 * time.Second, tritonPage(traffic("m", 200))}, {10 * time.Second, tritonPage(traffic("m", 200))},
				{10 * time.Second, tritonPage(traffic("m", 200))}, {10 * time.Second, tritonPage(traffic("m", 200))},
				{10 * time.Second, tritonPage(traffic("m", 200))}, {10 * time.Second, tritonPage(traffic("m", 200))},
				{10 * time.Second, tritonPage(traffic("m", 200))},
			},
			want: ModelSignals{Span: 30 * time.Second, HaveRates: true,
				FailuresPerSecond: map[string]float64{"REJECTED": 0, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}, Pending: 2},
		},
		{
			// Irregular scrapes at 0, 25 and 50 s, window 30 s: the sample
			// at 0 s is the newest at or before 50−30 and is kept, so the
			// deltas cover the whole window (span 50 s).
			name:   "the sample before the window is kept",
			window: 30 * time.Second,
			steps: []step{
				{0, tritonPage(traffic("m", 0))}, {25 * time.Second, tritonPage(traffic("m", 100))},
				{25 * time.Second, tritonPage(traffic("m", 150))},
			},
			want: ModelSignals{Span: 50 * time.Second, HaveRates: true, RequestsPerSecond: 3, InferencesPerSecond: 12,
				FailuresPerSecond: map[string]float64{"REJECTED": 0.3, "CANCELED": 0, "BACKEND": 0, "OTHER": 0}, Pending: 1.5,
				HaveLatency: true, QueueTimePerRequest: 2500 * time.Microsecond, RequestTimePerRequest: 5 * time.Millisecond,
				HaveComputeTime: true, ComputeTimePerRequest: 3500 * time.Microsecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeTriton(t, "")
			clock := newFakeClock()
			s := New(Options{Window: tt.window, Now: clock.Now})
			s.SetTargets([]Target{{URL: srv.URL(), Pod: "p"}})
			for _, st := range tt.steps {
				clock.Advance(st.after)
				srv.set(st.page)
				s.Scrape(context.Background())
			}
			sigs := s.Signals()
			if len(sigs) != 1 {
				t.Fatalf("%d signals, want 1: %+v", len(sigs), sigs)
			}
			got := sigs[0]
			want := tt.want
			want.Target = Target{URL: srv.URL(), Pod: "p"}
			want.Model, want.Version = "m", "1"
			want.Updated = clock.Now()
			if !signalsEqual(got, want) {
				t.Errorf("signals\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// signalsEqual compares signals, the float rates to 1e-9 relative.
func signalsEqual(a, b ModelSignals) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	if !near(a.RequestsPerSecond, b.RequestsPerSecond) || !near(a.InferencesPerSecond, b.InferencesPerSecond) ||
		!near(a.Pending, b.Pending) || len(a.FailuresPerSecond) != len(b.FailuresPerSecond) {
		return false
	}
	for r, v := range b.FailuresPerSecond {
		if w, ok := a.FailuresPerSecond[r]; !ok || !near(w, v) {
			return false
		}
	}
	a.RequestsPerSecond, a.InferencesPerSecond, a.Pending, a.FailuresPerSecond = 0, 0, 0, nil
	b.RequestsPerSecond, b.InferencesPerSecond, b.Pending, b.FailuresPerSecond = 0, 0, 0, nil
	return reflect.DeepEqual(a, b)
}

func TestModelReload(t *testing.T) {
	srv := newFakeTriton(t, "")
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.SetTargets([]Target{{URL: srv.URL()}})
	scrape := func(models ...mc) {
		clock.Advance(10 * time.Second)
		srv.set(tritonPage(models...))
		s.Scrape(context.Background())
	}
	scrape(traffic("a", 1000), traffic("b", 500))
	scrape(traffic("a", 1100), traffic("b", 600))
	// b is reloaded in place (same version): its counters start again;
	// a is untouched.
	scrape(traffic("a", 1200), traffic("b", 40))
	sigs := s.Signals()
	if len(sigs) != 2 || sigs[0].Model != "a" || sigs[1].Model != "b" {
		t.Fatalf("signals %+v, want models a and b", sigs)
	}
	if got := sigs[0].RequestsPerSecond; got != 10 {
		t.Errorf("a: %v requests/s, want 10 (unaffected by b's reload)", got)
	}
	if got := sigs[1].RequestsPerSecond; got != 140.0/20 {
		t.Errorf("b: %v requests/s, want 7 (100 before the reload, 40 after, over 20 s)", got)
	}
	if total := gatherValue(t, s, "tessera_triton_requests_total", "model", "b"); total != 640 {
		t.Errorf("b requests_total %v, want 640 (600 + 40 after the reload)", total)
	}

	// b moves to version 2: version 1 leaves the page and is dropped,
	// version 2 starts without history.
	v2 := traffic("b", 7)
	v2.version = "2"
	scrape(traffic("a", 1300), v2)
	sigs = s.Signals()
	if len(sigs) != 2 || sigs[1].Model != "b" || sigs[1].Version != "2" {
		t.Fatalf("signals %+v, want a:1 and b:2", sigs)
	}
	if sigs[1].HaveRates || sigs[1].Span != 0 {
		t.Errorf("b:2 has rates from one sample: %+v", sigs[1])
	}
	if total := gatherValue(t, s, "tessera_triton_requests_total", "model", "b"); total != 7 {
		t.Errorf("b:2 requests_total %v, want 7", total)
	}
}

func TestTargetRestartKeepsTotalsGrowing(t *testing.T) {
	srv := newFakeTriton(t, "")
	clock := newFakeClock()
	s := New(Options{Now: clock.Now, Window: time.Hour})
	s.SetTargets([]Target{{URL: srv.URL()}})
	// Every 10 s, 50 more requests; Triton restarts every 4th scrape.
	raw, total := 0.0, 0.0
	prevTotal := -1.0
	for i := range 20 {
		if i > 0 && i%4 == 0 {
			raw = 0
		}
		raw += 50
		total += 50
		if i == 0 {
			total = raw
		}
		clock.Advance(10 * time.Second)
		srv.set(tritonPage(traffic("m", raw)))
		s.Scrape(context.Background())
		got := gatherValue(t, s, "tessera_triton_requests_total", "model", "m")
		if got != total || got < prevTotal {
			t.Fatalf("scrape %d: requests_total %v, want %v (previous %v)", i, got, total, prevTotal)
		}
		prevTotal = got
		sig := s.Signals()[0]
		if i > 0 && sig.RequestsPerSecond != 5 {
			t.Fatalf("scrape %d: %v requests/s, want a steady 5", i, sig.RequestsPerSecond)
		}
	}
}

func TestTargetsDown(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const maxBytes = 64 << 10
	big := strings.Repeat("# padding line of a page far too big for the limit\n", 2*maxBytes/50) + tritonPage(traffic("m", 1))
	tests := []struct {
		name    string
		setup   func(f *fakeTriton)
		url     func(f *fakeTriton) string
		wantErr string
	}{
		{"timeout", func(f *fakeTriton) { f.delay = time.Minute }, nil, "no complete answer within 300ms"},
		{"body stalls past the timeout", func(f *fakeTriton) {
			f.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(tritonPage(traffic("m", 1))[:100]))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}
		}, nil, "no complete answer within 300ms"},
		{"HTTP 500", func(f *fakeTriton) { f.status = http.StatusInternalServerError }, nil, "HTTP status 500"},
		{"HTTP 404", func(f *fakeTriton) { f.status = http.StatusNotFound }, nil, "HTTP status 404"},
		{"garbage", func(f *fakeTriton) { f.body = []byte("\x89PNG\r\n\x1a\n garbage garbage\n") }, nil, "parsing page"},
		{"HTML page", func(f *fakeTriton) {
			f.contentType = "text/html; charset=utf-8"
			f.body = []byte("<html><body>Welcome to nginx!</body></html>\n")
		}, nil, `content type "text/html; charset=utf-8" is not text/plain`},
		{"HTML labelled text/plain", func(f *fakeTriton) { f.body = []byte("<html><body>hi</body></html>\n") }, nil, "parsing page"},
		{"empty page", func(f *fakeTriton) { f.body = nil }, nil, "page has no metrics"},
		{"truncated page", func(f *fakeTriton) { f.body = []byte(tritonPage(traffic("m", 1))[:300]) }, nil, "parsing page"},
		{"connection cut short", func(f *fakeTriton) {
			f.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10000")
				_, _ = w.Write([]byte(tritonPage(traffic("m", 1))))
			}
		}, nil, "reading page: unexpected EOF"},
		{"oversize page with Content-Length", func(f *fakeTriton) {
			f.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				_, _ = w.Write([]byte(big))
			}
		}, nil, fmt.Sprintf("page of %d bytes is over the 65536-byte limit", len(big))},
		{"oversize page chunked", func(f *fakeTriton) {
			f.handler = func(w http.ResponseWriter, r *http.Request) {
				for _, line := range strings.SplitAfter(big, "\n") {
					_, _ = w.Write([]byte(line))
					w.(http.Flusher).Flush()
				}
			}
		}, nil, "page is over the 65536-byte limit"},
		{"connection refused", nil, func(f *fakeTriton) string {
			f.srv.Close()
			return f.URL()
		}, "connection refused"},
		{"not a URL", nil, func(*fakeTriton) string { return "http://[::1" }, "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := newFakeTriton(t, string(readFixture(t, "capture_b.prom")))
			bad := newFakeTriton(t, tritonPage(traffic("m", 1)))
			if tt.setup != nil {
				bad.configure(tt.setup)
			}
			badURL := bad.URL()
			if tt.url != nil {
				badURL = tt.url(bad)
			}
			s := New(Options{Timeout: timeout, MaxBytes: maxBytes})
			s.SetTargets([]Target{{URL: good.URL(), Pod: "good"}, {URL: badURL, Pod: "bad"}})
			start := time.Now()
			s.Scrape(context.Background())
			// A bound far above the timeout, not a timing: the round must
			// not wait for the stalled handler (a minute).
			if d := time.Since(start); d > 20*timeout {
				t.Errorf("round took %v with a %v timeout", d, timeout)
			}
			st := s.Targets()
			byPod := map[string]TargetStatus{st[0].Target.Pod: st[0], st[1].Target.Pod: st[1]}
			if g := byPod["good"]; !g.Up || g.Err != nil || g.Models != 2 {
				t.Errorf("good target: %+v, want up with 2 models", g)
			}
			b := byPod["bad"]
			if b.Up || !b.Scraped || b.Err == nil {
				t.Fatalf("bad target: %+v, want down with an error", b)
			}
			if !strings.Contains(b.Err.Error(), tt.wantErr) {
				t.Errorf("bad target error %q does not contain %q", b.Err, tt.wantErr)
			}
			sigs := s.Signals()
			if len(sigs) != 2 || sigs[0].Target.Pod != "good" || sigs[1].Target.Pod != "good" {
				t.Errorf("signals %+v, want the good target's two models only", sigs)
			}
		})
	}
}

func TestDownTargetKeepsCountersAndHidesModels(t *testing.T) {
	srv := newFakeTriton(t, "")
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.SetTargets([]Target{{URL: srv.URL()}})
	for _, n := range []float64{100, 200} {
		clock.Advance(10 * time.Second)
		srv.set(tritonPage(traffic("m", n)))
		s.Scrape(context.Background())
	}
	srv.configure(func(f *fakeTriton) { f.status = http.StatusServiceUnavailable })
	clock.Advance(10 * time.Second)
	s.Scrape(context.Background())
	if sigs := s.Signals(); len(sigs) != 0 {
		t.Fatalf("down target still has signals: %+v", sigs)
	}
	if got := gatherValue(t, s, "tessera_triton_up"); got != 0 {
		t.Errorf("up = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(s, "tessera_triton_requests_total", "tessera_triton_pending_requests"); n != 0 {
		t.Errorf("down target exports %d per-model series, want none", n)
	}
	// Back with counters that grew through the outage: no reset, the
	// rate covers the whole span.
	srv.configure(func(f *fakeTriton) { f.status = http.StatusOK })
	clock.Advance(10 * time.Second)
	srv.set(tritonPage(traffic("m", 400)))
	s.Scrape(context.Background())
	sigs := s.Signals()
	if len(sigs) != 1 || sigs[0].RequestsPerSecond != 10 || sigs[0].Span != 30*time.Second {
		t.Errorf("after recovery: %+v, want 10 requests/s over 30 s", sigs)
	}
	if got := gatherValue(t, s, "tessera_triton_requests_total"); got != 400 {
		t.Errorf("requests_total = %v, want 400", got)
	}
}

func TestErrorLoggedOncePerChange(t *testing.T) {
	srv := newFakeTriton(t, tritonPage(traffic("m", 1)))
	logs := &logRecorder{}
	s := New(Options{Logger: slog.New(logs)})
	s.SetTargets([]Target{{URL: srv.URL()}})
	scrape := func(n int) {
		for range n {
			s.Scrape(context.Background())
		}
	}
	scrape(2)
	srv.configure(func(f *fakeTriton) { f.status = http.StatusInternalServerError })
	scrape(3)
	if n := logs.count("triton target down"); n != 1 {
		t.Errorf("after 3 failed scrapes: logged down %d times, want 1", n)
	}
	srv.configure(func(f *fakeTriton) { f.status = http.StatusOK; f.body = []byte("garbage\n") })
	scrape(3)
	if n := logs.count("triton target down"); n != 2 {
		t.Errorf("after the error changed: logged down %d times, want 2", n)
	}
	srv.configure(func(f *fakeTriton) { f.body = []byte(tritonPage(traffic("m", 2))) })
	scrape(3)
	if n := logs.count("triton target up again"); n != 1 {
		t.Errorf("after recovery: logged up %d times, want 1", n)
	}
	if n := logs.count("triton target down"); n != 2 {
		t.Errorf("after recovery: logged down %d times, want still 2", n)
	}
}

func TestSetTargets(t *testing.T) {
	a := newFakeTriton(t, "")
	b := newFakeTriton(t, "")
	c := newFakeTriton(t, tritonPage(traffic("m", 5)))
	clock := newFakeClock()
	s := New(Options{Now: clock.Now})
	s.SetTargets([]Target{{URL: a.URL(), Pod: "a"}, {URL: b.URL(), Pod: "b"}})
	for _, n := range []float64{100, 200} {
		clock.Advance(10 * time.Second)
		a.set(tritonPage(traffic("m", n)))
		b.set(tritonPage(traffic("m", 2*n)))
		s.Scrape(context.Background())
	}

	// a stays (new labels), b goes, c comes; an empty URL and a repeat
	// of a are ignored.
	s.SetTargets([]Target{{URL: a.URL(), Pod: "a-renamed"}, {URL: c.URL(), Pod: "c"}, {URL: ""}, {URL: a.URL(), Pod: "dup"}})
	sigs := s.Signals()
	if len(sigs) != 1 || sigs[0].Target.URL != a.URL() || sigs[0].Target.Pod != "a-renamed" || !sigs[0].HaveRates || sigs[0].RequestsPerSecond != 10 {
		t.Fatalf("after SetTargets: %+v, want a's kept window under its new labels", sigs)
	}
	st := s.Targets()
	if len(st) != 2 {
		t.Fatalf("targets %+v, want a and c", st)
	}
	for _, ts := range st {
		if ts.Target.URL == c.URL() && ts.Scraped {
			t.Errorf("c scraped before any round: %+v", ts)
		}
	}

	// b comes back: it starts again from nothing.
	s.SetTargets([]Target{{URL: a.URL()}, {URL: b.URL(), Pod: "b"}})
	clock.Advance(10 * time.Second)
	a.set(tritonPage(traffic("m", 300)))
	s.Scrape(context.Background())
	for _, sig := range s.Signals() {
		if sig.Target.Pod == "b" && sig.HaveRates {
			t.Errorf("b kept its window after being removed: %+v", sig)
		}
	}
}

func TestSetTargetsDuringRound(t *testing.T) {
	release := make(chan struct{})
	slow := newFakeTriton(t, "")
	slow.configure(func(f *fakeTriton) {
		f.handler = func(w http.ResponseWriter, r *http.Request) {
			<-release
			_, _ = w.Write([]byte(tritonPage(traffic("m", 1))))
		}
	})
	s := New(Options{})
	s.SetTargets([]Target{{URL: slow.URL()}})
	done := make(chan struct{})
	go func() {
		s.Scrape(context.Background())
		close(done)
	}()
	for slow.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Removed, and listed again, while its request runs: the answer
	// belongs to the dropped state, not to the new one.
	s.SetTargets(nil)
	if st := s.Targets(); len(st) != 0 {
		t.Errorf("removed target still listed: %+v", st)
	}
	s.SetTargets([]Target{{URL: slow.URL()}})
	close(release)
	<-done
	if st := s.Targets(); len(st) != 1 || st[0].Scraped || st[0].Models != 0 {
		t.Errorf("re-added target carries the removed one's result: %+v", st)
	}
}

func TestScrapeCancelled(t *testing.T) {
	slow := newFakeTriton(t, tritonPage(traffic("m", 1)))
	slow.configure(func(f *fakeTriton) { f.delay = time.Minute })
	s := New(Options{Timeout: time.Minute})
	s.SetTargets([]Target{{URL: slow.URL()}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for slow.hits.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	s.Scrape(ctx)
	if st := s.Targets(); st[0].Scraped || st[0].Err != nil {
		t.Errorf("a cancelled round marked the target: %+v", st[0])
	}
}

func TestConcurrentCollectsShareOneRound(t *testing.T) {
	srv := newFakeTriton(t, tritonPage(traffic("m", 1)))
	srv.configure(func(f *fakeTriton) { f.delay = 200 * time.Millisecond })
	clock := newFakeClock()
	s := New(Options{Now: clock.Now, MinInterval: time.Minute})
	s.SetTargets([]Target{{URL: srv.URL()}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { gatherValue(t, s, "tessera_triton_up") })
	}
	wg.Wait()
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("8 concurrent collects made %d requests, want 1", n)
	}
	gatherValue(t, s, "tessera_triton_up")
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("a collect within MinInterval scraped again (%d requests)", n)
	}
	clock.Advance(time.Minute)
	gatherValue(t, s, "tessera_triton_up")
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("a collect after MinInterval made %d requests in all, want 2", n)
	}
}

func TestNegativeMinIntervalScrapesEveryCollect(t *testing.T) {
	srv := newFakeTriton(t, tritonPage(traffic("m", 1)))
	s := New(Options{Now: newFakeClock().Now, MinInterval: -1})
	s.SetTargets([]Target{{URL: srv.URL()}})
	for i := 1; i <= 3; i++ {
		gatherValue(t, s, "tessera_triton_up")
		if n := srv.hits.Load(); n != int64(i) {
			t.Fatalf("after %d collects: %d requests", i, n)
		}
	}
}

func TestRun(t *testing.T) {
	srv := newFakeTriton(t, tritonPage(traffic("m", 1)))
	s := New(Options{})
	s.SetTargets([]Target{{URL: srv.URL()}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx, 5*time.Millisecond)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("Run made %d requests in 10 s", srv.hits.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if st := s.Targets(); !st[0].Up {
		t.Errorf("target not up after Run: %+v", st[0])
	}
}

// Many targets in one round: each is scraped once and all come up, with at
// most maxConcurrent requests in flight.
func TestScrapeManyTargets(t *testing.T) {
	var mu sync.Mutex
	inFlight, peak := 0, 0
	var targets []Target
	var servers []*fakeTriton
	for i := range 40 {
		f := newFakeTriton(t, "")
		page := tritonPage(traffic(fmt.Sprintf("m%d", i), 1))
		f.configure(func(f *fakeTriton) {
			f.handler = func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				inFlight++
				peak = max(peak, inFlight)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				inFlight--
				mu.Unlock()
				_, _ = w.Write([]byte(page))
			}
		})
		servers = append(servers, f)
		targets = append(targets, Target{URL: f.URL()})
	}
	s := New(Options{})
	s.SetTargets(targets)
	s.Scrape(context.Background())
	for i, f := range servers {
		if n := f.hits.Load(); n != 1 {
			t.Errorf("target %d scraped %d times", i, n)
		}
	}
	if sigs := s.Signals(); len(sigs) != 40 {
		t.Errorf("%d models, want 40", len(sigs))
	}
	if peak > maxConcurrent {
		t.Errorf("%d requests in flight, want at most %d", peak, maxConcurrent)
	}
}
