package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// resourceServer is the kubelet device plugin of one resource: a gRPC
// server on its own socket in the kubelet's device-plugin folder.
type resourceServer struct {
	pluginapi.UnimplementedDevicePluginServer

	resource string
	socket   string // full path
	opts     *Options
	log      *slog.Logger
	// allocatedOnGPU counts the slices of every resource allocated to
	// pods per GPU index, for packing.
	allocatedOnGPU func() map[int]int

	mu      sync.Mutex
	devices []Device
	changed chan struct{} // closed on every change of devices
	grpc    *grpc.Server
	serving chan struct{} // closed when Serve returned
}

func newResourceServer(resource string, opts *Options, log *slog.Logger, allocatedOnGPU func() map[int]int) *resourceServer {
	return &resourceServer{
		resource:       resource,
		socket:         filepath.Join(opts.PluginDir, socketName(resource)),
		opts:           opts,
		log:            log.With("resource", resource),
		allocatedOnGPU: allocatedOnGPU,
		changed:        make(chan struct{}),
	}
}

// setDevices replaces the device list; ListAndWatch streams send it.
func (s *resourceServer) setDevices(devices []Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(s.devices, devices) {
		return
	}
	s.devices = devices
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *resourceServer) current() ([]Device, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices, s.changed
}

// start serves on the socket, then registers with the kubelet: the kubelet
// dials back during Register, so the server must be up first.
func (s *resourceServer) start(ctx context.Context) error {
	if err := os.Remove(s.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", s.socket, err)
	}
	ln, err := net.Listen("unix", s.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.socket, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, s)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil {
			s.log.Error("device plugin server stopped", "error", err)
		}
	}()
	s.mu.Lock()
	s.grpc, s.serving = srv, served
	s.mu.Unlock()
	if err := s.register(ctx); err != nil {
		s.stop()
		return err
	}
	s.log.Info("registered with the kubelet", "socket", s.socket)
	return nil
}

// register calls the kubelet's Registration service.
func (s *resourceServer) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+s.opts.KubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to the kubelet at %s: %w", s.opts.KubeletSocket, err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(s.socket),
		ResourceName: s.resource,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("register %s with the kubelet at %s: %w", s.resource, s.opts.KubeletSocket, err)
	}
	return nil
}

// stop ends the server and its streams and removes the socket.
func (s *resourceServer) stop() {
	s.mu.Lock()
	srv, served := s.grpc, s.serving
	s.grpc = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-served
	_ = os.Remove(s.socket)
}

// GetDevicePluginOptions implements pluginapi.DevicePluginServer.
func (s *resourceServer) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch implements pluginapi.DevicePluginServer: it sends the whole
// device list now and after every change.
func (s *resourceServer) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		devices, changed := s.current()
		resp := &pluginapi.ListAndWatchResponse{Devices: make([]*pluginapi.Device, len(devices))}
		for i, d := range devices {
			health := pluginapi.Healthy
			if !d.Healthy {
				health = pluginapi.Unhealthy
			}
			resp.Devices[i] = &pluginapi.Device{ID: d.ID, Health: health}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		s.log.Debug("sent device list", "devices", len(devices))
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// Allocate implements pluginapi.DevicePluginServer. Every requested ID must
// be a healthy device of this resource; the response makes the devices
// visible to the container as Options.ListStrategy says.
func (s *resourceServer) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	devices, _ := s.current()
	byID := make(map[string]Device, len(devices))
	for _, d := range devices {
		byID[d.ID] = d
	}
	resp := &pluginapi.AllocateResponse{}
	for _, creq := range req.ContainerRequests {
		if len(creq.DevicesIds) == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "%s: a container request with no devices", s.resource)
		}
		for _, id := range creq.DevicesIds {
			d, ok := byID[id]
			if !ok {
				return nil, status.Errorf(codes.NotFound, "%s: %s is not a device of this resource on this node (it may have been removed by a layout change)", s.resource, id)
			}
			if !d.Healthy {
				return nil, status.Errorf(codes.FailedPrecondition, "%s: %s is unhealthy: %s", s.resource, id, d.Reason)
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, containerResponse(s.opts, s.resource, creq.DevicesIds))
		s.log.Info("allocated", "devices", creq.DevicesIds)
	}
	return resp, nil
}

// containerResponse makes devices visible to a container.
func containerResponse(opts *Options, resource string, ids []string) *pluginapi.ContainerAllocateResponse {
	r := &pluginapi.ContainerAllocateResponse{}
	switch opts.ListStrategy {
	case ListCDIAnnotations:
		names := cdiNames(opts.CDIKind, ids)
		key := "cdi.k8s.io/tessera_" + strings.TrimSuffix(strings.TrimPrefix(socketName(resource), "tessera-"), ".sock")
		r.Annotations = map[string]string{key: strings.Join(names, ",")}
	case ListCDICRI:
		for _, n := range cdiNames(opts.CDIKind, ids) {
			r.CdiDevices = append(r.CdiDevices, &pluginapi.CDIDevice{Name: n})
		}
	default:
		r.Envs = map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(ids, ",")}
	}
	return r
}

func cdiNames(kind string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = kind + "=" + id
	}
	return out
}

// GetPreferredAllocation implements pluginapi.DevicePluginServer with
// Prefer.
func (s *resourceServer) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	devices, _ := s.current()
	allocated := s.allocatedOnGPU()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, creq := range req.ContainerRequests {
		ids, err := Prefer(devices, allocated, creq.AvailableDeviceIDs, creq.MustIncludeDeviceIDs, int(creq.AllocationSize))
		if err != nil {
			// An error here would fail the pod's admission; a short
			// answer makes the kubelet choose by itself instead.
			s.log.Warn("preferred allocation incomplete; the kubelet chooses", "error", err, "preferred", ids)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// Prefer chooses size devices among available, packing: the must-include
// devices first, then one device at a time from the GPU with the most
// slices already allocated (allocatedOnGPU counts those of every resource;
// when it is nil, the healthy devices of this resource that are not
// available count instead) and the devices chosen so far, lowest GPU index and then lowest placement first
// among equals, so whole GPUs stay free for a re-layout. Unknown or
// unhealthy available IDs are skipped. When size devices cannot be chosen
// it returns the best it can with an error.
func Prefer(devices []Device, allocatedOnGPU map[int]int, available, mustInclude []string, size int) ([]string, error) {
	if size < len(mustInclude) {
		return slices.Clone(mustInclude), fmt.Errorf("allocation size %d is smaller than the %d devices that must be included", size, len(mustInclude))
	}
	byID := make(map[string]Device, len(devices))
	for _, d := range devices {
		byID[d.ID] = d
	}
	free := map[string]bool{}
	for _, id := range available {
		if d, ok := byID[id]; ok && d.Healthy {
			free[id] = true
		}
	}
	load := map[int]int{}
	if allocatedOnGPU != nil {
		for g, n := range allocatedOnGPU {
			load[g] = n
		}
	} else {
		// Without the pod-resources API, what the kubelet does not offer
		// of this resource is what it has allocated.
		offered := map[string]bool{}
		for _, id := range available {
			offered[id] = true
		}
		for _, d := range devices {
			if !offered[d.ID] && d.Healthy {
				load[d.GPUIndex]++
			}
		}
	}
	out := make([]string, 0, size)
	taken := map[string]bool{}
	for _, id := range mustInclude {
		if taken[id] {
			continue
		}
		out = append(out, id)
		taken[id] = true
		if d, ok := byID[id]; ok {
			load[d.GPUIndex]++
		}
	}
	var cand []Device
	for _, d := range devices {
		if free[d.ID] && !taken[d.ID] {
			cand = append(cand, d)
		}
	}
	for len(out) < size && len(cand) > 0 {
		sort.SliceStable(cand, func(i, j int) bool {
			a, b := cand[i], cand[j]
			if load[a.GPUIndex] != load[b.GPUIndex] {
				return load[a.GPUIndex] > load[b.GPUIndex]
			}
			if a.GPUIndex != b.GPUIndex {
				return a.GPUIndex < b.GPUIndex
			}
			return a.Placement.Start < b.Placement.Start
		})
		d := cand[0]
		cand = cand[1:]
		out = append(out, d.ID)
		load[d.GPUIndex]++
	}
	if len(out) < size {
		return out, fmt.Errorf("only %d healthy devices available, %d requested", len(out), size)
	}
	return out, nil
}
