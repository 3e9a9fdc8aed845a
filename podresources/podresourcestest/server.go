// Package podresourcestest serves the kubelet's pod-resources API (the
// real v1 gRPC service) on a unix socket for tests, answering List with
// what the test sets.
package podresourcestest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// Server is a pod-resources server whose List answer can change.
type Server struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	// Socket is the unix socket it listens on.
	Socket string

	mu   sync.Mutex
	resp *podresourcesapi.ListPodResourcesResponse
}

// Serve starts a server answering List with resp; it stops when the test
// ends.
func Serve(t testing.TB, resp *podresourcesapi.ListPodResourcesResponse) *Server {
	t.Helper()
	// A short folder: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "pr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Socket: filepath.Join(dir, "kubelet.sock"), resp: resp}
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	podresourcesapi.RegisterPodResourcesListerServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return s
}

// Set replaces the List answer.
func (s *Server) Set(resp *podresourcesapi.ListPodResourcesResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resp = resp
}

// List answers with the answer set last.
func (s *Server) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resp, nil
}

// Pod builds a PodResources entry: one container holding devices of one
// resource.
func Pod(namespace, name, container, resource string, deviceIDs ...string) *podresourcesapi.PodResources {
	return &podresourcesapi.PodResources{
		Namespace: namespace,
		Name:      name,
		Containers: []*podresourcesapi.ContainerResources{{
			Name:    container,
			Devices: []*podresourcesapi.ContainerDevices{{ResourceName: resource, DeviceIds: deviceIDs}},
		}},
	}
}
