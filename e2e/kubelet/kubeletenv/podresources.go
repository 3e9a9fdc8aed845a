package kubeletenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/kubelet/pkg/apis/podresources/v1alpha1"
	apisgrpc "k8s.io/kubernetes/pkg/kubelet/apis/grpc"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
)

// podResourcesServer is the kubelet's own pod-resources servers (v1 and
// v1alpha1), with its rate limit, on a unix socket: what
// pkg/kubelet/server.ListenAndServePodResources does, minus its os.Exit on
// errors.
type podResourcesServer struct {
	srv *grpc.Server
}

func startPodResources(logger klog.Logger, socket string, pods podresources.PodsProvider, devices podresources.DevicesProvider) (*podResourcesServer, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return nil, fmt.Errorf("kubeletenv: pod-resources folder: %v", err)
	}
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("kubeletenv: remove old pod-resources socket: %v", err)
	}
	ctx := klog.NewContext(context.Background(), logger)
	providers := podresources.PodResourcesProviders{
		Pods:             pods,
		Devices:          devices,
		Cpus:             noCPUs{},
		Memory:           noMemory{},
		DynamicResources: noDynamicResources{},
	}
	srv := grpc.NewServer(apisgrpc.WithRateLimiter(ctx, "podresources", podresources.DefaultQPS, podresources.DefaultBurstTokens))
	v1alpha1.RegisterPodResourcesListerServer(srv, podresources.NewV1alpha1PodResourcesServer(providers))
	podresourcesv1.RegisterPodResourcesListerServer(srv, podresources.NewV1PodResourcesServer(ctx, providers))
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("kubeletenv: listen for pod-resources on %s: %v", socket, err)
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			logger.Error(err, "Serving pod-resources")
		}
	}()
	return &podResourcesServer{srv: srv}, nil
}

// stop closes the listener (which removes the socket) and every connection.
func (s *podResourcesServer) stop() { s.srv.Stop() }

// podsProvider serves the Kubelet's admitted pods to the pod-resources server.
type podsProvider Kubelet

func (p *podsProvider) GetActivePods() []*v1.Pod { return (*Kubelet)(p).activePods() }
func (p *podsProvider) GetPods() []*v1.Pod       { return (*Kubelet)(p).activePods() }
func (p *podsProvider) GetPodByName(namespace, name string) (*v1.Pod, bool) {
	for _, pod := range (*Kubelet)(p).activePods() {
		if pod.Namespace == namespace && pod.Name == name {
			return pod, true
		}
	}
	return nil, false
}

// devicesProvider adapts the device manager to the pod-resources server,
// as the kubelet's container manager does (containerDevicesFromResourceDeviceInstances
// in pkg/kubelet/cm/container_manager.go): one ContainerDevices per device
// and NUMA node, or per device when the plugin gave no topology.
type devicesProvider struct {
	m *devicemanager.ManagerImpl
}

func (d devicesProvider) UpdateAllocatedDevices() { d.m.UpdateAllocatedDevices() }

func (d devicesProvider) GetDevices(podUID, containerName string) []*podresourcesv1.ContainerDevices {
	return containerDevices(d.m.GetDevices(podUID, containerName))
}

func (d devicesProvider) GetAllocatableDevices() []*podresourcesv1.ContainerDevices {
	return containerDevices(d.m.GetAllocatableDevices())
}

func containerDevices(devs devicemanager.ResourceDeviceInstances) []*podresourcesv1.ContainerDevices {
	var out []*podresourcesv1.ContainerDevices
	for resourceName, resourceDevs := range devs {
		for id, dev := range resourceDevs {
			topo := dev.GetTopology()
			if topo == nil {
				out = append(out, &podresourcesv1.ContainerDevices{ResourceName: resourceName, DeviceIds: []string{id}})
				continue
			}
			for _, node := range topo.GetNodes() {
				out = append(out, &podresourcesv1.ContainerDevices{
					ResourceName: resourceName,
					DeviceIds:    []string{id},
					Topology:     &podresourcesv1.TopologyInfo{Nodes: []*podresourcesv1.NUMANode{{ID: node.GetID()}}},
				})
			}
		}
	}
	return out
}

// The harness has no CPU, memory or DRA managers: they report nothing, as a
// kubelet's do with their policies at "none".
type noCPUs struct{}

func (noCPUs) GetCPUs(string, string) []int64 { return nil }
func (noCPUs) GetAllocatableCPUs() []int64    { return nil }

type noMemory struct{}

func (noMemory) GetMemory(string, string) []*podresourcesv1.ContainerMemory { return nil }
func (noMemory) GetAllocatableMemory() []*podresourcesv1.ContainerMemory    { return nil }

type noDynamicResources struct{}

func (noDynamicResources) GetDynamicResources(*v1.Pod, *v1.Container) []*podresourcesv1.DynamicResource {
	return nil
}
