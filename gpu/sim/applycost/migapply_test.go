package applycost

import (
	"context"
	"testing"
)

// TestReport measures every transition and checks what the README claims:
// Tessera never makes more NVML mutating calls or destroys more instances
// than the full wipe, and strictly fewer over the whole set. Run with -v to
// print the README's table.
func TestReport(t *testing.T) {
	rows, err := Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var tc, wc int
	for _, r := range rows {
		if r.Tessera.MutatingCalls > r.FullWipe.MutatingCalls || r.Tessera.Destroyed > r.FullWipe.Destroyed {
			t.Errorf("%s: tessera %+v is worse than the full wipe %+v", r.Transition.Name, r.Tessera, r.FullWipe)
		}
		tc += r.Tessera.MutatingCalls
		wc += r.FullWipe.MutatingCalls
	}
	if tc >= wc {
		t.Errorf("tessera made %d mutating calls in all, the full wipe %d", tc, wc)
	}
	t.Logf("\n%s", Markdown(rows))
}

// BenchmarkApply applies each transition with each strategy and reports the
// NVML mutating calls and destroyed instances per apply alongside the time.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	for _, tr := range Transitions() {
		for _, s := range Strategies() {
			b.Run(tr.Name+"/"+s.Name, func(b *testing.B) {
				var last Result
				for b.Loop() {
					res, err := Measure(ctx, tr, s)
					if err != nil {
						b.Fatal(err)
					}
					last = res
				}
				b.ReportMetric(float64(last.MutatingCalls), "nvml-calls/op")
				b.ReportMetric(float64(last.Destroyed), "destroyed/op")
			})
		}
	}
}
