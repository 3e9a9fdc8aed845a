package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/gpu/sim"
)

// killSwitch emulates killing the agent's process right after its k-th
// mutating NVML call: that call completes, and every later mutating call
// of the killed agent blocks until the test ends and then fails without
// reaching the GPUs, so the node stays exactly as the kill left it.
type killSwitch struct {
	mu      sync.Mutex
	left    int
	calls   int
	dead    chan struct{}
	release chan struct{}
}

func newKillSwitch(after int) *killSwitch {
	return &killSwitch{left: after, dead: make(chan struct{}), release: make(chan struct{})}
}

// mutate runs one mutating call unless the process is dead.
func (k *killSwitch) mutate(call func() nvml.Return) nvml.Return {
	k.mu.Lock()
	if k.left == 0 {
		k.mu.Unlock()
		<-k.release
		return nvml.ERROR_UNKNOWN
	}
	k.mu.Unlock()
	ret := call()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.left > 0 {
		k.left--
		if k.left == 0 {
			close(k.dead)
		}
	}
	return ret
}

// The wrappers route every mutating call of the gpu package through the
// switch; reads go straight to the simulated node.
type killLib struct {
	nvml.Interface
	k *killSwitch
}

func (l killLib) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	d, ret := l.Interface.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return d, ret
	}
	return killDevice{d, l.k}, ret
}

type killDevice struct {
	nvml.Device
	k *killSwitch
}

func (d killDevice) SetMigMode(mode int) (activation nvml.Return, ret nvml.Return) {
	ret = d.k.mutate(func() nvml.Return {
		var r nvml.Return
		activation, r = d.Device.SetMigMode(mode)
		return r
	})
	return activation, ret
}

func (d killDevice) CreateGpuInstanceWithPlacement(info *nvml.GpuInstanceProfileInfo, p *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
	var gi nvml.GpuInstance
	ret := d.k.mutate(func() nvml.Return {
		var r nvml.Return
		gi, r = d.Device.CreateGpuInstanceWithPlacement(info, p)
		return r
	})
	if ret != nvml.SUCCESS {
		return gi, ret
	}
	return killGI{gi, d.k}, ret
}

func (d killDevice) GetGpuInstanceById(id int) (nvml.GpuInstance, nvml.Return) {
	gi, ret := d.Device.GetGpuInstanceById(id)
	if ret != nvml.SUCCESS {
		return gi, ret
	}
	return killGI{gi, d.k}, ret
}

func (d killDevice) GetGpuInstances(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstance, nvml.Return) {
	gis, ret := d.Device.GetGpuInstances(info)
	for i := range gis {
		gis[i] = killGI{gis[i], d.k}
	}
	return gis, ret
}

type killGI struct {
	nvml.GpuInstance
	k *killSwitch
}

func (g killGI) Destroy() nvml.Return { return g.k.mutate(g.GpuInstance.Destroy) }

func (g killGI) CreateComputeInstance(info *nvml.ComputeInstanceProfileInfo) (nvml.ComputeInstance, nvml.Return) {
	var ci nvml.ComputeInstance
	ret := g.k.mutate(func() nvml.Return {
		var r nvml.Return
		ci, r = g.GpuInstance.CreateComputeInstance(info)
		return r
	})
	if ret != nvml.SUCCESS {
		return ci, ret
	}
	return killCI{ci, g.k}, ret
}

func (g killGI) GetComputeInstances(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstance, nvml.Return) {
	cis, ret := g.GpuInstance.GetComputeInstances(info)
	for i := range cis {
		cis[i] = killCI{cis[i], g.k}
	}
	return cis, ret
}

type killCI struct {
	nvml.ComputeInstance
	k *killSwitch
}

func (c killCI) Destroy() nvml.Return { return c.k.mutate(c.ComputeInstance.Destroy) }

// restartFrom is the node the restart test starts from: GPU 0 balanced,
// GPU 1 with MIG disabled, so the change to all-1g destroys, creates and
// changes a MIG mode.
const restartFrom = `[{"devices":[0],"mig-enabled":true,"mig-devices":{"1g.10gb":2,"2g.20gb":1,"3g.40gb":1}},{"devices":[1],"mig-enabled":false}]`

// startNode returns a simulated node in the restartFrom state.
func startNode(t *testing.T) *sim.Node {
	t.Helper()
	s, node := simNode(t, "h100-80gb", 2)
	ex, err := ParseExplicit("start", restartFrom)
	if err != nil {
		t.Fatal(err)
	}
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	src <- Desired{Source: "start", Revision: "start", Explicit: ex}
	waitFor(t, a, "start state", stateIs(StateSuccess, "start"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.ResetCounters()
	return s
}

// TestAgentKilledAtAnyCallConverges kills an agent after each mutating NVML
// call of a change in turn, starts a new agent on the node as the kill
// left it, and checks that it converges on the desired layout.
func TestAgentKilledAtAnyCallConverges(t *testing.T) {
	// How many mutating calls the whole change takes.
	total := func() int {
		s := startNode(t)
		k := newKillSwitch(-1)
		node := openNode(t, killLib{s, k})
		a := New(node, nil, fastOptions())
		a.src = make(chanSource, 1)
		running(t, a)
		a.src.(chanSource) <- named(t, "all-1g")
		waitFor(t, a, "uninterrupted change", stateIs(StateSuccess, "all-1g"))
		return k.calls
	}()
	if total < 20 {
		t.Fatalf("the change took %d mutating calls; the test needs a longer one", total)
	}
	for kill := 1; kill < total; kill++ {
		t.Run(fmt.Sprintf("killed after call %d of %d", kill, total), func(t *testing.T) {
			s := startNode(t)
			k := newKillSwitch(kill)
			first := New(openNode(t, killLib{s, k}), make(chanSource, 1), fastOptions())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- first.Run(ctx) }()
			first.src.(chanSource) <- named(t, "all-1g")
			<-k.dead
			cancel()
			// The killed agent is stuck in its next NVML call for good.
			t.Cleanup(func() { close(k.release); <-done })

			second := New(openNode(t, s), make(chanSource, 1), fastOptions())
			running(t, second)
			second.src.(chanSource) <- named(t, "all-1g")
			inv := waitFor(t, second, "converged after restart", stateIs(StateSuccess, "all-1g"))
			if len(inv.Slices()) != 14 || !inv.InSync() {
				t.Fatalf("after restart: %d slices, in sync %v", len(inv.Slices()), inv.InSync())
			}
			for i, names := range profiles(t, openNode(t, s)) {
				if count(names, "1g.10gb") != 7 || len(names) != 7 {
					t.Errorf("gpu %d: %v", i, names)
				}
			}
		})
	}
}
