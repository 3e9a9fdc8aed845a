package kubelet_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// tinyPlugin is the smallest device plugin that proves the harness: it
// advertises a fixed list of healthy devices and answers Allocate with
// NVIDIA_VISIBLE_DEVICES set to the requested IDs. It registers only when
// told to (register, or serveAndRegister after a kubelet restart deleted
// its socket).
type tinyPlugin struct {
	pluginapi.UnimplementedDevicePluginServer

	resource string
	socket   string // absolute, in the kubelet's device-plugin folder
	devices  []string

	mu  sync.Mutex
	srv *grpc.Server
}

func newTinyPlugin(t *testing.T, dir, resource string, devices ...string) *tinyPlugin {
	p := &tinyPlugin{resource: resource, socket: filepath.Join(dir, "tiny.sock"), devices: devices}
	t.Cleanup(p.stop)
	return p
}

// serveAndRegister serves on the plugin's socket (again, if the kubelet
// deleted it) and registers with the kubelet, as a real plugin must do
// before and after every kubelet restart.
func (p *tinyPlugin) serveAndRegister(t *testing.T, kubeletSocket string) {
	t.Helper()
	p.stop()
	if err := os.Remove(p.socket); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", p.socket)
	if err != nil {
		t.Fatalf("tiny plugin: listen: %v", err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(l) }()
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()

	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("tiny plugin: dial kubelet: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socket),
		ResourceName: p.resource,
	})
	if err != nil {
		t.Fatalf("tiny plugin: register %s: %v", p.resource, err)
	}
}

func (p *tinyPlugin) stop() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (p *tinyPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *tinyPlugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	resp := &pluginapi.ListAndWatchResponse{}
	for _, id := range p.devices {
		resp.Devices = append(resp.Devices, &pluginapi.Device{ID: id, Health: pluginapi.Healthy})
	}
	if err := s.Send(resp); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *tinyPlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		ids := append([]string(nil), cr.DevicesIds...)
		sort.Strings(ids)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(ids, ",")},
		})
	}
	return resp, nil
}

func (p *tinyPlugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
