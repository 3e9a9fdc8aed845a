package gpu_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// hangGuard bounds waits that only a broken implementation would exceed;
// it is not a speed target.
const hangGuard = 10 * time.Second

// watch is a running WatchXids.
type watch struct {
	t      *testing.T
	events chan gpu.XidEvent
	done   chan error
	cancel context.CancelFunc
}

// watch starts WatchXids and, unless it fails at once, waits until it has
// registered and is waiting for events (the simulated node then has seen
// one more EventSetWait), so that injected Xids reach it.
func (f *fixture) watch(buffer int) *watch {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{t: f.t, events: make(chan gpu.XidEvent, buffer), done: make(chan error, 1), cancel: cancel}
	f.t.Cleanup(cancel)
	waits := f.sim.Calls()["EventSetWait"]
	go func() { w.done <- f.node.WatchXids(ctx, w.events) }()
	deadline := time.Now().Add(hangGuard)
	for f.sim.Calls()["EventSetWait"] == waits {
		select {
		case err := <-w.done:
			w.done <- err // let the test see it
			return w
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatal("WatchXids did not start waiting for events")
		}
		time.Sleep(time.Millisecond)
	}
	return w
}

// next returns the next event.
func (w *watch) next() gpu.XidEvent {
	w.t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case err := <-w.done:
		w.t.Fatalf("WatchXids returned %v before the event", err)
	case <-time.After(hangGuard):
		w.t.Fatal("no Xid event")
	}
	return gpu.XidEvent{}
}

// none checks that no event arrives while the watch sees another Xid,
// raised after the one that must not arrive, on a watched GPU.
func (w *watch) noneBefore(f *fixture, gpuIndex int) {
	w.t.Helper()
	if err := f.sim.InjectXid(gpuIndex, 1, -1, -1); err != nil {
		w.t.Fatal(err)
	}
	if ev := w.next(); ev.Xid != 1 || ev.GPUIndex != gpuIndex {
		w.t.Fatalf("got %+v; want only the marker Xid 1 on GPU %d", ev, gpuIndex)
	}
}

// stop cancels the watch and returns WatchXids' result.
func (w *watch) stop() error {
	w.t.Helper()
	w.cancel()
	return w.result()
}

// result waits for WatchXids to return.
func (w *watch) result() error {
	w.t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(hangGuard):
		w.t.Fatal("WatchXids did not return")
	}
	return nil
}

func TestWatchXidsEvents(t *testing.T) {
	cases := []struct {
		name   string
		gpu    int
		xid    uint64
		gi, ci int
	}{
		{"whole GPU", 0, 79, -1, -1},
		{"GPU instance", 1, 48, 3, -1},
		{"GPU and compute instance", 1, 94, 5, 0},
		{"compute instance 2 of GI 1", 0, 43, 1, 2},
		{"unknown Xid", 1, 999, -1, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, "a100-40gb:2", sim.WithMigEnabled())
			st := f.snapshot()
			w := f.watch(0)
			before := time.Now()
			if err := f.sim.InjectXid(tc.gpu, tc.xid, tc.gi, tc.ci); err != nil {
				t.Fatal(err)
			}
			ev := w.next()
			want := gpu.XidEvent{GPUIndex: tc.gpu, GPUUUID: st.GPUs[tc.gpu].UUID, Xid: tc.xid, GPUInstanceID: tc.gi, ComputeInstanceID: tc.ci}
			got := ev
			got.Time = time.Time{}
			if got != want {
				t.Errorf("event %+v, want %+v", got, want)
			}
			if ev.Time.Before(before) || ev.Time.After(time.Now()) {
				t.Errorf("event time %v not when it was received", ev.Time)
			}
			if err := w.stop(); err != nil {
				t.Errorf("WatchXids after cancel: %v", err)
			}
		})
	}
}

func TestWatchXidsKeepsOrderForSlowReader(t *testing.T) {
	f := open(t, "h100-80gb:2")
	w := f.watch(0)
	xids := []uint64{79, 48, 31, 94}
	for i, xid := range xids {
		if err := f.sim.InjectXid(i%2, xid, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // nobody reads meanwhile
	for i, xid := range xids {
		if ev := w.next(); ev.Xid != xid || ev.GPUIndex != i%2 {
			t.Fatalf("event %d: %+v, want Xid %d on GPU %d", i, ev, xid, i%2)
		}
	}
}

func TestWatchXidsSeveralWatchers(t *testing.T) {
	f := open(t, "a30:2")
	a, b := f.watch(1), f.watch(1)
	if err := f.sim.InjectXid(1, 79, 2, 0); err != nil {
		t.Fatal(err)
	}
	for i, w := range []*watch{a, b} {
		if ev := w.next(); ev.GPUIndex != 1 || ev.Xid != 79 || ev.GPUInstanceID != 2 || ev.ComputeInstanceID != 0 {
			t.Errorf("watcher %d: %+v", i, ev)
		}
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	// b keeps watching after a has gone and freed its set.
	if err := f.sim.InjectXid(0, 48, -1, -1); err != nil {
		t.Fatal(err)
	}
	if ev := b.next(); ev.GPUIndex != 0 || ev.Xid != 48 {
		t.Errorf("watcher b after a stopped: %+v", ev)
	}
}

func TestWatchXidsCancel(t *testing.T) {
	f := open(t, "a100-80gb:1")
	// Done before it starts: nil, and nothing registered.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.node.WatchXids(ctx, make(chan gpu.XidEvent)); err != nil {
		t.Fatalf("WatchXids with a done context: %v", err)
	}
	if c := f.sim.Calls()["EventSetCreate"]; c != 0 {
		t.Fatalf("EventSetCreate called %d times for a done context", c)
	}

	// Cancelled while waiting: returns within one wait step and frees its
	// event set.
	w := f.watch(0)
	if err := w.stop(); err != nil {
		t.Fatalf("WatchXids after cancel: %v", err)
	}
	if c, live := f.sim.Calls()["EventSetFree"], f.sim.LiveEventSets(); c != 1 || live != 0 {
		t.Errorf("EventSetFree called %d times, %d sets left; want 1 and 0", c, live)
	}

	if _, err := f.node.Snapshot(context.Background()); err != nil {
		t.Errorf("Snapshot after the watch: %v", err)
	}
}

// messages is a slog handler that passes each record's message on.
type messages chan string

func (m messages) Enabled(context.Context, slog.Level) bool { return true }
func (m messages) Handle(_ context.Context, r slog.Record) error {
	select {
	case m <- r.Message:
	default:
	}
	return nil
}
func (m messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m messages) WithGroup(string) slog.Handler      { return m }

func TestWatchXidsCancelWhileSending(t *testing.T) {
	s, err := sim.NewFromSpec(migconfig.Builtin(), "a100-40gb:1")
	if err != nil {
		t.Fatal(err)
	}
	logs := make(messages, 16)
	n, err := gpu.Open(context.Background(), s, gpu.Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.WatchXids(ctx, make(chan gpu.XidEvent)) }() // nobody reads
	for s.Calls()["EventSetWait"] == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := s.InjectXid(0, 79, -1, -1); err != nil {
		t.Fatal(err)
	}
	// WatchXids logs the event just before it blocks sending it.
	for msg := range logs {
		if msg == "Xid event" {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchXids cancelled while sending: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("WatchXids blocked sending did not return after cancel")
	}
	if live := s.LiveEventSets(); live != 0 {
		t.Errorf("%d event sets left behind", live)
	}
}

func TestWatchXidsCloseStopsWatch(t *testing.T) {
	f := open(t, "a100-40gb:1")
	w := f.watch(0)
	if err := f.node.Close(); err != nil {
		t.Fatalf("Close during a watch: %v", err)
	}
	err := w.result()
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("WatchXids after Close: %v, want a closed-node error", err)
	}
	// The set was freed before NVML shut down, so its Free succeeded.
	if strings.Contains(f.logs.String(), "freeing the Xid event set failed") {
		t.Errorf("event set freed after Shutdown:\n%s", f.logs)
	}
	if err := f.node.WatchXids(context.Background(), make(chan gpu.XidEvent)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("WatchXids on a closed node: %v", err)
	}
}

func TestWatchXidsFaults(t *testing.T) {
	gpu1 := 1
	cases := []struct {
		name   string
		faults []sim.Fault
		// err is a substring of WatchXids' error when it cannot watch;
		// empty when it watches.
		err     string
		errIs   error
		watched []int  // GPUs whose Xids arrive
		skipped []int  // GPUs whose Xids do not
		log     string // a substring of the logs
	}{
		{
			name:   "EventSetCreate fails",
			faults: []sim.Fault{{Call: "EventSetCreate", Return: nvml.ERROR_UNKNOWN}},
			err:    "gpu: watch xids: EventSetCreate: ERROR_UNKNOWN (999)", errIs: nvml.ERROR_UNKNOWN,
		},
		{
			name:   "DeviceGetCount fails",
			faults: []sim.Fault{{Call: "DeviceGetCount", Return: nvml.ERROR_DRIVER_NOT_LOADED}},
			err:    "DeviceGetCount: ERROR_DRIVER_NOT_LOADED", errIs: nvml.ERROR_DRIVER_NOT_LOADED,
		},
		{
			name:    "one GPU without Xid events",
			faults:  []sim.Fault{{Call: "GetSupportedEventTypes", GPU: &gpu1, Return: nvml.ERROR_NOT_SUPPORTED}},
			watched: []int{0}, skipped: []int{1},
			log: "GPU does not support Xid events",
		},
		{
			name:    "registration not supported on one GPU",
			faults:  []sim.Fault{{Call: "RegisterEvents", GPU: &gpu1, Return: nvml.ERROR_NOT_SUPPORTED}},
			watched: []int{0}, skipped: []int{1},
			log: "GPU does not support Xid events",
		},
		{
			name:    "one GPU lost at registration",
			faults:  []sim.Fault{{Call: "RegisterEvents", GPU: &gpu1, Return: nvml.ERROR_GPU_IS_LOST}},
			watched: []int{0}, skipped: []int{1},
			log: "RegisterEvents: ERROR_GPU_IS_LOST",
		},
		{
			name:    "one GPU's UUID unreadable",
			faults:  []sim.Fault{{Call: "GetUUID", GPU: &gpu1, Return: nvml.ERROR_UNKNOWN}},
			watched: []int{0}, skipped: []int{1},
			log: "GetUUID: ERROR_UNKNOWN",
		},
		{
			name:   "registration leaves the set undefined",
			faults: []sim.Fault{{Call: "RegisterEvents", GPU: &gpu1, Return: nvml.ERROR_UNKNOWN}},
			err:    "gpu: watch xids: gpu 1 (GPU-", errIs: nvml.ERROR_UNKNOWN,
		},
		{
			name: "no GPU supports Xid events",
			faults: []sim.Fault{
				{Call: "RegisterEvents", Return: nvml.ERROR_NOT_SUPPORTED},
				{Call: "RegisterEvents", Return: nvml.ERROR_NOT_SUPPORTED},
			},
			err: "no GPU can report Xid events: gpu 0 (GPU-", errIs: gpu.ErrNoXidGPU,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, "a100-40gb:2")
			for _, fault := range tc.faults {
				f.sim.InjectFault(fault)
			}
			w := f.watch(0)
			if tc.err != "" {
				err := w.result()
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("WatchXids = %v, want an error with %q", err, tc.err)
				}
				if !errors.Is(err, tc.errIs) {
					t.Errorf("errors.Is(%v, %v) = false", err, tc.errIs)
				}
				if live := f.sim.LiveEventSets(); live != 0 {
					t.Errorf("%d event sets left behind", live)
				}
				return
			}
			if !strings.Contains(f.logs.String(), tc.log) {
				t.Errorf("logs lack %q:\n%s", tc.log, f.logs)
			}
			for _, g := range tc.skipped {
				if err := f.sim.InjectXid(g, 79, -1, -1); err != nil {
					t.Fatal(err)
				}
				w.noneBefore(f, tc.watched[0])
			}
			for _, g := range tc.watched {
				if err := f.sim.InjectXid(g, 79, -1, -1); err != nil {
					t.Fatal(err)
				}
				if ev := w.next(); ev.GPUIndex != g || ev.Xid != 79 {
					t.Errorf("event %+v, want Xid 79 on GPU %d", ev, g)
				}
			}
			if err := w.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWatchXidsWaitFailureEndsWatch(t *testing.T) {
	f := open(t, "h200:1")
	w := f.watch(0)
	f.sim.InjectFault(sim.Fault{Call: "EventSetWait", Return: nvml.ERROR_GPU_IS_LOST})
	err := w.result()
	if err == nil || !errors.Is(err, nvml.ERROR_GPU_IS_LOST) || !strings.Contains(err.Error(), "EventSetWait: ERROR_GPU_IS_LOST") {
		t.Fatalf("WatchXids after a failed wait: %v", err)
	}
	if live := f.sim.LiveEventSets(); live != 0 {
		t.Errorf("%d event sets left behind", live)
	}
	// Watching again works.
	w = f.watch(1)
	if err := f.sim.InjectXid(0, 79, -1, -1); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(); ev.Xid != 79 {
		t.Errorf("event %+v after re-watching", ev)
	}
}

func TestWatchXidsNilChannel(t *testing.T) {
	f := open(t, "a30:1")
	if err := f.node.WatchXids(context.Background(), nil); err == nil {
		t.Fatal("WatchXids with a nil channel: no error")
	}
}
