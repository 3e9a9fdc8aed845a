//go:build dcgm && cgo

package dcgm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-dcgm/pkg/dcgm"

	"github.com/tessera-gpu/tessera/metrics"
)

// errClosed is returned by Profile after Close.
var errClosed = errors.New("dcgm: profiler is closed")

// Open starts DCGM — an embedded host engine, or a connection to the
// nv-hostengine at opts.Address — checks that some GPU supports the
// profiling fields and returns a Profiler for them. Errors caused by the
// machine (no libdcgm.so.4, no host engine, no GPU, no profiling support)
// wrap ErrUnavailable; invalid options do not. ctx is checked before
// starting; DCGM's own calls cannot be cancelled.
//
// go-dcgm keeps one connection per process, reference-counted by its Init
// and cleanup: a second Open in the same process shares the first one's
// host engine or connection, whatever its Address.
func Open(ctx context.Context, opts Options) (metrics.Profiler, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dcgm: open: %w", err)
	}
	p := &profiler{opts: opts, log: opts.Logger, namePrefix: fmt.Sprintf("tessera-%d-%d", os.Getpid(), time.Now().UnixNano())}
	s, err := p.connect()
	if err != nil {
		return nil, err
	}
	p.sess = s
	return p, nil
}

// profiler is the go-dcgm Profiler. Its methods are safe for concurrent
// use; they take turns, since DCGM calls go through go-dcgm's one handle.
type profiler struct {
	opts       Options
	log        *slog.Logger
	namePrefix string

	mu     sync.Mutex
	sess   *session // nil after a lost connection: the next Profile connects again
	closed bool
	seq    int // numbers the DCGM groups this profiler names
}

// session is what one DCGM initialisation holds.
type session struct {
	cleanup   func()           // go-dcgm's reference-counted shutdown
	fields    dcgm.FieldHandle // the profiling field group
	hasFields bool
	supported map[uint]bool // DCGM GPU IDs that support the profiling fields
	group     *watchGroup   // the watched FE_GPU_I entity group, or nil
}

// watchGroup is the DCGM entity group the profiling fields are watched on.
type watchGroup struct {
	handle  dcgm.GroupHandle
	watched []gpuInstance
	pairs   []dcgm.GroupEntityPair
}

// name returns a DCGM group name unique to this profiler and process;
// a shared nv-hostengine holds other clients' groups too.
func (p *profiler) name(kind string) string {
	p.seq++
	return fmt.Sprintf("%s-%s-%d", p.namePrefix, kind, p.seq)
}

// fieldIDs returns the profiling fields as go-dcgm field IDs.
func fieldIDs() []dcgm.Short {
	ids := profilingFields()
	out := make([]dcgm.Short, len(ids))
	for i, id := range ids {
		out[i] = dcgm.Short(id)
	}
	return out
}

// connect initialises DCGM, finds the GPUs that support the profiling
// fields and creates the field group. Every error wraps ErrUnavailable.
func (p *profiler) connect() (*session, error) {
	mode := "embedded host engine"
	var (
		cleanup func()
		err     error
	)
	if p.opts.Address == "" {
		cleanup, err = dcgm.Init(dcgm.Embedded)
	} else {
		mode = "nv-hostengine at " + p.opts.Address
		cleanup, err = dcgm.Init(dcgm.Standalone, standaloneArgs(p.opts.Address)...)
	}
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "libdcgm.so.4") {
			hint = " (install datacenter-gpu-manager-4)"
		}
		return nil, fmt.Errorf("%w: starting DCGM (%s): %w%s", ErrUnavailable, mode, err, hint)
	}
	s := &session{cleanup: cleanup, supported: make(map[uint]bool)}
	ok := false
	defer func() {
		if !ok {
			if err := p.teardown(s); err != nil {
				p.log.Debug("dcgm: cleaning up after a failed start", "err", err)
			}
		}
	}()

	gpus, err := dcgm.GetSupportedDevices()
	if err != nil {
		return nil, fmt.Errorf("%w: listing GPUs (%s): %w", ErrUnavailable, mode, err)
	}
	if len(gpus) == 0 {
		return nil, fmt.Errorf("%w: DCGM (%s) sees no supported GPU", ErrUnavailable, mode)
	}
	var reasons []string
	for _, id := range gpus {
		groups, err := dcgm.GetSupportedMetricGroups(id)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("GPU %d: %v", id, err))
			continue
		}
		ids := make([][]uint, len(groups))
		for i, g := range groups {
			ids[i] = g.FieldIds
		}
		if has, missing := supportsFields(ids); !has {
			reasons = append(reasons, fmt.Sprintf("GPU %d: no profiling fields %v", id, missing))
			continue
		}
		s.supported[id] = true
	}
	if len(s.supported) == 0 {
		return nil, fmt.Errorf("%w: no GPU supports the profiling fields (%s)", ErrUnavailable, strings.Join(reasons, "; "))
	}
	if len(reasons) > 0 {
		p.log.Info("dcgm: profiling not supported on some GPUs", "reasons", strings.Join(reasons, "; "))
	}

	s.fields, err = dcgm.FieldGroupCreate(p.name("fields"), fieldIDs())
	if err != nil {
		return nil, fmt.Errorf("%w: creating the profiling field group: %w", ErrUnavailable, err)
	}
	s.hasFields = true
	ok = true
	p.log.Info("dcgm: profiling fields available", "mode", mode, "gpus", len(gpus), "profiling_gpus", len(s.supported))
	return s, nil
}

// Profile implements metrics.Profiler. It reads DCGM's MIG hierarchy,
// (re)builds the watched entity group when the slices' GPU instances
// changed and returns the latest values. When DCGM's connection is lost
// it returns an error and the next call starts DCGM again; it never
// exits the process.
func (p *profiler) Profile(ctx context.Context, refs []metrics.SliceRef) (map[string]metrics.Profile, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dcgm: profile: %w", err)
	}
	if p.sess == nil {
		s, err := p.connect()
		if err != nil {
			return nil, fmt.Errorf("dcgm: starting DCGM again: %w", err)
		}
		p.sess = s
	}
	s := p.sess

	// The hierarchy is read on every call: it is cheap, it is how a MIG
	// layout change is noticed, and its failure is how a lost
	// connection is.
	h, err := dcgm.GetGPUInstanceHierarchy()
	if err != nil {
		p.reset(err)
		return nil, fmt.Errorf("dcgm: reading the MIG hierarchy: %w", err)
	}
	pl := planFor(refs, instancesFrom(&h), s.supported)
	if len(pl.missing) > 0 {
		p.log.Debug("dcgm: slices without a DCGM GPU instance", "slices", pl.missing)
	}

	var watched []gpuInstance
	if s.group != nil {
		watched = s.group.watched
	}
	switch act := decideGroup(s.group != nil, watched, pl.entities); act {
	case dropGroup, rebuildGroup:
		p.dropGroup(s)
		if act == dropGroup {
			return map[string]metrics.Profile{}, nil
		}
		fallthrough
	case buildGroup:
		if err := p.buildGroup(s, pl.entities); err != nil {
			return nil, err
		}
	}
	if s.group == nil {
		return map[string]metrics.Profile{}, nil
	}

	pairs := s.group.pairs
	values, err := dcgm.EntitiesGetLatestValues(pairs, fieldIDs(), 0)
	if err != nil {
		if connectionLost(err) {
			p.reset(err)
		} else {
			p.dropGroup(s) // watched anew on the next call
		}
		return nil, fmt.Errorf("dcgm: reading the profiling fields of %d GPU instances: %w", len(pairs), err)
	}
	profiles, notWatched := profilesFrom(samplesFrom(values), pl)
	if notWatched {
		p.log.Debug("dcgm: fields not watched; the entity group is watched anew on the next call")
		p.dropGroup(s)
	}
	return profiles, nil
}

// Close implements metrics.Profiler: it destroys the groups and releases
// this profiler's reference to DCGM. Later calls return nil.
func (p *profiler) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	s := p.sess
	p.sess = nil
	if s == nil {
		return nil
	}
	return p.teardown(s)
}

// buildGroup creates the entity group of want and watches the profiling
// fields on it.
func (p *profiler) buildGroup(s *session, want []gpuInstance) (err error) {
	h, err := dcgm.CreateGroup(p.name("instances"))
	if err != nil {
		return fmt.Errorf("dcgm: creating the GPU instance group: %w", err)
	}
	defer func() {
		if err != nil {
			if derr := dcgm.DestroyGroup(h); derr != nil {
				p.log.Debug("dcgm: destroying a half-built group", "err", derr)
			}
		}
	}()
	g := &watchGroup{handle: h, watched: want}
	for _, gi := range want {
		if err := dcgm.AddEntityToGroup(h, dcgm.FE_GPU_I, gi.EntityID); err != nil {
			return fmt.Errorf("dcgm: adding GPU instance %d of GPU %d (entity %d) to the group: %w",
				gi.GPUInstanceID, gi.GPUIndex, gi.EntityID, err)
		}
		g.pairs = append(g.pairs, dcgm.GroupEntityPair{EntityGroupId: dcgm.FE_GPU_I, EntityId: gi.EntityID})
	}
	freq, age, samples := p.opts.watchParams()
	if err := dcgm.WatchFieldsWithGroupEx(s.fields, h, freq, age, samples); err != nil {
		return fmt.Errorf("dcgm: watching the profiling fields on %d GPU instances: %w", len(want), err)
	}
	s.group = g
	p.log.Debug("dcgm: watching GPU instances", "count", len(want))
	return nil
}

// dropGroup stops watching and destroys the entity group, if any; errors
// are logged, since the group is gone from our side either way.
func (p *profiler) dropGroup(s *session) {
	if err := p.destroyGroup(s); err != nil {
		p.log.Debug("dcgm: dropping the GPU instance group", "err", err)
	}
}

func (p *profiler) destroyGroup(s *session) error {
	g := s.group
	if g == nil {
		return nil
	}
	s.group = nil
	var errs []error
	if err := dcgm.UnwatchFields(s.fields, g.handle); err != nil {
		errs = append(errs, fmt.Errorf("dcgm: unwatching the GPU instance group: %w", err))
	}
	if err := dcgm.DestroyGroup(g.handle); err != nil {
		errs = append(errs, fmt.Errorf("dcgm: destroying the GPU instance group: %w", err))
	}
	return errors.Join(errs...)
}

// teardown destroys a session's groups and releases its DCGM reference.
func (p *profiler) teardown(s *session) error {
	errs := []error{p.destroyGroup(s)}
	if s.hasFields {
		s.hasFields = false
		if err := dcgm.FieldGroupDestroy(s.fields); err != nil {
			errs = append(errs, fmt.Errorf("dcgm: destroying the profiling field group: %w", err))
		}
	}
	if s.cleanup != nil {
		s.cleanup()
		s.cleanup = nil
	}
	return errors.Join(errs...)
}

// reset drops the session after a failure that means the connection is
// gone; the next Profile starts DCGM again.
func (p *profiler) reset(cause error) {
	s := p.sess
	p.sess = nil
	if s != nil {
		if err := p.teardown(s); err != nil {
			p.log.Debug("dcgm: cleaning up a lost session", "err", err)
		}
	}
	p.log.Warn("dcgm: connection lost; starting DCGM again on the next call", "err", cause)
}

// connectionLost reports whether err is DCGM's DCGM_ST_CONNECTION_NOT_VALID.
func connectionLost(err error) bool {
	var derr *dcgm.Error
	return errors.As(err, &derr) && derr.Code == dcgm.DCGM_ST_CONNECTION_NOT_VALID
}

// instancesFrom copies the GPU instances out of DCGM's MIG hierarchy.
func instancesFrom(h *dcgm.MigHierarchy_v2) []gpuInstance {
	n := min(h.Count, uint(len(h.EntityList)))
	var out []gpuInstance
	for i := range n {
		e := &h.EntityList[i]
		if e.Entity.EntityGroupId != dcgm.FE_GPU_I || e.Parent.EntityGroupId != dcgm.FE_GPU {
			continue
		}
		out = append(out, gpuInstance{
			EntityID:      e.Entity.EntityId,
			GPUID:         e.Parent.EntityId,
			GPUIndex:      int(e.Info.NvmlGpuIndex),
			GPUUUID:       e.Info.GpuUuid,
			GPUInstanceID: int(e.Info.NvmlInstanceId),
			ProfileID:     int(e.Info.NvmlMigProfileId),
		})
	}
	return out
}

// samplesFrom copies DCGM's field values for GPU instances into samples.
func samplesFrom(values []dcgm.FieldValue_v2) []sample {
	out := make([]sample, 0, len(values))
	for _, v := range values {
		if v.EntityGroupId != dcgm.FE_GPU_I {
			continue
		}
		s := sample{EntityID: v.EntityID, FieldID: uint16(v.FieldID), Type: byte(v.FieldType), Status: v.Status}
		switch v.FieldType {
		case dcgm.DCGM_FT_DOUBLE:
			s.Float = v.Float64()
		case dcgm.DCGM_FT_INT64:
			s.Int = v.Int64()
		}
		out = append(out, s)
	}
	return out
}
