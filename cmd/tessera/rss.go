package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// rssStats is what `tessera plan --rss-stats FILE` writes, in KiB, from
// /proc/self/status (Linux): the peak resident memory (VmHWM) while
// reading the inputs, the resident memory when planning starts (program
// and inputs, after garbage collection) and the peak while planning.
// `tessera bench` reads it from the child processes it plans in.
type rssStats struct {
	InputKiB int64 `json:"input_kib"`
	BaseKiB  int64 `json:"base_kib"`
	PlanKiB  int64 `json:"plan_kib"`
}

// rssProbe measures the peak resident memory of planning alone.
type rssProbe struct {
	input, base int64
}

// startRSSProbe records the peak resident memory so far (reading the
// inputs), then collects garbage, returns free memory to the OS and resets
// the kernel's high-water mark, so that the next reading is the peak from
// here on: planning with its inputs in memory.
func startRSSProbe() (*rssProbe, error) {
	in, err := readVmHWM()
	if err != nil {
		return nil, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	// "5" resets the peak resident set size (Linux 4.0 and later).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset the peak resident memory: %w", err)
	}
	// Right after the reset the high-water mark is the resident memory.
	base, err := readVmHWM()
	if err != nil {
		return nil, err
	}
	return &rssProbe{input: in, base: base}, nil
}

// finish reads the peak since startRSSProbe and writes the stats to path.
func (p *rssProbe) finish(path string) error {
	peak, err := readVmHWM()
	if err != nil {
		return err
	}
	data, err := json.Marshal(rssStats{InputKiB: p.input, BaseKiB: p.base, PlanKiB: peak})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// readVmHWM returns the process's peak resident set size in KiB.
func readVmHWM() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak resident memory: %w", err)
	}
	return parseVmHWM(data)
}

// parseVmHWM finds "VmHWM:   1234 kB" in the text of /proc/PID/status.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("peak resident memory: unexpected line %q", sc.Text())
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, errors.New("peak resident memory: no VmHWM in /proc/self/status")
}
