package dcgm

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// ErrNotBuilt is returned by Open when the binary was built without the
// dcgm build tag or without cgo, so it holds no DCGM support at all.
var ErrNotBuilt = errors.New("dcgm: DCGM support not built in (build with -tags dcgm and cgo)")

// ErrUnavailable is returned, wrapped with the cause, when the binary has
// DCGM support but DCGM cannot be used here: libdcgm.so.4 is not
// installed, the host engine cannot be started or reached, there are no
// GPUs, or the GPUs do not support the profiling fields.
var ErrUnavailable = errors.New("dcgm: DCGM unavailable")

// DefaultUpdateInterval is how often DCGM samples the profiling fields
// when Options.UpdateInterval is zero.
const DefaultUpdateInterval = time.Second

// keepIntervals is how many update intervals of samples DCGM keeps.
const keepIntervals = 5

// Options configures Open.
type Options struct {
	// Address is the nv-hostengine to connect to (standalone mode):
	// "host:port", a Unix socket path starting with "/", or a DCGM
	// connection string "tcp://…", "unix://…", "vsock://…" (DCGM 4.5 or
	// newer). Empty runs an embedded host engine inside this process.
	Address string
	// Logger receives the profiler's events; nil discards them.
	Logger *slog.Logger
	// UpdateInterval is how often DCGM samples the profiling fields;
	// zero means DefaultUpdateInterval. DCGM keeps samples for five
	// intervals.
	UpdateInterval time.Duration
}

// normalize fills in the defaults and rejects invalid options.
func (o Options) normalize() (Options, error) {
	if o.UpdateInterval < 0 {
		return o, fmt.Errorf("dcgm: UpdateInterval %v is negative", o.UpdateInterval)
	}
	if o.UpdateInterval == 0 {
		o.UpdateInterval = DefaultUpdateInterval
	}
	if o.UpdateInterval < time.Microsecond {
		return o, fmt.Errorf("dcgm: UpdateInterval %v is below DCGM's resolution of 1µs", o.UpdateInterval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Address = strings.TrimSpace(o.Address)
	return o, nil
}

// watchParams is what DCGM's dcgmWatchFields takes: the update period
// in microseconds, how long to keep samples in seconds and how many.
func (o Options) watchParams() (updateFreqUs int64, maxKeepAgeSec float64, maxKeepSamples int32) {
	return o.UpdateInterval.Microseconds(), keepIntervals * o.UpdateInterval.Seconds(), 1
}

// standaloneArgs turns Options.Address into go-dcgm's Init arguments for
// standalone mode: a DCGM connection string is passed alone (go-dcgm then
// uses dcgmConnect_v3), anything else as (address, isUnixSocket) for
// dcgmConnect_v2, a path starting with "/" being a Unix socket.
func standaloneArgs(address string) []string {
	lower := strings.ToLower(address)
	for _, scheme := range []string{"tcp://", "unix://", "vsock://"} {
		if strings.HasPrefix(lower, scheme) {
			return []string{address}
		}
	}
	if strings.HasPrefix(address, "/") {
		return []string{address, "1"}
	}
	return []string{address, "0"}
}

// DCGM identifiers this package mirrors so its logic builds without cgo.
// TestMirroredConstants (dcgm tag) checks each against go-dcgm.
const (
	// fieldGREngineActive is DCGM_FI_PROF_GR_ENGINE_ACTIVE (go-dcgm
	// v1.4611.0 names it DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO).
	fieldGREngineActive uint16 = 1001
	// fieldSMActive is DCGM_FI_PROF_SM_ACTIVE (DCGM_FI_PROF_SM_UTIL_RATIO).
	fieldSMActive uint16 = 1002
	// fieldDRAMActive is DCGM_FI_PROF_DRAM_ACTIVE (DCGM_FI_PROF_DRAM_UTIL_RATIO).
	fieldDRAMActive uint16 = 1005

	// typeDouble and typeInt64 are DCGM_FT_DOUBLE and DCGM_FT_INT64.
	typeDouble = 'd'
	typeInt64  = 'i'

	// int64Blank is DCGM_INT64_BLANK: this and every larger int64 value
	// (NOT_FOUND, NOT_SUPPORTED, NOT_PERMISSIONED) means "no value".
	int64Blank int64 = 0x7ffffffffffffff0
	// fp64Blank is DCGM_FP64_BLANK (2^47), the same for doubles.
	fp64Blank = 140737488355328.0

	// statusOK and statusNotWatched are DCGM_ST_OK and DCGM_ST_NOT_WATCHED.
	statusOK         = 0
	statusNotWatched = -16
)

// profilingFields returns the fields watched and read, in this order.
func profilingFields() []uint16 {
	return []uint16{fieldGREngineActive, fieldSMActive, fieldDRAMActive}
}

// supportsFields reports whether the metric groups DCGM lists for a GPU
// (dcgmProfGetSupportedMetricGroups; each group's field IDs) contain every
// profiling field, and names the missing ones otherwise.
func supportsFields(groups [][]uint) (ok bool, missing []uint16) {
	have := make(map[uint]bool)
	for _, g := range groups {
		for _, id := range g {
			have[id] = true
		}
	}
	for _, f := range profilingFields() {
		if !have[uint(f)] {
			missing = append(missing, f)
		}
	}
	return len(missing) == 0, missing
}
