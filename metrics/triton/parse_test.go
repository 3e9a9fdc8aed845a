package triton

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func zeroReasons(m map[string]float64) map[string]float64 {
	for _, r := range []string{"REJECTED", "CANCELED", "BACKEND", "OTHER"} {
		if _, ok := m["failure/"+r]; !ok {
			m["failure/"+r] = 0
		}
	}
	return m
}

func TestParseFixtures(t *testing.T) {
	idleA := func() map[string]float64 {
		return zeroReasons(map[string]float64{
			"success": 0, "inferences": 0, "executions": 0, "request_us": 0, "queue_us": 0,
			"input_us": 0, "infer_us": 0, "output_us": 0, "pending": 0,
		})
	}
	tests := []struct {
		file string
		want map[string]map[string]float64
	}{
		{"capture_a.prom", map[string]map[string]float64{
			"densenet_onnx:1":         idleA(),
			"cc_fraud_detect_model:1": idleA(),
		}},
		{"capture_b.prom", map[string]map[string]float64{
			"identity_long:1": zeroReasons(map[string]float64{
				"success": 29, "inferences": 29, "executions": 29, "request_us": 20944, "queue_us": 4776,
				"input_us": 410, "infer_us": 3222, "output_us": 3, "cache_hits": 0, "pending": 0,
			}),
			"preprocessor:1": zeroReasons(map[string]float64{
				"success": 29, "inferences": 29, "executions": 29, "request_us": 240737, "queue_us": 5656,
				"input_us": 6958, "infer_us": 208308, "output_us": 17342, "cache_hits": 0, "pending": 0,
			}),
		}},
		{"histogram_summary.prom", map[string]map[string]float64{
			"my_model:1": {
				"success": 161, "failure/REJECTED": 2, "failure/CANCELED": 1, "failure/BACKEND": 0, "failure/OTHER": 0,
				"inferences": 644, "executions": 161, "request_us": 50232, "queue_us": 11110,
				"input_us": 1610, "infer_us": 32200, "output_us": 805, "pending": 3,
			},
		}},
		{"gpu_split.prom", map[string]map[string]float64{
			// Summed over gpu_uuid.
			"dlrm:2": {
				"success": 100, "failure/REJECTED": 7, "failure/BACKEND": 4, "failure/OTHER": 0, "failure/CANCELED": 0,
				"inferences": 800, "request_us": 750000, "queue_us": 250000, "pending": 3,
			},
			// Same model name in two Triton model namespaces: two models.
			"team-a/ens:1": {"success": 1, "queue_us": 10, "pending": 0},
			"team-b/ens:1": {"success": 2, "queue_us": 20, "pending": 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := parsePage(bytes.NewReader(readFixture(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if got := flatten(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsed\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

// rewriteValues rewrites every sample value of a page with format.
func rewriteValues(t *testing.T, page []byte, format func(float64) string) []byte {
	t.Helper()
	var out strings.Builder
	for _, line := range strings.SplitAfter(string(page), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line)
			continue
		}
		body := strings.TrimSuffix(line, "\n")
		i := strings.LastIndexByte(body, ' ')
		v, err := strconv.ParseFloat(body[i+1:], 64)
		if err != nil {
			t.Fatalf("fixture line %q: %v", line, err)
		}
		out.WriteString(body[:i+1] + format(v) + "\n")
	}
	return []byte(out.String())
}

func TestParseNumberStyles(t *testing.T) {
	fixed := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	shortest := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	exponent := func(v float64) string { return strconv.FormatFloat(v, 'e', -1, 64) }
	for _, file := range []string{"capture_a.prom", "capture_b.prom", "histogram_summary.prom", "gpu_split.prom"} {
		t.Run(file, func(t *testing.T) {
			orig := readFixture(t, file)
			want, err := parsePage(bytes.NewReader(orig))
			if err != nil {
				t.Fatal(err)
			}
			for name, format := range map[string]func(float64) string{"fixed": fixed, "shortest": shortest, "exponent": exponent} {
				p, err := parsePage(bytes.NewReader(rewriteValues(t, orig, format)))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !reflect.DeepEqual(flatten(p), flatten(want)) {
					t.Errorf("%s notation parses to\n%v\nwant\n%v", name, flatten(p), flatten(want))
				}
			}
		})
	}
	t.Run("capture_b_fixed.prom", func(t *testing.T) {
		a, errA := parsePage(bytes.NewReader(readFixture(t, "capture_b.prom")))
		b, errB := parsePage(bytes.NewReader(readFixture(t, "capture_b_fixed.prom")))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !reflect.DeepEqual(flatten(a), flatten(b)) {
			t.Errorf("fixed capture B parses to\n%v\nshortest capture B to\n%v", flatten(b), flatten(a))
		}
	})
}

func TestParseRejects(t *testing.T) {
	capB := string(readFixture(t, "capture_b.prom"))
	cut := strings.Index(capB, "nv_inference_queue_duration_us{model=") + 20
	tests := []struct {
		name, page, wantErr string
	}{
		{"empty", "", "no metrics"},
		{"comments only", "# just a comment\n", "no metrics"},
		{"garbage", "this is not a metrics page\n", "parsing error"},
		{"binary", "\x00\x01\x02\xff\xfe\n", "parsing error"},
		{"html", "<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n", "parsing error"},
		{"json", `{"error":"Model version not ready"}` + "\n", "parsing error"},
		{"truncated mid-line", capB[:cut], "parsing error"},
		{"no final newline", strings.TrimSuffix(capB, "\n"), "unexpected end of input"},
		{"value not a number", "nv_inference_request_success{model=\"m\",version=\"1\"} twelve\n", "expected float"},
		// prometheus/common v0.66.1's parser panics on these (found by
		// FuzzParse; testdata/fuzz/FuzzParse keeps the input).
		{"empty braces", "{}0\n", "parser failed"},
		{"empty braces after a comment", "#0000000\n{}0", "parser failed"},
		{"unterminated label", "nv_inference_request_success{model=\"m\n", "parsing error"},
		// Kura's test constant repeats the GPU HELP/TYPE blocks for a second
		// GPU; a real page never does, and the parser refuses it.
		{"family declared twice", capB + "# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)\n# TYPE nv_gpu_utilization gauge\nnv_gpu_utilization{gpu_uuid=\"GPU-2\"} 0.000000\n", "second HELP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePage(strings.NewReader(tt.page))
			if err == nil {
				t.Fatalf("parsed to %v, want an error", flatten(p))
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := parsePage(strings.NewReader("")); !errors.Is(err, errEmptyPage) {
		t.Errorf("empty page: %v, want errEmptyPage", err)
	}
}

func TestParseValues(t *testing.T) {
	const head = "# TYPE nv_inference_request_success counter\n"
	tests := []struct {
		name string
		page string
		want map[string]map[string]float64
	}{
		{"Nan counter is dropped", head + "nv_inference_request_success{model=\"m\",version=\"1\"} Nan\n",
			map[string]map[string]float64{"m:1": {}}},
		{"NaN on one GPU drops the sum", head + "nv_inference_request_success{gpu_uuid=\"a\",model=\"m\",version=\"1\"} 5\nnv_inference_request_success{gpu_uuid=\"b\",model=\"m\",version=\"1\"} NaN\n",
			map[string]map[string]float64{"m:1": {}}},
		{"+Inf counter is dropped", head + "nv_inference_request_success{model=\"m\",version=\"1\"} +Inf\n",
			map[string]map[string]float64{"m:1": {}}},
		{"negative counter is dropped", head + "nv_inference_request_success{model=\"m\",version=\"1\"} -3\n",
			map[string]map[string]float64{"m:1": {}}},
		{"over 2^64 is not a Triton counter", head + "nv_inference_request_success{model=\"m\",version=\"1\"} 1.7e308\n",
			map[string]map[string]float64{"m:1": {}}},
		{"pending sum past the float range is dropped", "# TYPE nv_inference_pending_request_count gauge\nnv_inference_pending_request_count{gpu_uuid=\"a\",model=\"m\",version=\"1\"} 1.7e308\nnv_inference_pending_request_count{gpu_uuid=\"b\",model=\"m\",version=\"1\"} 1.7e308\n",
			map[string]map[string]float64{"m:1": {}}},
		{"huge integer", head + "nv_inference_request_success{model=\"m\",version=\"1\"} 18446744073709551615\n",
			map[string]map[string]float64{"m:1": {"success": 18446744073709551615}}},
		{"Nan pending is ignored", "# TYPE nv_inference_pending_request_count gauge\nnv_inference_pending_request_count{model=\"m\",version=\"1\"} Nan\n",
			map[string]map[string]float64{"m:1": {}}},
		{"untyped families are read", "nv_inference_request_success{version=\"1\",model=\"m\"} 7\n",
			map[string]map[string]float64{"m:1": {"success": 7}}},
		{"failure without reason", "nv_inference_request_failure{model=\"m\",version=\"1\"} 2\n",
			map[string]map[string]float64{"m:1": {"failure/UNKNOWN": 2}}},
		{"series without model are ignored", head + "nv_inference_request_success{version=\"1\"} 7\nnv_inference_request_success{model=\"\",version=\"1\"} 7\n",
			map[string]map[string]float64{}},
		{"known name with another type is ignored", "# TYPE nv_inference_request_success summary\nnv_inference_request_success_count{model=\"m\",version=\"1\"} 7\nnv_inference_request_success_sum{model=\"m\",version=\"1\"} 7\n",
			map[string]map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePage(strings.NewReader(tt.page))
			if err != nil {
				t.Fatal(err)
			}
			if got := flatten(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsed to %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"capture_a.prom", "capture_b.prom", "capture_b_fixed.prom", "histogram_summary.prom", "gpu_split.prom"} {
		f.Add(readFixture(f, file))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePage(bytes.NewReader(data))
		if err != nil {
			if p != nil {
				t.Fatalf("error %v with a page", err)
			}
			return
		}
		for k, rm := range p {
			for id, v := range rm.counters {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s %s = %v", k, id, v)
				}
			}
			if math.IsNaN(rm.pending) || math.IsInf(rm.pending, 0) {
				t.Fatalf("%s pending = %v", k, rm.pending)
			}
			// Feed the page twice through the bookkeeping, as a restart
			// would (the second page all zero), and check it stays finite.
			m := newModelState()
			t0 := time.Unix(0, 0)
			m.observe(t0, rm, time.Minute)
			zero := &rawModel{counters: map[counterID]float64{}}
			for id := range rm.counters {
				zero.counters[id] = 0
			}
			m.observe(t0.Add(time.Second), zero, time.Minute)
			m.observe(t0.Add(2*time.Second), rm, time.Minute)
			s := m.signals()
			for _, v := range append([]float64{s.RequestsPerSecond, s.InferencesPerSecond, s.Pending,
				float64(s.QueueTimePerRequest), float64(s.ComputeTimePerRequest), float64(s.RequestTimePerRequest)}, values(s.FailuresPerSecond)...) {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s: signals not finite or negative: %+v", k, s)
				}
			}
		}
	})
}

func values(m map[string]float64) []float64 {
	out := make([]float64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
