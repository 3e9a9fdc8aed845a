package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/metrics/triton"
	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/podresources"
)

// TestBuildTritonTargets checks how the agent assembles its Triton
// targets: --triton-target URLs, the triton list of agent.yaml (with the
// owner of the slice it names) and the running pods of the node that own
// slices, found through a pod informer; a pod with a bad annotation is a
// reported problem, not a target.
func TestBuildTritonTargets(t *testing.T) {
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, "h100-80gb:1")
	if err != nil {
		t.Fatal(err)
	}
	node, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	a := agent.New(node, agent.NewFileSource("/nonexistent", 0), agent.Options{})

	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("triton:\n  - url: http://127.0.0.1:8002/metrics\n    slice: MIG-a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, phase corev1.PodPhase, ip string, ann map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "serving", Name: name, Annotations: ann},
			Spec:       corev1.PodSpec{NodeName: "gpu-1"},
			Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
		}
	}
	client := fake.NewClientset(
		pod("resnet", corev1.PodRunning, "10.0.0.7", map[string]string{triton.AnnotationMetricsPort: "9000"}),
		pod("bert", corev1.PodRunning, "10.0.0.8", map[string]string{triton.AnnotationMetricsPort: "http"}),
		pod("starting", corev1.PodPending, "10.0.0.9", nil),
		pod("idle", corev1.PodRunning, "10.0.0.10", nil), // owns no slice
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods, err := nodePods(ctx, client, "gpu-1")
	if err != nil {
		t.Fatal(err)
	}

	o := &agentOptions{source: "file", agentConfig: cfg}
	o.metrics.tritonTargets = []string{"http://127.0.0.1:8003/metrics"}
	m := &metricsRuntime{targets: &targetSet{}}
	m.targets.setOwners(map[string]podresources.Owner{
		"MIG-a": {Namespace: "serving", Pod: "static", Container: "server"},
		"MIG-b": {Namespace: "serving", Pod: "resnet", Container: "triton"},
		"MIG-c": {Namespace: "serving", Pod: "bert", Container: "triton"},
		"MIG-d": {Namespace: "serving", Pod: "starting", Container: "triton"},
	})
	targets, problems := m.buildTargets(o, a, pods)

	want := map[string]triton.Target{
		"http://127.0.0.1:8003/metrics": {URL: "http://127.0.0.1:8003/metrics"},
		"http://127.0.0.1:8002/metrics": {URL: "http://127.0.0.1:8002/metrics", Slice: "MIG-a", Pod: "static", Namespace: "serving", Container: "server"},
		"http://10.0.0.7:9000/metrics":  {URL: "http://10.0.0.7:9000/metrics", Slice: "MIG-b", Pod: "resnet", Namespace: "serving", Container: "triton"},
	}
	if len(targets) != len(want) {
		t.Fatalf("targets %+v, want %d", targets, len(want))
	}
	for _, got := range targets {
		if w, ok := want[got.URL]; !ok || got != w {
			t.Errorf("target %+v, want %+v", got, w)
		}
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "bert") {
		t.Errorf("problems %v, want one naming the pod bert and its bad port", problems)
	}

	// A broken agent.yaml is a problem; the flag targets and pods stay.
	if err := os.WriteFile(cfg, []byte("triton:\n  - url: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	targets, problems = m.buildTargets(o, a, pods)
	if len(targets) != 2 || len(problems) != 2 || !strings.Contains(problems[0].Error(), "triton[0].url") {
		t.Errorf("with a broken agent.yaml: targets %+v, problems %v", targets, problems)
	}
}
