package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func eventSetOf(t testing.TB, n *Node) nvml.EventSet {
	t.Helper()
	set, r := n.EventSetCreate()
	if r != nvml.SUCCESS {
		t.Fatalf("EventSetCreate: %v", r)
	}
	return set
}

func register(t testing.TB, n *Node, set nvml.EventSet, gpus ...int) {
	t.Helper()
	for _, i := range gpus {
		if r := handle(t, n, i).RegisterEvents(nvml.EventTypeXidCriticalError, set); r != nvml.SUCCESS {
			t.Fatalf("RegisterEvents on GPU %d: %v", i, r)
		}
	}
}

func TestSupportedEventTypes(t *testing.T) {
	n := started(t, "a100-40gb", 1)
	d := enableMig(t, n, 0)
	if types, r := d.GetSupportedEventTypes(); r != nvml.SUCCESS || types != nvml.EventTypeXidCriticalError {
		t.Fatalf("GetSupportedEventTypes = %#x, %v; want Xid critical errors only", types, r)
	}
	if types, r := n.DeviceGetSupportedEventTypes(d); r != nvml.SUCCESS || types != nvml.EventTypeXidCriticalError {
		t.Fatalf("DeviceGetSupportedEventTypes = %#x, %v", types, r)
	}
	// NVML does not report events per MIG device handle.
	gi := mustCreateAt(t, d, model(t, "a100-40gb"), "3g.20gb", 0)
	_, uuid := fullCI(t, n, gi)
	mig, r := n.DeviceGetHandleByUUID(uuid)
	if r != nvml.SUCCESS {
		t.Fatal(r)
	}
	if _, r := mig.GetSupportedEventTypes(); r != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("MIG device GetSupportedEventTypes: %v, want ERROR_NOT_SUPPORTED", r)
	}
	if r := mig.RegisterEvents(nvml.EventTypeXidCriticalError, eventSetOf(t, n)); r != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("MIG device RegisterEvents: %v, want ERROR_NOT_SUPPORTED", r)
	}
}

func TestRegisterEvents(t *testing.T) {
	other := started(t, "a100-40gb", 1)
	cases := []struct {
		name  string
		types uint64
		set   func(n *Node) nvml.EventSet
		want  nvml.Return
		// registered says whether an Xid then reaches the set.
		registered bool
	}{
		{"xid", nvml.EventTypeXidCriticalError, nil, nvml.SUCCESS, true},
		{"no types", 0, nil, nvml.ERROR_INVALID_ARGUMENT, false},
		{"bit outside EventTypeAll", 32, nil, nvml.ERROR_INVALID_ARGUMENT, false},
		{"xid and an unknown bit", nvml.EventTypeXidCriticalError | 1<<40, nil, nvml.ERROR_INVALID_ARGUMENT, false},
		{"unsupported type", nvml.EventTypeDoubleBitEccError, nil, nvml.ERROR_NOT_SUPPORTED, false},
		{"xid with an unsupported type registers neither", nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError, nil, nvml.ERROR_NOT_SUPPORTED, false},
		{"every type", nvml.EventTypeAll, nil, nvml.ERROR_NOT_SUPPORTED, false},
		{"nil set", nvml.EventTypeXidCriticalError, func(*Node) nvml.EventSet { return nil }, nvml.ERROR_INVALID_ARGUMENT, false},
		{"another node's set", nvml.EventTypeXidCriticalError, func(*Node) nvml.EventSet { return eventSetOf(t, other) }, nvml.ERROR_INVALID_ARGUMENT, false},
		{"freed set", nvml.EventTypeXidCriticalError, func(n *Node) nvml.EventSet {
			s := eventSetOf(t, n)
			if r := s.Free(); r != nvml.SUCCESS {
				t.Fatal(r)
			}
			return s
		}, nvml.ERROR_INVALID_ARGUMENT, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 1)
			var set nvml.EventSet
			if tc.set != nil {
				set = tc.set(n)
			} else {
				set = eventSetOf(t, n)
			}
			d := handle(t, n, 0)
			if r := d.RegisterEvents(tc.types, set); r != tc.want {
				t.Fatalf("RegisterEvents(%#x) = %v, want %v", tc.types, r, tc.want)
			}
			if tc.set != nil {
				return
			}
			if err := n.InjectXid(0, 79, -1, -1); err != nil {
				t.Fatal(err)
			}
			_, r := set.Wait(0)
			if got := r == nvml.SUCCESS; got != tc.registered {
				t.Fatalf("Wait after an Xid: %v; want an event: %v", r, tc.registered)
			}
		})
	}
}

func TestInjectXidDelivery(t *testing.T) {
	cases := []struct {
		name     string
		gpu      int
		xid      uint64
		gi, ci   int
		receives []int // sets that get the event
		wantGI   uint32
		wantCI   uint32
	}{
		{"whole GPU", 0, 79, -1, -1, []int{0}, 0xFFFFFFFF, 0xFFFFFFFF},
		{"GPU instance only", 1, 48, 5, -1, []int{0, 1}, 5, 0xFFFFFFFF},
		{"GPU and compute instance", 1, 94, 3, 0, []int{0, 1}, 3, 0},
		{"application Xid", 1, 13, 1, 2, []int{0, 1}, 1, 2},
		{"unregistered GPU", 2, 79, -1, -1, nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 3)
			// Set 0 watches GPUs 0 and 1, set 1 only GPU 1; nobody
			// watches GPU 2.
			sets := []nvml.EventSet{eventSetOf(t, n), eventSetOf(t, n)}
			register(t, n, sets[0], 0, 1)
			register(t, n, sets[1], 1)
			if err := n.InjectXid(tc.gpu, tc.xid, tc.gi, tc.ci); err != nil {
				t.Fatal(err)
			}
			for i, set := range sets {
				e, r := set.Wait(0)
				receives := false
				for _, s := range tc.receives {
					receives = receives || s == i
				}
				if !receives {
					if r != nvml.ERROR_TIMEOUT {
						t.Errorf("set %d: Wait = %+v, %v; want ERROR_TIMEOUT", i, e, r)
					}
					continue
				}
				if r != nvml.SUCCESS {
					t.Fatalf("set %d: Wait: %v", i, r)
				}
				if e.Device != handle(t, n, tc.gpu) || e.EventType != nvml.EventTypeXidCriticalError || e.EventData != tc.xid ||
					e.GpuInstanceId != tc.wantGI || e.ComputeInstanceId != tc.wantCI {
					t.Errorf("set %d: event %+v; want GPU %d, Xid %d, GI %#x, CI %#x", i, e, tc.gpu, tc.xid, tc.wantGI, tc.wantCI)
				}
				if _, r := set.Wait(0); r != nvml.ERROR_TIMEOUT {
					t.Errorf("set %d: second Wait: %v; want ERROR_TIMEOUT", i, r)
				}
			}
		})
	}
}

func TestInjectXidOrderAndLateRegistration(t *testing.T) {
	n := started(t, "h100-80gb", 1)
	set := eventSetOf(t, n)
	// Events raised before registration are not recorded.
	if err := n.InjectXid(0, 31, -1, -1); err != nil {
		t.Fatal(err)
	}
	register(t, n, set, 0)
	register(t, n, set, 0) // registering twice delivers once
	for _, xid := range []uint64{43, 45, 999} {
		if err := n.InjectXid(0, xid, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []uint64{43, 45, 999} {
		e, r := n.EventSetWait(set, 0)
		if r != nvml.SUCCESS || e.EventData != want {
			t.Fatalf("EventSetWait = %+v, %v; want Xid %d", e, r, want)
		}
	}
	if _, r := n.EventSetWait(set, 0); r != nvml.ERROR_TIMEOUT {
		t.Fatalf("queue not empty: %v", r)
	}
}

func TestInjectXidErrors(t *testing.T) {
	n := started(t, "a30", 1)
	cases := []struct {
		gpu, gi, ci int
		err         string
	}{
		{1, -1, -1, "no GPU 1"},
		{-1, -1, -1, "no GPU -1"},
		{0, -2, -1, "must be -1 or"},
		{0, 0, -5, "must be -1 or"},
		{0, 0xFFFFFFFF, -1, "must be -1 or"},
		{0, -1, 0, "needs a GPU instance"},
	}
	for _, tc := range cases {
		err := n.InjectXid(tc.gpu, 79, tc.gi, tc.ci)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("InjectXid(%d, 79, %d, %d) = %v; want an error with %q", tc.gpu, tc.gi, tc.ci, err, tc.err)
		}
	}
}

func TestEventSetWaitTimeoutAndWakeUp(t *testing.T) {
	n := started(t, "a100-80gb", 2)
	set := eventSetOf(t, n)
	register(t, n, set, 1)

	start := time.Now()
	if _, r := set.Wait(50); r != nvml.ERROR_TIMEOUT {
		t.Fatalf("Wait(50) on an empty set: %v", r)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Wait(50) returned after %v", d)
	}

	// A long Wait does not hold the node's lock: other calls and
	// InjectXid go through, and the event wakes the waiter.
	type result struct {
		e nvml.EventData
		r nvml.Return
	}
	done := make(chan result, 1)
	go func() {
		e, r := set.Wait(60_000)
		done <- result{e, r}
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter sleep (not needed for correctness)
	if c, r := n.DeviceGetCount(); r != nvml.SUCCESS || c != 2 {
		t.Fatalf("DeviceGetCount during Wait: %d, %v", c, r)
	}
	if err := n.InjectXid(1, 62, -1, -1); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.r != nvml.SUCCESS || res.e.EventData != 62 {
			t.Fatalf("Wait = %+v, %v; want Xid 62", res.e, res.r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake up for the event")
	}

	// Freeing the set ends a Wait in progress.
	go func() {
		e, r := set.Wait(60_000)
		done <- result{e, r}
	}()
	time.Sleep(20 * time.Millisecond)
	if live := n.LiveEventSets(); live != 1 {
		t.Fatalf("LiveEventSets = %d before Free, want 1", live)
	}
	if r := n.EventSetFree(set); r != nvml.SUCCESS {
		t.Fatalf("EventSetFree: %v", r)
	}
	if live := n.LiveEventSets(); live != 0 {
		t.Fatalf("LiveEventSets = %d after Free, want 0", live)
	}
	select {
	case res := <-done:
		if res.r != nvml.ERROR_INVALID_ARGUMENT {
			t.Fatalf("Wait on a set freed meanwhile: %v", res.r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Free did not end the Wait")
	}
	if r := set.Free(); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("second Free: %v", r)
	}
	if err := n.InjectXid(1, 79, -1, -1); err != nil {
		t.Fatal(err) // nobody listens any more; not an error
	}
}

func TestEventSetsEndAtLastShutdown(t *testing.T) {
	n := New(model(t, "a100-40gb"), 1)
	n.Init()
	n.Init()
	set := eventSetOf(t, n)
	register(t, n, set, 0)
	n.Shutdown()
	if err := n.InjectXid(0, 79, -1, -1); err != nil {
		t.Fatal(err)
	}
	if _, r := set.Wait(0); r != nvml.SUCCESS {
		t.Fatalf("Wait with one Init left: %v", r)
	}
	n.Shutdown()
	if live := n.LiveEventSets(); live != 0 {
		t.Fatalf("LiveEventSets = %d after the last Shutdown", live)
	}
	if _, r := set.Wait(0); r != nvml.ERROR_UNINITIALIZED {
		t.Fatalf("Wait after the last Shutdown: %v", r)
	}
	if _, r := n.EventSetCreate(); r != nvml.ERROR_UNINITIALIZED {
		t.Fatalf("EventSetCreate after Shutdown: %v", r)
	}
	n.Init()
	defer n.Shutdown()
	if _, r := set.Wait(0); r != nvml.ERROR_INVALID_ARGUMENT {
		t.Fatalf("Wait on a set from before Shutdown: %v", r)
	}
}

func TestEventFaultsAndCounting(t *testing.T) {
	gpu1 := 1
	cases := []struct {
		name  string
		fault Fault
		// step fails: "create", "register0", "register1", "wait", "free".
		fails string
	}{
		{"create", Fault{Call: "EventSetCreate", Return: nvml.ERROR_UNKNOWN}, "create"},
		{"register on GPU 1", Fault{Call: "RegisterEvents", GPU: &gpu1, Return: nvml.ERROR_GPU_IS_LOST}, "register1"},
		{"register by interface name", Fault{Call: "DeviceRegisterEvents", Return: nvml.ERROR_NOT_SUPPORTED}, "register0"},
		{"wait", Fault{Call: "EventSetWait", Return: nvml.ERROR_GPU_IS_LOST}, "wait"},
		{"free", Fault{Call: "EventSetFree", Return: nvml.ERROR_UNKNOWN}, "free"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := started(t, "a100-40gb", 2)
			n.InjectFault(tc.fault)
			check := func(step string, r nvml.Return) bool {
				t.Helper()
				want := nvml.SUCCESS
				if step == tc.fails {
					want = tc.fault.Return
				}
				if r != want {
					t.Fatalf("%s: %v, want %v", step, r, want)
				}
				return r == nvml.SUCCESS
			}
			set, r := n.EventSetCreate()
			if !check("create", r) {
				return
			}
			check("register0", n.DeviceRegisterEvents(handle(t, n, 0), nvml.EventTypeXidCriticalError, set))
			check("register1", handle(t, n, 1).RegisterEvents(nvml.EventTypeXidCriticalError, set))
			if err := n.InjectXid(1, 79, -1, -1); err != nil {
				t.Fatal(err)
			}
			_, r = set.Wait(0)
			if tc.fails == "register1" {
				if r != nvml.ERROR_TIMEOUT {
					t.Fatalf("Xid on a GPU whose registration failed: %v", r)
				}
			} else {
				check("wait", r)
			}
			check("free", set.Free())
			calls := n.Calls()
			for _, name := range []string{"EventSetCreate", "RegisterEvents", "EventSetWait", "EventSetFree"} {
				if calls[name] == 0 {
					t.Errorf("Calls()[%s] = 0 (all: %v)", name, calls)
				}
			}
			if calls["InjectXid"] != 0 {
				t.Error("InjectXid, a test control, was counted")
			}
		})
	}
}

func TestEventsLeaveSavedStateAlone(t *testing.T) {
	n := started(t, "a100-40gb", 2, WithMigEnabled())
	before, err := n.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	set := eventSetOf(t, n)
	register(t, n, set, 0, 1)
	if err := n.InjectXid(1, 79, -1, -1); err != nil {
		t.Fatal(err)
	}
	after, err := n.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("saved state changed:\n%s\n%s", before, after)
	}
	if _, r := set.Wait(0); r != nvml.SUCCESS {
		t.Fatalf("set lost its event: %v", r)
	}
}
