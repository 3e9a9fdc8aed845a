package kubelet_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-gpu/tessera/e2e/kubelet/kubeletenv"
)

const tinyResource = "example.com/tiny"

// TestSmoke proves the harness end to end with a tiny plugin: the kubelet's
// device manager sees its 3 devices, allocates one through the plugin's
// Allocate (the env it returns reaches the container's run options), the
// kubelet's pod-resources server lists the pod with that device, and after a
// kubelet restart (plugin socket deleted, capacity 0) the plugin registers
// again and the capacity comes back while the pod keeps its device.
func TestSmoke(t *testing.T) {
	k := kubeletenv.Start(t)
	p := newTinyPlugin(t, k.PluginDir(), tinyResource, "dev-a", "dev-b", "dev-c")
	p.serveAndRegister(t, k.KubeletSocket())
	k.WaitCapacity(t, tinyResource, 3, 5*time.Second)
	k.WaitAllocatable(t, tinyResource, 3, 5*time.Second)

	pod := kubeletenv.NewPod("smoke", "main", tinyResource, 1)
	a, err := k.Allocate(t, pod, "main")
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	ids := a.DeviceIDs[tinyResource]
	if len(ids) != 1 {
		t.Fatalf("allocated %v, want one %s device", a.DeviceIDs, tinyResource)
	}
	if got := a.Envs["NVIDIA_VISIBLE_DEVICES"]; got != ids[0] {
		t.Errorf("NVIDIA_VISIBLE_DEVICES = %q, want the allocated device %q", got, ids[0])
	}

	// Two more fit, a fourth does not: the manager counts what it gave out.
	for _, name := range []string{"second", "third"} {
		if _, err := k.Allocate(t, kubeletenv.NewPod(name, "main", tinyResource, 1), "main"); err != nil {
			t.Fatalf("Allocate %s: %v", name, err)
		}
	}
	if _, err := k.Allocate(t, kubeletenv.NewPod("fourth", "main", tinyResource, 1), "main"); err == nil {
		t.Errorf("a fourth device was allocated out of three")
	}

	cl := k.PodResourcesClient(t)
	if got := listDevices(t, cl, "smoke", "main"); !slices.Equal(got, ids) {
		t.Errorf("pod-resources List: smoke/main has %v, want %v", got, ids)
	}

	k.Restart(t)
	if _, err := os.Stat(p.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a kubelet restart the plugin's socket should be deleted; stat: %v", err)
	}
	k.WaitCapacity(t, tinyResource, 0, 5*time.Second)
	p.serveAndRegister(t, k.KubeletSocket())
	k.WaitCapacity(t, tinyResource, 3, 5*time.Second)
	k.WaitAllocatable(t, tinyResource, 3, 5*time.Second)
	// The checkpoint kept the allocation across the restart.
	if got := listDevices(t, cl, "smoke", "main"); !slices.Equal(got, ids) {
		t.Errorf("pod-resources List after restart: smoke/main has %v, want %v", got, ids)
	}

	// A removed pod's device is free again: the next allocation gets it.
	k.Remove(pod.UID)
	b, err := k.Allocate(t, kubeletenv.NewPod("after", "main", tinyResource, 1), "main")
	if err != nil {
		t.Fatalf("Allocate after removing a pod: %v", err)
	}
	if got := b.DeviceIDs[tinyResource]; !slices.Equal(got, ids) {
		t.Errorf("after removing smoke the free device is %v, want %v", got, ids)
	}
}

// listDevices returns the device IDs pod-resources List reports for a
// pod's container, sorted.
func listDevices(t *testing.T, cl podresourcesv1.PodResourcesListerClient, pod, container string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		t.Fatalf("pod-resources List: %v", err)
	}
	var ids []string
	for _, pr := range resp.GetPodResources() {
		if pr.GetName() != pod {
			continue
		}
		for _, c := range pr.GetContainers() {
			if c.GetName() != container {
				continue
			}
			for _, d := range c.GetDevices() {
				ids = append(ids, d.GetDeviceIds()...)
			}
		}
	}
	slices.Sort(ids)
	return ids
}
