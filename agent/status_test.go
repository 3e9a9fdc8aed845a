package agent

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestHubSlowSubscriberGetsLatestWithoutBlocking(t *testing.T) {
	h := newHub()
	ch, stop := h.subscribe()
	defer stop()
	// The subscriber reads nothing while many versions are published.
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			h.publish(Inventory{Node: "n", Reason: strings.Repeat("x", i%7) + string(rune('a'+i%26))})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing blocked on a subscriber that does not read")
	}
	got := <-ch
	if got.Version != h.current().Version {
		t.Errorf("subscriber got version %d, latest is %d", got.Version, h.current().Version)
	}
	select {
	case extra := <-ch:
		t.Errorf("subscriber got a second, older value %d", extra.Version)
	default:
	}
}

func TestHubSkipsUnchangedContent(t *testing.T) {
	h := newHub()
	a, changed := h.publish(Inventory{State: StateSuccess, ObservedAt: time.Unix(1, 0)})
	if !changed || a.Version != 1 {
		t.Fatalf("first publish: %d %v", a.Version, changed)
	}
	b, changed := h.publish(Inventory{State: StateSuccess, ObservedAt: time.Unix(2, 0)})
	if changed || b.Version != 1 {
		t.Errorf("same content again: version %d, changed %v", b.Version, changed)
	}
	c, changed := h.publish(Inventory{State: StateFailed})
	if !changed || c.Version != 2 {
		t.Errorf("new content: version %d, changed %v", c.Version, changed)
	}
	// A late subscriber gets the latest at once; unsubscribing closes.
	ch, stop := h.subscribe()
	if got := <-ch; got.Version != 2 {
		t.Errorf("late subscriber got %d", got.Version)
	}
	stop()
	stop()
	if _, ok := <-ch; ok {
		t.Error("channel open after unsubscribe")
	}
}

func TestStatusServer(t *testing.T) {
	_, node := simNode(t, "h100-80gb", 2)
	src := make(chanSource, 1)
	a := New(node, src, fastOptions())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- ServeStatus(ctx, a, "127.0.0.1:0", time.Minute, func(ad net.Addr) { addrc <- ad }) }()
	addr := (<-addrc).String()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not running") {
		t.Errorf("healthz before Run: %d %q", code, body)
	}
	running(t, a)
	src <- named(t, "all-balanced")
	waitFor(t, a, "applied", stateIs(StateSuccess, "all-balanced"))
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	inv, err := FetchStatus(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if inv.State != StateSuccess || len(inv.GPUs) != 2 || len(inv.Slices()) != 8 || inv.Node != "node-1" {
		t.Errorf("fetched status: state %q, %d GPUs, %d slices, node %q", inv.State, len(inv.GPUs), len(inv.Slices()), inv.Node)
	}
	var out bytes.Buffer
	if err := WriteStatus(&out, inv); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"state:    success", "config:   all-balanced", "GPU  MODEL", "h100-80gb", "3g.40gb", "MIG-"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := FetchStatus(ctx, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "is the agent running") {
		t.Errorf("fetch from nowhere: %v", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeStatus: %v", err)
	}
}

func TestHealthyCountsAPassInProgress(t *testing.T) {
	now := time.Unix(1000, 0)
	a := New(nil, nil, Options{Catalog: migconfig.Builtin(), Now: func() time.Time { return now }, Hooks: Hooks{Timeout: time.Minute}})
	maxAge := 2 * time.Minute
	a.running = true
	if err := a.Healthy(maxAge); err == nil || !strings.Contains(err.Error(), "no reconcile pass") {
		t.Errorf("before any pass: %v", err)
	}
	a.lastPass = now.Add(-time.Minute)
	if err := a.Healthy(maxAge); err != nil {
		t.Errorf("recent pass: %v", err)
	}
	a.lastPass = now.Add(-3 * time.Minute)
	if err := a.Healthy(maxAge); err == nil {
		t.Error("old pass: healthy")
	}
	// A long pass (hooks included) is alive for maxAge + 2 hook timeouts.
	a.passStarted = now.Add(-3 * time.Minute)
	if err := a.Healthy(maxAge); err != nil {
		t.Errorf("pass in progress for 3m: %v", err)
	}
	a.passStarted = now.Add(-5 * time.Minute)
	if err := a.Healthy(maxAge); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Errorf("pass stuck for 5m: %v", err)
	}
}
