package compat_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/e2e/kubeenv"
	"github.com/tessera-gpu/tessera/migconfig"
)

// TestNamesAcceptedByAPIServer checks that every config name in Tessera's
// default layout file is a valid value of the nvidia.com/mig.config node
// label, and that every built-in MIG profile's nvidia.com/mig-* resource name
// is a valid node capacity and pod request, by asking a real API server to
// validate them (server-side dry run, nothing is stored).
func TestNamesAcceptedByAPIServer(t *testing.T) {
	f, err := migconfig.ParseFile(migconfig.DefaultLayoutFileName, migconfig.DefaultLayoutFile())
	if err != nil {
		t.Fatalf("default layout file: %v", err)
	}
	resources := map[string]bool{}
	for _, m := range migconfig.Builtin().Models() {
		for _, p := range m.Profiles {
			resources["nvidia.com/"+migconfig.ResourceName(p.Name)] = true
		}
	}
	names := make([]string, 0, len(resources))
	for r := range resources {
		names = append(names, r)
	}
	sort.Strings(names)

	env := kubeenv.Start(t)
	cs, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	for i, name := range f.ConfigNames() {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("config-%d", i),
			Labels: map[string]string{"nvidia.com/mig.config": name},
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, dryRun); err != nil {
			t.Errorf("config name %q as label nvidia.com/mig.config: %v", name, err)
		}
	}

	capacity := corev1.ResourceList{}
	for _, r := range names {
		capacity[corev1.ResourceName(r)] = resource.MustParse("1")
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "all-mig-resources"},
		Status:     corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, dryRun); err != nil {
		t.Errorf("node with capacity %v: %v", names, err)
	}
	for i, r := range names {
		one := corev1.ResourceList{corev1.ResourceName(r): resource.MustParse("1")}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("replica-%d", i), Namespace: "default"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name:      "triton",
				Image:     "nvcr.io/nvidia/tritonserver:25.01-py3",
				Resources: corev1.ResourceRequirements{Requests: one, Limits: one},
			}}},
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, dryRun); err != nil {
			t.Errorf("pod requesting %s: %v", r, err)
		}
	}
	t.Logf("%d config names and %d resource names accepted", len(f.ConfigNames()), len(names))
}
