package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// testLayouts is a layout file with configs the tests switch between, for
// H100-80GB and A100-80GB GPUs.
const testLayouts = `version: v1
mig-configs:
  all-1g:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  all-balanced:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 2
        "2g.20gb": 1
        "3g.40gb": 1
  all-7g:
    - devices: all
      mig-enabled: true
      mig-devices:
        "7g.80gb": 1
  gpu0-3g:
    - devices: [0]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
  impossible:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 8
  all-disabled:
    - devices: all
      mig-enabled: false
`

// chanSource is a Source fed by the test.
type chanSource chan Desired

func (c chanSource) Run(ctx context.Context, out chan<- Desired) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-c:
			select {
			case out <- d:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// testFile parses testLayouts.
func testFile(t *testing.T) *migconfig.File {
	t.Helper()
	f, err := migconfig.ParseFile("layouts.yaml", []byte(testLayouts))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// named is the desired state "config of testLayouts".
func named(t *testing.T, config string) Desired {
	return Desired{Source: "test", Revision: config, File: testFile(t), Config: config}
}

// fastOptions keeps every period short so tests run in milliseconds.
func fastOptions() Options {
	return Options{
		NodeName:    "node-1",
		BusyPoll:    10 * time.Millisecond,
		BusyTimeout: time.Minute,
		Resync:      time.Minute,
		BackoffMin:  5 * time.Millisecond,
		BackoffMax:  20 * time.Millisecond,
	}
}

// simNode returns a simulated node of count GPUs of model and a gpu.Node
// on it.
func simNode(t *testing.T, model string, count int, opts ...sim.Option) (*sim.Node, *gpu.Node) {
	t.Helper()
	cat := migconfig.Builtin()
	m, ok := cat.ByKey(model)
	if !ok {
		t.Fatalf("no model %s", model)
	}
	s := sim.New(m, count, opts...)
	return s, openNode(t, s)
}

func openNode(t *testing.T, lib nvml.Interface) *gpu.Node {
	t.Helper()
	n, err := gpu.Open(context.Background(), lib, gpu.Options{Catalog: migconfig.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// running starts a, and stops it when the test ends.
func running(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitFor waits until an Inventory satisfies ok and returns it.
func waitFor(t *testing.T, a *Agent, what string, ok func(Inventory) bool) Inventory {
	t.Helper()
	ch, stop := a.Subscribe()
	defer stop()
	deadline := time.After(10 * time.Second)
	var last Inventory
	for {
		select {
		case inv := <-ch:
			last = inv
			if ok(inv) {
				return inv
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last inventory: state %q reason %q error %q held %d", what, last.State, last.Reason, last.LastError, len(last.HeldBack))
		}
	}
}

func stateIs(s State, revision string) func(Inventory) bool {
	return func(inv Inventory) bool {
		return inv.State == s && inv.Desired != nil && inv.Desired.Revision == revision
	}
}

// profiles lists each GPU's instances as profile names in placement order.
func profiles(t *testing.T, n *gpu.Node) [][]string {
	t.Helper()
	st, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cat := migconfig.Builtin()
	var out [][]string
	for _, g := range st.GPUs {
		m, _ := cat.Lookup(g)
		var names []string
		for _, in := range g.Instances {
			p, _ := m.ProfileByID(in.Profile)
			names = append(names, p.Name)
		}
		out = append(out, names)
	}
	return out
}

func count(names []string, name string) int {
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	return n
}

func TestAgentAppliesAndFollowsChanges(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)

	// Nothing desired: the agent only observes.
	inv := waitFor(t, a, "first inventory", func(inv Inventory) bool { return inv.Version > 0 })
	if inv.State != StateNone || len(inv.GPUs) != 2 || s.MutatingCalls() != 0 {
		t.Fatalf("before any desired state: state %q, %d GPUs, %d mutating calls", inv.State, len(inv.GPUs), s.MutatingCalls())
	}

	src <- named(t, "all-1g")
	inv = waitFor(t, a, "all-1g applied", stateIs(StateSuccess, "all-1g"))
	if got := len(inv.Slices()); got != 14 {
		t.Errorf("slices after all-1g = %d, want 14", got)
	}
	for _, sl := range inv.Slices() {
		if sl.Profile != "1g.10gb" || !strings.HasPrefix(sl.UUID, "MIG-") || !sl.Healthy {
			t.Errorf("slice %+v", sl)
		}
	}
	if !inv.InSync() || inv.Reason != "" || inv.LastApply == nil || len(inv.LastApply.Result.Done) == 0 {
		t.Errorf("inventory after apply: in sync %v, reason %q, last apply %+v", inv.InSync(), inv.Reason, inv.LastApply)
	}

	src <- named(t, "all-balanced")
	waitFor(t, a, "all-balanced applied", stateIs(StateSuccess, "all-balanced"))
	for i, names := range profiles(t, node) {
		if count(names, "1g.10gb") != 2 || count(names, "2g.20gb") != 1 || count(names, "3g.40gb") != 1 {
			t.Errorf("gpu %d has %v, want all-balanced", i, names)
		}
	}
}

func TestAgentBusyWaitHoldsBackThenApplies(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "all-7g", stateIs(StateSuccess, "all-7g"))

	// A process on GPU 0's slice: changing GPU 0 must wait, GPU 1 goes on.
	pid, err := s.StartProcess(inv.GPUs[0].Slices[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	src <- named(t, "all-1g")
	inv = waitFor(t, a, "held back", func(inv Inventory) bool {
		return inv.State == StatePending && len(inv.HeldBack) > 0 && inv.Desired.Revision == "all-1g"
	})
	if inv.HeldSince.IsZero() || !strings.Contains(inv.Reason, "held back") {
		t.Errorf("held inventory: since %v reason %q", inv.HeldSince, inv.Reason)
	}
	got := profiles(t, node)
	if len(got[0]) != 1 || got[0][0] != "7g.80gb" {
		t.Errorf("busy gpu 0 changed: %v", got[0])
	}
	if count(got[1], "1g.10gb") != 7 {
		t.Errorf("idle gpu 1 not applied while gpu 0 waits: %v", got[1])
	}

	// The work ends: the next poll applies the rest.
	if err := s.StopProcess(pid); err != nil {
		t.Fatal(err)
	}
	inv = waitFor(t, a, "applied after the process ended", stateIs(StateSuccess, "all-1g"))
	if len(inv.HeldBack) != 0 || count(profiles(t, node)[0], "1g.10gb") != 7 {
		t.Errorf("after the process ended: held %v, gpu 0 %v", inv.HeldBack, profiles(t, node)[0])
	}
}

func TestAgentBusyTimeoutFails(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.BusyTimeout = 30 * time.Millisecond
	a := New(node, src, opts)
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "all-7g", stateIs(StateSuccess, "all-7g"))
	if _, err := s.StartProcess(inv.GPUs[0].Slices[0].UUID); err != nil {
		t.Fatal(err)
	}
	src <- named(t, "all-1g")
	inv = waitFor(t, a, "failed after the busy timeout", stateIs(StateFailed, "all-1g"))
	if !strings.Contains(inv.Reason, "busy timeout") || len(inv.HeldBack) == 0 {
		t.Errorf("reason %q, held %d", inv.Reason, len(inv.HeldBack))
	}
}

func TestAgentBusyPolicyFailChangesNothing(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.Policy = PolicyFail
	a := New(node, src, opts)
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "all-7g", stateIs(StateSuccess, "all-7g"))
	if _, err := s.StartProcess(inv.GPUs[0].Slices[0].UUID); err != nil {
		t.Fatal(err)
	}
	s.ResetCounters()
	src <- named(t, "all-1g")
	inv = waitFor(t, a, "failed", stateIs(StateFailed, "all-1g"))
	if !strings.Contains(inv.Reason, "policy fail") || len(inv.HeldBack) == 0 {
		t.Errorf("reason %q held %d", inv.Reason, len(inv.HeldBack))
	}
	if n := s.MutatingCalls(); n != 0 {
		t.Errorf("policy fail made %d mutating NVML calls, want 0 (not even on the idle GPU)", n)
	}
}

func TestAgentNVMLFailureMidApplyThenConverges(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.BackoffMin, opts.BackoffMax = 50*time.Millisecond, 50*time.Millisecond
	a := New(node, src, opts)
	running(t, a)
	// The third instance created fails; the rest of that GPU is skipped.
	s.InjectFault(sim.Fault{Call: "CreateGpuInstanceWithPlacement", Nth: 3, Return: nvml.ERROR_UNKNOWN})
	src <- named(t, "all-1g")
	inv := waitFor(t, a, "failed", stateIs(StateFailed, "all-1g"))
	if !strings.Contains(inv.LastError, "CreateGpuInstanceWithPlacement") || !strings.Contains(inv.LastError, "ERROR_UNKNOWN") {
		t.Errorf("last error %q does not name the NVML call and code", inv.LastError)
	}
	if inv.LastApply == nil || len(inv.LastApply.Result.Failed) != 1 {
		t.Errorf("last apply %+v", inv.LastApply)
	}
	// A later pass (after the backoff) converges.
	inv = waitFor(t, a, "converged", stateIs(StateSuccess, "all-1g"))
	if inv.LastError != "" || len(inv.Slices()) != 14 {
		t.Errorf("after converging: error %q, %d slices", inv.LastError, len(inv.Slices()))
	}
}

func TestAgentRefusesInvalidDesiredBeforeAnyNVMLCall(t *testing.T) {
	tests := []struct {
		name    string
		desired func(t *testing.T) Desired
		want    string
	}{
		{"layout that does not fit", func(t *testing.T) Desired { return named(t, "impossible") }, "1g.10gb"},
		{"config the file lacks", func(t *testing.T) Desired {
			return Desired{Source: "test", Revision: "x", File: testFile(t), Config: "all-2g"}
		}, "all-2g"},
		{"source error", func(*testing.T) Desired {
			return Desired{Source: "test", Revision: "bad", Config: "all-1g", Err: errors.New("layouts.yaml:3:5: bad indentation")}
		}, "bad indentation"},
		{"explicit layout naming a missing GPU", func(t *testing.T) Desired {
			f, err := ParseExplicit("annotation", `[{"devices":[5],"mig-enabled":true,"mig-devices":{"7g.80gb":1}}]`)
			if err != nil {
				t.Fatal(err)
			}
			return Desired{Source: "test", Revision: "e", Explicit: f}
		}, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, node := simNode(t, "h100-80gb", 2)
			src := make(chanSource, 1)
			a := New(node, src, fastOptions())
			running(t, a)
			d := tt.desired(t)
			src <- d
			inv := waitFor(t, a, "failed", stateIs(StateFailed, d.Revision))
			if !strings.Contains(inv.LastError, tt.want) {
				t.Errorf("last error %q does not mention %q", inv.LastError, tt.want)
			}
			if n := s.MutatingCalls(); n != 0 {
				t.Errorf("%d mutating NVML calls, want 0", n)
			}
		})
	}
}

func TestAgentExplicitLayoutWinsOverConfig(t *testing.T) {
	_, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	ex, err := ParseExplicit("annotation", `[{"devices":[1],"mig-enabled":true,"mig-devices":{"3g.40gb":1,"1g.10gb":3},"placements":{"3g.40gb":[4],"1g.10gb":[0,1,2]}}]`)
	if err != nil {
		t.Fatal(err)
	}
	d := named(t, "all-7g")
	d.Explicit, d.Revision = ex, "both"
	src <- d
	inv := waitFor(t, a, "applied", stateIs(StateSuccess, "both"))
	if got := inv.Desired.Explicit; len(got) != 1 || got[0] != 1 {
		t.Errorf("explicit GPUs %v, want [1]", got)
	}
	got := profiles(t, node)
	if len(got[0]) != 1 || got[0][0] != "7g.80gb" {
		t.Errorf("gpu 0 %v, want the config's 7g.80gb", got[0])
	}
	if strings.Join(got[1], ",") != "1g.10gb,1g.10gb,1g.10gb,3g.40gb" {
		t.Errorf("gpu 1 %v, want the explicit layout", got[1])
	}
	if p := inv.GPUs[1].Slices[3].Placement; p.Start != 4 {
		t.Errorf("3g.40gb at %v, want start 4", p)
	}
}

func TestAgentAmpereModeChangeWaitsForReset(t *testing.T) {
	s, node := simNode(t, "a100-80gb", 2) // MIG disabled, no automatic reset
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	src <- named(t, "all-1g")
	inv := waitFor(t, a, "pending reset", func(inv Inventory) bool {
		return inv.State == StatePending && len(inv.PendingReset) == 2
	})
	if !strings.Contains(inv.Reason, "reset") || !inv.GPUs[0].MigPending || inv.GPUs[0].MigEnabled {
		t.Errorf("reason %q, gpu 0 mig %v pending %v", inv.Reason, inv.GPUs[0].MigEnabled, inv.GPUs[0].MigPending)
	}
	// The operator resets the GPUs; the next pass finishes the layout.
	for i := range 2 {
		if err := s.ResetGPU(i); err != nil {
			t.Fatal(err)
		}
	}
	a.Trigger()
	inv = waitFor(t, a, "applied after reset", stateIs(StateSuccess, "all-1g"))
	if len(inv.Slices()) != 14 {
		t.Errorf("%d slices, want 14", len(inv.Slices()))
	}
}

func TestAgentHopperReappliesAfterReboot(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	src <- named(t, "all-balanced")
	inv := waitFor(t, a, "applied", stateIs(StateSuccess, "all-balanced"))
	if len(inv.Notes) == 0 || !strings.Contains(inv.Notes[0], "reboot") {
		t.Errorf("notes %q: want the Hopper reboot note", inv.Notes)
	}
	s.Reboot() // MIG mode is gone on Hopper
	a.Trigger()
	waitFor(t, a, "re-applied", func(inv Inventory) bool {
		return inv.State == StateSuccess && len(inv.Slices()) == 4
	})
}

func TestAgentHooks(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	_, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.Hooks = Hooks{
		PreApply:  `echo "pre $TESSERA_CONFIG $TESSERA_OPERATIONS $TESSERA_RESULT" >> ` + log,
		PostApply: `echo "post $TESSERA_HOOK $TESSERA_RESULT" >> ` + log,
	}
	a := New(node, src, opts)
	running(t, a)
	src <- named(t, "all-7g")
	waitFor(t, a, "applied", stateIs(StateSuccess, "all-7g"))
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "pre all-7g 2 pending\npost post-apply success\n"; got != want {
		t.Errorf("hook log %q, want %q", got, want)
	}
}

func TestAgentFailingPreHookChangesNothing(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.Hooks = Hooks{PreApply: `echo "cannot stop triton" >&2; exit 7`}
	a := New(node, src, opts)
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "failed", stateIs(StateFailed, "all-7g"))
	if !strings.Contains(inv.LastError, "exit status 7") || !strings.Contains(inv.LastError, "cannot stop triton") {
		t.Errorf("last error %q", inv.LastError)
	}
	if n := s.MutatingCalls(); n != 0 {
		t.Errorf("%d mutating calls after a failed pre-apply hook", n)
	}
}

func TestAgentFailingPostHookRetriedUntilItSucceeds(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "ok")
	_, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	opts := fastOptions()
	opts.Hooks = Hooks{PostApply: `test -e ` + flag}
	a := New(node, src, opts)
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "failed post hook", stateIs(StateFailed, "all-7g"))
	if !strings.Contains(inv.LastError, "post-apply hook") {
		t.Errorf("last error %q", inv.LastError)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "success once the hook passes", stateIs(StateSuccess, "all-7g"))
}

func TestParsePolicy(t *testing.T) {
	for _, s := range []string{"wait", "fail", "force"} {
		if p, err := ParsePolicy(s); err != nil || string(p) != s {
			t.Errorf("ParsePolicy(%q) = %q, %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("later"); err == nil || !strings.Contains(err.Error(), "wait, fail or force") {
		t.Errorf("ParsePolicy(later) error %v", err)
	}
}

func TestBackoffIsCappedExponential(t *testing.T) {
	a := New(nil, nil, Options{BackoffMin: time.Second, BackoffMax: 10 * time.Second, Catalog: migconfig.Builtin()})
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := a.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

func TestAgentKeepsSlicesAllocatedToPods(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	src <- named(t, "all-7g")
	inv := waitFor(t, a, "all-7g", stateIs(StateSuccess, "all-7g"))

	// The kubelet gave GPU 0's slice to a pod that runs nothing yet.
	held := inv.GPUs[0].Slices[0].UUID
	a.SetAllocated([]string{held})
	inv = waitFor(t, a, "allocated", func(inv Inventory) bool {
		return len(inv.GPUs) > 0 && len(inv.GPUs[0].Slices) > 0 && inv.GPUs[0].Slices[0].Allocated
	})
	src <- named(t, "all-1g")
	inv = waitFor(t, a, "held back", func(inv Inventory) bool {
		return inv.State == StatePending && len(inv.HeldBack) > 0 && inv.Desired.Revision == "all-1g"
	})
	if got := profiles(t, node); strings.Join(got[0], ",") != "7g.80gb" || count(got[1], "1g.10gb") != 7 {
		t.Errorf("layouts %v: the allocated slice must stay, the other GPU change", got)
	}
	if len(s.Processes()) != 0 {
		t.Fatal("the test meant a slice with no process")
	}
	// The pod is gone: the change completes.
	a.SetAllocated(nil)
	waitFor(t, a, "applied", stateIs(StateSuccess, "all-1g"))
	if got := profiles(t, node)[0]; count(got, "1g.10gb") != 7 {
		t.Errorf("gpu 0 %v after the pod left", got)
	}
}

func TestAgentKeepsAWholeGPUAllocatedToAPod(t *testing.T) {
	s, node := simNode(t, "h100-80gb", 1) // MIG off: advertised as nvidia.com/gpu
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	inv := waitFor(t, a, "first inventory", func(inv Inventory) bool { return inv.Version > 0 })
	a.SetAllocated([]string{inv.GPUs[0].UUID})
	waitFor(t, a, "allocated", func(inv Inventory) bool { return inv.GPUs[0].Allocated })
	src <- named(t, "all-7g")
	inv = waitFor(t, a, "held back", func(inv Inventory) bool {
		return inv.State == StatePending && len(inv.HeldBack) > 0 && inv.Desired.Revision == "all-7g"
	})
	if inv.GPUs[0].MigEnabled || s.MutatingCalls() != 0 {
		t.Fatalf("MIG enabled under a pod's whole GPU (%d mutating calls)", s.MutatingCalls())
	}
	a.SetAllocated(nil)
	waitFor(t, a, "applied once the pod left", stateIs(StateSuccess, "all-7g"))
}

func TestAgentShowsUnhealthySlices(t *testing.T) {
	_, node := simNode(t, "h100-80gb", 1)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())
	running(t, a)
	src <- named(t, "all-balanced")
	inv := waitFor(t, a, "applied", stateIs(StateSuccess, "all-balanced"))
	sick := inv.GPUs[0].Slices[1].UUID
	a.SetUnhealthy(map[string]string{sick: "Xid 94"})
	inv = waitFor(t, a, "unhealthy slice", func(inv Inventory) bool { return !inv.GPUs[0].Slices[1].Healthy })
	if inv.GPUs[0].Slices[1].Unhealthy != "Xid 94" || !inv.GPUs[0].Slices[0].Healthy {
		t.Errorf("slices %+v", inv.GPUs[0].Slices)
	}
	a.SetUnhealthy(nil)
	waitFor(t, a, "healthy again", func(inv Inventory) bool { return inv.GPUs[0].Slices[1].Healthy })
}
