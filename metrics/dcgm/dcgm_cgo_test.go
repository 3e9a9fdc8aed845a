//go:build dcgm && cgo

package dcgm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-dcgm/pkg/dcgm"

	"github.com/tessera-gpu/tessera/metrics"
)

// TestMirroredConstants checks every DCGM value the untagged files
// mirror against go-dcgm's own.
func TestMirroredConstants(t *testing.T) {
	checks := []struct {
		name       string
		ours, want any
	}{
		{"DCGM_FI_PROF_GR_ENGINE_ACTIVE", dcgm.Short(fieldGREngineActive), dcgm.DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO},
		{"DCGM_FI_PROF_SM_ACTIVE", dcgm.Short(fieldSMActive), dcgm.DCGM_FI_PROF_SM_UTIL_RATIO},
		{"DCGM_FI_PROF_DRAM_ACTIVE", dcgm.Short(fieldDRAMActive), dcgm.DCGM_FI_PROF_DRAM_UTIL_RATIO},
		{"DCGM_FT_DOUBLE", uint(typeDouble), dcgm.DCGM_FT_DOUBLE},
		{"DCGM_FT_INT64", uint(typeInt64), dcgm.DCGM_FT_INT64},
		{"DCGM_FT_INT64_BLANK", int64Blank, dcgm.DCGM_FT_INT64_BLANK},
		{"DCGM_FT_FP64_BLANK", float64(fp64Blank), float64(dcgm.DCGM_FT_FP64_BLANK)},
		{"DCGM_ST_OK", statusOK, dcgm.DCGM_ST_OK},
		{"DCGM_ST_NOT_WATCHED", statusNotWatched, dcgm.DCGM_ST_NOT_WATCHED},
	}
	for _, c := range checks {
		if c.ours != c.want {
			t.Errorf("%s: ours %v (%T), go-dcgm %v (%T)", c.name, c.ours, c.ours, c.want, c.want)
		}
	}
	if !dcgm.IsInt64Blank(int64Blank) || dcgm.IsInt64Blank(int64Blank-1) {
		t.Errorf("int64Blank %#x disagrees with dcgm.IsInt64Blank", int64Blank)
	}
}

// libdcgmInstalled reports whether the dynamic loader can probably find
// libdcgm.so.4: in ldconfig's cache or in LD_LIBRARY_PATH.
func libdcgmInstalled() bool {
	if out, err := exec.Command("ldconfig", "-p").Output(); err == nil && strings.Contains(string(out), "libdcgm.so.4") {
		return true
	}
	for _, dir := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if _, err := os.Stat(filepath.Join(dir, "libdcgm.so.4")); err == nil {
			return true
		}
	}
	return false
}

// TestOpen opens DCGM embedded and standalone. Without libdcgm.so.4 both
// fail with ErrUnavailable naming the library; on a machine with DCGM and
// profiling-capable GPUs the embedded Open succeeds and an empty Profile
// works.
func TestOpen(t *testing.T) {
	installed := libdcgmInstalled()
	for _, opts := range []Options{
		{},
		// Port 1 on localhost: no nv-hostengine listens there.
		{Address: "127.0.0.1:1"},
	} {
		t.Run(fmt.Sprintf("address=%q", opts.Address), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p, err := Open(ctx, opts)
			if err != nil {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Open: %v, want ErrUnavailable", err)
				}
				if errors.Is(err, ErrNotBuilt) {
					t.Errorf("Open: %v is ErrNotBuilt too", err)
				}
				if !installed && !strings.Contains(err.Error(), "libdcgm.so.4") {
					t.Errorf("Open without libdcgm.so.4: %q does not name the library", err)
				}
				t.Logf("Open: %v", err)
				return
			}
			if !installed || opts.Address != "" {
				t.Errorf("Open(%+v) succeeded (libdcgm.so.4 installed: %v)", opts, installed)
			}
			got, err := p.Profile(ctx, nil)
			if err != nil || len(got) != 0 {
				t.Errorf("Profile(nil) = %v, %v; want an empty map", got, err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := p.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := p.Profile(ctx, nil); err == nil {
				t.Error("Profile after Close: no error")
			}
		})
	}
}

func TestOpenRejectsBadOptionsFirst(t *testing.T) {
	_, err := Open(context.Background(), Options{UpdateInterval: -time.Second})
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "UpdateInterval") {
		t.Errorf("Open with a negative interval: %v, want an UpdateInterval error that is not ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestInstancesFrom(t *testing.T) {
	var h dcgm.MigHierarchy_v2
	gpu := func(id uint) dcgm.GroupEntityPair {
		return dcgm.GroupEntityPair{EntityGroupId: dcgm.FE_GPU, EntityId: id}
	}
	gi := func(id uint) dcgm.GroupEntityPair {
		return dcgm.GroupEntityPair{EntityGroupId: dcgm.FE_GPU_I, EntityId: id}
	}
	ci := func(id uint) dcgm.GroupEntityPair {
		return dcgm.GroupEntityPair{EntityGroupId: dcgm.FE_GPU_CI, EntityId: id}
	}
	noCI := uint(math.MaxUint32) // DCGM's -1 for "not a compute instance"
	entries := []dcgm.MigHierarchyInfo_v2{
		{Entity: gi(11), Parent: gpu(3), Info: dcgm.MigEntityInfo{GpuUuid: "GPU-test", NvmlGpuIndex: 7, NvmlInstanceId: 2, NvmlComputeInstanceId: noCI, NvmlMigProfileId: 9, NvmlProfileSlices: 3}},
		{Entity: ci(12), Parent: gi(11), Info: dcgm.MigEntityInfo{GpuUuid: "GPU-test", NvmlGpuIndex: 7, NvmlInstanceId: 2, NvmlComputeInstanceId: 0, NvmlMigProfileId: 2}},
		{Entity: gi(13), Parent: gpu(3), Info: dcgm.MigEntityInfo{GpuUuid: "GPU-test", NvmlGpuIndex: 7, NvmlInstanceId: 5, NvmlComputeInstanceId: noCI, NvmlMigProfileId: 19, NvmlProfileSlices: 1}},
		// Past Count: must be ignored.
		{Entity: gi(99), Parent: gpu(0), Info: dcgm.MigEntityInfo{NvmlInstanceId: 1}},
	}
	copy(h.EntityList[:], entries)
	h.Count = 3

	got := instancesFrom(&h)
	want := []gpuInstance{
		{EntityID: 11, GPUID: 3, GPUIndex: 7, GPUUUID: "GPU-test", GPUInstanceID: 2, ProfileID: 9},
		{EntityID: 13, GPUID: 3, GPUIndex: 7, GPUUUID: "GPU-test", GPUInstanceID: 5, ProfileID: 19},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("instancesFrom = %+v, want %+v", got, want)
	}

	h.Count = uint(len(h.EntityList)) + 10 // a corrupt count must not panic
	if n := len(instancesFrom(&h)); n != 3 {
		t.Errorf("instancesFrom with an oversized Count: %d instances, want 3", n)
	}

	p := planFor([]metrics.SliceRef{{UUID: "MIG-x", GPUIndex: 7, GPUUUID: "GPU-test", GPUInstanceID: 5}}, got, map[uint]bool{3: true})
	if len(p.entities) != 1 || p.entities[0].EntityID != 13 {
		t.Errorf("plan for GI 5 on GPU 7: %+v, want entity 13", p)
	}
}

func TestSamplesFrom(t *testing.T) {
	double := func(entity uint, field dcgm.Short, v float64) dcgm.FieldValue_v2 {
		fv := dcgm.FieldValue_v2{EntityGroupId: dcgm.FE_GPU_I, EntityID: entity, FieldID: field, FieldType: dcgm.DCGM_FT_DOUBLE}
		binary.NativeEndian.PutUint64(fv.Value[:8], math.Float64bits(v))
		return fv
	}
	blankInt := dcgm.FieldValue_v2{EntityGroupId: dcgm.FE_GPU_I, EntityID: 4, FieldID: dcgm.DCGM_FI_PROF_DRAM_UTIL_RATIO, FieldType: dcgm.DCGM_FT_INT64}
	binary.NativeEndian.PutUint64(blankInt.Value[:8], uint64(dcgm.DCGM_FT_INT64_BLANK))
	notWatched := double(4, dcgm.DCGM_FI_PROF_SM_UTIL_RATIO, 0)
	notWatched.Status = dcgm.DCGM_ST_NOT_WATCHED
	gpuValue := double(0, dcgm.DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO, 0.9)
	gpuValue.EntityGroupId = dcgm.FE_GPU

	values := []dcgm.FieldValue_v2{
		double(4, dcgm.DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO, 0.381124),
		notWatched,
		blankInt,
		gpuValue,
	}
	got := samplesFrom(values)
	if len(got) != 3 {
		t.Fatalf("samplesFrom: %d samples %+v, want 3 (the FE_GPU value left out)", len(got), got)
	}
	if got[0].value() != 0.381124 || got[0].FieldID != fieldGREngineActive || got[0].EntityID != 4 {
		t.Errorf("double sample = %+v (value %v)", got[0], got[0].value())
	}
	if got[1].Status != statusNotWatched {
		t.Errorf("not-watched sample = %+v", got[1])
	}
	if !math.IsNaN(got[2].value()) || got[2].Int != int64Blank {
		t.Errorf("blank int sample = %+v (value %v), want NaN", got[2], got[2].value())
	}

	profiles, stale := profilesFrom(got, plan{entities: []gpuInstance{{EntityID: 4}}, slices: map[uint][]string{4: {"MIG-x"}}})
	if !stale {
		t.Error("profilesFrom missed DCGM_ST_NOT_WATCHED")
	}
	pr, ok := profiles["MIG-x"]
	if !ok || pr.GraphicsEngineActive != 0.381124 || !math.IsNaN(pr.SMActive) || !math.IsNaN(pr.DRAMActive) {
		t.Errorf("profile = %+v, %v", pr, ok)
	}
}

func TestConnectionLost(t *testing.T) {
	lost := fmt.Errorf("reading: %w", &dcgm.Error{Code: dcgm.DCGM_ST_CONNECTION_NOT_VALID})
	if !connectionLost(lost) {
		t.Error("DCGM_ST_CONNECTION_NOT_VALID not recognised")
	}
	if connectionLost(&dcgm.Error{Code: dcgm.DCGM_ST_NO_DATA}) || connectionLost(errors.New("connection")) || connectionLost(nil) {
		t.Error("other errors taken for a lost connection")
	}
}
