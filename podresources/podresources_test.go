package podresources

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/tessera-gpu/tessera/podresources/podresourcestest"
)

func serve(t *testing.T, resp *podresourcesapi.ListPodResourcesResponse) string {
	t.Helper()
	return podresourcestest.Serve(t, resp).Socket
}

func TestList(t *testing.T) {
	sock := serve(t, &podresourcesapi.ListPodResourcesResponse{PodResources: []*podresourcesapi.PodResources{
		{Name: "triton-0", Namespace: "ml", Containers: []*podresourcesapi.ContainerResources{
			{Name: "server", Devices: []*podresourcesapi.ContainerDevices{
				{ResourceName: "nvidia.com/mig-1g.10gb", DeviceIds: []string{"MIG-a", "MIG-b"}},
				{ResourceName: "example.com/fpga", DeviceIds: []string{"fpga-0"}},
			}},
			{Name: "sidecar"},
		}},
		{Name: "bert", Namespace: "default", Containers: []*podresourcesapi.ContainerResources{
			{Name: "main", Devices: []*podresourcesapi.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-1"}}}},
		}},
	}})
	got, err := List(context.Background(), sock, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Owner{
		"MIG-a": {Namespace: "ml", Pod: "triton-0", Container: "server", Resource: "nvidia.com/mig-1g.10gb"},
		"MIG-b": {Namespace: "ml", Pod: "triton-0", Container: "server", Resource: "nvidia.com/mig-1g.10gb"},
		"GPU-1": {Namespace: "default", Pod: "bert", Container: "main", Resource: "nvidia.com/gpu"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if ids := IDs(got); !reflect.DeepEqual(ids, []string{"GPU-1", "MIG-a", "MIG-b"}) {
		t.Errorf("IDs %v", ids)
	}
}

func TestListWithoutKubelet(t *testing.T) {
	_, err := List(context.Background(), filepath.Join(t.TempDir(), "none.sock"), "nvidia.com/")
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("error %v, want one naming the socket", err)
	}
}

func TestPoll(t *testing.T) {
	sock := serve(t, &podresourcesapi.ListPodResourcesResponse{})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	done := make(chan struct{})
	go func() {
		Poll(ctx, sock, "nvidia.com/", 5*time.Millisecond, func(map[string]Owner) {
			if n++; n == 3 {
				cancel()
			}
		}, func(err error) { t.Error(err) })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not stop")
	}
}
