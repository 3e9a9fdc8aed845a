// Package podresources reads which pod owns which device from the
// kubelet's pod-resources API (v1 List), so the agent never re-lays out a
// slice a pod holds and metrics can label slices with their pod.
package podresources

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// DefaultSocket is where the kubelet serves the pod-resources API.
const DefaultSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// Owner is the container a device is allocated to.
type Owner struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	// Resource is the extended resource the device was allocated as.
	Resource string `json:"resource"`
}

// List asks the kubelet at socket which devices of resources starting with
// prefix ("nvidia.com/") are allocated, and to whom; the map is keyed by
// device ID (MIG or GPU UUID).
func List(ctx context.Context, socket, prefix string) (map[string]Owner, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("pod-resources %s: %w", socket, err)
	}
	defer conn.Close()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("pod-resources %s: List: %w", socket, err)
	}
	out := map[string]Owner{}
	for _, p := range resp.GetPodResources() {
		for _, c := range p.GetContainers() {
			for _, d := range c.GetDevices() {
				if !strings.HasPrefix(d.GetResourceName(), prefix) {
					continue
				}
				for _, id := range d.GetDeviceIds() {
					out[id] = Owner{Namespace: p.GetNamespace(), Pod: p.GetName(), Container: c.GetName(), Resource: d.GetResourceName()}
				}
			}
		}
	}
	return out, nil
}

// IDs returns the device IDs of an allocation map in sorted order.
func IDs(owners map[string]Owner) []string {
	out := make([]string, 0, len(owners))
	for id := range owners {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Poll calls List every interval and hands each successful answer to
// update until ctx is done; failures go to onError (nil to ignore).
func Poll(ctx context.Context, socket, prefix string, interval time.Duration, update func(map[string]Owner), onError func(error)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		owners, err := List(ctx, socket, prefix)
		switch {
		case err == nil:
			update(owners)
		case onError != nil && ctx.Err() == nil:
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
