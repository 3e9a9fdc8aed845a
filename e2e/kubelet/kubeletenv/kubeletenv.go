// Package kubeletenv runs the kubelet's real device manager
// (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager, v1.35.4) and its
// pod-resources v1 server inside a Go test, so device plugins are exercised
// by the kubelet's own registration, capacity, allocation, checkpoint and
// pod-resources code rather than by a hand-written stand-in.
//
// The device manager's registration socket is fixed at
// /var/lib/kubelet/device-plugins/kubelet.sock, so the test binary must run
// as root in a private mount namespace with a fresh tmpfs on
// /var/lib/kubelet: run the tests with e2e/scripts/in-mountns.sh as go
// test's -exec wrapper. Start refuses (t.Fatal) anywhere else, so a real
// kubelet's folder is never touched.
//
//	k := kubeletenv.Start(t)
//	// … start a device plugin serving in k.PluginDir() and Register on k.KubeletSocket() …
//	k.WaitCapacity(t, "nvidia.com/mig-1g.10gb", 7, 5*time.Second)
//	pod := kubeletenv.NewPod("p", "c", "nvidia.com/mig-1g.10gb", 1)
//	a, err := k.Allocate(t, pod, "c") // a.Envs["NVIDIA_VISIBLE_DEVICES"]
//	cl := k.PodResourcesClient(t)      // List shows the pod's device IDs
//
// What it is and is not: the manager runs with no NUMA topology and the
// topology manager's fake store, all pod sources ready, and no running
// containers. There is no pod lifecycle: the test admits pods (Allocate,
// Admit) and removes them (Remove); the manager frees a removed pod's devices
// the next time it garbage-collects (on an allocation, or a pod-resources
// List), as the real kubelet does.
//
// Only one Kubelet runs per process at a time (the socket path is fixed);
// Start waits for the previous one's test to end. Separate test binaries (go
// test ./... runs packages in parallel) each get their own mount namespace
// and tmpfs from the script, so they do not collide.
package kubeletenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
)

const (
	// Root is the kubelet's root folder; the harness requires it to be the
	// private tmpfs Script mounted.
	Root = "/var/lib/kubelet"
	// PluginDir is the device-plugin folder: plugins serve their sockets here
	// and name them, relative to it, in RegisterRequest.Endpoint.
	PluginDir = Root + "/device-plugins"
	// KubeletSocket is where the device manager serves Registration.
	KubeletSocket = PluginDir + "/kubelet.sock"
	// PodResourcesSocket is where the pod-resources server listens: the
	// kubelet's default path, so clients with default settings find it.
	PodResourcesSocket = Root + "/pod-resources/kubelet.sock"
)

// startLock allows one Kubelet per process: the socket path is fixed.
var startLock = make(chan struct{}, 1)

// startWait bounds how long Start waits for another test's Kubelet.
const startWait = 2 * time.Minute

// Kubelet is a running device manager and pod-resources server. Its methods
// are safe for concurrent use.
type Kubelet struct {
	logger klog.Logger

	mu      sync.Mutex // guards the fields below
	manager *devicemanager.ManagerImpl
	pr      *podResourcesServer
	pods    []*v1.Pod // admitted, in admission order
	stopped bool

	allocMu sync.Mutex // the manager admits one container at a time, as the kubelet does

	releaseOnce sync.Once
}

// Start checks that the process runs as root in the private mount namespace
// Script makes, empties the device-plugin and pod-resources folders (a fresh
// node: no checkpoint), starts the device manager on KubeletSocket and the
// pod-resources server on PodResourcesSocket, and stops both when the test
// ends. It fails t, with a message naming Script, anywhere else.
func Start(t testing.TB) *Kubelet {
	t.Helper()
	if KubeletSocket != pluginapi.KubeletSocket {
		t.Fatalf("kubeletenv: KubeletSocket %s is not the kubelet's %s", KubeletSocket, pluginapi.KubeletSocket)
	}
	if err := CheckSandbox(); err != nil {
		t.Fatal(err)
	}
	select {
	case startLock <- struct{}{}:
	case <-time.After(startWait):
		t.Fatalf("kubeletenv: another Kubelet in this process is still running after %v (one per process: the socket path is fixed; a subtest cannot Start while its parent's Kubelet runs)", startWait)
	}
	k := &Kubelet{logger: klog.Background().WithName("kubeletenv")}
	t.Cleanup(func() {
		k.Stop()
		k.release()
	})
	for _, dir := range []string{PluginDir, filepath.Dir(PodResourcesSocket)} {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("kubeletenv: empty %s: %v", dir, err)
		}
	}
	if err := k.start(); err != nil {
		t.Fatal(err)
	}
	return k
}

// release lets the next Start in this process go ahead; after the first call
// it does nothing.
func (k *Kubelet) release() {
	k.releaseOnce.Do(func() {
		for _, dir := range []string{PluginDir, filepath.Dir(PodResourcesSocket)} {
			_ = os.RemoveAll(dir)
		}
		<-startLock
	})
}

// start creates and starts a device manager and a pod-resources server fed
// by it, keeping the admitted pods.
func (k *Kubelet) start() error {
	m, err := devicemanager.NewManagerImpl(nil, topologymanager.NewFakeManager())
	if err != nil {
		return fmt.Errorf("kubeletenv: create device manager: %v", err)
	}
	if err := m.Start(k.logger, k.activePods, readySources{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		return fmt.Errorf("kubeletenv: start device manager on %s: %v", KubeletSocket, err)
	}
	pr, err := startPodResources(k.logger, PodResourcesSocket, (*podsProvider)(k), devicesProvider{m})
	if err != nil {
		_ = m.Stop(k.logger)
		return err
	}
	k.mu.Lock()
	k.manager, k.pr, k.stopped = m, pr, false
	k.mu.Unlock()
	return nil
}

// Stop stops the device manager (its registration server closes, which
// removes kubelet.sock, and every plugin connection is dropped) and the
// pod-resources server. It may be called more than once; the test's cleanup
// calls it too.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	m, pr, stopped := k.manager, k.pr, k.stopped
	k.stopped = true
	k.mu.Unlock()
	if stopped || m == nil {
		return
	}
	if err := m.Stop(k.logger); err != nil {
		k.logger.Error(err, "Stopping the device manager")
	}
	pr.stop()
}

// Restart does what a kubelet restart does to device plugins: the manager is
// stopped and a new one started on the same folder. The new manager's
// registration server deletes every socket in PluginDir (the plugins' too)
// and creates kubelet.sock again; it reads the allocation checkpoint, so the
// admitted pods keep their devices, and each resource it knew reports zero
// capacity until its plugin registers again. The pod-resources server
// restarts with it. Plugins must notice and re-register by themselves.
func (k *Kubelet) Restart(t testing.TB) {
	t.Helper()
	k.Stop()
	if err := k.start(); err != nil {
		t.Fatal(err)
	}
}

// Manager is the running device manager, for what the helpers do not cover.
// After Restart it is a different value.
func (k *Kubelet) Manager() *devicemanager.ManagerImpl {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.manager
}

// PluginDir returns the folder device plugins serve their sockets in.
func (k *Kubelet) PluginDir() string { return PluginDir }

// KubeletSocket returns the path of the device manager's Registration socket.
func (k *Kubelet) KubeletSocket() string { return KubeletSocket }

// PodResourcesSocket returns the path of the pod-resources v1 server's socket.
func (k *Kubelet) PodResourcesSocket() string { return PodResourcesSocket }

// Capacity returns the device manager's capacity (every device of each
// resource) and allocatable (the healthy ones) counts, as the kubelet would
// report them in the node's status. Like the kubelet's status loop, it also
// lets the manager drop resources whose plugin has been gone for longer than
// its five-minute grace period.
func (k *Kubelet) Capacity() (capacity, allocatable map[string]int64) {
	c, a, _ := k.Manager().GetCapacity()
	return quantities(c), quantities(a)
}

func quantities(l v1.ResourceList) map[string]int64 {
	out := make(map[string]int64, len(l))
	for name, q := range l {
		out[string(name)] = q.Value()
	}
	return out
}

// WaitCapacity waits until resource's capacity is want (an absent resource
// counts as 0) and fails t with the last counts if it is not within timeout.
func (k *Kubelet) WaitCapacity(t testing.TB, resource string, want int64, timeout time.Duration) {
	t.Helper()
	k.wait(t, "capacity", resource, want, timeout, func(c, _ map[string]int64) int64 { return c[resource] })
}

// WaitAllocatable is WaitCapacity for allocatable, the healthy devices.
func (k *Kubelet) WaitAllocatable(t testing.TB, resource string, want int64, timeout time.Duration) {
	t.Helper()
	k.wait(t, "allocatable", resource, want, timeout, func(_, a map[string]int64) int64 { return a[resource] })
}

func (k *Kubelet) wait(t testing.TB, what, resource string, want int64, timeout time.Duration, get func(c, a map[string]int64) int64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, a := k.Capacity()
		if get(c, a) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubeletenv: %s of %s is %d after %v, want %d (capacity %v, allocatable %v)", what, resource, get(c, a), timeout, want, c, a)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NewPod returns a pod with a fresh UID in namespace "default" whose one
// container, named container, requests (and is limited to) count of
// resourceName. Tests that need more build their own *v1.Pod; it needs a UID.
func NewPod(name, container, resourceName string, count int64) *v1.Pod {
	q := *resource.NewQuantity(count, resource.DecimalSI)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: uuid.NewUUID()},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: container,
			Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceName(resourceName): q},
				Limits:   v1.ResourceList{v1.ResourceName(resourceName): q},
			},
		}}},
	}
}

// Allocation is what the kubelet would hand the container runtime for one
// container, from the device manager's GetDeviceRunContainerOptions, plus
// the device IDs the manager picked.
type Allocation struct {
	// DeviceIDs are the allocated device IDs per resource, sorted.
	DeviceIDs map[string][]string
	// Envs, Annotations, Mounts, DeviceNodes and CDIDevices come from the
	// plugins' ContainerAllocateResponses, merged by the kubelet (first
	// value wins for the same env, annotation or path across resources).
	Envs        map[string]string
	Annotations map[string]string
	Mounts      []Mount
	DeviceNodes []DeviceNode
	CDIDevices  []string // fully qualified CDI names
}

// Mount is a plugin-requested mount.
type Mount struct {
	ContainerPath, HostPath string
	ReadOnly                bool
}

// DeviceNode is a plugin-requested device node.
type DeviceNode struct {
	ContainerPath, HostPath, Permissions string
}

// Admit adds pod to the kubelet's active pods (by UID; admitting it again
// does nothing) without allocating anything.
func (k *Kubelet) Admit(pod *v1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.UID == pod.UID {
			return
		}
	}
	k.pods = append(k.pods, pod)
}

// Remove takes the pod with uid out of the active pods, as when it
// terminates. The device manager frees its devices the next time it
// garbage-collects: on the next allocation or pod-resources List.
func (k *Kubelet) Remove(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, p := range k.pods {
		if p.UID == uid {
			k.pods = append(k.pods[:i], k.pods[i+1:]...)
			return
		}
	}
}

// Pods returns the active pods.
func (k *Kubelet) Pods() []*v1.Pod { return k.activePods() }

func (k *Kubelet) activePods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*v1.Pod(nil), k.pods...)
}

func (k *Kubelet) isAdmitted(uid types.UID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.UID == uid {
			return true
		}
	}
	return false
}

// Allocate admits pod (if it is not yet active) and runs the kubelet's
// admission path for the named container: the device manager picks devices
// (asking the plugin's GetPreferredAllocation when it offers it), calls the
// plugin's Allocate and checkpoints the result; then
// GetDeviceRunContainerOptions gives what the container would run with. An
// error from the manager (not enough healthy devices, an unregistered
// resource, a plugin's RPC error) is returned, and a pod that this call
// admitted is taken out again, as the kubelet rejects it. Allocating a
// container again returns its existing devices. t fails only on misuse (no
// UID, no such container).
func (k *Kubelet) Allocate(t testing.TB, pod *v1.Pod, container string) (Allocation, error) {
	t.Helper()
	if pod.UID == "" {
		t.Fatalf("kubeletenv: pod %s/%s has no UID (NewPod sets one)", pod.Namespace, pod.Name)
	}
	c := findContainer(pod, container)
	if c == nil {
		t.Fatalf("kubeletenv: pod %s/%s has no container %q", pod.Namespace, pod.Name, container)
	}
	k.allocMu.Lock()
	defer k.allocMu.Unlock()
	newlyAdmitted := !k.isAdmitted(pod.UID)
	if newlyAdmitted {
		k.Admit(pod)
	}
	m := k.Manager()
	if err := m.Allocate(pod, c); err != nil {
		if newlyAdmitted {
			k.Remove(pod.UID)
		}
		return Allocation{}, err
	}
	opts, err := m.GetDeviceRunContainerOptions(context.Background(), pod, c)
	if err != nil {
		if newlyAdmitted {
			k.Remove(pod.UID)
		}
		return Allocation{}, err
	}
	a := Allocation{
		DeviceIDs:   k.Devices(pod.UID, container),
		Envs:        map[string]string{},
		Annotations: map[string]string{},
	}
	if opts == nil {
		return a, nil
	}
	for _, e := range opts.Envs {
		a.Envs[e.Name] = e.Value
	}
	for _, an := range opts.Annotations {
		a.Annotations[an.Name] = an.Value
	}
	for _, mt := range opts.Mounts {
		a.Mounts = append(a.Mounts, Mount{ContainerPath: mt.ContainerPath, HostPath: mt.HostPath, ReadOnly: mt.ReadOnly})
	}
	for _, d := range opts.Devices {
		a.DeviceNodes = append(a.DeviceNodes, DeviceNode{ContainerPath: d.PathInContainer, HostPath: d.PathOnHost, Permissions: d.Permissions})
	}
	for _, d := range opts.CDIDevices {
		a.CDIDevices = append(a.CDIDevices, d.Name)
	}
	return a, nil
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// Devices returns the device IDs the manager holds for a pod's container,
// per resource, sorted (nil when it holds none).
func (k *Kubelet) Devices(uid types.UID, container string) map[string][]string {
	devs := k.Manager().GetDevices(string(uid), container)
	if len(devs) == 0 {
		return nil
	}
	out := make(map[string][]string, len(devs))
	for res, ids := range devs {
		for id := range ids {
			out[res] = append(out[res], id)
		}
		sort.Strings(out[res])
	}
	return out
}

// PodResourcesClient dials PodResourcesSocket and returns a v1 client; the
// connection is closed when the test ends. It keeps working across Restart
// (gRPC reconnects).
func (k *Kubelet) PodResourcesClient(t testing.TB) podresourcesv1.PodResourcesListerClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+PodResourcesSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("kubeletenv: pod-resources client: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return podresourcesv1.NewPodResourcesListerClient(conn)
}

// readySources reports every pod source seen, as a kubelet does once it has
// synced: the manager then garbage-collects devices of inactive pods.
type readySources struct{}

func (readySources) AddSource(string) {}
func (readySources) AllReady() bool   { return true }
