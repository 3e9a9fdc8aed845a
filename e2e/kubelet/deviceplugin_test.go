package kubelet_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/e2e/kubelet/kubeletenv"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/podresources"
)

const (
	res1g = "nvidia.com/mig-1g.10gb"
	res2g = "nvidia.com/mig-2g.20gb"
	res3g = "nvidia.com/mig-3g.40gb"
	res7g = "nvidia.com/mig-7g.80gb"
)

// node is a simulated GPU node running Tessera's agent and device plugin
// as `tessera agent` does, next to the kubelet's real device manager.
type node struct {
	sim   *sim.Node
	gpus  *gpu.Node
	agent *agent.Agent
	dp    *deviceplugin.Manager
	src   chan agent.Desired
	file  *migconfig.File
}

// configSource is a desired-state source the test sets.
type configSource chan agent.Desired

func (c configSource) Run(ctx context.Context, out chan<- agent.Desired) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-c:
			select {
			case out <- d:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func startNode(t testing.TB, k *kubeletenv.Kubelet, gpus int, opts deviceplugin.Options) *node {
	t.Helper()
	cat := migconfig.Builtin()
	m, _ := cat.ByKey("h100-80gb")
	s := sim.New(m, gpus)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gpu.Open(ctx, s, gpu.Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	file, err := migconfig.ParseFile("layouts.yaml", migconfig.DefaultLayoutFile())
	if err != nil {
		t.Fatal(err)
	}
	src := make(configSource, 1)
	a := agent.New(g, src, agent.Options{NodeName: "e2e", BusyPoll: 20 * time.Millisecond, BackoffMin: 20 * time.Millisecond})
	opts.PluginDir, opts.KubeletSocket = k.PluginDir(), k.KubeletSocket()
	opts.KubeletPoll = 50 * time.Millisecond
	if opts.Probe == nil {
		opts.Probe = g.ProbeDevice
	}
	dp := deviceplugin.New(opts)
	invs, unsubscribe := a.Subscribe()
	health := make(chan deviceplugin.HealthEvent, 16)
	xids := make(chan gpu.XidEvent, 16)
	done := make(chan struct{}, 4)
	go func() { _ = a.Run(ctx); done <- struct{}{} }()
	go func() { _ = dp.Run(ctx, invs, health); done <- struct{}{} }()
	go func() { _ = g.WatchXids(ctx, xids); done <- struct{}{} }()
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-ctx.Done():
				return
			case x := <-xids:
				health <- deviceplugin.HealthEvent{GPUIndex: x.GPUIndex, GPUInstanceID: x.GPUInstanceID, ComputeInstanceID: x.ComputeInstanceID, Xid: x.Xid}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		for range 4 {
			<-done
		}
		unsubscribe()
		g.Close()
	})
	return &node{sim: s, gpus: g, agent: a, dp: dp, src: src, file: file}
}

// apply sets the named config of NVIDIA's default layouts and waits until
// the agent reports it applied.
func (n *node) apply(t testing.TB, config string) agent.Inventory {
	t.Helper()
	n.src <- agent.Desired{Source: "test", Revision: config, File: n.file, Config: config}
	return n.waitInventory(t, "config "+config, func(inv agent.Inventory) bool {
		return inv.State == agent.StateSuccess && inv.Desired != nil && inv.Desired.Revision == config
	})
}

func (n *node) waitInventory(t testing.TB, what string, ok func(agent.Inventory) bool) agent.Inventory {
	t.Helper()
	ch, stop := n.agent.Subscribe()
	defer stop()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case inv := <-ch:
			if ok(inv) {
				return inv
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestDevicePluginWithRealDeviceManager(t *testing.T) {
	k := kubeletenv.Start(t)
	n := startNode(t, k, 2, deviceplugin.Options{})

	// Registration and capacity per resource.
	inv := n.apply(t, "all-balanced")
	for res, want := range map[string]int64{res1g: 4, res2g: 2, res3g: 2} {
		k.WaitCapacity(t, res, want, 5*time.Second)
		k.WaitAllocatable(t, res, want, 5*time.Second)
	}

	// Allocate through the manager: the container gets the MIG UUIDs.
	a, err := k.Allocate(t, kubeletenv.NewPod("triton", "server", res1g, 2), "server")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(a.Envs["NVIDIA_VISIBLE_DEVICES"], ",")
	want := slices.Clone(a.DeviceIDs[res1g])
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) || len(got) != 2 {
		t.Fatalf("NVIDIA_VISIBLE_DEVICES %v, allocated %v", got, want)
	}
	slices1g := map[string]int{}
	for _, s := range inv.Slices() {
		if s.Profile == "1g.10gb" {
			slices1g[s.UUID] = s.GPUIndex
		}
	}
	if gpuA, okA := slices1g[got[0]]; !okA || gpuA != slices1g[got[1]] {
		t.Errorf("allocated %v: want two 1g.10gb slices of one GPU (packed), inventory %v", got, slices1g)
	}

	// The pod-resources API lists them; the agent then holds them as busy.
	owners, err := podresources.List(context.Background(), k.PodResourcesSocket(), deviceplugin.ResourcePrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[got[0]].Pod != "triton" || owners[got[0]].Container != "server" {
		t.Fatalf("pod-resources owners %v", owners)
	}
	ids := podresources.IDs(owners)
	n.agent.SetAllocated(ids)
	n.dp.SetAllocated(ids)

	// A re-layout to one 7g.80gb per GPU: on the GPU holding the pod's
	// slices those two stay (allocated, so busy) and the idle ones go; the
	// other GPU changes; the kubelet sees each new capacity with no restart.
	podGPU := slices1g[got[0]]
	n.src <- agent.Desired{Source: "test", Revision: "all-7g.80gb", File: n.file, Config: "all-7g.80gb"}
	inv = n.waitInventory(t, "partial re-layout", func(inv agent.Inventory) bool {
		return inv.State == agent.StatePending && len(inv.HeldBack) > 0 && inv.Desired.Revision == "all-7g.80gb"
	})
	other := 1 - podGPU
	if s := inv.GPUs[other].Slices; len(s) != 1 || s[0].Profile != "7g.80gb" {
		t.Fatalf("gpu %d has %v, want one 7g.80gb", other, s)
	}
	var kept []string
	for _, s := range inv.GPUs[podGPU].Slices {
		kept = append(kept, s.UUID)
	}
	sort.Strings(kept)
	if !slices.Equal(kept, got) {
		t.Fatalf("the pod's gpu %d kept %v, want exactly the pod's slices %v", podGPU, kept, got)
	}
	k.WaitCapacity(t, res7g, 1, 5*time.Second)
	k.WaitCapacity(t, res1g, 2, 5*time.Second)
	k.WaitCapacity(t, res2g, 0, 5*time.Second)
	k.WaitCapacity(t, res3g, 0, 5*time.Second)

	// The pod ends: the rest applies and the capacity follows.
	k.Remove(k.Pods()[0].UID)
	owners, err = podresources.List(context.Background(), k.PodResourcesSocket(), deviceplugin.ResourcePrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 0 {
		t.Fatalf("owners after the pod left: %v", owners)
	}
	n.agent.SetAllocated(nil)
	n.waitInventory(t, "full re-layout", func(inv agent.Inventory) bool { return inv.State == agent.StateSuccess })
	k.WaitCapacity(t, res7g, 2, 5*time.Second)
	k.WaitCapacity(t, res1g, 0, 5*time.Second)
	k.WaitCapacity(t, res2g, 0, 5*time.Second)
	k.WaitCapacity(t, res3g, 0, 5*time.Second)

	// The kubelet restarts: every plugin registers again by itself.
	k.Restart(t)
	k.WaitCapacity(t, res7g, 2, 10*time.Second)
	k.WaitAllocatable(t, res7g, 2, 10*time.Second)
}

func TestDevicePluginHealth(t *testing.T) {
	k := kubeletenv.Start(t)
	n := startNode(t, k, 1, deviceplugin.Options{RecoverAfter: 300 * time.Millisecond})
	inv := n.apply(t, "all-1g.10gb")
	k.WaitAllocatable(t, res1g, 7, 5*time.Second)

	// A critical Xid on one GPU instance: only its slice turns unhealthy.
	hit := inv.GPUs[0].Slices[3]
	if err := n.sim.InjectXid(0, 94, hit.GPUInstanceID, hit.ComputeInstanceID); err != nil {
		t.Fatal(err)
	}
	k.WaitAllocatable(t, res1g, 6, 5*time.Second)
	k.WaitCapacity(t, res1g, 7, time.Second)

	// An application Xid changes nothing.
	if err := n.sim.InjectXid(0, 13, -1, -1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, alloc := k.Capacity(); alloc[res1g] != 6 {
		t.Fatalf("after Xid 13 allocatable %d, want 6", alloc[res1g])
	}

	// NVML answers for the slice again: it recovers after RecoverAfter.
	k.WaitAllocatable(t, res1g, 7, 5*time.Second)

	// A whole-GPU Xid marks every slice; re-creating the slices (a new
	// layout) brings healthy devices back.
	if err := n.sim.InjectXid(0, 48, -1, -1); err != nil {
		t.Fatal(err)
	}
	k.WaitAllocatable(t, res1g, 0, 5*time.Second)
	n.apply(t, "all-7g.80gb")
	k.WaitAllocatable(t, res7g, 1, 5*time.Second)
	k.WaitCapacity(t, res1g, 0, 5*time.Second)
}

// BenchmarkLayoutToCapacity measures the time from asking the agent for a
// new layout to the kubelet's real device manager reporting the new
// capacity: the re-layout through NVML (simulated), the Inventory, the
// plugin's ListAndWatch and the manager's update. Each iteration
// alternates one GPU between all-1g.10gb and all-3g.40gb and polls the
// manager's capacity every 200 µs; p50 and p99 are reported. Run:
//
//	go test -exec "$PWD/../scripts/in-mountns.sh" -run '^$' -bench LayoutToCapacity
func BenchmarkLayoutToCapacity(b *testing.B) {
	k := kubeletenv.Start(b)
	n := startNode(b, k, 1, deviceplugin.Options{})
	n.apply(b, "all-3g.40gb")
	k.WaitCapacity(b, res3g, 2, 5*time.Second)
	configs := []struct {
		name, resource string
		count          int64
	}{{"all-1g.10gb", res1g, 7}, {"all-3g.40gb", res3g, 2}}
	var took []time.Duration
	i := 0
	for b.Loop() {
		c := configs[i%2]
		i++
		start := time.Now()
		n.src <- agent.Desired{Source: "bench", Revision: fmt.Sprint(i), File: n.file, Config: c.name}
		for {
			if capacity, _ := k.Capacity(); capacity[c.resource] == c.count {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("capacity of %s never reached %d", c.resource, c.count)
			}
			time.Sleep(200 * time.Microsecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "p99-ms")
}
