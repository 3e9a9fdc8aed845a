// Package agent_test runs Tessera's node agent with its Kubernetes source
// against a real kube-apiserver and etcd, on simulated GPUs: the agent reads
// NVIDIA's nvidia.com/mig.config label and Tessera's tessera.dev/mig-layout
// annotation from its own Node object and writes nvidia.com/mig.config.state
// back, as NVIDIA's mig-manager does.
package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/e2e/kubeenv"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// cluster is a real control plane with two GPU nodes' Node objects.
type cluster struct {
	client  kubernetes.Interface
	layouts string // the layouts file, as the ConfigMap mount would hold it
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	env := kubeenv.Start(t)
	client, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gpu-node-1", "gpu-node-2"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nvidia.com/gpu.present": "true"}}}
		if _, err := client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	layouts := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(layouts, migconfig.DefaultLayoutFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &cluster{client: client, layouts: layouts}
}

// runningAgent is an agent on a simulated node, watching one Node object.
type runningAgent struct {
	sim   *sim.Node
	node  *gpu.Node
	agent *agent.Agent
	stop  func()
}

func (c *cluster) startAgent(t *testing.T, nodeName string, s *sim.Node) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := gpu.Open(ctx, s, gpu.Options{Catalog: migconfig.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	src, err := agent.NewKubeSource(c.client, nodeName, agent.KubeSourceOptions{LayoutsPath: c.layouts, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(n, src, agent.Options{
		NodeName: nodeName, BusyPoll: 20 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent on %s: %v", nodeName, err)
		}
		n.Close()
	}
	t.Cleanup(stop)
	return &runningAgent{sim: s, node: n, agent: a, stop: stop}
}

func h100Node(t *testing.T, count int) *sim.Node {
	t.Helper()
	m, ok := migconfig.Builtin().ByKey("h100-80gb")
	if !ok {
		t.Fatal("no h100-80gb in the catalog")
	}
	return sim.New(m, count)
}

// patchNode merge-patches a node's labels and annotations as an operator
// (or the scheduler) would; a nil value removes the key.
func (c *cluster) patchNode(t *testing.T, name string, labels, annotations map[string]any) {
	t.Helper()
	meta := map[string]any{}
	if labels != nil {
		meta["labels"] = labels
	}
	if annotations != nil {
		meta["annotations"] = annotations
	}
	patch, _ := json.Marshal(map[string]any{"metadata": meta})
	if _, err := c.client.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitState waits until the node's nvidia.com/mig.config.state label is
// want, and returns the node.
func (c *cluster) waitState(t *testing.T, name, want string) *corev1.Node {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last *corev1.Node
	for time.Now().Before(deadline) {
		n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = n
		if n.Labels[agent.StateLabel] == want {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node %s: %s never became %q; labels %v annotations %v", name, agent.StateLabel, want, last.Labels, last.Annotations)
	return nil
}

// instances lists each GPU's instances as profile names in placement order.
func instances(t *testing.T, n *gpu.Node) [][]string {
	t.Helper()
	st, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cat := migconfig.Builtin()
	var out [][]string
	for _, g := range st.GPUs {
		m, _ := cat.Lookup(g)
		var names []string
		for _, in := range g.Instances {
			p, _ := m.ProfileByID(in.Profile)
			names = append(names, p.Name)
		}
		out = append(out, names)
	}
	return out
}

func TestAgentFollowsNodeLabelAndReportsState(t *testing.T) {
	c := newCluster(t)
	s := h100Node(t, 2)
	ra := c.startAgent(t, "gpu-node-1", s)

	// No label yet: the agent observes only and writes no state.
	time.Sleep(300 * time.Millisecond)
	if n := s.MutatingCalls(); n != 0 {
		t.Fatalf("%d mutating NVML calls before any label", n)
	}

	// Label → layout applied → state success, exactly as mig-manager.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-1g.10gb"}, nil)
	node := c.waitState(t, "gpu-node-1", "success")
	for i, names := range instances(t, ra.node) {
		if len(names) != 7 || names[0] != "1g.10gb" {
			t.Errorf("gpu %d after all-1g.10gb: %v", i, names)
		}
	}
	if _, ok := node.Annotations[agent.ReasonAnnotation]; ok {
		t.Errorf("success left a reason annotation: %v", node.Annotations)
	}

	// Another label value: the layout follows.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-3g.40gb"}, nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := instances(t, ra.node)
		if len(got[0]) == 2 && got[0][0] == "3g.40gb" && len(got[1]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("layout never became all-3g.40gb: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitState(t, "gpu-node-1", "success")

	// The agent patched only its own node.
	other, err := c.client.CoreV1().Nodes().Get(context.Background(), "gpu-node-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Labels[agent.StateLabel]; ok {
		t.Errorf("the agent of gpu-node-1 labelled gpu-node-2: %v", other.Labels)
	}

	// Someone overwrites the state label: the agent writes it back.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.StateLabel: "failed"}, nil)
	c.waitState(t, "gpu-node-1", "success")
}

func TestAgentInvalidLabelFailsAndChangesNothing(t *testing.T) {
	c := newCluster(t)
	s := h100Node(t, 2)
	ra := c.startAgent(t, "gpu-node-1", s)
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-balanced"}, nil)
	c.waitState(t, "gpu-node-1", "success")
	before := instances(t, ra.node)
	s.ResetCounters()

	// A config the layouts file does not have.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-balancd"}, nil)
	node := c.waitState(t, "gpu-node-1", "failed")
	reason := node.Annotations[agent.ReasonAnnotation]
	if !strings.Contains(reason, `no config "all-balancd"`) || !strings.Contains(reason, `did you mean "all-balanced"`) {
		t.Errorf("reason annotation %q", reason)
	}
	// A layout the GPUs cannot hold, as an explicit annotation.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-balanced"},
		map[string]any{agent.LayoutAnnotation: `[{"devices":[0],"mig-enabled":true,"mig-devices":{"3g.40gb":3}}]`})
	node = c.waitState(t, "gpu-node-1", "failed")
	if reason := node.Annotations[agent.ReasonAnnotation]; !strings.Contains(reason, "3g.40gb") {
		t.Errorf("reason annotation %q does not name the profile", reason)
	}
	if n := s.MutatingCalls(); n != 0 {
		t.Errorf("%d mutating NVML calls for invalid desired states, want 0", n)
	}
	if got := instances(t, ra.node); strings.Join(got[0], ",") != strings.Join(before[0], ",") {
		t.Errorf("layout changed: %v, was %v", got, before)
	}

	// Fixed: success again, and the reason is gone.
	c.patchNode(t, "gpu-node-1", nil, map[string]any{agent.LayoutAnnotation: nil})
	node = c.waitState(t, "gpu-node-1", "success")
	if _, ok := node.Annotations[agent.ReasonAnnotation]; ok {
		t.Errorf("reason annotation left after success: %v", node.Annotations)
	}
}

func TestAgentExplicitAnnotationWinsAndBusyWaits(t *testing.T) {
	c := newCluster(t)
	s := h100Node(t, 2)
	ra := c.startAgent(t, "gpu-node-1", s)
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-7g.80gb"}, nil)
	c.waitState(t, "gpu-node-1", "success")

	// The scheduler's explicit layout for GPU 1 wins over the label there.
	inv := ra.agent.Inventory()
	explicit, err := agent.FormatExplicit(migconfig.Builtin(), stateOf(t, ra.node), map[int]migconfig.GPULayout{
		1: {MigEnabled: true, Instances: []migconfig.Instance{
			{Profile: profileID(t, "3g.40gb"), Placement: migconfig.Placement{Start: 0, Size: 4}},
			{Profile: profileID(t, "2g.20gb"), Placement: migconfig.Placement{Start: 4, Size: 2}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A process on GPU 1's only slice: the change waits for it.
	pid, err := s.StartProcess(inv.GPUs[1].Slices[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	c.patchNode(t, "gpu-node-1", nil, map[string]any{agent.LayoutAnnotation: explicit})
	node := c.waitState(t, "gpu-node-1", "pending")
	if reason := node.Annotations[agent.ReasonAnnotation]; !strings.Contains(reason, "held back by busy instances") {
		t.Errorf("pending reason %q", reason)
	}
	if got := instances(t, ra.node)[1]; strings.Join(got, ",") != "7g.80gb" {
		t.Errorf("busy gpu 1 changed to %v", got)
	}
	if err := s.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	c.waitState(t, "gpu-node-1", "success")
	got := instances(t, ra.node)
	if strings.Join(got[0], ",") != "7g.80gb" || strings.Join(got[1], ",") != "3g.40gb,2g.20gb" {
		t.Errorf("layouts %v: want the label's 7g.80gb on gpu 0 and the annotation's on gpu 1", got)
	}
}

func TestAgentRestartedConverges(t *testing.T) {
	c := newCluster(t)
	s := h100Node(t, 2)
	first := c.startAgent(t, "gpu-node-1", s)
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-balanced"}, nil)
	c.waitState(t, "gpu-node-1", "success")
	first.stop()

	// The label changes while no agent runs; a new agent picks it up.
	c.patchNode(t, "gpu-node-1", map[string]any{agent.ConfigLabel: "all-2g.20gb"}, nil)
	second := c.startAgent(t, "gpu-node-1", s)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := instances(t, second.node)
		if len(got[0]) == 3 && got[0][0] == "2g.20gb" && len(got[1]) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("layout never became all-2g.20gb: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitState(t, "gpu-node-1", "success")
}

func stateOf(t *testing.T, n *gpu.Node) migconfig.NodeState {
	t.Helper()
	st, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func profileID(t *testing.T, name string) migconfig.ProfileID {
	t.Helper()
	m, _ := migconfig.Builtin().ByKey("h100-80gb")
	p, ok := m.ProfileByName(name)
	if !ok {
		t.Fatalf("no profile %s", name)
	}
	return p.ID
}
