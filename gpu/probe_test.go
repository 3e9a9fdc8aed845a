package gpu_test

import (
	"context"
	"errors"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

func TestProbeDevice(t *testing.T) {
	cat := migconfig.Builtin()
	s, err := sim.NewFromSpec(cat, "h100-80gb:1", sim.WithMigEnabled())
	if err != nil {
		t.Fatal(err)
	}
	n, err := gpu.Open(context.Background(), s, gpu.Options{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	st, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.ProbeDevice(ctx, st.GPUs[0].UUID); err != nil {
		t.Errorf("probe a GPU: %v", err)
	}
	if err := n.ProbeDevice(ctx, "MIG-00000000-0000-0000-0000-000000000000"); !errors.Is(err, nvml.ERROR_NOT_FOUND) {
		t.Errorf("probe a device that does not exist: %v", err)
	}
	s.InjectFault(sim.Fault{Call: "GetMemoryInfo", Return: nvml.ERROR_GPU_IS_LOST})
	if err := n.ProbeDevice(ctx, st.GPUs[0].UUID); !errors.Is(err, nvml.ERROR_GPU_IS_LOST) {
		t.Errorf("probe a lost GPU: %v", err)
	}
}
