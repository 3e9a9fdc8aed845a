package kubeletenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Script is the wrapper that gives a test binary the private
// /var/lib/kubelet the harness needs; run the tests with
// go test -exec <absolute path of this script>.
const Script = "e2e/scripts/in-mountns.sh"

// MarkerFile is written by Script into the tmpfs it mounts, with the process
// ID it then execs the test binary as and the mount namespace it came from.
// A real kubelet's folder never holds it.
const MarkerFile = Root + "/.tessera-e2e-mountns"

// CheckSandbox returns nil only when this process may use Root as its own:
// it runs as root, Root is a tmpfs whose mount does not propagate to other
// namespaces, and Script mounted it for this very process, in a mount
// namespace other than the one it was started from. Anything else could be
// a real kubelet's folder, which the harness must never touch; the error
// says what is wrong and names Script. Start calls it first.
func CheckSandbox() error {
	if reason := sandboxProblem(); reason != "" {
		return fmt.Errorf("kubeletenv: refusing to run the device manager: %s; run the test binary as root under %s (go test -exec <repo>/%s), which gives it a private tmpfs on %s", reason, Script, Script, Root)
	}
	return nil
}

// sandboxProblem says what makes this process unfit, or "" when it is fit.
func sandboxProblem() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not root (the device manager's socket is fixed at %s)", KubeletSocket)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Sprintf("cannot read the mount table: %v", err)
	}
	defer f.Close()
	m, ok, err := findMount(f, Root)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot read the mount table: %v", err)
	case !ok:
		return fmt.Sprintf("%s is not a mount point here (it may be a real kubelet's folder)", Root)
	case m.fsType != "tmpfs":
		return fmt.Sprintf("%s is a %s mount, not a tmpfs", Root, m.fsType)
	case m.shared:
		return fmt.Sprintf("the tmpfs on %s is a shared mount, so what happens in it could reach other mount namespaces", Root)
	}
	data, err := os.ReadFile(MarkerFile)
	if err != nil {
		return fmt.Sprintf("the tmpfs on %s has no marker %s, so it was not mounted for this test", Root, filepath.Base(MarkerFile))
	}
	mk, err := parseMarker(string(data))
	if err != nil {
		return fmt.Sprintf("marker %s: %v", MarkerFile, err)
	}
	if mk.pid != os.Getpid() {
		return fmt.Sprintf("the tmpfs on %s was mounted for process %d, not this one (%d), so it is not fresh", Root, mk.pid, os.Getpid())
	}
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Sprintf("cannot read this process's mount namespace: %v", err)
	}
	if self == mk.outerNS {
		return fmt.Sprintf("this process is still in the mount namespace it was started from (%s)", self)
	}
	// When PID 1's namespace can be read (not in every sandbox), it must be
	// another one too.
	if init, err := os.Readlink("/proc/1/ns/mnt"); err == nil && init == self && os.Getpid() != 1 {
		return fmt.Sprintf("this process shares PID 1's mount namespace (%s)", self)
	}
	return ""
}

// mountEntry is the part of a /proc/self/mountinfo line the checks read.
type mountEntry struct {
	fsType string
	shared bool // propagation "shared:N": mounts here would reach other namespaces
}

// findMount returns the topmost mount on mountPoint in a mountinfo table
// (the last line naming it: later mounts stack over earlier ones).
func findMount(r io.Reader, mountPoint string) (mountEntry, bool, error) {
	var found mountEntry
	ok := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		if unescapeMountinfo(fields[4]) != mountPoint {
			continue
		}
		e := mountEntry{}
		i := 6
		for ; i < len(fields) && fields[i] != "-"; i++ {
			if strings.HasPrefix(fields[i], "shared:") {
				e.shared = true
			}
		}
		if i+1 >= len(fields) {
			return mountEntry{}, false, fmt.Errorf("malformed mountinfo line %q", sc.Text())
		}
		e.fsType = fields[i+1]
		found, ok = e, true
	}
	return found, ok, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, …) the
// kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type marker struct {
	pid     int
	outerNS string
}

// parseMarker reads the "pid=N" and "outer_mnt_ns=mnt:[N]" lines Script
// writes.
func parseMarker(s string) (marker, error) {
	var m marker
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			n, err := strconv.Atoi(v)
			if err != nil {
				return marker{}, fmt.Errorf("bad pid %q", v)
			}
			m.pid = n
		case "outer_mnt_ns":
			m.outerNS = v
		}
	}
	if m.pid == 0 || m.outerNS == "" {
		return marker{}, errors.New("want lines pid=N and outer_mnt_ns=mnt:[N]")
	}
	return m, nil
}
