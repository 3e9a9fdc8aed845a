package triton

import (
	"math"
	"sort"
	"time"
)

// ModelSignals are the windowed signals of one model on one target.
type ModelSignals struct {
	Target Target
	// ModelNamespace is Triton's model namespace label ("" unless model
	// namespacing is on); Model and Version name the model.
	ModelNamespace, Model, Version string
	// Updated is when the model's newest sample was taken.
	Updated time.Time
	// Span is the time between the oldest and the newest sample used; 0
	// (and the rates unset, HaveRates false) until two samples exist.
	Span      time.Duration
	HaveRates bool
	// RequestsPerSecond counts successful requests; InferencesPerSecond
	// counts inferences (batch elements).
	RequestsPerSecond, InferencesPerSecond float64
	// FailuresPerSecond is keyed by reason: REJECTED, CANCELED, BACKEND,
	// OTHER (whatever the page has; UNKNOWN for Triton releases whose
	// failures carry no reason).
	FailuresPerSecond map[string]float64
	// Pending is the latest nv_inference_pending_request_count.
	Pending float64
	// HaveLatency is false when no request succeeded in the window or the
	// server does not export latency counters; then the per-request
	// times are zero.
	HaveLatency bool
	// QueueTimePerRequest is Δnv_inference_queue_duration_us /
	// Δnv_inference_request_success.
	QueueTimePerRequest time.Duration
	// RequestTimePerRequest is Δnv_inference_request_duration_us /
	// Δnv_inference_request_success (end to end).
	RequestTimePerRequest time.Duration
	// HaveComputeTime is HaveLatency and at least one request executed
	// (not answered from the response cache) in the window.
	HaveComputeTime bool
	// ComputeTimePerRequest is Δ(compute input + infer + output
	// duration_us) / Δ(executed requests: request_success minus
	// nv_cache_num_hits_per_model when present).
	ComputeTimePerRequest time.Duration
}

// sample is the reset-corrected value of every counter of a model at one
// scrape, indexed like modelState.ids.
type sample struct {
	t time.Time
	v []float64
}

// modelState is the bookkeeping of one model on one target.
type modelState struct {
	ids   []counterID       // counters seen so far, in order of appearance
	index map[counterID]int // position of each id in ids, last, total and sample.v
	last  []float64         // raw value on the last page that had the counter
	total []float64         // reset-corrected cumulative value

	samples []sample // oldest first; the first may be older than the window
	pending float64
	updated time.Time
	resets  int // resets seen, for logs and tests
}

func newModelState() *modelState {
	return &modelState{index: make(map[counterID]int, 16)}
}

// observe folds one page's values for this model, taken at t, into the
// state and trims the samples to window. It reports whether the page
// showed a reset (a restart of Triton or a reload of the model).
func (m *modelState) observe(t time.Time, raw *rawModel, window time.Duration) (reset bool) {
	// Any counter going down means the model's counters started again;
	// then every counter's increment is its whole new value, so that
	// counters that grew past their old value since the restart are not
	// undercounted either.
	for id, v := range raw.counters {
		if i, ok := m.index[id]; ok && v < m.last[i] {
			reset = true
			break
		}
	}
	if reset {
		m.resets++
		for i := range m.last {
			m.last[i] = 0
		}
	}
	for id, v := range raw.counters {
		i, ok := m.index[id]
		if !ok {
			m.add(id, v)
			continue
		}
		m.total[i] += v - m.last[i]
		m.last[i] = v
	}
	if raw.hasPending {
		m.pending = raw.pending
	} else {
		m.pending = 0
	}
	m.updated = t
	m.record(t, window)
	return reset
}

// add starts tracking a counter first seen with raw value v. Its total
// starts at v and older samples are given the same value: nothing is
// known about when those increments happened, so none are put in the
// window.
func (m *modelState) add(id counterID, v float64) {
	m.index[id] = len(m.ids)
	m.ids = append(m.ids, id)
	m.last = append(m.last, v)
	m.total = append(m.total, v)
	for i := range m.samples {
		m.samples[i].v = append(m.samples[i].v, v)
	}
}

// record appends the current totals as a sample taken at t and drops the
// samples that are no longer needed: all but the newest one at or before
// t−window.
func (m *modelState) record(t time.Time, window time.Duration) {
	if n := len(m.samples); n > 0 {
		last := &m.samples[n-1]
		switch {
		case t.Before(last.t): // the clock went back: the history is meaningless
			m.samples = m.samples[:0]
		case t.Equal(last.t):
			last.v = append(last.v[:0], m.total...)
			return
		}
	}
	cutoff := t.Add(-window)
	var spare []float64
	for len(m.samples) >= 2 && !m.samples[1].t.After(cutoff) {
		spare = m.samples[0].v
		m.samples = m.samples[1:]
	}
	m.samples = append(m.samples, sample{t: t, v: append(spare[:0], m.total...)})
}

// totalOf is the corrected total of a counter and whether it was ever seen.
func (m *modelState) totalOf(id counterID) (float64, bool) {
	i, ok := m.index[id]
	if !ok {
		return 0, false
	}
	return m.total[i], true
}

// deltas returns, for the window kept, the span and a function giving each
// counter's increase over it (and whether the counter was ever seen).
func (m *modelState) deltas() (span time.Duration, delta func(counterID) (float64, bool)) {
	if len(m.samples) < 2 {
		return 0, nil
	}
	oldest, newest := m.samples[0], m.samples[len(m.samples)-1]
	return newest.t.Sub(oldest.t), func(id counterID) (float64, bool) {
		i, ok := m.index[id]
		if !ok {
			return 0, false
		}
		return newest.v[i] - oldest.v[i], true
	}
}

// reasons lists the failure reasons seen, sorted.
func (m *modelState) reasons() []string {
	var out []string
	for _, id := range m.ids {
		if id.kind == kindFailure {
			out = append(out, id.reason)
		}
	}
	sort.Strings(out)
	return out
}

// signals derives the windowed signals of the model (without its Target
// and names, which the caller fills in).
func (m *modelState) signals() ModelSignals {
	s := ModelSignals{Pending: m.pending, Updated: m.updated}
	span, delta := m.deltas()
	if span <= 0 {
		return s
	}
	s.Span = span
	s.HaveRates = true
	secs := span.Seconds()
	dSuccess, _ := delta(counterID{kind: kindSuccess})
	dInfer, _ := delta(counterID{kind: kindInferences})
	s.RequestsPerSecond = dSuccess / secs
	s.InferencesPerSecond = dInfer / secs
	s.FailuresPerSecond = map[string]float64{}
	for _, r := range m.reasons() {
		d, _ := delta(counterID{kind: kindFailure, reason: r})
		s.FailuresPerSecond[r] = d / secs
	}

	dRequest, haveRequestDur := delta(counterID{kind: kindRequestDur})
	if dSuccess <= 0 || !haveRequestDur {
		return s
	}
	s.HaveLatency = true
	dQueue, _ := delta(counterID{kind: kindQueueDur})
	s.QueueTimePerRequest = microseconds(dQueue / dSuccess)
	s.RequestTimePerRequest = microseconds(dRequest / dSuccess)

	var dCompute float64
	haveCompute := false
	for _, k := range []counterKind{kindComputeInput, kindComputeInfer, kindComputeOutput} {
		if d, ok := delta(counterID{kind: k}); ok {
			dCompute += d
			haveCompute = true
		}
	}
	dHits, _ := delta(counterID{kind: kindCacheHits})
	if executed := dSuccess - dHits; haveCompute && executed > 0 {
		s.HaveComputeTime = true
		s.ComputeTimePerRequest = microseconds(dCompute / executed)
	}
	return s
}

// microseconds converts a float number of microseconds to a Duration,
// rounded to the nanosecond and kept within [0, math.MaxInt64].
func microseconds(us float64) time.Duration {
	ns := math.Round(us * float64(time.Microsecond))
	switch {
	case !(ns > 0): // also NaN
		return 0
	case ns >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(ns)
}
