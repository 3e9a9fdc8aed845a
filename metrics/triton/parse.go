package triton

import (
	"errors"
	"fmt"
	"io"
	"math"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// counterKind is one of the Triton per-model counters this package tracks.
type counterKind uint8

const (
	kindSuccess       counterKind = iota // nv_inference_request_success
	kindFailure                          // nv_inference_request_failure{reason}
	kindInferences                       // nv_inference_count
	kindExecutions                       // nv_inference_exec_count
	kindRequestDur                       // nv_inference_request_duration_us
	kindQueueDur                         // nv_inference_queue_duration_us
	kindComputeInput                     // nv_inference_compute_input_duration_us
	kindComputeInfer                     // nv_inference_compute_infer_duration_us
	kindComputeOutput                    // nv_inference_compute_output_duration_us
	kindCacheHits                        // nv_cache_num_hits_per_model
	kindPending                          // nv_inference_pending_request_count (a gauge, not a counter)
)

// familyKind maps the Triton family names this package reads to their
// kind; every other family is ignored.
func familyKind(name string) (counterKind, bool) {
	switch name {
	case "nv_inference_request_success":
		return kindSuccess, true
	case "nv_inference_request_failure":
		return kindFailure, true
	case "nv_inference_count":
		return kindInferences, true
	case "nv_inference_exec_count":
		return kindExecutions, true
	case "nv_inference_request_duration_us":
		return kindRequestDur, true
	case "nv_inference_queue_duration_us":
		return kindQueueDur, true
	case "nv_inference_compute_input_duration_us":
		return kindComputeInput, true
	case "nv_inference_compute_infer_duration_us":
		return kindComputeInfer, true
	case "nv_inference_compute_output_duration_us":
		return kindComputeOutput, true
	case "nv_cache_num_hits_per_model":
		return kindCacheHits, true
	case "nv_inference_pending_request_count":
		return kindPending, true
	}
	return 0, false
}

// unknownReason is the reason given to nv_inference_request_failure series
// without a reason label (Triton releases before the label existed).
const unknownReason = "UNKNOWN"

// counterID names one counter of a model: its kind, and for failures the
// reason.
type counterID struct {
	kind   counterKind
	reason string
}

// modelKey identifies a model on one Triton server. Namespace is Triton's
// model namespace label (set only when model namespacing is on), not the
// Kubernetes namespace of the pod.
type modelKey struct {
	namespace, model, version string
}

// rawModel is what one page says about one model: the counters summed over
// gpu_uuid (and any other label but model, version, namespace and reason)
// and the pending-request gauge.
type rawModel struct {
	counters   map[counterID]float64
	pending    float64
	hasPending bool
}

// page is a parsed /metrics page: the models it reports.
type page map[modelKey]*rawModel

// maxCounter is the largest value a Triton counter (a uint64) can have;
// larger values are not Triton counters, and refusing them keeps the
// corrected totals far from the float range.
const maxCounter = 1 << 64

// errEmptyPage is returned for a page without a single sample.
var errEmptyPage = errors.New("page has no metrics")

// parsePage reads a Prometheus text exposition page as Triton writes it.
// It depends on no family, series or label order and ignores families it
// does not know. A counter series whose value is not a number between 0
// and 2^64 (NaN, ±Inf, a negative or larger count) makes its counter
// absent for that model on this page instead of poisoning the sum; pending
// series that are not finite and non-negative are ignored the same way. Any syntax error fails the whole page.
func parsePage(r io.Reader) (page, error) {
	families, err := textToFamilies(r)
	if err != nil {
		return nil, err
	}
	if len(families) == 0 {
		return nil, errEmptyPage
	}
	out := page{}
	type badKey struct {
		m  modelKey
		id counterID
	}
	var bad map[badKey]bool
	for name, mf := range families {
		kind, ok := familyKind(name)
		if !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			v, ok := sampleValue(mf.GetType(), m)
			if !ok {
				continue
			}
			key, reason, ok := seriesKey(m.GetLabel())
			if !ok {
				continue
			}
			rm := out[key]
			if rm == nil {
				rm = &rawModel{counters: make(map[counterID]float64, 16)}
				out[key] = rm
			}
			if kind == kindPending {
				if v >= 0 && !math.IsInf(v, 0) { // false for NaN too
					rm.pending += v
					rm.hasPending = true
				}
				continue
			}
			id := counterID{kind: kind}
			if kind == kindFailure {
				if reason == "" {
					reason = unknownReason
				}
				id.reason = reason
			}
			if math.IsNaN(v) || v < 0 || v > maxCounter {
				if bad == nil {
					bad = map[badKey]bool{}
				}
				bad[badKey{key, id}] = true
				continue
			}
			rm.counters[id] += v
		}
	}
	for k := range bad {
		if rm := out[k.m]; rm != nil {
			delete(rm.counters, k.id)
		}
	}
	for _, rm := range out {
		if math.IsInf(rm.pending, 0) { // finite series can sum past the float range
			rm.pending, rm.hasPending = 0, false
		}
	}
	return out, nil
}

// textToFamilies runs expfmt's text parser, turning a panic into an
// error: prometheus/common v0.66.1 dereferences nil on a line that starts
// with "{}" (fixed upstream by prometheus/common#922), and a page from a
// pod must never crash the agent.
func textToFamilies(r io.Reader) (families map[string]*dto.MetricFamily, err error) {
	defer func() {
		if p := recover(); p != nil {
			families, err = nil, fmt.Errorf("text format parser failed: %v", p)
		}
	}()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(r)
}

// sampleValue is the value of a counter, gauge or untyped sample; Triton's
// families are never histograms or summaries under the names we read.
func sampleValue(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), m.GetCounter() != nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), m.GetGauge() != nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), m.GetUntyped() != nil
	}
	return 0, false
}

// seriesKey reads the model key and failure reason from a series' labels,
// in whatever order they come. Series without a model label are not
// per-model series and are skipped.
func seriesKey(labels []*dto.LabelPair) (key modelKey, reason string, ok bool) {
	for _, l := range labels {
		switch l.GetName() {
		case "model":
			key.model, ok = l.GetValue(), true
		case "version":
			key.version = l.GetValue()
		case "namespace":
			key.namespace = l.GetValue()
		case "reason":
			reason = l.GetValue()
		}
	}
	return key, reason, ok && key.model != ""
}

// String names a model for logs and errors.
func (k modelKey) String() string {
	if k.namespace != "" {
		return fmt.Sprintf("%s/%s:%s", k.namespace, k.model, k.version)
	}
	return k.model + ":" + k.version
}
