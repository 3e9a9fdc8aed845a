package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// HookKind names when a hook runs.
type HookKind string

// The hooks, as mig-parted's apply-start and apply-exit.
const (
	// HookPreApply runs before an apply that changes something; when it
	// fails, nothing is changed and the state is failed.
	HookPreApply HookKind = "pre-apply"
	// HookPostApply runs after such an apply, whatever its result
	// (TESSERA_RESULT says it); when it fails the state is failed and the
	// hook runs again on the next pass until it succeeds.
	HookPostApply HookKind = "post-apply"
)

// Hooks are shell commands (run with /bin/sh -c) around applies, for
// example to stop services that hold GPUs before a change and start them
// after. They get the environment of the agent plus TESSERA_NODE,
// TESSERA_SOURCE, TESSERA_CONFIG, TESSERA_OPERATIONS, TESSERA_HOOK and
// TESSERA_RESULT (pending before the apply; success, pending or failed
// after). Their output is logged line by line.
type Hooks struct {
	// PreApply and PostApply are the commands; empty for none.
	PreApply, PostApply string
	// Timeout bounds each run; default 5 minutes.
	Timeout time.Duration
}

// timeout is Timeout or its default.
func (h Hooks) timeout() time.Duration {
	if h.Timeout <= 0 {
		return 5 * time.Minute
	}
	return h.Timeout
}

// maxHookOutput bounds the output kept from one hook run.
const maxHookOutput = 64 << 10

func (h Hooks) command(kind HookKind) string {
	if kind == HookPreApply {
		return h.PreApply
	}
	return h.PostApply
}

// run runs the hook of kind, if set. The error names the hook, its exit
// status and the last line of its output.
func (h Hooks) run(ctx context.Context, log *slog.Logger, kind HookKind, env []string) error {
	script := h.command(kind)
	if script == "" {
		return nil
	}
	timeout := h.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = append(append(os.Environ(), env...), "TESSERA_HOOK="+string(kind))
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	for _, l := range lines {
		if l != "" {
			log.Info("hook output", "hook", string(kind), "line", l)
		}
	}
	if err == nil {
		log.Info("hook done", "hook", string(kind), "duration", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	last := lines[len(lines)-1]
	if last != "" {
		return fmt.Errorf("%s hook %q: %w: %s", kind, script, err, last)
	}
	return fmt.Errorf("%s hook %q: %w", kind, script, err)
}

// limitedBuffer keeps the first maxHookOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxHookOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}
