package kubelet_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/e2e/kubelet/kubeletenv"
	"github.com/tessera-gpu/tessera/metrics"
	"github.com/tessera-gpu/tessera/podresources"
)

// TestMetricsPodAttribution checks that slice metrics name the pod that
// the kubelet's real device manager allocated each slice to, read through
// the kubelet's own pod-resources server, and that a slice no pod holds
// has no pod labels.
func TestMetricsPodAttribution(t *testing.T) {
	k := kubeletenv.Start(t)
	n := startNode(t, k, 2, deviceplugin.Options{})
	inv := n.apply(t, "all-balanced")
	k.WaitAllocatable(t, res2g, 2, 5*time.Second)
	k.WaitAllocatable(t, res1g, 4, 5*time.Second)

	a, err := k.Allocate(t, kubeletenv.NewPod("llama", "server", res2g, 1), "server")
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Allocate(t, kubeletenv.NewPod("bert", "triton", res1g, 2), "triton")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{} // MIG UUID → pod, container
	for _, id := range a.DeviceIDs[res2g] {
		want[id] = [2]string{"llama", "server"}
	}
	for _, id := range b.DeviceIDs[res1g] {
		want[id] = [2]string{"bert", "triton"}
	}
	if len(want) != 3 {
		t.Fatalf("allocated %v and %v, want 1 + 2 slices", a.DeviceIDs, b.DeviceIDs)
	}

	owners, err := podresources.List(context.Background(), k.PodResourcesSocket(), deviceplugin.ResourcePrefix)
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.NewCollector(n.gpus, metrics.Options{})
	c.SetOwners(owners)
	reg, err := metrics.NewRegistry("e2e", c)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var info *dto.MetricFamily
	for _, mf := range mfs {
		if mf.GetName() == "tessera_slice_info" {
			info = mf
		}
	}
	if info == nil || len(info.GetMetric()) != len(inv.Slices()) {
		t.Fatalf("tessera_slice_info: %v, want one series per slice (%d)", info, len(inv.Slices()))
	}
	seen := 0
	for _, m := range info.GetMetric() {
		l := labels(m)
		w, owned := want[l["uuid"]]
		switch {
		case owned && (l["pod"] != w[0] || l["container"] != w[1] || l["namespace"] != "default"):
			t.Errorf("slice %s (%s): pod %q/%q container %q, want default/%s container %s", l["uuid"], l["mig_profile"], l["namespace"], l["pod"], l["container"], w[0], w[1])
		case !owned && (l["pod"] != "" || l["namespace"] != "" || l["container"] != ""):
			t.Errorf("slice %s no pod holds is labelled pod %q/%q", l["uuid"], l["namespace"], l["pod"])
		}
		if owned {
			seen++
			t.Logf("tessera_slice_info{uuid=%q,mig_profile=%q,namespace=%q,pod=%q,container=%q}", l["uuid"], l["mig_profile"], l["namespace"], l["pod"], l["container"])
		}
	}
	if seen != 3 {
		t.Errorf("%d allocated slices found in the metrics, want 3", seen)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}
