package kubeenv

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

// stopGrace is how long a process gets to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// process is one running component: its command, its log file and a channel
// closed when it has exited.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts binary with args, its stdout and stderr written to
// logPath (replacing an earlier attempt's). The child gets SIGKILL if the
// test binary dies without cleaning up.
func startProcess(name, binary, logPath string, args ...string) (*process, error) {
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
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after stopGrace. It
// is safe to call more than once and returns nil if the process was stopped
// by it or had already exited.
func (p *process) stop() error {
	p.stopOnce.Do(func() {
		if p.exited() {
			return
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("stopping %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
		}
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("killing %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
			return
		}
		<-p.done
	})
	return p.stopErr
}

// logTail returns up to the last n lines of the process's log.
func (p *process) logTail(n int) string {
	return tail(p.logPath, n)
}

// tail returns up to the last n lines of the file at path, or a note saying
// why it could not be read.
func tail(path string, n int) string {
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

// exitError describes how the process ended, with the tail of its log.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited early (%v); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(30))
}
