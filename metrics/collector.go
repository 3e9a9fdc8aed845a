package metrics

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/podresources"
)

// Reader reads a node's state and monitoring values; *gpu.Node is one.
type Reader interface {
	Telemetry(ctx context.Context) (gpu.Telemetry, error)
	Catalog() *migconfig.Catalog
}

// Options configures a Collector.
type Options struct {
	// CacheTTL is how long one reading of the node serves scrapes: two
	// Prometheus servers scraping together read NVML once. Default 1s;
	// negative turns the cache off.
	CacheTTL time.Duration
	// ReadTimeout bounds one reading of the node. Default 10s.
	ReadTimeout time.Duration
	// Profiler adds DCGM's per-instance profiling fields; nil leaves them
	// out.
	Profiler Profiler
	// Logger receives read failures, once per change of error. Nil
	// discards logs.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Collector is a prometheus.Collector of a node's GPU and slice metrics.
// Each scrape reads the node once (gpu.Node.Telemetry) unless the last
// reading is younger than Options.CacheTTL. Its methods are safe for
// concurrent use.
type Collector struct {
	r    Reader
	opts Options
	log  *slog.Logger

	// readMu serializes readings; a scrape that waited for another one
	// uses its result.
	readMu  sync.Mutex
	cached  reading
	lastErr string

	mu        sync.Mutex
	owners    map[string]podresources.Owner
	unhealthy map[string]string
	xids      map[xidKey]uint64
}

// reading is one read of the node.
type reading struct {
	at       time.Time
	tel      gpu.Telemetry
	profiles map[string]Profile
	err      error
	took     time.Duration
}

type xidKey struct {
	gpu  int
	uuid string
	xid  uint64
	gi   int
}

// NewCollector returns a collector reading r.
func NewCollector(r Reader, opts Options) *Collector {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Collector{r: r, opts: opts, log: log, xids: map[xidKey]uint64{}}
}

// SetOwners sets which container each device is allocated to, keyed by
// device ID (MIG UUID), as podresources.List returns it. Slices of
// containers get pod, namespace and container labels; nil clears them
// (no pod-resources API: the labels are left out).
func (c *Collector) SetOwners(owners map[string]podresources.Owner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owners = owners
}

// SetUnhealthy sets which slices are unhealthy (MIG UUID → reason), as
// the device plugin reports them.
func (c *Collector) SetUnhealthy(unhealthy map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unhealthy = unhealthy
}

// ObserveXid counts an Xid event for tessera_gpu_xid_errors_total.
func (c *Collector) ObserveXid(x gpu.XidEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xids[xidKey{gpu: x.GPUIndex, uuid: x.GPUUUID, xid: x.Xid, gi: x.GPUInstanceID}]++
}

var (
	gpuLabels   = []string{"gpu", "uuid", "model"}
	sliceLabels = []string{"gpu", "gpu_uuid", "uuid", "model", "mig_profile", "gpu_instance", "compute_instance", "pod", "namespace", "container"}
)

func gpuDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), gpuLabels...), extra...), nil)
}

func sliceDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), sliceLabels...), extra...), nil)
}

// The collector's metric descriptions. Names follow Prometheus' naming
// conventions: base units in the name, _total for counters, ratios in
// [0, 1].
var (
	descNVMLUp   = prometheus.NewDesc("tessera_nvml_up", "1 when the last reading of the node's GPUs through NVML succeeded, else 0.", nil, nil)
	descReadTime = prometheus.NewDesc("tessera_nvml_read_duration_seconds", "Time the last reading of the node's GPUs took.", nil, nil)

	descGPUInfo        = gpuDesc("tessera_gpu_info", "A GPU of the node; always 1.", "pci_bus_id", "catalog_model")
	descGPUUtil        = gpuDesc("tessera_gpu_utilization_ratio", "Fraction of the last sample period in which a kernel ran on the GPU (NVML); absent while MIG is enabled, where NVML does not measure it.")
	descGPUMemUtil     = gpuDesc("tessera_gpu_memory_utilization_ratio", "Fraction of the last sample period in which device memory was read or written (NVML); absent while MIG is enabled.")
	descGPUMemUsed     = gpuDesc("tessera_gpu_memory_used_bytes", "GPU memory in use.")
	descGPUMemTotal    = gpuDesc("tessera_gpu_memory_total_bytes", "GPU memory in all.")
	descGPUPower       = gpuDesc("tessera_gpu_power_watts", "GPU power draw.")
	descGPUTemp        = gpuDesc("tessera_gpu_temperature_celsius", "GPU core temperature.")
	descGPUSMClock     = gpuDesc("tessera_gpu_sm_clock_hertz", "Current SM clock.")
	descGPUMig         = gpuDesc("tessera_gpu_mig_mode", "MIG mode in effect: 1 enabled, 0 disabled; only MIG-capable GPUs.")
	descGPUMigPending  = gpuDesc("tessera_gpu_mig_mode_pending", "MIG mode after the next GPU reset: 1 enabled, 0 disabled.")
	descGPUECC         = gpuDesc("tessera_gpu_ecc_errors_total", "ECC errors since the driver loaded (NVML volatile counts), by type corrected or uncorrected; absent while ECC is off.", "type")
	descGPUXid         = gpuDesc("tessera_gpu_xid_errors_total", "Xid critical error events seen since the agent started, by Xid and the GPU instance NVML named (empty: the whole GPU).", "xid", "gpu_instance")
	descSliceInfo      = sliceDesc("tessera_slice_info", "A MIG slice (MIG device) of the node with its placement; always 1.", "gpu_instance_profile", "placement_start", "placement_size")
	descSliceMemUsed   = sliceDesc("tessera_slice_memory_used_bytes", "Memory in use on the slice's GPU instance (NVML, per MIG device).")
	descSliceMemTotal  = sliceDesc("tessera_slice_memory_total_bytes", "Memory of the slice's GPU instance.")
	descSliceHealthy   = sliceDesc("tessera_slice_healthy", "1 while the slice is fit to run work, 0 after a critical Xid until it recovers.")
	descSliceProcesses = sliceDesc("tessera_slice_processes", "Compute processes running on the slice.")
	descSliceGRActive  = sliceDesc("tessera_slice_graphics_engine_active_ratio", "Fraction of time the slice's graphics engine was active (DCGM_FI_PROF_GR_ENGINE_ACTIVE); only with DCGM.")
	descSliceSMActive  = sliceDesc("tessera_slice_sm_active_ratio", "Fraction of time at least one warp was active on the slice's SMs (DCGM_FI_PROF_SM_ACTIVE); only with DCGM.")
	descSliceDRAM      = sliceDesc("tessera_slice_dram_active_ratio", "Fraction of cycles the slice's memory interface was busy (DCGM_FI_PROF_DRAM_ACTIVE); only with DCGM.")
)

// Describe sends every metric description of the collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descNVMLUp, descReadTime, descGPUInfo, descGPUUtil, descGPUMemUtil, descGPUMemUsed, descGPUMemTotal,
		descGPUPower, descGPUTemp, descGPUSMClock, descGPUMig, descGPUMigPending, descGPUECC, descGPUXid,
		descSliceInfo, descSliceMemUsed, descSliceMemTotal, descSliceHealthy, descSliceProcesses,
		descSliceGRActive, descSliceSMActive, descSliceDRAM,
	} {
		ch <- d
	}
}

// Collect reads the node (or takes the cached reading) and sends its
// metrics. A failed reading sends tessera_nvml_up 0 and the Xid counts
// only.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	rd := c.read()
	c.mu.Lock()
	owners, unhealthy := c.owners, c.unhealthy
	xids := make(map[xidKey]uint64, len(c.xids))
	for k, v := range c.xids {
		xids[k] = v
	}
	c.mu.Unlock()

	up := 1.0
	if rd.err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descNVMLUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descReadTime, prometheus.GaugeValue, rd.took.Seconds())

	products := map[int]string{}
	if rd.err == nil {
		cat := c.r.Catalog()
		for i, gs := range rd.tel.State.GPUs {
			products[gs.Index] = gs.Name
			collectGPU(ch, gs, rd.tel.GPUs[i])
			var model *migconfig.GPUModel
			if m, ok := cat.Lookup(gs); ok {
				model = m
			}
			collectSlices(ch, model, gs, rd.tel.MigDevices, rd.profiles, owners, unhealthy)
		}
	}
	for k, n := range xids {
		gi := ""
		if k.gi >= 0 {
			gi = strconv.Itoa(k.gi)
		}
		ch <- prometheus.MustNewConstMetric(descGPUXid, prometheus.CounterValue, float64(n),
			strconv.Itoa(k.gpu), k.uuid, products[k.gpu], strconv.FormatUint(k.xid, 10), gi)
	}
}

// read returns a reading of the node no older than CacheTTL.
func (c *Collector) read() reading {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	now := c.opts.Now()
	if c.opts.CacheTTL > 0 && !c.cached.at.IsZero() && now.Sub(c.cached.at) < c.opts.CacheTTL {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadTimeout)
	defer cancel()
	start := time.Now()
	rd := reading{at: now}
	rd.tel, rd.err = c.r.Telemetry(ctx)
	if rd.err == nil && c.opts.Profiler != nil {
		rd.profiles = c.profile(ctx, rd.tel)
	}
	rd.took = time.Since(start)
	c.logChange(rd.err)
	c.cached = rd
	return rd
}

// profile asks the profiler for every slice's fields; a failure is logged
// and leaves them out.
func (c *Collector) profile(ctx context.Context, tel gpu.Telemetry) map[string]Profile {
	var refs []SliceRef
	for _, gs := range tel.State.GPUs {
		for _, in := range gs.Instances {
			for _, ci := range in.ComputeInstances {
				refs = append(refs, SliceRef{UUID: ci.UUID, GPUIndex: gs.Index, GPUUUID: gs.UUID, GPUInstanceID: in.GPUInstanceID, ComputeInstanceID: ci.ID})
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	p, err := c.opts.Profiler.Profile(ctx, refs)
	if err != nil {
		c.log.Warn("DCGM profiling fields unavailable for this scrape", "error", err)
		return nil
	}
	return p
}

// logChange logs a reading's error when it differs from the last one, and
// the recovery.
func (c *Collector) logChange(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == c.lastErr {
		return
	}
	if err != nil {
		c.log.Error("reading the GPUs for metrics", "error", err)
	} else {
		c.log.Info("reading the GPUs for metrics works again")
	}
	c.lastErr = msg
}

// collectGPU sends one GPU's metrics.
func collectGPU(ch chan<- prometheus.Metric, gs migconfig.GPUState, gt gpu.GPUTelemetry) {
	lv := []string{strconv.Itoa(gs.Index), gs.UUID, gs.Name}
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(lv, extra...)...)
	}
	opt := func(d *prometheus.Desc, v *float64) {
		if v != nil {
			gauge(d, *v)
		}
	}
	gauge(descGPUInfo, 1, gs.PCIBusID, gs.Model)
	gauge(descGPUMemUsed, float64(gt.Memory.Used))
	gauge(descGPUMemTotal, float64(gt.Memory.Total))
	opt(descGPUUtil, gt.Utilization)
	opt(descGPUMemUtil, gt.MemoryUtilization)
	opt(descGPUPower, gt.PowerWatts)
	opt(descGPUTemp, gt.TemperatureCelsius)
	opt(descGPUSMClock, gt.SMClockHertz)
	if gs.MigCapable {
		gauge(descGPUMig, boolValue(gs.Mig.Current))
		gauge(descGPUMigPending, boolValue(gs.Mig.Pending))
	}
	for _, e := range []struct {
		kind string
		v    *uint64
	}{{"corrected", gt.ECCCorrected}, {"uncorrected", gt.ECCUncorrected}} {
		if e.v != nil {
			ch <- prometheus.MustNewConstMetric(descGPUECC, prometheus.CounterValue, float64(*e.v), append(lv, e.kind)...)
		}
	}
}

// collectSlices sends the metrics of a GPU's MIG devices.
func collectSlices(ch chan<- prometheus.Metric, m *migconfig.GPUModel, gs migconfig.GPUState, mem map[string]gpu.MemoryUse,
	profiles map[string]Profile, owners map[string]podresources.Owner, unhealthy map[string]string) {
	for _, in := range gs.Instances {
		for _, ci := range in.ComputeInstances {
			profile, giProfile := migconfig.SliceNames(m, in, ci)
			o := owners[ci.UUID]
			lv := []string{strconv.Itoa(gs.Index), gs.UUID, ci.UUID, gs.Name, profile,
				strconv.Itoa(in.GPUInstanceID), strconv.Itoa(ci.ID), o.Pod, o.Namespace, o.Container}
			gauge := func(d *prometheus.Desc, v float64, extra ...string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(lv, extra...)...)
			}
			gauge(descSliceInfo, 1, giProfile, strconv.Itoa(in.Placement.Start), strconv.Itoa(in.Placement.Size))
			if u, ok := mem[ci.UUID]; ok {
				gauge(descSliceMemUsed, float64(u.Used))
				gauge(descSliceMemTotal, float64(u.Total))
			}
			_, bad := unhealthy[ci.UUID]
			gauge(descSliceHealthy, boolValue(!bad))
			gauge(descSliceProcesses, float64(len(ci.Processes)))
			if p, ok := profiles[ci.UUID]; ok {
				for _, f := range []struct {
					d *prometheus.Desc
					v float64
				}{{descSliceGRActive, p.GraphicsEngineActive}, {descSliceSMActive, p.SMActive}, {descSliceDRAM, p.DRAMActive}} {
					if !math.IsNaN(f.v) {
						gauge(f.d, f.v)
					}
				}
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
