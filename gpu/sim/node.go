package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/tessera-gpu/tessera/migconfig"
)

// Default values of a simulated node.
const (
	// DefaultDriverVersion is what SystemGetDriverVersion returns unless
	// WithDriverVersion says otherwise.
	DefaultDriverVersion = "570.133.20"
	// DefaultCudaDriverVersion is what SystemGetCudaDriverVersion returns
	// unless WithCudaDriverVersion says otherwise (CUDA 12.8).
	DefaultCudaDriverVersion = 12080
	// ProcessMemoryMiB is the GPU memory every simulated process uses.
	ProcessMemoryMiB = 1024
	// firstPID is the PID of the first simulated process.
	firstPID = 4000
)

// Node is a simulated GPU node. It implements nvml.Interface; its zero value
// is not usable: build one with New, NewFromSpec, Machine.Build or Load.
//
// Node embeds go-nvml's mock.Interface. Methods the simulation implements
// are defined on Node itself (setting their ...Func fields has no effect);
// Interface methods that take a Device, GpuInstance or ComputeInstance
// first (DeviceGetName(dev), GpuInstanceDestroy(gi), ...) are forwarded to
// the handle's method of the same name; every other method returns
// ERROR_NOT_SUPPORTED.
//
// Like real NVML, every call except Init fails with ERROR_UNINITIALIZED
// until Init has been called. All methods are safe for concurrent use.
type Node struct {
	mock.Interface

	mu    sync.Mutex
	opts  options
	gpus  []*gpu
	procs map[uint32]*process
	// inits counts Init calls not yet matched by Shutdown.
	inits int
	// nextPID is the PID the next process gets.
	nextPID uint32
	// migSerial numbers MIG devices ever created, for their UUIDs.
	migSerial uint64

	calls     map[string]int
	mutating  int
	destroyed int
	faults    []*pendingFault

	// eventSets are the live event sets, in creation order.
	eventSets []*eventSet
}

var _ nvml.Interface = (*Node)(nil)

// process is a simulated process on a whole GPU (ci == nil) or a MIG device.
type process struct {
	pid uint32
	gpu *gpu
	ci  *computeInstance
	mib int
}

// Option configures a simulated node.
type Option func(*options)

type options struct {
	seed              uint64
	driverVersion     string
	cudaDriverVersion int
	migEnabled        bool
	ampereAutoReset   bool
	profilesNeedMig   bool
}

func defaultOptions() options {
	return options{driverVersion: DefaultDriverVersion, cudaDriverVersion: DefaultCudaDriverVersion}
}

// WithSeed sets the seed from which GPU UUIDs, MIG UUIDs and the order of
// GPU-instance IDs are derived. Nodes with the same seed, models and call
// history are identical; the default seed is 0.
func WithSeed(seed uint64) Option { return func(o *options) { o.seed = seed } }

// WithDriverVersion sets what SystemGetDriverVersion returns.
func WithDriverVersion(v string) Option { return func(o *options) { o.driverVersion = v } }

// WithCudaDriverVersion sets what SystemGetCudaDriverVersion returns
// (1000*major + 10*minor, as NVML encodes it).
func WithCudaDriverVersion(v int) Option { return func(o *options) { o.cudaDriverVersion = v } }

// WithMigEnabled starts every MIG-capable GPU with MIG mode enabled
// (current and pending), as a node that was configured before.
func WithMigEnabled() Option { return func(o *options) { o.migEnabled = true } }

// WithAmpereAutoReset makes SetMigMode on an idle Ampere GPU reset it at
// once, as the driver does on bare metal, instead of leaving the new mode
// pending until ResetGPU (what happens when the driver cannot reset the GPU,
// for example in a pass-through VM). A busy GPU still stays pending.
func WithAmpereAutoReset() Option { return func(o *options) { o.ampereAutoReset = true } }

// WithProfilesNeedMig makes GetGpuInstanceProfileInfo return
// ERROR_NOT_SUPPORTED while MIG is disabled, as older drivers (R535) do.
// GetGpuInstancePossiblePlacements keeps working regardless of the mode.
func WithProfilesNeedMig() Option { return func(o *options) { o.profilesNeedMig = true } }

// New returns a node with count GPUs of the given model, MIG disabled
// unless WithMigEnabled is given. The model must not be nil; the node keeps
// the pointer, so the model must not change afterwards. A count below 1 is
// taken as 1.
func New(model *migconfig.GPUModel, count int, opts ...Option) *Node {
	if count < 1 {
		count = 1
	}
	models := make([]*migconfig.GPUModel, count)
	for i := range models {
		models[i] = model
	}
	return newNode(models, opts...)
}

func newNode(models []*migconfig.GPUModel, opts ...Option) *Node {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	n := &Node{
		opts:    o,
		procs:   map[uint32]*process{},
		nextPID: firstPID,
		calls:   map[string]int{},
	}
	for i, m := range models {
		g := newGPU(n, i, m)
		if o.migEnabled && g.migCapable() {
			g.migCurrent, g.migPending = true, true
		}
		n.gpus = append(n.gpus, g)
	}
	n.installInterfaceStubs()
	return n
}

// DefaultCount is the number of GPUs a standard node of the model has:
// 4 for the A30 (PCIe servers), 8 for the others (HGX boards).
func DefaultCount(modelKey string) int {
	if strings.EqualFold(modelKey, "a30") {
		return 4
	}
	return 8
}

// NewFromSpec builds a node from a spec such as "a100-40gb:8" or "a30"
// (the count defaults to DefaultCount). Several groups separated by commas,
// "a100-80gb:4,a30:2", build a mixed node with GPUs in that order.
func NewFromSpec(cat *migconfig.Catalog, spec string, opts ...Option) (*Node, error) {
	if cat == nil {
		return nil, fmt.Errorf("sim: spec %q: no catalog", spec)
	}
	var models []*migconfig.GPUModel
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		key, countText, hasCount := strings.Cut(part, ":")
		key = strings.TrimSpace(key)
		if key == "" {
			return nil, fmt.Errorf("sim: spec %q: empty model key; want <model>[:<count>], models: %s", spec, strings.Join(cat.Keys(), ", "))
		}
		m, ok := cat.ByKey(key)
		if !ok {
			return nil, fmt.Errorf("sim: spec %q: unknown model %q; models: %s", spec, key, strings.Join(cat.Keys(), ", "))
		}
		count := DefaultCount(m.Key)
		if hasCount {
			c, err := strconv.Atoi(strings.TrimSpace(countText))
			if err != nil || c < 1 || c > 64 {
				return nil, fmt.Errorf("sim: spec %q: count %q must be a number from 1 to 64", spec, countText)
			}
			count = c
		}
		for range count {
			models = append(models, m)
		}
	}
	return newNode(models, opts...), nil
}

// Machine describes one of the standard simulated nodes.
type Machine struct {
	// Name is a human-readable name, "8x A100-40GB".
	Name string
	// Model is the catalog key of the GPU model, "a100-40gb".
	Model string
	// Count is the number of GPUs.
	Count int
}

// Spec returns the machine as a NewFromSpec spec, "a100-40gb:8".
func (m Machine) Spec() string { return fmt.Sprintf("%s:%d", m.Model, m.Count) }

// Build builds the machine's node from the catalog.
func (m Machine) Build(cat *migconfig.Catalog, opts ...Option) (*Node, error) {
	return NewFromSpec(cat, m.Spec(), opts...)
}

// Machines returns the five standard simulated nodes: 8× A100-40GB,
// 8× A100-80GB, 8× H100-80GB, 8× H200 and 4× A30. Each call returns a new
// slice.
func Machines() []Machine {
	return []Machine{
		{Name: "8x A100-40GB", Model: "a100-40gb", Count: 8},
		{Name: "8x A100-80GB", Model: "a100-80gb", Count: 8},
		{Name: "8x H100-80GB", Model: "h100-80gb", Count: 8},
		{Name: "8x H200", Model: "h200", Count: 8},
		{Name: "4x A30", Model: "a30", Count: 4},
	}
}

// ---- call accounting and faults ----

// Fault makes one future NVML call fail.
type Fault struct {
	// Call is the method name: a Device method ("CreateGpuInstanceWithPlacement",
	// also accepted with nvml.Interface's "Device" prefix), a GpuInstance
	// or ComputeInstance method with its type as prefix
	// ("GpuInstanceDestroy", "GpuInstanceCreateComputeInstance",
	// "ComputeInstanceDestroy"), an EventSet method with "EventSet" as
	// prefix ("EventSetWait", "EventSetFree"), or an Interface method
	// ("DeviceGetCount", "EventSetCreate").
	// These are the names Calls reports.
	Call string
	// GPU, when set, limits the fault to calls on that GPU (by NVML index),
	// its instances and its MIG devices.
	GPU *int
	// Nth is which matching call fails, 1-based, counted from injection;
	// 0 means the next one.
	Nth int
	// Return is the code the call returns; SUCCESS is taken as ERROR_UNKNOWN.
	Return nvml.Return
}

type pendingFault struct {
	Fault
	seen int
}

// InjectFault arms a fault. The Nth matching call fails with the fault's
// return code and has no effect; the fault then disarms itself, so it fires
// exactly once.
func (n *Node) InjectFault(f Fault) {
	if f.Nth < 1 {
		f.Nth = 1
	}
	if f.Return == nvml.SUCCESS {
		f.Return = nvml.ERROR_UNKNOWN
	}
	if f.GPU != nil {
		g := *f.GPU
		f.GPU = &g
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = append(n.faults, &pendingFault{Fault: f})
}

// PendingFaults returns the number of injected faults that have not fired.
func (n *Node) PendingFaults() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.faults)
}

// Calls returns how often each NVML method was called since the node was
// built or ResetCounters, by the names Fault.Call uses. Calls that failed
// count too. An Interface call forwarded to a handle (DeviceGetName(dev))
// counts once, under the handle's name (GetName). Test controls
// (StartProcess, ResetGPU, ...) are not counted.
func (n *Node) Calls() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int, len(n.calls))
	for k, v := range n.calls {
		out[k] = v
	}
	return out
}

// MutatingCalls returns how many calls that change state were made
// (SetMigMode, CreateGpuInstance[WithPlacement], GpuInstanceDestroy,
// GpuInstanceCreateComputeInstance[WithPlacement], ComputeInstanceDestroy),
// whether or not they succeeded.
func (n *Node) MutatingCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mutating
}

// DestroyedInstances returns how many GPU instances were destroyed
// successfully through NVML calls.
func (n *Node) DestroyedInstances() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.destroyed
}

// ResetCounters zeroes Calls, MutatingCalls and DestroyedInstances. Armed
// faults stay armed.
func (n *Node) ResetCounters() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = map[string]int{}
	n.mutating = 0
	n.destroyed = 0
}

// isMutating reports whether the named call changes state.
func isMutating(name string) bool {
	switch name {
	case "SetMigMode", "CreateGpuInstance", "CreateGpuInstanceWithPlacement",
		"GpuInstanceDestroy", "GpuInstanceCreateComputeInstance",
		"GpuInstanceCreateComputeInstanceWithPlacement", "ComputeInstanceDestroy":
		return true
	}
	return false
}

// callKind says which handle a call was made on, for fault matching.
type callKind int

const (
	kindLibrary callKind = iota
	kindDevice
	kindInstance
)

// enter records a call and decides whether it may proceed: it returns
// ERROR_UNINITIALIZED before Init, the fault's code when a fault fires, and
// SUCCESS otherwise. gpuIndex is -1 for calls not tied to a GPU. n.mu must
// be held.
func (n *Node) enter(kind callKind, name string, gpuIndex int) nvml.Return {
	n.calls[name]++
	if isMutating(name) {
		n.mutating++
	}
	if n.inits == 0 && name != "Init" && name != "InitWithFlags" {
		return nvml.ERROR_UNINITIALIZED
	}
	fire := -1
	for i, f := range n.faults {
		if f.Call != name && !(kind == kindDevice && f.Call == "Device"+name) {
			continue
		}
		if f.GPU != nil && *f.GPU != gpuIndex {
			continue
		}
		f.seen++
		if fire < 0 && f.seen >= f.Nth {
			fire = i
		}
	}
	if fire < 0 {
		return nvml.SUCCESS
	}
	f := n.faults[fire]
	n.faults = append(n.faults[:fire:fire], n.faults[fire+1:]...)
	return f.Return
}

// ---- nvml.Interface: library-level calls ----

// Init initializes the simulated library; calls may be nested and each
// needs a Shutdown.
func (n *Node) Init() nvml.Return {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "Init", -1); r != nvml.SUCCESS {
		return r
	}
	n.inits++
	return nvml.SUCCESS
}

// InitWithFlags is Init; the flags are ignored.
func (n *Node) InitWithFlags(flags uint32) nvml.Return {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "InitWithFlags", -1); r != nvml.SUCCESS {
		return r
	}
	n.inits++
	return nvml.SUCCESS
}

// Shutdown undoes one Init; ERROR_UNINITIALIZED without a matching Init.
// The simulated state survives Shutdown; event sets do not survive the
// last one.
func (n *Node) Shutdown() nvml.Return {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "Shutdown", -1); r != nvml.SUCCESS {
		return r
	}
	n.inits--
	if n.inits == 0 {
		n.dropAllEventSets()
	}
	return nvml.SUCCESS
}

// ErrorString returns NVML's description of a return code, without
// calling into libnvidia-ml.
func (n *Node) ErrorString(r nvml.Return) string { return ErrorString(r) }

// Extensions returns the extended interface; LookupSymbol reports the
// versioned profile-info symbols as missing (see Device.GetGpuInstanceProfileInfoV).
func (n *Node) Extensions() nvml.ExtendedInterface { return extensions{} }

type extensions struct{}

// LookupSymbol reports whether NVML symbol name is available: every
// symbol is, except the versioned profile-info calls that go-nvml serves by
// calling libnvidia-ml directly.
func (extensions) LookupSymbol(name string) error {
	if isUnsupportedSymbol(name) {
		return fmt.Errorf("sim: symbol %s is not simulated", name)
	}
	return nil
}

// isUnsupportedSymbol reports the NVML symbols whose go-nvml wrappers call
// libnvidia-ml directly, so that no simulation can serve them.
func isUnsupportedSymbol(name string) bool {
	switch name {
	case "nvmlDeviceGetGpuInstanceProfileInfoV", "nvmlDeviceGetGpuInstanceProfileInfoByIdV",
		"nvmlGpuInstanceGetComputeInstanceProfileInfoV":
		return true
	}
	return false
}

// SystemGetDriverVersion returns the simulated driver version.
func (n *Node) SystemGetDriverVersion() (string, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "SystemGetDriverVersion", -1); r != nvml.SUCCESS {
		return "", r
	}
	return n.opts.driverVersion, nvml.SUCCESS
}

// SystemGetCudaDriverVersion returns the simulated CUDA driver version.
func (n *Node) SystemGetCudaDriverVersion() (int, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "SystemGetCudaDriverVersion", -1); r != nvml.SUCCESS {
		return 0, r
	}
	return n.opts.cudaDriverVersion, nvml.SUCCESS
}

// SystemGetCudaDriverVersion_v2 is SystemGetCudaDriverVersion.
func (n *Node) SystemGetCudaDriverVersion_v2() (int, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "SystemGetCudaDriverVersion_v2", -1); r != nvml.SUCCESS {
		return 0, r
	}
	return n.opts.cudaDriverVersion, nvml.SUCCESS
}

// SystemGetNVMLVersion returns "12.<driver version>", as NVML does.
func (n *Node) SystemGetNVMLVersion() (string, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "SystemGetNVMLVersion", -1); r != nvml.SUCCESS {
		return "", r
	}
	return fmt.Sprintf("%d.%s", n.opts.cudaDriverVersion/1000, n.opts.driverVersion), nvml.SUCCESS
}

// DeviceGetCount returns the number of GPUs.
func (n *Node) DeviceGetCount() (int, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "DeviceGetCount", -1); r != nvml.SUCCESS {
		return 0, r
	}
	return len(n.gpus), nvml.SUCCESS
}

// DeviceGetHandleByIndex returns the GPU with NVML index i.
func (n *Node) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.enter(kindLibrary, "DeviceGetHandleByIndex", i); r != nvml.SUCCESS {
		return nil, r
	}
	if i < 0 || i >= len(n.gpus) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	return n.gpus[i].handle, nvml.SUCCESS
}

// DeviceGetHandleByUUID returns the GPU or MIG device with the given UUID.
func (n *Node) DeviceGetHandleByUUID(uuid string) (nvml.Device, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g, ci := n.findUUID(uuid)
	idx := -1
	if g != nil {
		idx = g.index
	}
	if r := n.enter(kindLibrary, "DeviceGetHandleByUUID", idx); r != nvml.SUCCESS {
		return nil, r
	}
	switch {
	case ci != nil:
		return ci.mig, nvml.SUCCESS
	case g != nil:
		return g.handle, nvml.SUCCESS
	}
	return nil, nvml.ERROR_NOT_FOUND
}

// DeviceGetHandleByPciBusId returns the GPU with the given PCI bus ID, in
// either the 8-digit ("00000000:07:00.0") or 4-digit domain form; case does
// not matter.
func (n *Node) DeviceGetHandleByPciBusId(busID string) (nvml.Device, nvml.Return) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var found *gpu
	for _, g := range n.gpus {
		if strings.EqualFold(busID, g.busID()) || strings.EqualFold(busID, g.busIDLegacy()) {
			found = g
		}
	}
	idx := -1
	if found != nil {
		idx = found.index
	}
	if r := n.enter(kindLibrary, "DeviceGetHandleByPciBusId", idx); r != nvml.SUCCESS {
		return nil, r
	}
	if found == nil {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return found.handle, nvml.SUCCESS
}

// findUUID finds a GPU or MIG device by UUID. n.mu must be held.
func (n *Node) findUUID(uuid string) (*gpu, *computeInstance) {
	for _, g := range n.gpus {
		if g.uuid == uuid {
			return g, nil
		}
		for _, gi := range g.gis {
			for _, ci := range gi.cis {
				if ci.uuid == uuid {
					return g, ci
				}
			}
		}
	}
	return nil, nil
}

// ---- test controls: processes, reset, reboot ----

// StartProcess starts a simulated compute process on the GPU or MIG device
// with the given UUID and returns its PID. A GPU with MIG enabled runs
// processes only on its MIG devices, as CUDA does. StartProcess is a test
// control, not an NVML call: it is not counted and faults do not apply.
func (n *Node) StartProcess(uuid string) (uint32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g, ci := n.findUUID(uuid)
	switch {
	case g == nil:
		return 0, fmt.Errorf("sim: no GPU or MIG device has UUID %q", uuid)
	case ci == nil && g.migCurrent:
		return 0, fmt.Errorf("sim: GPU %d (%s) has MIG enabled; start processes on its MIG devices", g.index, uuid)
	}
	pid := n.nextPID
	n.nextPID++
	n.procs[pid] = &process{pid: pid, gpu: g, ci: ci, mib: ProcessMemoryMiB}
	return pid, nil
}

// StopProcess stops a process started by StartProcess.
func (n *Node) StopProcess(pid uint32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.procs[pid]; !ok {
		return fmt.Errorf("sim: no process %d", pid)
	}
	delete(n.procs, pid)
	return nil
}

// Processes returns the PIDs of every simulated process, ascending.
func (n *Node) Processes() []uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]uint32, 0, len(n.procs))
	for pid := range n.procs {
		out = append(out, pid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ResetGPU simulates a GPU reset (nvidia-smi --gpu-reset) of the GPU with
// NVML index i: a pending MIG mode takes effect and every GPU and compute
// instance is gone (their handles fail afterwards). It fails, changing
// nothing, while processes run on the GPU. ResetGPU is a test control: it
// is not counted and faults do not apply.
func (n *Node) ResetGPU(i int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i < 0 || i >= len(n.gpus) {
		return fmt.Errorf("sim: no GPU %d", i)
	}
	g := n.gpus[i]
	if pids := g.pids(); len(pids) > 0 {
		return fmt.Errorf("sim: cannot reset GPU %d: in use by processes %v", i, pids)
	}
	g.wipe()
	g.migCurrent = g.migPending
	return nil
}

// Reboot simulates a reboot of the node: every process stops, every GPU and
// compute instance is gone, Ampere GPUs come up in their pending MIG mode
// (the mode persists) and Hopper and later GPUs come up with MIG disabled
// (it does not).
func (n *Node) Reboot() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.procs = map[uint32]*process{}
	for _, g := range n.gpus {
		g.wipe()
		if g.model.Architecture.ModeChangeNeedsReset() {
			g.migCurrent = g.migPending
		} else {
			g.migCurrent, g.migPending = false, false
		}
	}
}
