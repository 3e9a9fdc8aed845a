package deviceplugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// benchServer serves one resource of 8 GPUs × 7 slices on a socket, without
// registering, and returns a client to it.
func benchServer(b *testing.B) (pluginapi.DevicePluginClient, []string) {
	b.Helper()
	dir, err := os.MkdirTemp("", "dpb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	opts := (&Options{PluginDir: dir}).withDefaults()
	srv := newResourceServer("nvidia.com/mig-1g.10gb", &opts, slog.New(slog.DiscardHandler), func() map[int]int { return nil })
	var devices []Device
	var ids []string
	for g := range 8 {
		for p := range 7 {
			id := fmt.Sprintf("MIG-%08d-0000-0000-0000-%012d", g, p)
			devices = append(devices, dev(id, g, p))
			ids = append(ids, id)
		}
	}
	srv.setDevices(devices)
	ln, err := net.Listen("unix", filepath.Join(dir, "p.sock"))
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(gs, srv)
	go func() { _ = gs.Serve(ln) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "p.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn), ids
}

// BenchmarkGRPCRoundTrip is the baseline: an empty call on the same
// socket. Allocate's cost above it is the plugin's own work.
func BenchmarkGRPCRoundTrip(b *testing.B) {
	c, _ := benchServer(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocate allocates two slices of a 56-slice resource through
// gRPC, as the kubelet does at pod admission.
func BenchmarkAllocate(b *testing.B) {
	c, ids := benchServer(b)
	ctx := context.Background()
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids[10:12]}}}
	for b.Loop() {
		if _, err := c.Allocate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetPreferredAllocation packs 4 slices among 56 through gRPC.
func BenchmarkGetPreferredAllocation(b *testing.B) {
	c, ids := benchServer(b)
	ctx := context.Background()
	req := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: ids[3:], AllocationSize: 4}}}
	for b.Loop() {
		if _, err := c.GetPreferredAllocation(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
