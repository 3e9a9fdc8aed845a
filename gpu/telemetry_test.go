package gpu_test

import (
	"context"
	"slices"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

func TestTelemetry(t *testing.T) {
	f := open(t, "h100-80gb:2")
	if err := f.sim.SetTelemetry(0, sim.Telemetry{
		UtilizationPercent: 87, MemoryUtilizationPercent: 41, PowerMilliwatts: 312_500,
		TemperatureC: 64, SMClockMHz: 1980, ECCCorrected: 3, ECCUncorrected: 1,
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.SetTelemetry(1, sim.Telemetry{PowerMilliwatts: 90_000, TemperatureC: 40, SMClockMHz: 1755, ECCDisabled: true}); err != nil {
		t.Fatal(err)
	}
	// GPU 1 gets MIG and two 1g.10gb instances; one runs a process.
	g1 := f.gpu(1)
	f.apply([]migconfig.Op{setMode(g1, true)}, gpu.ApplyOptions{})
	g1 = f.gpu(1)
	f.apply([]migconfig.Op{f.create(g1, "1g.10gb", 0, migconfig.Compute{}), f.create(g1, "1g.10gb", 1, migconfig.Compute{})}, gpu.ApplyOptions{})
	g1 = f.gpu(1)
	busyUUID := g1.Instances[0].ComputeInstances[0].UUID
	if _, err := f.sim.StartProcess(busyUUID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.StartProcess(f.gpu(0).UUID); err != nil {
		t.Fatal(err)
	}

	snap := f.snapshot()
	f.sim.ResetCounters()
	tel, err := f.node.Telemetry(context.Background())
	if err != nil {
		t.Fatalf("Telemetry: %v", err)
	}
	if len(tel.State.GPUs) != 2 || len(tel.GPUs) != 2 {
		t.Fatalf("Telemetry has %d states and %d readings, want 2 and 2", len(tel.State.GPUs), len(tel.GPUs))
	}
	for i := range snap.GPUs {
		if tel.State.GPUs[i].UUID != snap.GPUs[i].UUID || len(tel.State.GPUs[i].Instances) != len(snap.GPUs[i].Instances) {
			t.Errorf("gpu %d: Telemetry's state differs from Snapshot's", i)
		}
	}

	g0 := tel.GPUs[0]
	wantF := map[string]struct {
		got  *float64
		want float64
	}{
		"utilization":        {g0.Utilization, 0.87},
		"memory utilization": {g0.MemoryUtilization, 0.41},
		"power":              {g0.PowerWatts, 312.5},
		"temperature":        {g0.TemperatureCelsius, 64},
		"sm clock":           {g0.SMClockHertz, 1980e6},
	}
	for name, c := range wantF {
		if c.got == nil || *c.got != c.want {
			t.Errorf("gpu 0 %s = %v, want %v", name, deref(c.got), c.want)
		}
	}
	if g0.ECCCorrected == nil || *g0.ECCCorrected != 3 || g0.ECCUncorrected == nil || *g0.ECCUncorrected != 1 {
		t.Errorf("gpu 0 ECC = %v/%v, want 3/1", deref(g0.ECCCorrected), deref(g0.ECCUncorrected))
	}
	if want := uint64(snap.GPUs[0].MemoryMiB) << 20; g0.Memory.Total != want {
		t.Errorf("gpu 0 memory total = %d, want %d", g0.Memory.Total, want)
	}
	if g0.Memory.Used != sim.ProcessMemoryMiB<<20 {
		t.Errorf("gpu 0 memory used = %d, want one process's %d", g0.Memory.Used, sim.ProcessMemoryMiB<<20)
	}

	g1t := tel.GPUs[1]
	if g1t.Utilization != nil || g1t.MemoryUtilization != nil {
		t.Errorf("gpu 1 (MIG enabled) utilization = %v, want none: NVML does not measure it under MIG", *g1t.Utilization)
	}
	if g1t.ECCCorrected != nil || g1t.ECCUncorrected != nil {
		t.Errorf("gpu 1 (ECC off) has ECC counts")
	}
	if g1t.PowerWatts == nil || *g1t.PowerWatts != 90 {
		t.Errorf("gpu 1 power = %v, want 90", deref(g1t.PowerWatts))
	}
	if len(g0.Unreadable)+len(g1t.Unreadable) != 0 {
		t.Errorf("unreadable: %v %v", g0.Unreadable, g1t.Unreadable)
	}

	// Each MIG device's memory, by UUID.
	if len(tel.MigDevices) != 2 {
		t.Fatalf("MigDevices = %v, want 2 entries", tel.MigDevices)
	}
	for _, in := range tel.State.GPUs[1].Instances {
		uuid := in.ComputeInstances[0].UUID
		mem, ok := tel.MigDevices[uuid]
		if !ok {
			t.Fatalf("no memory for MIG device %s", uuid)
		}
		if mem.Total != uint64(in.ComputeInstances[0].MemoryMiB)<<20 || mem.Total == 0 {
			t.Errorf("%s total = %d, want %d MiB", uuid, mem.Total, in.ComputeInstances[0].MemoryMiB)
		}
		want := uint64(0)
		if uuid == busyUUID {
			want = sim.ProcessMemoryMiB << 20
		}
		if mem.Used != want {
			t.Errorf("%s used = %d, want %d", uuid, mem.Used, want)
		}
	}

	// One read of the node per call: every GPU is looked up once.
	if n := f.sim.Calls()["DeviceGetHandleByIndex"]; n != 2 {
		t.Errorf("DeviceGetHandleByIndex called %d times, want 2 (one per GPU)", n)
	}
}

func TestTelemetryUnreadableValue(t *testing.T) {
	f := open(t, "a100-80gb:2")
	gpuIdx := 1
	f.sim.InjectFault(sim.Fault{Call: "GetPowerUsage", GPU: &gpuIdx, Return: nvml.ERROR_GPU_IS_LOST})
	f.sim.InjectFault(sim.Fault{Call: "GetTemperature", GPU: &gpuIdx, Return: nvml.ERROR_NOT_SUPPORTED})
	tel, err := f.node.Telemetry(context.Background())
	if err != nil {
		t.Fatalf("Telemetry: %v (a monitoring value that fails must not fail the read)", err)
	}
	g := tel.GPUs[1]
	if g.PowerWatts != nil || g.TemperatureCelsius != nil {
		t.Errorf("failed values read: power %v temperature %v", deref(g.PowerWatts), deref(g.TemperatureCelsius))
	}
	if want := []string{"GetPowerUsage: ERROR_GPU_IS_LOST (15)"}; !slices.Equal(g.Unreadable, want) {
		t.Errorf("Unreadable = %q, want %q (not-supported is not an error)", g.Unreadable, want)
	}
	if tel.GPUs[0].PowerWatts == nil || len(tel.GPUs[0].Unreadable) != 0 {
		t.Errorf("gpu 0 affected by gpu 1's fault: %+v", tel.GPUs[0])
	}
}

func TestTelemetryFailsLikeSnapshot(t *testing.T) {
	f := open(t, "h100-80gb:1", sim.WithMigEnabled())
	f.sim.InjectFault(sim.Fault{Call: "GetMaxMigDeviceCount", Return: nvml.ERROR_UNKNOWN})
	if _, err := f.node.Telemetry(context.Background()); err == nil {
		t.Fatal("Telemetry succeeded although MIG devices could not be listed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.node.Telemetry(ctx); err == nil {
		t.Fatal("Telemetry succeeded with a cancelled context")
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "<none>"
	}
	return *p
}
