package deviceplugin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/agent"
)

func TestAffected(t *testing.T) {
	inv := agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb", "3g.40gb"), gpuOf(1, "7g.80gb")}}
	// Two compute instances in GI 3 of GPU 0.
	inv.GPUs[0].Slices = append(inv.GPUs[0].Slices, inv.GPUs[0].Slices[2])
	inv.GPUs[0].Slices[3].UUID, inv.GPUs[0].Slices[3].ComputeInstanceID = "GPU-a-MIG-3", 1
	tests := []struct {
		name string
		ev   HealthEvent
		want []string
	}{
		{"one instance", HealthEvent{GPUIndex: 0, GPUInstanceID: 2, ComputeInstanceID: 0, Xid: 79}, []string{"GPU-a-MIG-1"}},
		{"one compute instance of a split GI", HealthEvent{GPUIndex: 0, GPUInstanceID: 3, ComputeInstanceID: 1, Xid: 79}, []string{"GPU-a-MIG-3"}},
		{"a GI with any CI", HealthEvent{GPUIndex: 0, GPUInstanceID: 3, ComputeInstanceID: -1, Xid: 79}, []string{"GPU-a-MIG-2", "GPU-a-MIG-3"}},
		{"the whole GPU", HealthEvent{GPUIndex: 1, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: 48}, []string{"GPU-b", "GPU-b-MIG-0"}},
		{"an instance that is gone", HealthEvent{GPUIndex: 0, GPUInstanceID: 9, ComputeInstanceID: 0, Xid: 79}, nil},
		{"a GPU that is not there", HealthEvent{GPUIndex: 5, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: 79}, nil},
		{"no GPU named: every device", HealthEvent{GPUIndex: -1, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: 79},
			[]string{"GPU-a", "GPU-a-MIG-0", "GPU-a-MIG-1", "GPU-a-MIG-2", "GPU-a-MIG-3", "GPU-b", "GPU-b-MIG-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := affected(inv, tt.ev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHealthRules(t *testing.T) {
	m := New(Options{})
	m.inv = agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb")}}
	for _, xid := range DefaultIgnoredXids() {
		m.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: xid})
	}
	if len(m.unhealthy) != 0 {
		t.Fatalf("application Xids marked %v unhealthy", m.unhealthy)
	}
	m.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: 1, ComputeInstanceID: 0, Xid: 94})
	if !reflect.DeepEqual(m.unhealthy, map[string]string{"GPU-a-MIG-0": "Xid 94"}) {
		t.Fatalf("after Xid 94 on GI 1: %v", m.unhealthy)
	}
	// Re-created: the slice comes back with a new UUID and the old one is
	// forgotten.
	m.inv = agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb")}}
	m.inv.GPUs[0].Slices[0].UUID = "GPU-a-MIG-new"
	m.forgetGone()
	if len(m.unhealthy) != 0 {
		t.Fatalf("a re-created slice kept its old health: %v", m.unhealthy)
	}
	// Configurable: an operator may ignore more.
	m2 := New(Options{IgnoredXids: []uint64{94}})
	m2.inv = m.inv
	m2.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: 94})
	m2.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: -1, ComputeInstanceID: -1, Xid: 13})
	if want := map[string]string{"GPU-a": "Xid 13", "GPU-a-MIG-new": "Xid 13"}; !reflect.DeepEqual(m2.unhealthy, want) {
		t.Fatalf("with ignored [94], Xid 13 should count (whole GPU) and 94 not: %v", m2.unhealthy)
	}
	m2.SetHealthy("GPU-a")
	m2.SetHealthy("GPU-a-MIG-new")
	if len(m2.unhealthy) != 0 {
		t.Fatalf("SetHealthy left %v", m2.unhealthy)
	}
}

// registrar is the test's peer on kubelet.sock: it accepts registrations
// and, as the kubelet does, dials each plugin back and follows its
// ListAndWatch stream, keeping the latest device list per resource.
type registrar struct {
	pluginapi.UnimplementedRegistrationServer
	dir string
	srv *grpc.Server

	mu      sync.Mutex
	devices map[string][]*pluginapi.Device
	clients map[string]pluginapi.DevicePluginClient
	regs    []string
}

func startRegistrar(t *testing.T, dir string) *registrar {
	t.Helper()
	r := &registrar{dir: dir, devices: map[string][]*pluginapi.Device{}, clients: map[string]pluginapi.DevicePluginClient{}}
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.srv.Stop)
	return r
}

func (r *registrar) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	conn, err := grpc.NewClient("unix://"+filepath.Join(r.dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	client := pluginapi.NewDevicePluginClient(conn)
	if _, err := client.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial back: %v", err)
	}
	stream, err := client.ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.clients[req.ResourceName] = client
	r.regs = append(r.regs, req.ResourceName)
	r.mu.Unlock()
	go func() {
		defer conn.Close()
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.devices[req.ResourceName] = resp.Devices
			r.mu.Unlock()
		}
	}()
	return &pluginapi.Empty{}, nil
}

// healthy returns the number of healthy devices per resource.
func (r *registrar) healthy() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for res, ds := range r.devices {
		for _, d := range ds {
			if d.Health == pluginapi.Healthy {
				out[res]++
			}
		}
	}
	return out
}

func (r *registrar) client(resource string) pluginapi.DevicePluginClient {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clients[resource]
}

func (r *registrar) registrations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.regs...)
}

func waitHealthy(t *testing.T, r *registrar, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := r.healthy()
		for k, v := range got {
			if v == 0 && want[k] == 0 {
				delete(got, k)
			}
		}
		if reflect.DeepEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthy devices %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerFollowsInventoryAndKubelet(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	reg := startRegistrar(t, dir)
	m := New(Options{PluginDir: dir, KubeletPoll: 20 * time.Millisecond})
	invs := make(chan agent.Inventory, 1)
	health := make(chan HealthEvent, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, invs, health) }()
	defer func() { cancel(); <-done }()

	invs <- agent.Inventory{Version: 1, Observed: true, GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb", "3g.40gb"), gpuOf(1)}}
	waitHealthy(t, reg, map[string]int{"nvidia.com/mig-1g.10gb": 2, "nvidia.com/mig-3g.40gb": 1, "nvidia.com/gpu": 1})

	// Allocate: MIG UUIDs in NVIDIA_VISIBLE_DEVICES; unknown IDs refused.
	c := reg.client("nvidia.com/mig-1g.10gb")
	resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-a-MIG-0", "GPU-a-MIG-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ContainerResponses[0].Envs["NVIDIA_VISIBLE_DEVICES"]; got != "GPU-a-MIG-0,GPU-a-MIG-1" {
		t.Errorf("NVIDIA_VISIBLE_DEVICES = %q", got)
	}
	if _, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-a-MIG-2"}}}}); status.Code(err) != codes.NotFound {
		t.Errorf("allocating a 3g device as 1g: %v, want NotFound", err)
	}

	// A re-layout: 1g.10gb grows, 3g.40gb disappears (withdrawn), 7g appears.
	invs <- agent.Inventory{Version: 2, Observed: true, GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb"), gpuOf(1, "7g.80gb")}}
	waitHealthy(t, reg, map[string]int{"nvidia.com/mig-1g.10gb": 4, "nvidia.com/mig-7g.80gb": 1})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(dir, "tessera-mig-3g.40gb.sock"))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("withdrawn resource's socket still there: %v", err)
		}
	}

	// A critical Xid on one instance: only that slice turns unhealthy, and
	// Allocate refuses it.
	health <- HealthEvent{GPUIndex: 0, GPUInstanceID: 2, ComputeInstanceID: 0, Xid: 79}
	waitHealthy(t, reg, map[string]int{"nvidia.com/mig-1g.10gb": 3, "nvidia.com/mig-7g.80gb": 1})
	c = reg.client("nvidia.com/mig-1g.10gb")
	if _, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"GPU-a-MIG-1"}}}}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "Xid 79") {
		t.Errorf("allocating the unhealthy slice: %v", err)
	}
	pref, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: []string{"GPU-a-MIG-0", "GPU-a-MIG-1", "GPU-a-MIG-2"}, AllocationSize: 2,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pref.ContainerResponses[0].DeviceIDs; !reflect.DeepEqual(got, []string{"GPU-a-MIG-0", "GPU-a-MIG-2"}) {
		t.Errorf("preferred %v: the unhealthy slice must be skipped", got)
	}

	// The kubelet restarts: it deletes every socket and makes a new
	// kubelet.sock. Every resource registers again by itself.
	before := len(reg.registrations())
	reg.srv.Stop()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	time.Sleep(30 * time.Millisecond)
	reg2 := startRegistrar(t, dir)
	waitHealthy(t, reg2, map[string]int{"nvidia.com/mig-1g.10gb": 3, "nvidia.com/mig-7g.80gb": 1})
	got := reg2.registrations()
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"nvidia.com/mig-1g.10gb", "nvidia.com/mig-7g.80gb"}) || before == 0 {
		t.Errorf("re-registered %v", got)
	}
}

func TestAllocateListStrategies(t *testing.T) {
	ids := []string{"MIG-1", "MIG-2"}
	cri := containerResponse(&Options{ListStrategy: ListCDICRI, CDIKind: "nvidia.com/gpu"}, "nvidia.com/mig-1g.10gb", ids)
	if len(cri.CdiDevices) != 2 || cri.CdiDevices[0].Name != "nvidia.com/gpu=MIG-1" || len(cri.Envs) != 0 {
		t.Errorf("cdi-cri: %+v", cri)
	}
	ann := containerResponse(&Options{ListStrategy: ListCDIAnnotations, CDIKind: "nvidia.com/gpu"}, "nvidia.com/mig-1g.10gb", ids)
	if got := ann.Annotations["cdi.k8s.io/tessera_mig-1g.10gb"]; got != "nvidia.com/gpu=MIG-1,nvidia.com/gpu=MIG-2" {
		t.Errorf("cdi-annotations: %+v", ann.Annotations)
	}
	env := containerResponse(&Options{ListStrategy: ListEnvVar}, "nvidia.com/gpu", ids)
	if env.Envs["NVIDIA_VISIBLE_DEVICES"] != "MIG-1,MIG-2" {
		t.Errorf("envvar: %+v", env.Envs)
	}
}

func TestRecoveryByProbe(t *testing.T) {
	now := time.Unix(1000, 0)
	answers := map[string]error{"GPU-a-MIG-0": nil, "GPU-a-MIG-1": errors.New("ERROR_GPU_IS_LOST")}
	var probed []string
	m := New(Options{
		RecoverAfter: time.Minute,
		Now:          func() time.Time { return now },
		Probe: func(_ context.Context, id string) error {
			probed = append(probed, id)
			return answers[id]
		},
	})
	m.inv = agent.Inventory{GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb")}}
	m.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: 1, ComputeInstanceID: -1, Xid: 94})
	m.markUnhealthy(HealthEvent{GPUIndex: 0, GPUInstanceID: 2, ComputeInstanceID: -1, Xid: 79})
	ctx := context.Background()

	now = now.Add(30 * time.Second)
	m.probeRecovered(ctx)
	if len(probed) != 0 {
		t.Fatalf("probed %v before RecoverAfter", probed)
	}
	now = now.Add(31 * time.Second)
	m.probeRecovered(ctx)
	if !reflect.DeepEqual(probed, []string{"GPU-a-MIG-0", "GPU-a-MIG-1"}) {
		t.Fatalf("probed %v", probed)
	}
	if !reflect.DeepEqual(m.unhealthy, map[string]string{"GPU-a-MIG-1": "Xid 79"}) {
		t.Fatalf("after probing: %v; the device that answers recovers, the lost one not", m.unhealthy)
	}
	// A failed probe waits another RecoverAfter.
	probed = nil
	now = now.Add(10 * time.Second)
	m.probeRecovered(ctx)
	if len(probed) != 0 {
		t.Fatalf("re-probed %v too soon", probed)
	}
}

// TestUnobservedInventoryKeepsDevices: when the agent cannot read the GPUs
// (an Inventory with Observed false and no GPUs), nothing is withdrawn.
func TestUnobservedInventoryKeepsDevices(t *testing.T) {
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	reg := startRegistrar(t, dir)
	m := New(Options{PluginDir: dir, KubeletPoll: 20 * time.Millisecond})
	invs := make(chan agent.Inventory, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, invs, nil) }()
	defer func() { cancel(); <-done }()
	invs <- agent.Inventory{Version: 1, Observed: true, GPUs: []agent.GPU{gpuOf(0, "1g.10gb", "1g.10gb")}}
	waitHealthy(t, reg, map[string]int{"nvidia.com/mig-1g.10gb": 2})
	invs <- agent.Inventory{Version: 2, Observed: false}
	time.Sleep(200 * time.Millisecond)
	waitHealthy(t, reg, map[string]int{"nvidia.com/mig-1g.10gb": 2})
	if res, _ := m.Resources(); len(res["nvidia.com/mig-1g.10gb"]) != 2 {
		t.Errorf("advertised %v after an unobserved inventory", res)
	}
}
