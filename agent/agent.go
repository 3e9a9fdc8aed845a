package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/migconfig"
)

// Policy says what the agent does when a layout change needs to destroy a
// MIG instance that has processes on it.
type Policy string

// The policies.
const (
	// PolicyWait holds the busy part back, applies the rest, and retries
	// until the work ends or BusyTimeout passes (then the state is failed,
	// and the agent keeps retrying at every resync).
	PolicyWait Policy = "wait"
	// PolicyFail refuses the whole change while anything it needs is busy:
	// nothing is changed and the state is failed.
	PolicyFail Policy = "fail"
	// PolicyForce destroys busy instances anyway (NVML itself still
	// refuses while processes run on a compute instance).
	PolicyForce Policy = "force"
)

// ParsePolicy parses "wait", "fail" or "force".
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyWait, PolicyFail, PolicyForce:
		return p, nil
	}
	return "", fmt.Errorf("unknown busy policy %q: want wait, fail or force", s)
}

// Options configures an Agent. Zero fields take the defaults documented on
// each.
type Options struct {
	// Catalog is the catalog to plan with; nil means the node's own
	// (gpu.Node.Catalog).
	Catalog *migconfig.Catalog
	// NodeName is the node's name, for the Inventory and logs.
	NodeName string
	// Policy is the busy policy; default PolicyWait.
	Policy Policy
	// BusyTimeout is how long PolicyWait waits for busy instances before
	// the state turns failed; default 10 minutes.
	BusyTimeout time.Duration
	// BusyPoll is how often held-back work is retried; default 5 seconds.
	BusyPoll time.Duration
	// Resync is the period of passes when nothing changes; default 1 minute.
	Resync time.Duration
	// BackoffMin and BackoffMax bound the capped exponential backoff after
	// errors; defaults 1 second and 5 minutes.
	BackoffMin, BackoffMax time.Duration
	// Hooks are commands run before and after every apply that changes
	// something.
	Hooks Hooks
	// Logger receives the agent's structured logs; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Policy == "" {
		o.Policy = PolicyWait
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 10 * time.Minute
	}
	if o.BusyPoll <= 0 {
		o.BusyPoll = 5 * time.Second
	}
	if o.Resync <= 0 {
		o.Resync = time.Minute
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Agent reconciles one node's MIG layout with the desired state from a
// Source and publishes the node's Inventory. It is level-triggered: every
// pass observes the GPUs, compares them with the desired layout and applies
// the difference, remembering nothing of earlier passes that the GPUs do
// not show, so a restart at any point converges on the next pass.
type Agent struct {
	node *gpu.Node
	src  Source
	opts Options
	cat  *migconfig.Catalog
	hub  *hub
	kick chan struct{}

	mu          sync.Mutex
	lastPass    time.Time // when the last pass ended
	passStarted time.Time // when the pass in progress began; zero between passes
	running     bool

	allocated map[string]bool   // device IDs the kubelet allocated to pods; guarded by mu
	unhealthy map[string]string // device ID → why it is unhealthy; guarded by mu

	// Owned by the Run goroutine.
	desired     *Desired
	failures    int       // consecutive failed passes, for the backoff
	heldSince   time.Time // when the current hold-back began
	lastApply   *ApplyRecord
	postPending bool // the last post-apply hook failed; run it again
}

// New returns an agent for node with the desired state from src. Run
// starts it.
func New(node *gpu.Node, src Source, opts Options) *Agent {
	opts = opts.withDefaults()
	cat := opts.Catalog
	if cat == nil {
		cat = node.Catalog()
	}
	return &Agent{node: node, src: src, opts: opts, cat: cat, hub: newHub(), kick: make(chan struct{}, 1)}
}

// Inventory returns the latest published Inventory (Version 0 before the
// first pass).
func (a *Agent) Inventory() Inventory { return a.hub.current() }

// Subscribe returns a channel that receives the latest Inventory and every
// later version, and a function that ends the subscription. A subscriber
// that reads slowly misses intermediate versions but never blocks the
// agent.
func (a *Agent) Subscribe() (<-chan Inventory, func()) { return a.hub.subscribe() }

// Trigger asks for a pass as soon as possible (on SIGHUP, or when something
// the GPUs do not show changed). It never blocks.
func (a *Agent) Trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// SetAllocated tells the agent which devices (MIG device or GPU UUIDs) the
// kubelet has allocated to pods, from its pod-resources API. Their
// instances count as busy, exactly like instances with processes: a pod
// that holds a slice but runs nothing on it yet is never re-laid out from
// under it (unless the policy is force). A change triggers a pass.
func (a *Agent) SetAllocated(ids []string) {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	a.mu.Lock()
	same := maps.Equal(set, a.allocated)
	a.allocated = set
	a.mu.Unlock()
	if !same {
		a.Trigger()
	}
}

// SetUnhealthy tells the agent which devices (MIG device or GPU UUIDs)
// are unhealthy and why, as the device plugin's health watcher finds from
// NVML's Xid events; the Inventory's slices show it. A change triggers a
// pass.
func (a *Agent) SetUnhealthy(reasons map[string]string) {
	set := maps.Clone(reasons)
	a.mu.Lock()
	same := maps.Equal(set, a.unhealthy)
	a.unhealthy = set
	a.mu.Unlock()
	if !same {
		a.Trigger()
	}
}

// health returns the current unhealthy set.
func (a *Agent) health() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unhealthy
}

// markAllocated marks the observed instances that hold an allocated device
// busy, and returns the allocated set.
func (a *Agent) markAllocated(state *migconfig.NodeState) map[string]bool {
	a.mu.Lock()
	allocated := a.allocated
	a.mu.Unlock()
	if len(allocated) == 0 {
		return nil
	}
	for gi := range state.GPUs {
		g := &state.GPUs[gi]
		g.Allocated = allocated[g.UUID]
		for ii := range g.Instances {
			in := &g.Instances[ii]
			for _, ci := range in.ComputeInstances {
				if allocated[ci.UUID] {
					in.Busy = true
				}
			}
		}
	}
	return allocated
}

// Healthy reports whether Run is running and has completed a pass within
// maxAge. A pass in progress counts as healthy for maxAge plus twice the
// hook timeout (a pass may run both hooks), so a long apply is not taken
// for a hung agent, while an NVML call that never returns eventually is.
func (a *Agent) Healthy(maxAge time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	if !a.running {
		return errors.New("the reconciler is not running")
	}
	if !a.passStarted.IsZero() {
		if took := now.Sub(a.passStarted); took > maxAge+2*a.opts.Hooks.timeout() {
			return fmt.Errorf("the reconcile pass in progress started %s ago", took.Round(time.Second))
		}
		return nil
	}
	switch {
	case a.lastPass.IsZero():
		return errors.New("no reconcile pass has completed yet")
	case now.Sub(a.lastPass) > maxAge:
		return fmt.Errorf("the last reconcile pass completed %s ago", now.Sub(a.lastPass).Round(time.Second))
	}
	return nil
}

// Run reconciles until ctx is done, then returns nil; it returns an error
// only when the source fails for good. It passes once at start, then on
// every new desired state, every Trigger, every Resync, after errors with
// capped exponential backoff, and every BusyPoll while work is held back.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("agent is already running")
	}
	a.running = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := make(chan Desired)
	srcDone := make(chan error, 1)
	go func() { srcDone <- a.src.Run(ctx, updates) }()
	var reportDone chan struct{}
	if r, ok := a.src.(Reporter); ok {
		reportDone = make(chan struct{})
		go func() { defer close(reportDone); a.report(ctx, r) }()
	}
	defer func() {
		cancel()
		if reportDone != nil {
			<-reportDone
		}
	}()

	timer := time.NewTimer(0) // the first pass runs at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-srcDone:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("desired-state source: %w", err)
		case d := <-updates:
			a.opts.Logger.Info("desired state", "source", d.Source, "config", d.Config, "explicit", d.Explicit != nil, "revision", d.Revision, "error", errString(d.Err))
			if a.desired == nil || a.desired.Revision != d.Revision || d.Revision == "" {
				a.heldSince = time.Time{}
			}
			a.desired = &d
		case <-a.kick:
		case <-timer.C:
		}
		next := a.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// report hands every new Inventory version to r, retrying a failed report
// with backoff while no newer version arrives.
func (a *Agent) report(ctx context.Context, r Reporter) {
	ch, unsubscribe := a.hub.subscribe()
	defer unsubscribe()
	var pending *Inventory
	failures := 0
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case inv := <-ch:
			pending = &inv
			failures = 0
		case <-retry.C:
		}
		if pending == nil {
			continue
		}
		if err := r.Report(ctx, *pending); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			d := a.backoff(failures)
			a.opts.Logger.Warn("report state", "error", err, "retry_in", d)
			retry.Reset(d)
			continue
		}
		pending = nil
	}
}

// backoff is the capped exponential delay after n consecutive failures.
func (a *Agent) backoff(n int) time.Duration {
	d := a.opts.BackoffMin
	for i := 1; i < n && d < a.opts.BackoffMax; i++ {
		d *= 2
	}
	return min(d, a.opts.BackoffMax)
}

// pass is one reconcile pass. It publishes the resulting Inventory and
// returns the delay until the next pass.
func (a *Agent) pass(ctx context.Context) time.Duration {
	log := a.opts.Logger
	inv := Inventory{Node: a.opts.NodeName, LastApply: a.lastApply}
	a.mu.Lock()
	a.passStarted = a.opts.Now()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.lastPass, a.passStarted = a.opts.Now(), time.Time{}
		a.mu.Unlock()
	}()

	failed := func(reason string, err error) time.Duration {
		if ctx.Err() != nil {
			// Stopping: an interrupted pass is not a failure to report.
			return 0
		}
		a.failures++
		inv.State, inv.Reason = StateFailed, reason
		if err != nil {
			inv.LastError = err.Error()
		}
		a.publish(inv)
		d := a.backoff(a.failures)
		log.Error("reconcile failed", "reason", reason, "error", errString(err), "retry_in", d)
		return d
	}

	state, err := a.node.Snapshot(ctx)
	inv.ObservedAt = a.opts.Now()
	if err != nil {
		return failed("cannot read the GPUs", fmt.Errorf("snapshot: %w", err))
	}
	inv.Observed = true
	allocated := a.markAllocated(&state)
	inv.Notes = hopperNotes(a.cat, state)
	inv.GPUs = buildGPUs(a.cat, state, nil, allocated, a.health())

	d := a.desired
	if d == nil || d.empty() {
		// Nothing desired: observe and publish only.
		if d != nil {
			inv.Desired = d.summary(nil)
		}
		a.failures, a.heldSince = 0, time.Time{}
		a.publish(inv)
		return a.opts.Resync
	}
	inv.Desired = d.summary(nil)
	if d.Err != nil {
		// A bad desired state changes nothing. The source sends a new
		// one when it is fixed; until then, report and keep observing.
		inv.State, inv.Reason, inv.LastError = StateFailed, "invalid desired state", d.Err.Error()
		a.heldSince = time.Time{}
		a.publish(inv)
		log.Error("invalid desired state", "source", d.Source, "error", d.Err)
		return a.opts.Resync
	}
	layouts, explicit, notes, err := d.resolve(a.cat, state)
	inv.Desired = d.summary(explicit)
	inv.Notes = append(inv.Notes, notes...)
	if err != nil {
		inv.State, inv.Reason, inv.LastError = StateFailed, "the desired layout cannot be applied to this node", err.Error()
		a.heldSince = time.Time{}
		a.publish(inv)
		log.Error("desired layout refused before any change", "source", d.Source, "config", d.Config, "error", err)
		return a.opts.Resync
	}
	inv.GPUs = buildGPUs(a.cat, state, layouts, allocated, a.health())
	ops, err := migconfig.DiffNode(a.cat, state, layouts)
	if err != nil {
		inv.State, inv.Reason, inv.LastError = StateFailed, "the desired layout cannot be applied to this node", err.Error()
		a.heldSince = time.Time{}
		a.publish(inv)
		return a.opts.Resync
	}

	if len(ops) == 0 && a.postPending {
		if err := a.opts.Hooks.run(ctx, log, HookPostApply, a.hookEnv(d, 0, StateSuccess)); err != nil {
			return failed("post-apply hook failed", err)
		}
		a.postPending = false
	}
	if len(ops) == 0 {
		return a.settled(inv)
	}

	run, held := migconfig.HoldBack(ops)
	force := a.opts.Policy == PolicyForce
	if force {
		run, held = ops, nil
	}
	if a.opts.Policy == PolicyFail && len(held) > 0 {
		inv.HeldBack = heldOps(held, "busy, and the busy policy is fail")
		a.heldSince = time.Time{}
		return failed(fmt.Sprintf("%d operations need busy instances destroyed; policy fail changes nothing", len(held)), nil)
	}

	var res gpu.ApplyResult
	var applyErr error
	if len(run) == 0 {
		// Everything left waits for busy instances: no NVML call, no hooks.
		res.HeldBack = heldOps(held, "busy: processes on the instance or GPU, or allocated to a pod")
	} else {
		// Pending first, as mig-manager does: the hook may take minutes.
		inv.State, inv.Reason = StatePending, fmt.Sprintf("applying %d operations", len(ops))
		a.publish(inv)
		if err := a.opts.Hooks.run(ctx, log, HookPreApply, a.hookEnv(d, len(ops), StatePending)); err != nil {
			return failed("pre-apply hook failed; nothing was changed", err)
		}
		log.Info("applying", "operations", len(ops), "runnable", len(run), "held", len(held), "policy", a.opts.Policy)
		res, applyErr = a.node.Apply(ctx, ops, gpu.ApplyOptions{Force: force})
		rec := &ApplyRecord{At: a.opts.Now(), Planned: len(ops), Result: res}
		if applyErr != nil {
			rec.Error = applyErr.Error()
		}
		a.lastApply, inv.LastApply = rec, rec
		result := StateSuccess
		if applyErr != nil {
			result = StateFailed
		} else if len(res.HeldBack) > 0 || len(res.PendingReset) > 0 {
			result = StatePending
		}
		if err := a.opts.Hooks.run(ctx, log, HookPostApply, a.hookEnv(d, len(ops), result)); err != nil {
			a.postPending = true
			applyErr = errors.Join(applyErr, err)
		} else {
			a.postPending = false
		}
		log.Info("applied", "done", len(res.Done), "held", len(res.HeldBack), "failed", len(res.Failed), "skipped", len(res.Skipped), "pending_reset", res.PendingReset, "error", errString(applyErr))
	}

	// Observe again: what the GPUs show now is what we publish.
	if after, err := a.node.Snapshot(ctx); err == nil {
		state = after
		allocated = a.markAllocated(&state)
		inv.ObservedAt = a.opts.Now()
		inv.GPUs = buildGPUs(a.cat, state, layouts, allocated, a.health())
		inv.Notes = append(hopperNotes(a.cat, state), notes...)
	} else if applyErr == nil {
		applyErr = fmt.Errorf("snapshot after apply: %w", err)
	}
	inv.HeldBack, inv.PendingReset = res.HeldBack, res.PendingReset
	if applyErr != nil {
		a.heldSince = time.Time{}
		return failed("apply failed; the next pass converges from what the GPUs show", applyErr)
	}
	if busy := heldForBusy(res); len(busy) > 0 && a.opts.Policy == PolicyFail {
		// Work started after the plan: what could run has run, the rest
		// waits; under fail that is a failure, not a wait.
		a.heldSince = time.Time{}
		return failed(fmt.Sprintf("%d operations were held back by instances that became busy during the apply; policy fail does not wait", len(busy)), nil)
	} else if len(busy) > 0 {
		now := a.opts.Now()
		if a.heldSince.IsZero() {
			a.heldSince = now
		}
		inv.HeldSince = a.heldSince
		a.failures = 0
		if now.Sub(a.heldSince) >= a.opts.BusyTimeout {
			inv.State = StateFailed
			// No elapsed time in the reason: it is written to the node,
			// which should not change at every retry.
			inv.Reason = fmt.Sprintf("%d operations held back by busy instances longer than the busy timeout (%s); retrying every %s", len(busy), a.opts.BusyTimeout, a.opts.Resync)
			a.publish(inv)
			return a.opts.Resync
		}
		inv.State = StatePending
		inv.Reason = fmt.Sprintf("%d operations held back by busy instances, waiting up to %s", len(busy), a.opts.BusyTimeout)
		a.publish(inv)
		return a.opts.BusyPoll
	}
	a.heldSince = time.Time{}
	if len(inv.PendingReset) > 0 {
		inv.State = StatePending
		inv.Reason = fmt.Sprintf("GPUs %s need a GPU reset or a reboot for their MIG mode change to take effect; the agent never resets a GPU", joinInts(inv.PendingReset))
		a.failures = 0
		a.publish(inv)
		return a.opts.Resync
	}
	if !inv.InSync() {
		return failed("the GPUs do not show the desired layout after the apply", errors.New(outOfSync(inv)))
	}
	return a.settled(inv)
}

// settled publishes a pass that found the node in sync.
func (a *Agent) settled(inv Inventory) time.Duration {
	a.failures, a.heldSince = 0, time.Time{}
	inv.State, inv.Reason = StateSuccess, ""
	if inv.LastApply != nil && len(inv.LastApply.Result.HeldBack) > 0 {
		// An earlier result is history now; keep the record, not the hold.
		inv.HeldBack = nil
	}
	a.publish(inv)
	return a.opts.Resync
}

// publish stores inv as the latest Inventory and logs a state change.
func (a *Agent) publish(inv Inventory) {
	prev := a.hub.current()
	v, changed := a.hub.publish(inv)
	if changed && (prev.State != v.State || prev.Reason != v.Reason) {
		a.opts.Logger.Info("state", "state", string(v.State), "reason", v.Reason, "version", v.Version)
	}
}

// hookEnv is the environment a hook gets on top of the agent's own.
func (a *Agent) hookEnv(d *Desired, ops int, result State) []string {
	return []string{
		"TESSERA_NODE=" + a.opts.NodeName,
		"TESSERA_SOURCE=" + d.Source,
		"TESSERA_CONFIG=" + d.Config,
		fmt.Sprintf("TESSERA_OPERATIONS=%d", ops),
		"TESSERA_RESULT=" + string(result),
	}
}

// heldForBusy returns the held-back ops of an apply that wait for busy
// instances, leaving out those of GPUs that wait for a reset.
func heldForBusy(res gpu.ApplyResult) []gpu.Held {
	var out []gpu.Held
	for _, h := range res.HeldBack {
		if !slices.Contains(res.PendingReset, h.Op.GPU) {
			out = append(out, h)
		}
	}
	return out
}

// heldOps turns ops into Held entries with one reason.
func heldOps(ops []migconfig.Op, reason string) []gpu.Held {
	out := make([]gpu.Held, len(ops))
	for i, op := range ops {
		out[i] = gpu.Held{Op: op, Reason: reason}
	}
	return out
}

// hopperNotes says, for each GPU whose MIG mode does not survive a reboot,
// that the agent re-applies it after one.
func hopperNotes(cat *migconfig.Catalog, node migconfig.NodeState) []string {
	var idx []int
	for _, g := range node.GPUs {
		if m, ok := cat.Lookup(g); ok && g.Mig.Current && !m.Architecture.ModeChangeNeedsReset() {
			idx = append(idx, g.Index)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("GPUs %s: MIG mode takes effect at once but does not survive a reboot; the agent enables it again at start", joinInts(idx))}
}

// outOfSync lists the selected GPUs that lack their desired layout.
func outOfSync(inv Inventory) string {
	var parts []string
	for _, g := range inv.GPUs {
		if !g.InSync {
			parts = append(parts, fmt.Sprintf("gpu %d has %s, wants %s", g.Index, g.Applied, g.Desired))
		}
	}
	return strings.Join(parts, "; ")
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
