package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/agent"
)

// ListStrategy is how Allocate hands devices to a container, as NVIDIA's
// device plugin's --device-list-strategy.
type ListStrategy string

// The list strategies.
const (
	// ListEnvVar sets NVIDIA_VISIBLE_DEVICES to the device UUIDs.
	ListEnvVar ListStrategy = "envvar"
	// ListCDIAnnotations names CDI devices in a cdi.k8s.io/ annotation.
	ListCDIAnnotations ListStrategy = "cdi-annotations"
	// ListCDICRI returns CDI devices in the CRI field (kubelet ≥ 1.28),
	// which, unlike the environment, merges across resources.
	ListCDICRI ListStrategy = "cdi-cri"
)

// ParseListStrategy parses "envvar", "cdi-annotations" or "cdi-cri".
func ParseListStrategy(s string) (ListStrategy, error) {
	switch l := ListStrategy(s); l {
	case ListEnvVar, ListCDIAnnotations, ListCDICRI:
		return l, nil
	}
	return "", fmt.Errorf("unknown device list strategy %q: want envvar, cdi-annotations or cdi-cri", s)
}

// DefaultIgnoredXids returns the Xids caused by applications rather than
// the GPU, which NVIDIA's device plugin also ignores: 13 (graphics engine
// exception), 31 (GPU memory page fault), 43 (GPU stopped processing), 45
// (preemptive cleanup), 68 (video processor exception), 109 (context switch
// timeout).
func DefaultIgnoredXids() []uint64 { return []uint64{13, 31, 43, 45, 68, 109} }

// Options configures a Manager. Zero fields take the documented defaults.
type Options struct {
	// Strategy names resources; default StrategyMixed.
	Strategy Strategy
	// PluginDir is the kubelet's device-plugin folder; default
	// /var/lib/kubelet/device-plugins/.
	PluginDir string
	// KubeletSocket is the kubelet's registration socket; default
	// PluginDir/kubelet.sock.
	KubeletSocket string
	// ListStrategy is how devices reach containers; default ListEnvVar.
	ListStrategy ListStrategy
	// CDIKind is the CDI vendor/class of device names; default
	// "nvidia.com/gpu" (names like nvidia.com/gpu=MIG-…).
	CDIKind string
	// IgnoredXids are Xids that do not make a device unhealthy; nil means
	// DefaultIgnoredXids().
	IgnoredXids []uint64
	// KubeletPoll is how often the kubelet's socket is checked for a
	// restart; default 1 second.
	KubeletPoll time.Duration
	// Probe asks NVML whether a device answers (gpu.Node.ProbeDevice);
	// nil means a device hit by an Xid recovers only when it is
	// re-created.
	Probe func(ctx context.Context, id string) error
	// RecoverAfter is how long an unhealthy device must go without a
	// further critical Xid before it is probed; when NVML then answers for
	// it (Probe succeeds) it is healthy again, and otherwise it is probed
	// again after another RecoverAfter. Default 5 minutes.
	RecoverAfter time.Duration
	// OnHealth, when set, receives the unhealthy devices (ID → reason)
	// after every change, so the agent's Inventory can show them.
	OnHealth func(map[string]string)
	// Logger receives the plugin's logs; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Strategy == "" {
		o.Strategy = StrategyMixed
	}
	if o.PluginDir == "" {
		o.PluginDir = pluginapi.DevicePluginPath
	}
	if o.KubeletSocket == "" {
		o.KubeletSocket = filepath.Join(o.PluginDir, filepath.Base(pluginapi.KubeletSocket))
	}
	if o.ListStrategy == "" {
		o.ListStrategy = ListEnvVar
	}
	if o.CDIKind == "" {
		o.CDIKind = "nvidia.com/gpu"
	}
	if o.IgnoredXids == nil {
		o.IgnoredXids = DefaultIgnoredXids()
	}
	if o.KubeletPoll <= 0 {
		o.KubeletPoll = time.Second
	}
	if o.RecoverAfter <= 0 {
		o.RecoverAfter = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// HealthEvent is a critical error reported by NVML (an Xid), on a whole
// GPU or on one MIG instance of it.
type HealthEvent struct {
	// GPUIndex is the GPU's NVML index; -1 when NVML could not say which
	// GPU (then every GPU is affected).
	GPUIndex int
	// GPUInstanceID and ComputeInstanceID locate the MIG device; -1 when
	// the error is not tied to an instance (it then affects the whole GPU).
	GPUInstanceID, ComputeInstanceID int
	// Xid is the error code.
	Xid uint64
}

// Manager runs one kubelet device plugin per resource the node's slices
// make, fed by the agent's Inventory: it starts a plugin for a profile that
// appears, withdraws one whose last slice disappears, streams every change
// to the kubelet at once, marks devices hit by critical Xids unhealthy, and
// registers every plugin again when the kubelet restarts.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	servers   map[string]*resourceServer
	inv       agent.Inventory
	unhealthy map[string]string    // device ID → reason
	lastXid   map[string]time.Time // device ID → its last critical Xid
	allocated map[string]int       // device ID → GPU index, from the pod-resources API
	err       error                // the last error naming resources
	kick      chan struct{}
}

// New returns a Manager; Run starts it.
func New(opts Options) *Manager {
	opts = opts.withDefaults()
	return &Manager{
		opts:      opts,
		log:       opts.Logger,
		servers:   map[string]*resourceServer{},
		unhealthy: map[string]string{},
		lastXid:   map[string]time.Time{},
		kick:      make(chan struct{}, 1),
	}
}

// Run serves the plugins until ctx is done, once the kubelet's socket
// exists. inventories delivers the
// agent's Inventory versions (agent.Agent.Subscribe), health the NVML
// critical errors (nil for none). It returns nil when ctx is done.
func (m *Manager) Run(ctx context.Context, inventories <-chan agent.Inventory, health <-chan HealthEvent) error {
	// Nothing is served until the kubelet's socket exists: on a node
	// without a kubelet the plugin waits, creating nothing.
	defer m.stopAll()
	ticker := time.NewTicker(m.opts.KubeletPoll)
	defer ticker.Stop()
	kubelet := m.kubeletID()
	for {
		select {
		case <-ctx.Done():
			return nil
		case inv, ok := <-inventories:
			if !ok {
				return errors.New("device plugin: the inventory subscription ended")
			}
			if !inv.Observed {
				// The agent could not read the GPUs this time: keep
				// advertising what was last seen rather than withdraw it.
				continue
			}
			m.mu.Lock()
			m.inv = inv
			forgot := m.forgetGone()
			m.mu.Unlock()
			if forgot {
				m.reportHealth()
			}
		case ev := <-health:
			m.markUnhealthy(ev)
			m.reportHealth()
		case <-m.kick:
		case <-ticker.C:
			if m.probeRecovered(ctx) {
				m.reportHealth()
			}
			if id := m.kubeletID(); id != kubelet {
				kubelet = id
				if id != "" {
					m.log.Info("the kubelet restarted; registering every resource again")
					m.stopAll()
				}
			}
		}
		m.sync(ctx)
	}
}

// kubeletID identifies the kubelet's socket file, so that a new file (a
// restarted kubelet) is noticed; "" while there is none.
func (m *Manager) kubeletID() string {
	fi, err := os.Stat(m.opts.KubeletSocket)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%v", fi.Size(), fi.ModTime().UnixNano()) + inode(fi)
}

// sync makes the running servers match the current resources.
func (m *Manager) sync(ctx context.Context) {
	m.mu.Lock()
	resources, err := Resources(m.opts.Strategy, m.inv, m.unhealthy)
	m.err = err
	m.mu.Unlock()
	if err != nil {
		m.log.Error("cannot advertise the slices", "error", err)
		resources = map[string][]Device{}
	}
	for _, name := range slices.Sorted(maps.Keys(resources)) {
		m.mu.Lock()
		srv, ok := m.servers[name]
		m.mu.Unlock()
		if !ok {
			srv = newResourceServer(name, &m.opts, m.log, m.allocatedOnGPU)
			srv.setDevices(resources[name])
			if _, err := os.Stat(m.opts.KubeletSocket); err != nil {
				continue // no kubelet yet; started once it appears
			}
			if err := srv.start(ctx); err != nil {
				m.log.Error("start device plugin", "resource", name, "error", err)
				m.retrySoon(ctx)
				continue
			}
			m.mu.Lock()
			m.servers[name] = srv
			m.mu.Unlock()
			m.log.Info("advertising", "resource", name, "devices", len(resources[name]))
			continue
		}
		srv.setDevices(resources[name])
	}
	m.mu.Lock()
	var gone []*resourceServer
	for name, srv := range m.servers {
		if _, ok := resources[name]; !ok {
			gone = append(gone, srv)
			delete(m.servers, name)
		}
	}
	m.mu.Unlock()
	for _, srv := range gone {
		// An empty list first, so the kubelet sets the capacity to zero
		// at once rather than after its disconnect grace period.
		srv.setDevices(nil)
		time.Sleep(50 * time.Millisecond)
		srv.stop()
		m.log.Info("withdrawn: no slices left", "resource", srv.resource)
	}
}

// retrySoon asks for another sync after a second.
func (m *Manager) retrySoon(ctx context.Context) {
	go func() {
		select {
		case <-time.After(time.Second):
			select {
			case m.kick <- struct{}{}:
			default:
			}
		case <-ctx.Done():
		}
	}()
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	servers := m.servers
	m.servers = map[string]*resourceServer{}
	m.mu.Unlock()
	for _, srv := range servers {
		srv.stop()
	}
}

// Resources returns the resources and devices advertised now, and the
// error that keeps the slices from being advertised, if any.
func (m *Manager) Resources() (map[string][]Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]Device{}
	for name, srv := range m.servers {
		devices, _ := srv.current()
		out[name] = slices.Clone(devices)
	}
	return out, m.err
}

// markUnhealthy applies a health event: an ignored Xid does nothing; one
// on a MIG instance marks that instance's slices, and one not tied to an
// instance every device of the GPU.
func (m *Manager) markUnhealthy(ev HealthEvent) {
	if slices.Contains(m.opts.IgnoredXids, ev.Xid) {
		m.log.Info("ignored Xid (application error)", "gpu", ev.GPUIndex, "xid", ev.Xid)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hit := affected(m.inv, ev)
	reason := fmt.Sprintf("Xid %d", ev.Xid)
	now := m.opts.Now()
	for _, id := range hit {
		m.unhealthy[id] = reason
		m.lastXid[id] = now
	}
	m.log.Warn("devices unhealthy", "gpu", ev.GPUIndex, "gi", ev.GPUInstanceID, "ci", ev.ComputeInstanceID, "xid", ev.Xid, "devices", hit)
}

// affected lists the device IDs an event makes unhealthy: the slices of
// the instance it names, or every slice and the GPU itself.
func affected(inv agent.Inventory, ev HealthEvent) []string {
	var out []string
	for _, g := range inv.GPUs {
		// An event NVML could not tie to a GPU counts for every GPU, as
		// NVIDIA's device plugin treats it.
		if ev.GPUIndex >= 0 && g.Index != ev.GPUIndex {
			continue
		}
		if ev.GPUInstanceID < 0 {
			out = append(out, g.UUID)
		}
		for _, s := range g.Slices {
			switch {
			case ev.GPUInstanceID < 0:
				out = append(out, s.UUID)
			case s.GPUInstanceID == ev.GPUInstanceID && (ev.ComputeInstanceID < 0 || s.ComputeInstanceID == ev.ComputeInstanceID):
				out = append(out, s.UUID)
			}
		}
	}
	return out
}

// forgetGone drops the health of devices no longer on the node: a slice
// that is destroyed and created again comes back with a new UUID, healthy.
func (m *Manager) forgetGone() bool {
	forgot := false
	present := map[string]bool{}
	for _, g := range m.inv.GPUs {
		present[g.UUID] = true
		for _, s := range g.Slices {
			present[s.UUID] = true
		}
	}
	for id := range m.unhealthy {
		if !present[id] {
			delete(m.unhealthy, id)
			delete(m.lastXid, id)
			forgot = true
		}
	}
	return forgot
}

// reportHealth hands the unhealthy set to Options.OnHealth.
func (m *Manager) reportHealth() {
	if m.opts.OnHealth == nil {
		return
	}
	m.mu.Lock()
	set := maps.Clone(m.unhealthy)
	m.mu.Unlock()
	m.opts.OnHealth(set)
}

// probeRecovered probes the devices whose last Xid is RecoverAfter old
// and marks those that answer healthy again; it reports whether any did.
func (m *Manager) probeRecovered(ctx context.Context) bool {
	if m.opts.Probe == nil {
		return false
	}
	recovered := false
	m.mu.Lock()
	var due []string
	now := m.opts.Now()
	for id := range m.unhealthy {
		if now.Sub(m.lastXid[id]) >= m.opts.RecoverAfter {
			due = append(due, id)
		}
	}
	m.mu.Unlock()
	slices.Sort(due)
	for _, id := range due {
		if err := m.opts.Probe(ctx, id); err != nil {
			m.log.Debug("still unhealthy", "device", id, "error", err)
			m.mu.Lock()
			m.lastXid[id] = now // probe again after another RecoverAfter
			m.mu.Unlock()
			continue
		}
		m.SetHealthy(id)
		recovered = true
	}
	return recovered
}

// SetHealthy marks a device healthy again (NVML reported it recovered);
// the probe of Options.Probe calls it.
func (m *Manager) SetHealthy(id string) {
	m.mu.Lock()
	_, was := m.unhealthy[id]
	delete(m.unhealthy, id)
	delete(m.lastXid, id)
	m.mu.Unlock()
	if was {
		m.log.Info("device healthy again", "device", id)
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// SetAllocated records the devices the kubelet has allocated to pods (from
// the pod-resources API), for packing.
func (m *Manager) SetAllocated(ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gpuOf := map[string]int{}
	for _, g := range m.inv.GPUs {
		gpuOf[g.UUID] = g.Index
		for _, s := range g.Slices {
			gpuOf[s.UUID] = g.Index
		}
	}
	m.allocated = map[string]int{}
	for _, id := range ids {
		if g, ok := gpuOf[id]; ok {
			m.allocated[id] = g
		}
	}
}

// allocatedOnGPU counts allocated devices per GPU; nil until SetAllocated
// was called.
func (m *Manager) allocatedOnGPU() map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.allocated == nil {
		return nil
	}
	out := map[int]int{}
	for _, g := range m.allocated {
		out[g]++
	}
	return out
}
