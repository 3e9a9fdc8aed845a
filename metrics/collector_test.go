package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/metrics"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/podresources"
	"github.com/tessera-gpu/tessera/podresources/podresourcestest"
)

// node is a simulated node opened through package gpu.
type node struct {
	t   testing.TB
	cat *migconfig.Catalog
	sim *sim.Node
	gpu *gpu.Node
}

func openNode(t testing.TB, spec string, opts ...sim.Option) *node {
	t.Helper()
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &node{t: t, cat: cat, sim: s, gpu: n}
}

// layout applies instances ("3g.40gb@0", "1c.3g.40gb@4" splits into
// compute instances of 1 slice) to GPU index.
func (n *node) layout(index int, instances ...string) migconfig.GPUState {
	n.t.Helper()
	st, err := n.gpu.Snapshot(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	cur := st.GPUs[index]
	m, _ := n.cat.Lookup(cur)
	want := migconfig.GPULayout{MigEnabled: true}
	for _, s := range instances {
		name, start, _ := strings.Cut(s, "@")
		var c migconfig.Compute
		if cs, gi, split := strings.Cut(name, "c."); split && !strings.Contains(cs, ".") {
			name = gi
			fmt.Sscan(cs, &c.Slices)
		}
		p, ok := m.ProfileByName(name)
		if !ok {
			n.t.Fatalf("no profile %q", name)
		}
		if c.Slices > 0 {
			c.Count = p.ComputeSlices / c.Slices
		}
		var at int
		fmt.Sscan(start, &at)
		want.Instances = append(want.Instances, migconfig.Instance{Profile: p.ID, Placement: migconfig.Placement{Start: at, Size: p.MemorySlices}, Compute: c})
	}
	ops, err := migconfig.Diff(m, cur, want)
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.gpu.Apply(context.Background(), ops, gpu.ApplyOptions{}); err != nil {
		n.t.Fatal(err)
	}
	st, err = n.gpu.Snapshot(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return st.GPUs[index]
}

// series is one gathered sample.
type series struct {
	labels map[string]string
	value  float64
	kind   dto.MetricType
}

// gather collects c through a registry with a node label, as the agent
// serves it, and returns the series by metric name.
func gather(t *testing.T, cs ...prometheus.Collector) map[string][]series {
	t.Helper()
	reg, err := metrics.NewRegistry("node-a", cs...)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string][]series{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "tessera_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}, kind: mf.GetType()}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], s)
		}
	}
	return out
}

// find returns the series of name whose labels include want.
func find(all map[string][]series, name string, want map[string]string) []series {
	var out []series
	for _, s := range all[name] {
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// one returns the value of the single series of name matching want.
func one(t *testing.T, all map[string][]series, name string, want map[string]string) float64 {
	t.Helper()
	got := find(all, name, want)
	if len(got) != 1 {
		t.Fatalf("%s%v: %d series, want 1 (all: %v)", name, want, len(got), all[name])
	}
	return got[0].value
}

func TestGPUMetrics(t *testing.T) {
	n := openNode(t, "h100-80gb:2")
	must(t, n.sim.SetTelemetry(0, sim.Telemetry{UtilizationPercent: 87, MemoryUtilizationPercent: 41, PowerMilliwatts: 312_500, TemperatureC: 64, SMClockMHz: 1980, ECCCorrected: 3, ECCUncorrected: 1}))
	must(t, n.sim.SetTelemetry(1, sim.Telemetry{PowerMilliwatts: 95_000, TemperatureC: 41, SMClockMHz: 1755, ECCDisabled: true}))
	n.layout(1, "1g.10gb@0")
	st, _ := n.gpu.Snapshot(context.Background())
	g0, g1 := st.GPUs[0], st.GPUs[1]
	if _, err := n.sim.StartProcess(g0.UUID); err != nil {
		t.Fatal(err)
	}

	all := gather(t, metrics.NewCollector(n.gpu, metrics.Options{}))
	l0 := map[string]string{"gpu": "0", "uuid": g0.UUID, "model": "NVIDIA H100 80GB HBM3", "node": "node-a"}
	l1 := map[string]string{"gpu": "1", "uuid": g1.UUID, "model": "NVIDIA H100 80GB HBM3", "node": "node-a"}
	if g0.Name != l0["model"] {
		t.Fatalf("sim product name %q; update the test's model label", g0.Name)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tessera_nvml_up", map[string]string{"node": "node-a"}, 1},
		{"tessera_gpu_info", with(l0, "pci_bus_id", g0.PCIBusID, "catalog_model", "h100-80gb"), 1},
		{"tessera_gpu_utilization_ratio", l0, 0.87},
		{"tessera_gpu_memory_utilization_ratio", l0, 0.41},
		{"tessera_gpu_memory_used_bytes", l0, sim.ProcessMemoryMiB << 20},
		{"tessera_gpu_memory_total_bytes", l0, float64(uint64(g0.MemoryMiB) << 20)},
		{"tessera_gpu_power_watts", l0, 312.5},
		{"tessera_gpu_temperature_celsius", l0, 64},
		{"tessera_gpu_sm_clock_hertz", l0, 1980e6},
		{"tessera_gpu_mig_mode", l0, 0},
		{"tessera_gpu_mig_mode_pending", l0, 0},
		{"tessera_gpu_ecc_errors_total", with(l0, "type", "corrected"), 3},
		{"tessera_gpu_ecc_errors_total", with(l0, "type", "uncorrected"), 1},
		{"tessera_gpu_power_watts", l1, 95},
		{"tessera_gpu_temperature_celsius", l1, 41},
		{"tessera_gpu_sm_clock_hertz", l1, 1755e6},
		{"tessera_gpu_mig_mode", l1, 1},
		{"tessera_gpu_mig_mode_pending", l1, 1},
		{"tessera_gpu_memory_used_bytes", l1, 0},
	} {
		if got := one(t, all, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// What NVML does not give is absent, not zero.
	if s := find(all, "tessera_gpu_utilization_ratio", l1); len(s) != 0 {
		t.Errorf("utilisation of a MIG-enabled GPU exported: %v", s)
	}
	if s := find(all, "tessera_gpu_ecc_errors_total", l1); len(s) != 0 {
		t.Errorf("ECC counts of a GPU with ECC off exported: %v", s)
	}
	for _, name := range []string{"tessera_gpu_ecc_errors_total"} {
		for _, s := range all[name] {
			if s.kind != dto.MetricType_COUNTER {
				t.Errorf("%s is a %v, want a counter", name, s.kind)
			}
		}
	}
}

func TestSliceMetrics(t *testing.T) {
	n := openNode(t, "a100-80gb:1", sim.WithMigEnabled())
	g := n.layout(0, "3g.40gb@0", "1c.2g.20gb@4", "1g.10gb@6")
	// Three slices plus the two compute instances of the split 2g.20gb.
	var uuids []string
	byGI := map[string]migconfig.Instance{}
	for _, in := range g.Instances {
		for _, ci := range in.ComputeInstances {
			uuids = append(uuids, ci.UUID)
			byGI[ci.UUID] = in
		}
	}
	if len(uuids) != 4 {
		t.Fatalf("layout has %d MIG devices, want 4: %+v", len(uuids), g.Instances)
	}
	big := g.Instances[0].ComputeInstances[0].UUID
	split := g.Instances[1].ComputeInstances
	small := g.Instances[2].ComputeInstances[0].UUID
	if _, err := n.sim.StartProcess(big); err != nil {
		t.Fatal(err)
	}
	if _, err := n.sim.StartProcess(big); err != nil {
		t.Fatal(err)
	}

	c := metrics.NewCollector(n.gpu, metrics.Options{})
	pr := podresourcestest.Serve(t, &podresourcesapi.ListPodResourcesResponse{PodResources: []*podresourcesapi.PodResources{
		podresourcestest.Pod("team-a", "triton-0", "server", "nvidia.com/mig-3g.40gb", big),
		podresourcestest.Pod("team-b", "triton-1", "server", "nvidia.com/mig-1c.2g.20gb", split[0].UUID),
	}})
	owners, err := podresources.List(context.Background(), pr.Socket, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	c.SetOwners(owners)
	c.SetUnhealthy(map[string]string{small: "Xid 94"})

	all := gather(t, c)
	if got := len(all["tessera_slice_info"]); got != 4 {
		t.Fatalf("tessera_slice_info has %d series, want 4", got)
	}
	for _, c := range []struct {
		uuid, profile, giProfile, pod, ns, container string
		start, size                                  string
		memUsed                                      float64
		healthy, procs                               float64
	}{
		{big, "3g.40gb", "3g.40gb", "triton-0", "team-a", "server", "0", "4", 2 * sim.ProcessMemoryMiB << 20, 1, 2},
		{split[0].UUID, "1c.2g.20gb", "2g.20gb", "triton-1", "team-b", "server", "4", "2", 0, 1, 0},
		{split[1].UUID, "1c.2g.20gb", "2g.20gb", "", "", "", "4", "2", 0, 1, 0},
		{small, "1g.10gb", "1g.10gb", "", "", "", "6", "1", 0, 0, 0},
	} {
		in := byGI[c.uuid]
		var ci migconfig.ComputeInstance
		for _, x := range in.ComputeInstances {
			if x.UUID == c.uuid {
				ci = x
			}
		}
		l := map[string]string{
			"node": "node-a", "gpu": "0", "gpu_uuid": g.UUID, "uuid": c.uuid, "model": g.Name,
			"mig_profile": c.profile, "gpu_instance": fmt.Sprint(in.GPUInstanceID), "compute_instance": fmt.Sprint(ci.ID),
			"pod": c.pod, "namespace": c.ns, "container": c.container,
		}
		if v := one(t, all, "tessera_slice_info", with(l, "gpu_instance_profile", c.giProfile, "placement_start", c.start, "placement_size", c.size)); v != 1 {
			t.Errorf("%s info = %v", c.uuid, v)
		}
		if v := one(t, all, "tessera_slice_memory_total_bytes", l); v != float64(uint64(ci.MemoryMiB)<<20) || v == 0 {
			t.Errorf("%s memory total = %v, want %d MiB", c.uuid, v, ci.MemoryMiB)
		}
		if v := one(t, all, "tessera_slice_memory_used_bytes", l); v != c.memUsed {
			t.Errorf("%s memory used = %v, want %v", c.uuid, v, c.memUsed)
		}
		if v := one(t, all, "tessera_slice_healthy", l); v != c.healthy {
			t.Errorf("%s healthy = %v, want %v", c.uuid, v, c.healthy)
		}
		if v := one(t, all, "tessera_slice_processes", l); v != c.procs {
			t.Errorf("%s processes = %v, want %v", c.uuid, v, c.procs)
		}
	}
	// Without DCGM no profiling series exist.
	for _, name := range []string{"tessera_slice_graphics_engine_active_ratio", "tessera_slice_sm_active_ratio", "tessera_slice_dram_active_ratio"} {
		if len(all[name]) != 0 {
			t.Errorf("%s exported without a profiler", name)
		}
	}

	// The pods go away: the labels go with them.
	pr.Set(&podresourcesapi.ListPodResourcesResponse{})
	owners, err = podresources.List(context.Background(), pr.Socket, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	c.SetOwners(owners)
	time.Sleep(1100 * time.Millisecond) // past the 1s cache; owners are not cached anyway
	all = gather(t, c)
	if s := find(all, "tessera_slice_info", map[string]string{"pod": "triton-0"}); len(s) != 0 {
		t.Errorf("released slice still labelled with its pod: %v", s)
	}
}

func TestXidCounter(t *testing.T) {
	n := openNode(t, "h100-80gb:2")
	st, _ := n.gpu.Snapshot(context.Background())
	c := metrics.NewCollector(n.gpu, metrics.Options{})
	for _, x := range []gpu.XidEvent{
		{GPUIndex: 1, GPUUUID: st.GPUs[1].UUID, Xid: 94, GPUInstanceID: 3, ComputeInstanceID: 0},
		{GPUIndex: 1, GPUUUID: st.GPUs[1].UUID, Xid: 94, GPUInstanceID: 3, ComputeInstanceID: 0},
		{GPUIndex: 1, GPUUUID: st.GPUs[1].UUID, Xid: 48, GPUInstanceID: -1, ComputeInstanceID: -1},
	} {
		c.ObserveXid(x)
	}
	all := gather(t, c)
	base := map[string]string{"gpu": "1", "uuid": st.GPUs[1].UUID, "model": st.GPUs[1].Name, "node": "node-a"}
	if v := one(t, all, "tessera_gpu_xid_errors_total", with(base, "xid", "94", "gpu_instance", "3")); v != 2 {
		t.Errorf("Xid 94 on GI 3 = %v, want 2", v)
	}
	if v := one(t, all, "tessera_gpu_xid_errors_total", with(base, "xid", "48", "gpu_instance", "")); v != 1 {
		t.Errorf("Xid 48 on the whole GPU = %v, want 1", v)
	}
	if len(find(all, "tessera_gpu_xid_errors_total", map[string]string{"gpu": "0"})) != 0 {
		t.Error("GPU 0 has Xid series without any Xid")
	}
}

// countingReader counts readings of the node.
type countingReader struct {
	metrics.Reader
	reads atomic.Int32
	fail  atomic.Bool
}

func (r *countingReader) Telemetry(ctx context.Context) (gpu.Telemetry, error) {
	r.reads.Add(1)
	if r.fail.Load() {
		return gpu.Telemetry{}, errors.New("gpu: telemetry: DeviceGetCount: ERROR_DRIVER_NOT_LOADED")
	}
	return r.Reader.Telemetry(ctx)
}

func TestOneReadPerScrape(t *testing.T) {
	n := openNode(t, "a100-80gb:8", sim.WithMigEnabled())
	for i := range 8 {
		n.layout(i, "1g.10gb@0", "1g.10gb@1", "1g.10gb@2", "1g.10gb@3", "1g.10gb@4", "1g.10gb@5", "1g.10gb@6")
	}
	now := time.Unix(1000, 0)
	r := &countingReader{Reader: n.gpu}
	c := metrics.NewCollector(r, metrics.Options{CacheTTL: time.Second, Now: func() time.Time { return now }})
	n.sim.ResetCounters()
	all := gather(t, c)
	if got := len(all["tessera_slice_info"]); got != 56 {
		t.Fatalf("%d slices, want 56", got)
	}
	if r.reads.Load() != 1 {
		t.Fatalf("one scrape read the node %d times", r.reads.Load())
	}
	calls := n.sim.Calls()
	if calls["DeviceGetHandleByIndex"] != 8 || calls["GetPowerUsage"] != 8 {
		t.Errorf("one scrape made %d handle lookups and %d power reads, want 8 each", calls["DeviceGetHandleByIndex"], calls["GetPowerUsage"])
	}
	gather(t, c) // within the cache
	if r.reads.Load() != 1 {
		t.Errorf("a scrape within CacheTTL read the node again")
	}
	now = now.Add(2 * time.Second)
	gather(t, c)
	if r.reads.Load() != 2 {
		t.Errorf("a scrape after CacheTTL did not read the node")
	}
}

func TestReadFailure(t *testing.T) {
	n := openNode(t, "h100-80gb:1")
	r := &countingReader{Reader: n.gpu}
	c := metrics.NewCollector(r, metrics.Options{CacheTTL: -1})
	c.ObserveXid(gpu.XidEvent{GPUIndex: 0, GPUUUID: "GPU-x", Xid: 79, GPUInstanceID: -1, ComputeInstanceID: -1})
	r.fail.Store(true)
	all := gather(t, c)
	if v := one(t, all, "tessera_nvml_up", nil); v != 0 {
		t.Errorf("tessera_nvml_up = %v after a failed read, want 0", v)
	}
	if len(all["tessera_gpu_info"]) != 0 {
		t.Error("GPU series exported from a failed read")
	}
	if v := one(t, all, "tessera_gpu_xid_errors_total", map[string]string{"xid": "79"}); v != 1 {
		t.Errorf("Xid counts lost when the read fails: %v", v)
	}
	r.fail.Store(false)
	all = gather(t, c)
	if v := one(t, all, "tessera_nvml_up", nil); v != 1 {
		t.Errorf("tessera_nvml_up = %v after recovery, want 1", v)
	}
	// An NVML fault on one monitoring call leaves that value out only.
	gpu0 := 0
	n.sim.InjectFault(sim.Fault{Call: "GetTemperature", GPU: &gpu0, Return: nvml.ERROR_GPU_IS_LOST})
	all = gather(t, c)
	if len(all["tessera_gpu_temperature_celsius"]) != 0 || len(all["tessera_gpu_power_watts"]) != 1 {
		t.Errorf("after a failed temperature read: temperature %v, power %v", all["tessera_gpu_temperature_celsius"], all["tessera_gpu_power_watts"])
	}
}

// fakeProfiler stands in for DCGM, which this machine does not have.
type fakeProfiler struct {
	asked []metrics.SliceRef
	err   error
}

func (p *fakeProfiler) Profile(_ context.Context, refs []metrics.SliceRef) (map[string]metrics.Profile, error) {
	p.asked = refs
	if p.err != nil {
		return nil, p.err
	}
	out := map[string]metrics.Profile{}
	for i, r := range refs {
		out[r.UUID] = metrics.Profile{GraphicsEngineActive: 0.5 + float64(i)/10, SMActive: 0.25, DRAMActive: math.NaN()}
	}
	return out, nil
}

func (p *fakeProfiler) Close() error { return nil }

func TestProfilerFields(t *testing.T) {
	n := openNode(t, "h100-80gb:1")
	g := n.layout(0, "3g.40gb@0", "3g.40gb@4")
	p := &fakeProfiler{}
	all := gather(t, metrics.NewCollector(n.gpu, metrics.Options{Profiler: p}))
	if len(p.asked) != 2 {
		t.Fatalf("profiler asked for %d slices, want 2", len(p.asked))
	}
	sort.Slice(p.asked, func(i, j int) bool { return p.asked[i].UUID < p.asked[j].UUID })
	for _, in := range g.Instances {
		ci := in.ComputeInstances[0]
		i := slices.IndexFunc(p.asked, func(r metrics.SliceRef) bool { return r.UUID == ci.UUID })
		if i < 0 || p.asked[i].GPUInstanceID != in.GPUInstanceID || p.asked[i].GPUUUID != g.UUID {
			t.Errorf("profiler not asked for %s (GI %d) correctly: %+v", ci.UUID, in.GPUInstanceID, p.asked)
		}
	}
	if len(all["tessera_slice_graphics_engine_active_ratio"]) != 2 || len(all["tessera_slice_sm_active_ratio"]) != 2 {
		t.Errorf("profiling series: %v %v", all["tessera_slice_graphics_engine_active_ratio"], all["tessera_slice_sm_active_ratio"])
	}
	if len(all["tessera_slice_dram_active_ratio"]) != 0 {
		t.Error("a blank (NaN) DCGM field was exported")
	}
	// A failing profiler leaves its fields out, not the scrape.
	p.err = errors.New("DCGM connection lost")
	time.Sleep(1100 * time.Millisecond)
	all = gather(t, metrics.NewCollector(n.gpu, metrics.Options{Profiler: p}))
	if len(all["tessera_slice_sm_active_ratio"]) != 0 || len(all["tessera_slice_info"]) != 2 {
		t.Errorf("with a failing profiler: sm %v, slices %d", all["tessera_slice_sm_active_ratio"], len(all["tessera_slice_info"]))
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
