package triton

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxBytes    = 4 << 20
	DefaultWindow      = 60 * time.Second
	DefaultMinInterval = time.Second
)

// maxConcurrent bounds the number of targets scraped at once.
const maxConcurrent = 16

// Options configures a Scraper. The zero value is usable.
type Options struct {
	// Timeout bounds the request to one target, body included (default
	// DefaultTimeout).
	Timeout time.Duration
	// MaxBytes bounds the size of a page (default DefaultMaxBytes); a
	// larger page marks the target down.
	MaxBytes int64
	// Window is the period the derived rates and averages cover (default
	// DefaultWindow).
	Window time.Duration
	// MinInterval is how old the last round must be before Collect
	// scrapes again (0: DefaultMinInterval; negative: every Collect
	// scrapes). When positive it is also Run's interval when Run is given
	// none.
	MinInterval time.Duration
	// Client sends the requests (default: a client of its own with
	// bounded idle connections and no proxy).
	Client *http.Client
	// Logger receives target state changes (default: discard).
	Logger *slog.Logger
	// Now is the clock the samples are taken with (default time.Now).
	Now func() time.Time
}

// Scraper scrapes a set of Triton targets and keeps their per-model
// state. It is a prometheus.Collector. All its methods are safe for
// concurrent use.
type Scraper struct {
	timeout     time.Duration
	maxBytes    int64
	window      time.Duration
	minInterval time.Duration
	client      *http.Client
	log         *slog.Logger
	now         func() time.Time
	bufs        sync.Pool // *bytes.Buffer for page bodies
	descs       *descs

	mu      sync.Mutex // guards targets and everything they point to
	targets map[string]*targetState

	roundMu   sync.Mutex    // guards inflight and lastRound
	inflight  chan struct{} // closed when the round in progress ends; nil if none
	lastRound time.Time     // start of the last completed round
}

// targetState is what the Scraper knows about one target.
type targetState struct {
	target   Target
	scraped  bool          // a scrape of it has completed
	up       bool          // the last scrape succeeded
	err      error         // why the last scrape failed
	logged   string        // the error last logged, "" when up
	last     time.Time     // when the last scrape completed
	duration time.Duration // how long it took
	models   map[modelKey]*modelState
}

// New returns a Scraper with no targets.
func New(opts Options) *Scraper {
	s := &Scraper{
		timeout:     opts.Timeout,
		maxBytes:    opts.MaxBytes,
		window:      opts.Window,
		minInterval: opts.MinInterval,
		client:      opts.Client,
		log:         opts.Logger,
		now:         opts.Now,
		targets:     map[string]*targetState{},
		descs:       newDescs(),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.window <= 0 {
		s.window = DefaultWindow
	}
	if s.minInterval == 0 {
		s.minInterval = DefaultMinInterval
	}
	if s.client == nil {
		s.client = defaultClient()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	return s
}

// defaultClient talks plain HTTP to pod IPs: no proxy from the
// environment, a few idle connections per target kept for the next
// round, none left open for long.
func defaultClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   2,
		MaxConnsPerHost:       4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// SetTargets replaces the list of targets. The state (counters, window,
// up/down) of a URL already scraped is kept, with its labels updated; the
// state of a URL no longer listed is dropped. Targets with an empty URL
// and repeats of a URL are ignored (and logged).
func (s *Scraper) SetTargets(ts []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*targetState, len(ts))
	for _, t := range ts {
		if t.URL == "" {
			s.log.Warn("triton target without URL ignored", "pod", t.Pod, "namespace", t.Namespace)
			continue
		}
		if _, dup := next[t.URL]; dup {
			s.log.Warn("triton target listed twice; first kept", "target", t.URL, "pod", t.Pod, "namespace", t.Namespace)
			continue
		}
		st := s.targets[t.URL]
		if st == nil {
			st = &targetState{models: map[modelKey]*modelState{}}
		}
		st.target = t
		next[t.URL] = st
	}
	s.targets = next
}

// Run scrapes all targets every interval until ctx is done, so the windows
// stay fresh whether or not Prometheus collects. An interval that is not
// positive means Options.MinInterval, or DefaultMinInterval if that is
// not positive either.
func (s *Scraper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = s.minInterval
	}
	if interval <= 0 {
		interval = DefaultMinInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Scrape runs one round: every target is fetched concurrently (at most 16
// at a time), each within Options.Timeout, and the state updated. Only
// one round runs at a time: a Scrape called during a round waits for that
// round (or for ctx) instead of starting another. A target whose request
// fails because ctx ended is left as it was.
func (s *Scraper) Scrape(ctx context.Context) {
	s.roundMu.Lock()
	if done := s.inflight; done != nil {
		s.roundMu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return
	}
	done := make(chan struct{})
	s.inflight = done
	s.roundMu.Unlock()

	start := s.now()
	defer func() {
		s.roundMu.Lock()
		s.inflight = nil
		s.lastRound = start
		s.roundMu.Unlock()
		close(done)
	}()
	s.round(ctx)
}

// round fetches every target and applies the results.
func (s *Scraper) round(ctx context.Context) {
	type job struct {
		url string
		st  *targetState
	}
	s.mu.Lock()
	jobs := make([]job, 0, len(s.targets))
	for u, st := range s.targets {
		jobs = append(jobs, job{u, st})
	}
	s.mu.Unlock()

	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := s.now()
			p, err := s.fetch(ctx, j.url)
			s.apply(ctx, j.st, start, p, err)
		})
	}
	wg.Wait()
}

// fetch gets and parses one target's page.
func (s *Scraper) fetch(ctx context.Context, url string) (page, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.requestError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
			return nil, fmt.Errorf("content type %q is not text/plain", ct)
		}
	}
	if resp.ContentLength > s.maxBytes {
		return nil, fmt.Errorf("page of %d bytes is over the %d-byte limit", resp.ContentLength, s.maxBytes)
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, s.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading page: %w", s.requestError(ctx, err))
	}
	if n > s.maxBytes {
		return nil, fmt.Errorf("page is over the %d-byte limit", s.maxBytes)
	}
	p, err := parsePage(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("parsing page: %w", err)
	}
	return p, nil
}

// putBuf returns a page buffer to the pool unless it grew unusually big.
func (s *Scraper) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		s.bufs.Put(b)
	}
}

// requestError says "no answer within the timeout" instead of Go's
// "context deadline exceeded" when the per-target timeout fired.
func (s *Scraper) requestError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within %s", s.timeout)
	}
	return err
}

// apply records the outcome of fetching st's page.
func (s *Scraper) apply(ctx context.Context, st *targetState, start time.Time, p page, err error) {
	if err != nil && ctx.Err() != nil {
		return // the round was cancelled: says nothing about the target
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.targets[st.target.URL] != st {
		return // removed by SetTargets while the request ran
	}
	t := s.now()
	st.scraped, st.last, st.duration = true, t, t.Sub(start)
	if err != nil {
		st.up, st.err = false, err
		if msg := err.Error(); msg != st.logged {
			st.logged = msg
			s.log.Warn("triton target down", "target", st.target.URL, "pod", st.target.Pod,
				"namespace", st.target.Namespace, "err", err)
		}
		return
	}
	if st.logged != "" {
		s.log.Info("triton target up again", "target", st.target.URL, "pod", st.target.Pod,
			"namespace", st.target.Namespace)
		st.logged = ""
	}
	st.up, st.err = true, nil
	for k, raw := range p {
		m := st.models[k]
		if m == nil {
			m = newModelState()
			st.models[k] = m
		}
		if m.observe(t, raw, s.window) {
			s.log.Info("triton counters reset (restart or model reload)", "target", st.target.URL, "model", k.String())
		}
	}
	for k := range st.models {
		if _, ok := p[k]; !ok {
			delete(st.models, k)
		}
	}
}

// Signals returns the signals of every model on every target that is up,
// sorted by target URL, model, version and model namespace. It does not
// scrape.
func (s *Scraper) Signals() []ModelSignals {
	s.mu.Lock()
	var out []ModelSignals
	for _, st := range s.targets {
		if !st.up {
			continue
		}
		for k, m := range st.models {
			sig := m.signals()
			sig.Target = st.target
			sig.ModelNamespace, sig.Model, sig.Version = k.namespace, k.model, k.version
			out = append(out, sig)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.Target.URL != b.Target.URL:
			return a.Target.URL < b.Target.URL
		case a.Model != b.Model:
			return a.Model < b.Model
		case a.Version != b.Version:
			return a.Version < b.Version
		}
		return a.ModelNamespace < b.ModelNamespace
	})
	return out
}

// TargetStatus is the state of one target.
type TargetStatus struct {
	Target Target
	// Scraped is false until a scrape of the target completed.
	Scraped bool
	// Up is whether the last scrape succeeded; Err says why it did not.
	Up  bool
	Err error
	// LastScrape is when the last scrape completed and ScrapeDuration
	// how long it took.
	LastScrape     time.Time
	ScrapeDuration time.Duration
	// Models is the number of models the target reported.
	Models int
}

// Targets returns the state of every target, sorted by URL.
func (s *Scraper) Targets() []TargetStatus {
	s.mu.Lock()
	out := make([]TargetStatus, 0, len(s.targets))
	for _, st := range s.targets {
		out = append(out, TargetStatus{
			Target: st.target, Scraped: st.scraped, Up: st.up, Err: st.err,
			LastScrape: st.last, ScrapeDuration: st.duration, Models: len(st.models),
		})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Target.URL < out[j].Target.URL })
	return out
}
