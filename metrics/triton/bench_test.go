package triton

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkScrape56 is one round on a node with 56 Triton servers (seven
// H100s cut into 1g slices), each serving a capture-B page with two
// models: a Scrape of all 56 over loopback HTTP, then a Collect. The
// servers run in the same process, so their time is in the numbers too.
// The clock moves 1 s a round, so the window holds what it would in
// production with a 1 s scrape interval.
func BenchmarkScrape56(b *testing.B) {
	page := string(readFixture(b, "capture_b.prom"))
	var targets []Target
	for range 56 {
		targets = append(targets, Target{URL: newFakeTriton(b, page).URL(), MigProfile: "1g.10gb", Namespace: "serving", Container: "server"})
	}
	clock := newFakeClock()
	s := New(Options{Now: clock.Now, MinInterval: time.Hour})
	s.SetTargets(targets)
	ctx := context.Background()
	ch := make(chan prometheus.Metric, 8192)
	round := func() int {
		clock.Advance(time.Second)
		s.Scrape(ctx)
		s.Collect(ch)
		n := len(ch)
		for len(ch) > 0 {
			<-ch
		}
		return n
	}
	for range 70 { // fill the 60 s window first
		round()
	}
	for _, st := range s.Targets() {
		if !st.Up || st.Models != 2 {
			b.Fatalf("target %s: %+v", st.Target.URL, st)
		}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = round()
	}
	b.ReportMetric(float64(n), "series/op")
}

// BenchmarkParseCaptureB is the parser alone on one capture-B page.
func BenchmarkParseCaptureB(b *testing.B) {
	page := readFixture(b, "capture_b.prom")
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		if _, err := parsePage(bytes.NewReader(page)); err != nil {
			b.Fatal(err)
		}
	}
}
