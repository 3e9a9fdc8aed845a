package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/migconfig"
)

// ApplyOptions controls Apply.
type ApplyOptions struct {
	// Force runs ops that were planned Busy (see migconfig.Diff) and skips
	// Apply's own process check before a destroy. Without it such destroys
	// and mode changes, and every op they block, are held back. NVML still
	// refuses to destroy a compute instance, or to change the MIG mode,
	// while processes run; that refusal is a hold-back too.
	Force bool
}

// Held is an op that Apply did not carry out, and why.
type Held struct {
	// Op is the op.
	Op migconfig.Op `json:"op"`
	// Reason says why, for example "busy: pids 4242 on GI 1 at 4:4".
	Reason string `json:"reason"`
}

// ApplyResult is what Apply did. Every op given to Apply is in exactly one
// of Done, HeldBack, Failed and Skipped.
type ApplyResult struct {
	// Done are the ops carried out, in order.
	Done []migconfig.Op `json:"done"`
	// HeldBack are the ops not carried out because of processes: an
	// instance or the GPU is in use, an op is blocked by an instance kept
	// because it is in use, the GPU's mode change was held back, or the
	// GPU waits for a reset. They run on a later pass once the work ends.
	HeldBack []Held `json:"heldBack"`
	// Failed are the ops that failed; Reason is the failure without the
	// op ("CreateGpuInstanceWithPlacement: ERROR_UNKNOWN (999)"). Apply's
	// error carries each as an *OpError.
	Failed []Held `json:"failed,omitempty"`
	// Skipped are the ops not attempted because an earlier op of the same
	// GPU failed in this apply ("gpu 3 failed earlier: …"), or because
	// ctx was done ("apply stopped: context canceled").
	Skipped []Held `json:"skipped,omitempty"`
	// PendingReset are the indices of the GPUs whose MIG mode change takes
	// effect only after a GPU reset (Ampere). Apply never resets a GPU.
	PendingReset []int `json:"pendingReset"`
}

// Rows returns the result as table rows of (status, op, reason), in the
// order done, held, failed, skipped, pending-reset.
func (r ApplyResult) Rows() [][3]string {
	var rows [][3]string
	for _, op := range r.Done {
		rows = append(rows, [3]string{"done", op.String(), ""})
	}
	for _, h := range r.HeldBack {
		rows = append(rows, [3]string{"held", h.Op.String(), h.Reason})
	}
	for _, h := range r.Failed {
		rows = append(rows, [3]string{"failed", h.Op.String(), h.Reason})
	}
	for _, h := range r.Skipped {
		rows = append(rows, [3]string{"skipped", h.Op.String(), h.Reason})
	}
	for _, gpu := range r.PendingReset {
		rows = append(rows, [3]string{"pending-reset", fmt.Sprintf("gpu %d: MIG mode change", gpu), "takes effect after a GPU reset or reboot"})
	}
	return rows
}

// String prints the result one op per line: status, op and reason.
func (r ApplyResult) String() string {
	var b strings.Builder
	for _, row := range r.Rows() {
		fmt.Fprintf(&b, "%-13s  %s", row[0], row[1])
		if row[2] != "" {
			fmt.Fprintf(&b, "  (%s)", row[2])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// heldInstance is a GPU instance that stays because it is in use.
type heldInstance struct {
	gi        int
	placement migconfig.Placement
}

// gpuStop is why a GPU's remaining ops are not run.
type gpuStop struct {
	reason string
	// failed: an op of the GPU failed, and its remaining ops are Skipped;
	// otherwise they are HeldBack.
	failed bool
}

// applyState is Apply's bookkeeping across ops.
type applyState struct {
	opts ApplyOptions
	res  ApplyResult
	// stop maps a GPU index to why its remaining ops are not run.
	stop map[int]gpuStop
	// held lists, per GPU index, the instances kept because they are busy.
	held map[int][]heldInstance
}

// Apply carries out ops in order.
//
// Mode changes are verified by reading the mode back; a change that waits
// for a GPU reset puts the GPU in PendingReset and holds back its remaining
// ops. A mode change is held back, with the GPU's remaining ops, when it
// was planned Busy (unless opts.Force), when it would disable MIG while an
// instance is held back, or when NVML answers ERROR_IN_USE as SetMigMode's
// return or activation status (an Ampere GPU whose requested mode is then
// pending is also put in PendingReset).
//
// Destroys check that the instance still has the planned profile and
// placement. They are held back when processes run on any of the
// instance's compute instances, or it was planned Busy (both unless
// opts.Force), or NVML reports it in use; nothing is destroyed before the
// process check. Should NVML refuse a compute instance part-way, the
// instance is left with fewer compute instances and the reason or error
// says how many were destroyed; migconfig.Diff no longer reuses such an
// instance, so the next pass re-creates it.
//
// Creates use explicit placements and then create the compute instances.
// A create is held back when it overlaps a held-back instance, or when
// NVML answers ERROR_INSUFFICIENT_RESOURCES while the GPU has held-back
// instances (they may hold the profile's last count or the media engines).
//
// A failure is local to its GPU: the op goes to Failed, the GPU's
// remaining ops to Skipped, and Apply goes on with the other GPUs. An op
// whose GPUUUID does not match the GPU at its index (ErrWrongGPU), or
// whose instance is not as planned (ErrNodeChanged), fails the same way.
// Apply returns errors.Join of every failure's *OpError, so errors.As finds
// an *OpError and errors.Is an NVML code or ErrNodeChanged; nil when
// nothing failed. Apply checks ctx between ops: once it is done, no
// further op runs on any GPU, the remaining ops go to Skipped, and the
// error also wraps ctx's error.
func (n *Node) Apply(ctx context.Context, ops []migconfig.Op, opts ApplyOptions) (ApplyResult, error) {
	if err := n.lock(); err != nil {
		return ApplyResult{}, err
	}
	defer n.mu.Unlock()
	st := &applyState{opts: opts, stop: map[int]gpuStop{}, held: map[int][]heldInstance{}}
	var errs []error
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			reason := fmt.Sprintf("apply stopped: %v", err)
			for _, rest := range ops[i:] {
				n.skip(ctx, st, rest, reason)
			}
			errs = append(errs, fmt.Errorf("gpu: apply stopped before op %d of %d (%s): %w", i+1, len(ops), op, err))
			return st.res, errors.Join(errs...)
		}
		if stop, ok := st.stop[op.GPU]; ok {
			if stop.failed {
				n.skip(ctx, st, op, stop.reason)
			} else {
				n.holdBack(ctx, st, op, "", stop.reason)
			}
			continue
		}
		g, err := n.opDevice(op)
		uuid := ""
		if err == nil {
			uuid = g.uuid
			op = withProfileName(g, op)
			switch op.Kind {
			case migconfig.OpSetMigMode:
				err = n.applyMode(ctx, st, g, op)
			case migconfig.OpDestroyInstance:
				err = n.applyDestroy(ctx, st, g, op)
			case migconfig.OpCreateInstance:
				err = n.applyCreate(ctx, st, g, op)
			default:
				err = &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("unknown op kind %d", int(op.Kind))}
			}
		}
		if err != nil {
			n.fail(ctx, st, op, uuid, err)
			errs = append(errs, err)
		}
	}
	return st.res, errors.Join(errs...)
}

// fail records a failed op, logs it, and stops the rest of its GPU.
func (n *Node) fail(ctx context.Context, st *applyState, op migconfig.Op, uuid string, err error) {
	reason := failReason(err)
	st.res.Failed = append(st.res.Failed, Held{Op: op, Reason: reason})
	st.stop[op.GPU] = gpuStop{failed: true, reason: fmt.Sprintf("gpu %d failed earlier: %s: %s", op.GPU, opLabel(op), reason)}
	n.logOp(ctx, op, uuid, "failed", err.Error())
}

// failReason is an op's error without the GPU and op it names: the NVML
// call and return code, or the cause.
func failReason(err error) string {
	var oe *OpError
	if !errors.As(err, &oe) {
		return err.Error()
	}
	var parts []string
	if oe.Call != "" {
		parts = append(parts, oe.Call+": "+ReturnName(oe.Return))
	}
	if oe.Err != nil {
		parts = append(parts, oe.Err.Error())
	}
	return strings.Join(parts, ": ")
}

// skip records an op that was not attempted and logs it.
func (n *Node) skip(ctx context.Context, st *applyState, op migconfig.Op, reason string) {
	st.res.Skipped = append(st.res.Skipped, Held{Op: op, Reason: reason})
	n.logOp(ctx, op, "", "skipped", reason)
}

// stopGPU holds back the remaining ops of GPU index with reason.
func (st *applyState) stopGPU(index int, reason string) {
	st.stop[index] = gpuStop{reason: reason}
}

// heldList describes the held-back instances of a GPU:
// "GI 1 at 0:4, GI 3 at 6:1".
func heldList(held []heldInstance) string {
	parts := make([]string, len(held))
	for i, h := range held {
		parts[i] = fmt.Sprintf("GI %d at %s", h.gi, h.placement)
	}
	return strings.Join(parts, ", ")
}

// opDevice reads the op's GPU and checks that it is the GPU the op was
// planned for.
func (n *Node) opDevice(op migconfig.Op) (*gpuDevice, error) {
	if op.GPUUUID == "" {
		return nil, &OpError{Op: op, Err: fmt.Errorf("%w: the op names no GPU UUID", ErrWrongGPU)}
	}
	g, err := n.device(op.GPU)
	if err != nil {
		return nil, &OpError{Op: op, GPUUUID: op.GPUUUID, Err: err}
	}
	if g.uuid != op.GPUUUID {
		return nil, &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("%w: planned for %s", ErrWrongGPU, op.GPUUUID)}
	}
	return g, nil
}

// withProfileName fills in the op's profile name from the catalog model,
// for messages.
func withProfileName(g *gpuDevice, op migconfig.Op) migconfig.Op {
	if op.ProfileName == "" && g.model != nil && op.Kind != migconfig.OpSetMigMode {
		if p, ok := g.model.ProfileByID(op.Instance.Profile); ok {
			op.ProfileName = p.Name
		}
	}
	return op
}

// holdBack records a held-back op and logs it.
func (n *Node) holdBack(ctx context.Context, st *applyState, op migconfig.Op, uuid, reason string) {
	st.res.HeldBack = append(st.res.HeldBack, Held{Op: op, Reason: reason})
	n.logOp(ctx, op, uuid, "held", reason)
}

// done records a completed op and logs it.
func (n *Node) done(ctx context.Context, st *applyState, op migconfig.Op, uuid string) {
	st.res.Done = append(st.res.Done, op)
	n.logOp(ctx, op, uuid, "done", "")
}

// logOp writes the one structured log line of an op.
func (n *Node) logOp(ctx context.Context, op migconfig.Op, uuid, outcome, reason string) {
	level := slog.LevelInfo
	switch outcome {
	case "held", "skipped":
		level = slog.LevelWarn
	case "failed":
		level = slog.LevelError
	}
	if uuid == "" {
		uuid = op.GPUUUID
	}
	attrs := []slog.Attr{
		slog.String("op", op.Kind.String()),
		slog.Int("gpu", op.GPU),
		slog.String("uuid", uuid),
		slog.String("outcome", outcome),
	}
	switch op.Kind {
	case migconfig.OpSetMigMode:
		attrs = append(attrs, slog.Bool("enable", op.Enable))
	case migconfig.OpDestroyInstance, migconfig.OpCreateInstance:
		attrs = append(attrs,
			slog.Int("profileID", int(op.Instance.Profile)),
			slog.String("profile", op.ProfileName),
			slog.String("placement", op.Instance.Placement.String()))
		if op.Kind == migconfig.OpDestroyInstance {
			attrs = append(attrs, slog.Int("gi", op.Instance.GPUInstanceID))
		}
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	n.log.LogAttrs(ctx, level, "mig op", attrs...)
}

// applyMode runs an OpSetMigMode.
func (n *Node) applyMode(ctx context.Context, st *applyState, g *gpuDevice, op migconfig.Op) error {
	want := nvml.DEVICE_MIG_DISABLE
	if op.Enable {
		want = nvml.DEVICE_MIG_ENABLE
	}
	current, pending, ret := g.dev.GetMigMode()
	if ret != nvml.SUCCESS {
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "GetMigMode", Return: ret}
	}
	// hold holds the mode change back, and with it the GPU's remaining
	// ops, which assume the new mode.
	hold := func(reason string) {
		n.holdBack(ctx, st, op, g.uuid, reason)
		st.stopGPU(g.index, fmt.Sprintf("gpu %d: MIG mode change held back: %s", g.index, reason))
	}
	if current != want || pending != want {
		if held := st.held[g.index]; !op.Enable && len(held) > 0 {
			hold("blocked by busy instance " + heldList(held))
			return nil
		}
		if op.Busy && !st.opts.Force {
			hold(fmt.Sprintf("busy when planned: processes on gpu %d or its instances", g.index))
			return nil
		}
		activation, ret := g.dev.SetMigMode(want)
		if ret == nvml.ERROR_IN_USE {
			hold(fmt.Sprintf("in use: SetMigMode returned %s%s", ReturnName(ret), gpuPIDs(g)))
			return nil
		}
		if ret != nvml.SUCCESS {
			return &OpError{Op: op, GPUUUID: g.uuid, Call: "SetMigMode", Return: ret}
		}
		if activation != nvml.SUCCESS {
			n.log.LogAttrs(ctx, slog.LevelWarn, "MIG mode change not activated",
				slog.Int("gpu", g.index), slog.String("uuid", g.uuid),
				slog.String("activationStatus", ReturnName(activation)))
		}
		if current, pending, ret = g.dev.GetMigMode(); ret != nvml.SUCCESS {
			return &OpError{Op: op, GPUUUID: g.uuid, Call: "GetMigMode", Return: ret}
		}
		if activation == nvml.ERROR_IN_USE && current != want {
			reason := fmt.Sprintf("in use: SetMigMode activation status %s%s; MIG mode stays %s",
				ReturnName(activation), gpuPIDs(g), modeName(current))
			if pending == want {
				reason += fmt.Sprintf(", pending %s until the GPU is idle and reset", modeName(pending))
				st.res.PendingReset = append(st.res.PendingReset, g.index)
			}
			hold(reason)
			return nil
		}
		if current != want && pending != want {
			if activation != nvml.SUCCESS {
				return &OpError{Op: op, GPUUUID: g.uuid, Call: "SetMigMode (activation status)", Return: activation}
			}
			return &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("MIG mode is still %s after SetMigMode", modeName(current))}
		}
	}
	n.done(ctx, st, op, g.uuid)
	if current != want {
		st.res.PendingReset = append(st.res.PendingReset, g.index)
		st.stopGPU(g.index, fmt.Sprintf("gpu %d waits for a GPU reset: MIG mode is %s, pending %s", g.index, modeName(current), modeName(pending)))
		n.log.LogAttrs(ctx, slog.LevelWarn, "MIG mode change pending a GPU reset",
			slog.Int("gpu", g.index), slog.String("uuid", g.uuid),
			slog.String("current", modeName(current)), slog.String("pending", modeName(pending)))
	}
	return nil
}

// gpuPIDs names the processes on a GPU for a hold-back reason
// ("; pids 4242,4243 on the GPU"), or returns "" when there are none or
// they cannot be read.
func gpuPIDs(g *gpuDevice) string {
	procs, ret := g.dev.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS || len(procs) == 0 {
		return ""
	}
	pids := make([]uint32, len(procs))
	for i, p := range procs {
		pids[i] = p.Pid
	}
	return fmt.Sprintf("; pids %s on the GPU", formatPIDs(pids))
}

// modeName names an NVML MIG mode.
func modeName(mode int) string {
	if mode == nvml.DEVICE_MIG_ENABLE {
		return "enabled"
	}
	return "disabled"
}

// applyDestroy runs an OpDestroyInstance.
func (n *Node) applyDestroy(ctx context.Context, st *applyState, g *gpuDevice, op migconfig.Op) error {
	want := op.Instance
	gi, ret := g.dev.GetGpuInstanceById(want.GPUInstanceID)
	if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
		return &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("%w: GI %d does not exist", ErrNodeChanged, want.GPUInstanceID)}
	}
	if ret != nvml.SUCCESS {
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "GetGpuInstanceById", Return: ret}
	}
	info, ret := gi.GetInfo()
	if ret != nvml.SUCCESS {
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "GpuInstance.GetInfo", Return: ret}
	}
	have := migconfig.Placement{Start: int(info.Placement.Start), Size: int(info.Placement.Size)}
	if migconfig.ProfileID(info.ProfileId) != want.Profile || have != want.Placement {
		return &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("%w: GI %d is now profile %d at %s", ErrNodeChanged, want.GPUInstanceID, info.ProfileId, have)}
	}
	hold := func(reason string) {
		st.held[g.index] = append(st.held[g.index], heldInstance{gi: want.GPUInstanceID, placement: have})
		n.holdBack(ctx, st, op, g.uuid, reason)
	}
	if !st.opts.Force {
		pids, err := giProcesses(g, want.GPUInstanceID)
		if err != nil {
			return &OpError{Op: op, GPUUUID: g.uuid, Err: err}
		}
		if len(pids) > 0 {
			hold(fmt.Sprintf("busy: pids %s on GI %d at %s", formatPIDs(pids), want.GPUInstanceID, have))
			return nil
		}
		if op.Busy {
			hold(fmt.Sprintf("busy when planned: GI %d at %s", want.GPUInstanceID, have))
			return nil
		}
	}
	cis, err := computeInstances(gi)
	if err != nil {
		return &OpError{Op: op, GPUUUID: g.uuid, Err: err}
	}
	// A refusal part-way leaves the GPU instance with fewer compute
	// instances: say so. The next pass's Diff does not reuse it.
	for k, ci := range cis {
		ret := ci.handle.Destroy()
		progress := fmt.Sprintf("%d of %d compute instances destroyed", k, len(cis))
		if ret == nvml.ERROR_IN_USE {
			hold(fmt.Sprintf("in use: ComputeInstance.Destroy of CI %d on GI %d at %s returned %s; %s", ci.ID, want.GPUInstanceID, have, ReturnName(ret), progress))
			return nil
		}
		if ret != nvml.SUCCESS {
			return &OpError{Op: op, GPUUUID: g.uuid, Call: fmt.Sprintf("ComputeInstance.Destroy (CI %d; %s)", ci.ID, progress), Return: ret}
		}
	}
	ret = gi.Destroy()
	if ret == nvml.ERROR_IN_USE {
		hold(fmt.Sprintf("in use: GpuInstance.Destroy of GI %d at %s returned %s", want.GPUInstanceID, have, ReturnName(ret)))
		return nil
	}
	if ret != nvml.SUCCESS {
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "GpuInstance.Destroy", Return: ret}
	}
	n.done(ctx, st, op, g.uuid)
	return nil
}

// giProcesses returns the PIDs running on the MIG devices of GPU instance
// giID.
func giProcesses(g *gpuDevice, giID int) ([]uint32, error) {
	devices, err := readMigDevices(g)
	if err != nil {
		return nil, err
	}
	var pids []uint32
	for key, md := range devices {
		if key.gi == giID {
			pids = append(pids, md.pids...)
		}
	}
	return pids, nil
}

// formatPIDs joins PIDs with commas.
func formatPIDs(pids []uint32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.FormatUint(uint64(p), 10)
	}
	return strings.Join(s, ",")
}

// applyCreate runs an OpCreateInstance.
func (n *Node) applyCreate(ctx context.Context, st *applyState, g *gpuDevice, op migconfig.Op) error {
	want := op.Instance
	if !want.Placement.IsSet() {
		return &OpError{Op: op, GPUUUID: g.uuid, Err: errors.New("create without a placement: Tessera never lets the driver place instances")}
	}
	for _, h := range st.held[g.index] {
		if h.placement.Overlaps(want.Placement) {
			n.holdBack(ctx, st, op, g.uuid, fmt.Sprintf("blocked by busy instance GI %d at %s", h.gi, h.placement))
			return nil
		}
	}
	info, _, err := n.profileInfo(g, want.Profile)
	if err != nil {
		var ne *nvmlError
		if errors.As(err, &ne) {
			return &OpError{Op: op, GPUUUID: g.uuid, Call: ne.call, Return: ne.ret}
		}
		return &OpError{Op: op, GPUUUID: g.uuid, Err: err}
	}
	c := want.Compute.Normalize(int(info.SliceCount))
	ciIndex, ok := ciProfileIndex(c.Slices)
	if !ok || c.Count < 1 || c.Slices > int(info.SliceCount) {
		return &OpError{Op: op, GPUUUID: g.uuid, Err: fmt.Errorf("no compute-instance profile of %d slices in a %d-slice GPU instance", c.Slices, info.SliceCount)}
	}
	placement := nvml.GpuInstancePlacement{Start: uint32(want.Placement.Start), Size: uint32(want.Placement.Size)}
	gi, ret := g.dev.CreateGpuInstanceWithPlacement(&info, &placement)
	if held := st.held[g.index]; ret == nvml.ERROR_INSUFFICIENT_RESOURCES && len(held) > 0 {
		// The busy instances kept on this GPU may hold the profile's
		// last count or the media engines: wait for them.
		n.holdBack(ctx, st, op, g.uuid, fmt.Sprintf("blocked by busy instance %s: CreateGpuInstanceWithPlacement returned %s", heldList(held), ReturnName(ret)))
		return nil
	}
	if ret != nvml.SUCCESS {
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "CreateGpuInstanceWithPlacement", Return: ret}
	}
	ciInfo, ret := gi.GetComputeInstanceProfileInfo(ciIndex, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
	if ret != nvml.SUCCESS {
		n.rollback(ctx, g, gi, nil)
		return &OpError{Op: op, GPUUUID: g.uuid, Call: "GetComputeInstanceProfileInfo", Return: ret}
	}
	var created []nvml.ComputeInstance
	for range c.Count {
		ci, ret := gi.CreateComputeInstance(&ciInfo)
		if ret != nvml.SUCCESS {
			n.rollback(ctx, g, gi, created)
			return &OpError{Op: op, GPUUUID: g.uuid, Call: "CreateComputeInstance", Return: ret}
		}
		created = append(created, ci)
	}
	n.done(ctx, st, op, g.uuid)
	return nil
}

// rollback destroys a GPU instance whose compute instances could not all
// be created, so a failed create leaves no half-built instance behind.
// Failures are logged; the next Snapshot shows whatever remains.
func (n *Node) rollback(ctx context.Context, g *gpuDevice, gi nvml.GpuInstance, cis []nvml.ComputeInstance) {
	for _, ci := range cis {
		if ret := ci.Destroy(); ret != nvml.SUCCESS {
			n.log.LogAttrs(ctx, slog.LevelError, "rollback: destroying compute instance failed",
				slog.Int("gpu", g.index), slog.String("uuid", g.uuid), slog.String("return", ReturnName(ret)))
		}
	}
	if ret := gi.Destroy(); ret != nvml.SUCCESS {
		n.log.LogAttrs(ctx, slog.LevelError, "rollback: destroying GPU instance failed",
			slog.Int("gpu", g.index), slog.String("uuid", g.uuid), slog.String("return", ReturnName(ret)))
	}
}
