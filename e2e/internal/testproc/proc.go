// Package testproc runs the child processes of end-to-end test
// environments (kubeenv's etcd and kube-apiserver, promenv's Prometheus):
// starting one with its output in a log file, stopping it by its PID,
// reading the tail of its log, finding a free loopback port for it, and a
// context bounded by the test's deadline.
package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// StopGrace is how long a process gets to exit after SIGTERM before SIGKILL.
const StopGrace = 5 * time.Second

// Process is one running child: its command, its log file and a channel
// closed when it has exited.
type Process struct {
	// Name names the process in errors, e.g. "etcd".
	Name string
	// LogPath is the file that holds its stdout and stderr.
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts binary with args, its stdout and stderr written to logPath
// (replacing an earlier attempt's) and its working directory logPath's
// folder. The child gets SIGKILL if the test binary dies without cleaning
// up.
func Start(name, binary, logPath string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Dir = filepath.Dir(logPath)
	// If the test binary is killed (a panic, a timeout, ^C) its t.Cleanup
	// functions never run; have the kernel kill the child then. Pdeathsig
	// fires when the forking OS thread exits, which Go threads do not do
	// unless a goroutine locked to one ends without unlocking it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, binary, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done returns a channel that is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process by its PID: SIGTERM, then SIGKILL after StopGrace.
// It is safe to call more than once and returns nil if the process was
// stopped by it or had already exited.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		pid := p.cmd.Process.Pid
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("stopping %s (pid %d): %w", p.Name, pid, err)
		}
		select {
		case <-p.done:
			return
		case <-time.After(StopGrace):
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("killing %s (pid %d): %w", p.Name, pid, err)
			return
		}
		<-p.done
	})
	return p.stopErr
}

// LogTail returns up to the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	return Tail(p.LogPath, n)
}

// ExitError describes how the process ended, with the last 30 lines of its
// log. Call it once Done is closed.
func (p *Process) ExitError() error {
	return fmt.Errorf("%s exited early (%v); last lines of %s:\n%s", p.Name, p.waitErr, p.LogPath, p.LogTail(30))
}

// Tail returns up to the last n lines of the file at path, or a note saying
// why it could not be read.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
