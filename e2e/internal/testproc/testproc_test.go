package testproc

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartStop checks that Stop ends a running process, is
// safe to call twice, and that the log holds the child's output.
func TestStartStop(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	p, err := Start("sh", "/bin/sh", log, "-c", "echo one; echo two; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.LogTail(1), "two") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.LogTail(1); got != "two" {
		t.Errorf("LogTail(1) = %q, want %q", got, "two")
	}
	if p.Exited() {
		t.Fatal("exited before Stop")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Error("still running after Stop")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestExitError checks that an early exit is reported with the log's tail.
func TestExitError(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	p, err := Start("sh", "/bin/sh", log, "-c", "echo bad flag; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	msg := p.ExitError().Error()
	for _, want := range []string{"sh exited early", "exit status 3", "bad flag"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ExitError() = %q, want it to contain %q", msg, want)
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}
}

// TestTail checks the last-lines window and the note for a missing file.
func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(path, 2); got != "b\nc" {
		t.Errorf("Tail(2) = %q", got)
	}
	if got := Tail(path, 10); got != "a\nb\nc" {
		t.Errorf("Tail(10) = %q", got)
	}
	if got := Tail(path+".missing", 2); !strings.HasPrefix(got, "(log unreadable: ") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}

// TestFreePort checks that the port can be listened on and that
// AddrInUse recognises the error a second listener gets.
func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the free port: %v", err)
	}
	defer l.Close()
	_, err = net.Listen("tcp", addr)
	if err == nil || !AddrInUse(err.Error()) {
		t.Errorf("second listen: %v, want address already in use", err)
	}
}
