package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/metrics"
	"github.com/tessera-gpu/tessera/metrics/dcgm"
	"github.com/tessera-gpu/tessera/metrics/triton"
	"github.com/tessera-gpu/tessera/podresources"
)

// metricsOptions are the metrics flags of `tessera agent`.
type metricsOptions struct {
	address         string
	cache           time.Duration
	tritonTargets   []string
	tritonWindow    time.Duration
	tritonInterval  time.Duration
	tritonTimeout   time.Duration
	tritonDiscovery bool
	dcgm            string
	dcgmHostEngine  string
}

func (o *metricsOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.address, "metrics-address", metrics.DefaultAddress, `address of the Prometheus /metrics server (GPU, slice and Triton metrics); "" turns it off`)
	f.DurationVar(&o.cache, "metrics-cache", time.Second, "how long one reading of the GPUs serves scrapes")
	f.StringSliceVar(&o.tritonTargets, "triton-target", nil, "a Triton metrics URL to scrape (repeatable; also the triton list of --agent-config)")
	f.DurationVar(&o.tritonWindow, "triton-window", triton.DefaultWindow, "window of the derived Triton rates and per-request times")
	f.DurationVar(&o.tritonInterval, "triton-interval", 5*time.Second, "how often Triton servers are scraped (and on every Prometheus scrape, at most once a second)")
	f.DurationVar(&o.tritonTimeout, "triton-timeout", triton.DefaultTimeout, "time limit of one Triton scrape")
	f.BoolVar(&o.tritonDiscovery, "triton-discovery", true, "with --source kubernetes: scrape the pods that own slices on this node (annotations tessera.dev/metrics-port, default 8002, and tessera.dev/metrics-path)")
	f.StringVar(&o.dcgm, "dcgm", "auto", "DCGM profiling fields per slice: auto (use DCGM when the binary has it and libdcgm is installed), on (fail without it) or off")
	f.StringVar(&o.dcgmHostEngine, "dcgm-hostengine", "", "with --dcgm: the nv-hostengine to connect to (default: an embedded host engine)")
}

// check validates the flags before anything starts.
func (o *metricsOptions) check() error {
	switch o.dcgm {
	case "auto", "on", "off":
	default:
		return withStatus(exitUsage, fmt.Errorf("--dcgm %q: want auto, on or off", o.dcgm))
	}
	for _, t := range o.tritonTargets {
		if err := checkTargetURL(t); err != nil {
			return withStatus(exitUsage, fmt.Errorf("--triton-target: %w", err))
		}
	}
	if o.tritonWindow < time.Second || o.tritonInterval <= 0 || o.tritonTimeout <= 0 {
		return withStatus(exitUsage, fmt.Errorf("--triton-window must be at least 1s, --triton-interval and --triton-timeout positive"))
	}
	return nil
}

func checkTargetURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL of a metrics page", s)
	}
	return nil
}

// metricsRuntime is the running metrics part of the agent.
type metricsRuntime struct {
	collector *metrics.Collector
	scraper   *triton.Scraper
	profiler  metrics.Profiler
	targets   *targetSet
}

// openProfiler opens DCGM as --dcgm says; its absence under auto is
// logged once.
func (o *metricsOptions) openProfiler(ctx context.Context, log *slog.Logger) (metrics.Profiler, error) {
	if o.dcgm == "off" {
		return nil, nil
	}
	p, err := dcgm.Open(ctx, dcgm.Options{Address: o.dcgmHostEngine, Logger: log.With("component", "dcgm")})
	if err == nil {
		log.Info("DCGM profiling fields enabled per slice")
		return p, nil
	}
	if o.dcgm == "on" {
		return nil, fmt.Errorf("--dcgm on: %w", err)
	}
	if errors.Is(err, dcgm.ErrNotBuilt) || errors.Is(err, dcgm.ErrUnavailable) {
		log.Info("DCGM not used: slices get NVML metrics only", "reason", err)
		return nil, nil
	}
	log.Warn("DCGM not used", "error", err)
	return nil, nil
}

// newMetricsRuntime builds the collector and the Triton scraper.
func newMetricsRuntime(ctx context.Context, o *metricsOptions, r metrics.Reader, log *slog.Logger) (*metricsRuntime, error) {
	prof, err := o.openProfiler(ctx, log)
	if err != nil {
		return nil, err
	}
	mlog := log.With("component", "metrics")
	return &metricsRuntime{
		collector: metrics.NewCollector(r, metrics.Options{CacheTTL: o.cache, Profiler: prof, Logger: mlog}),
		// A Prometheus scrape re-scrapes Triton unless a round ran in the
		// last 250 ms: fresh enough that rate() over the re-exported
		// counters is not skewed by a stale round, while two servers
		// scraping together still share one round.
		scraper: triton.New(triton.Options{Timeout: o.tritonTimeout, Window: o.tritonWindow, MinInterval: 250 * time.Millisecond,
			Logger: mlog.With("part", "triton")}),
		profiler: prof,
		targets:  &targetSet{},
	}, nil
}

// serve serves /metrics on addr until ctx is done.
func (m *metricsRuntime) serve(ctx context.Context, node, addr string, log *slog.Logger) error {
	reg, err := metrics.NewRegistry(node, []prometheus.Collector{m.collector, m.scraper}...)
	if err != nil {
		return err
	}
	return metrics.Serve(ctx, reg, addr, func(a net.Addr) {
		log.Info("metrics server", "address", a.String())
	})
}

func (m *metricsRuntime) close(log *slog.Logger) {
	if m.profiler != nil {
		if err := m.profiler.Close(); err != nil {
			log.Warn("close DCGM", "error", err)
		}
	}
}

// targetSet gathers what Triton targets are built from: the static list,
// the slices' owners and the pods of this node.
type targetSet struct {
	mu     sync.Mutex
	owners map[string]podresources.Owner
}

func (s *targetSet) setOwners(owners map[string]podresources.Owner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners = owners
}

func (s *targetSet) currentOwners() map[string]podresources.Owner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owners
}

// podLister lists this node's pods; nil without Kubernetes.
type podLister func() ([]*corev1.Pod, error)

// nodePods starts an informer on the pods bound to node and returns their
// lister once it has synced.
func nodePods(ctx context.Context, client kubernetes.Interface, node string) (podLister, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	pods := factory.Core().V1().Pods()
	lister := pods.Lister()
	informer := pods.Informer()
	factory.Start(ctx.Done())
	sync, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cacheSynced(sync, informer.HasSynced) {
		return nil, fmt.Errorf("pods of node %s: the informer did not sync in 30s (does the agent's role allow list/watch pods?)", node)
	}
	return func() ([]*corev1.Pod, error) { return lister.List(labels.Everything()) }, nil
}

func cacheSynced(ctx context.Context, synced func() bool) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !synced() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// refreshTargets sets the scraper's targets every interval: the
// --triton-target URLs, the triton list of the agent configuration (file
// source) and, with pods, the pods that own slices on this node. Problems
// are logged when they change.
func (m *metricsRuntime) refreshTargets(ctx context.Context, o *agentOptions, a *agent.Agent, pods podLister, log *slog.Logger) {
	last, lastURLs := "", ""
	tick := time.NewTicker(o.metrics.tritonInterval)
	defer tick.Stop()
	for {
		targets, problems := m.buildTargets(o, a, pods)
		m.scraper.SetTargets(targets)
		urls := make([]string, len(targets))
		for i, t := range targets {
			urls[i] = t.URL
		}
		slices.Sort(urls)
		if u := fmt.Sprint(urls); u != lastURLs {
			// New servers are scraped now, not at the next round.
			lastURLs = u
			m.scraper.Scrape(ctx)
		}
		if msg := fmt.Sprint(problems); msg != last {
			for _, p := range problems {
				log.Warn("triton target", "problem", p)
			}
			last = msg
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// buildTargets returns the current Triton targets.
func (m *metricsRuntime) buildTargets(o *agentOptions, a *agent.Agent, pods podLister) ([]triton.Target, []error) {
	inv := a.Inventory()
	known := map[string]triton.SliceInfo{}
	for _, sl := range inv.Slices() {
		known[sl.UUID] = triton.SliceInfo{MigProfile: sl.Profile, GPU: strconv.Itoa(sl.GPUIndex)}
	}
	owners := m.targets.currentOwners()
	var problems []error
	static := []agent.TritonTarget{}
	for _, u := range o.metrics.tritonTargets {
		static = append(static, agent.TritonTarget{URL: u})
	}
	if o.source == "file" {
		if data, err := os.ReadFile(o.agentConfig); err == nil {
			cfg, err := agent.ParseConfig(o.agentConfig, data)
			if err != nil {
				problems = append(problems, err)
			}
			static = append(static, cfg.Triton...)
		}
	}
	var out []triton.Target
	for _, st := range static {
		t := triton.Target{URL: st.URL, Slice: st.Slice}
		if info, ok := known[st.Slice]; ok {
			t.MigProfile, t.GPU = info.MigProfile, info.GPU
		}
		if ow, ok := owners[st.Slice]; ok {
			t.Pod, t.Namespace, t.Container = ow.Pod, ow.Namespace, ow.Container
		}
		out = append(out, t)
	}
	if pods != nil {
		list, err := pods()
		if err != nil {
			problems = append(problems, fmt.Errorf("listing this node's pods: %w", err))
		}
		var ps []triton.Pod
		for _, p := range list {
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			ps = append(ps, triton.Pod{Namespace: p.Namespace, Name: p.Name, IP: p.Status.PodIP, Annotations: p.Annotations})
		}
		found, errs := triton.PodTargets(ps, owners, known)
		problems = append(problems, errs...)
		for _, t := range found {
			if !slices.ContainsFunc(out, func(x triton.Target) bool { return x.URL == t.URL }) {
				out = append(out, t)
			}
		}
	}
	return out, problems
}
