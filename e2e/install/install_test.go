package install_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/migconfig"
)

// installed is where one `make install` put things.
type installed struct {
	root    string // the temporary folder everything is under
	bin     string // PREFIX/bin/tessera
	unit    string // UNITDIR/tessera-agent.service
	confDir string // SYSCONFDIR/tessera
}

// makeInstall runs `make -C <repo> build install` with every folder under root,
// and DESTDIR empty, so the installed unit names the real paths of the
// installed binary and configuration.
func makeInstall(t *testing.T, root string) installed {
	t.Helper()
	in := installed{
		root:    root,
		bin:     filepath.Join(root, "usr", "local", "bin", "tessera"),
		unit:    filepath.Join(root, "systemd", "tessera-agent.service"),
		confDir: filepath.Join(root, "etc", "tessera"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// As the README says: build as the user, then install.
	cmd := exec.CommandContext(ctx, "make", "-C", e2etest.RepoRoot(t), "build", "install",
		"PREFIX="+filepath.Join(root, "usr", "local"),
		"SYSCONFDIR="+filepath.Join(root, "etc"),
		"UNITDIR="+filepath.Join(root, "systemd"),
		"DESTDIR=")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("make install took %v", time.Since(start).Round(time.Millisecond))
	for _, p := range []string{in.bin, in.unit, filepath.Join(in.confDir, "agent.yaml"), filepath.Join(in.confDir, "layouts.yaml")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("make install did not install %s: %v", p, err)
		}
	}
	return in
}

// TestUnitVerifies installs into a temporary folder and runs
// `systemd-analyze verify` on the installed unit, which must pass without a
// word: it checks the unit's syntax, every directive and that ExecStart's
// binary exists. It also checks that the install rewrote every path.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): install Debian's systemd package "+
			"(apt-get install systemd), which provides it; CI installs it", err)
	}
	in := makeInstall(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", in.unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", in.unit, err, out)
	}

	unit := readUnit(t, in.unit)
	execStart := unit.service("ExecStart")
	if len(execStart) != 1 {
		t.Fatalf("ExecStart= %q, want one command", execStart)
	}
	words := strings.Fields(execStart[0])
	if words[0] != in.bin {
		t.Errorf("ExecStart runs %s, want the installed %s", words[0], in.bin)
	}
	if !strings.Contains(execStart[0], " "+filepath.Join(in.confDir, "agent.yaml")) {
		t.Errorf("ExecStart %q does not name the installed %s", execStart[0], filepath.Join(in.confDir, "agent.yaml"))
	}
	// Every default path must have been moved under the install root.
	for _, stale := range []string{"/usr/local/bin/tessera", "/etc/tessera/"} {
		for i := 0; ; {
			j := strings.Index(unit.text[i:], stale)
			if j < 0 {
				break
			}
			if !strings.HasSuffix(unit.text[:i+j], in.root) {
				line := unit.text[strings.LastIndexByte(unit.text[:i+j], '\n')+1:]
				line, _, _ = strings.Cut(line, "\n")
				t.Errorf("the installed unit still names %s: %q", stale, line)
			}
			i += j + len(stale)
		}
	}
	if types := unit.service("Type"); len(types) != 1 || types[0] != "notify" {
		t.Errorf("Type= %q, want notify", types)
	}
}

// TestInstalledDefaultsParse checks the installed /etc/tessera files: the
// agent configuration parses, selects nothing (installing Tessera never
// changes a GPU), and names the installed layouts file, which is a real
// file (not a link into the source tree) holding Tessera's default layouts
// and validates against the built-in catalog.
func TestInstalledDefaultsParse(t *testing.T) {
	in := makeInstall(t, t.TempDir())
	path := filepath.Join(in.confDir, "agent.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ParseConfig(path, data)
	if err != nil {
		t.Fatalf("the installed agent.yaml: %v", err)
	}
	if cfg.Config != "" {
		t.Errorf("the installed agent.yaml selects config %q; it should only observe until the operator chooses one", cfg.Config)
	}
	layouts := cfg.Layouts
	if !filepath.IsAbs(layouts) {
		layouts = filepath.Join(in.confDir, layouts)
	}
	if want := filepath.Join(in.confDir, "layouts.yaml"); layouts != want {
		t.Errorf("agent.yaml names layouts %s, want the installed %s", layouts, want)
	}
	fi, err := os.Lstat(layouts)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("%s is a %v, want a regular file", layouts, fi.Mode().Type())
	}
	ldata, err := os.ReadFile(layouts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := migconfig.ParseFile(layouts, ldata)
	if err != nil {
		t.Fatalf("the installed layouts: %v", err)
	}
	if err := f.Validate(migconfig.Builtin()); err != nil {
		t.Fatalf("the installed layouts: %v", err)
	}
	if !bytes.Equal(ldata, migconfig.DefaultLayoutFile()) {
		t.Errorf("the installed layouts.yaml is not migconfig/config-default.yaml")
	}
}

// TestReinstallKeepsEdits installs twice and checks that the second install
// leaves the operator's edited agent.yaml and layouts.yaml alone while it
// still installs the binary and the unit.
func TestReinstallKeepsEdits(t *testing.T) {
	root := t.TempDir()
	in := makeInstall(t, root)
	edited := map[string]string{
		filepath.Join(in.confDir, "agent.yaml"):   "# edited by the operator\nlayouts: layouts.yaml\nconfig: all-balanced\n",
		filepath.Join(in.confDir, "layouts.yaml"): "# edited by the operator\nversion: v1\nmig-configs:\n  mine:\n    - devices: all\n      mig-enabled: false\n",
	}
	for p, s := range edited {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(in.unit); err != nil {
		t.Fatal(err)
	}
	makeInstall(t, root)
	for p, s := range edited {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != s {
			t.Errorf("the second make install overwrote the edited %s:\n%s", p, got)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("the second make install changed %s's mode to %v", p, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(in.unit); err != nil {
		t.Errorf("the second make install did not install the unit again: %v", err)
	}
}

// TestInstalledAgentStartsAsTheUnitSays runs the installed agent the way
// systemd would: the unit's ExecStart and Environment=, with $NOTIFY_SOCKET
// (Type=notify), on a simulated GPU and a free loopback status port. It must
// send READY=1 after its first pass; then the README's way of choosing a
// layout (sed config: in agent.yaml) and ExecReload's SIGHUP must get the
// layout applied from the installed layouts file without a restart; SIGTERM
// must stop it within TimeoutStopSec with status 0, after STOPPING=1.
func TestInstalledAgentStartsAsTheUnitSays(t *testing.T) {
	in := makeInstall(t, t.TempDir())
	unit := readUnit(t, in.unit)
	words := strings.Fields(unit.service("ExecStart")[0])
	if reload := unit.service("ExecReload"); len(reload) != 1 || reload[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload= %q; this test sends SIGHUP as /bin/kill -HUP $MAINPID does", reload)
	}

	sock := filepath.Join(in.root, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	notes := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				notes <- l
			}
		}
	}()

	vars := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + sock}
	metricsSet := false
	for _, e := range unit.service("Environment") {
		for _, a := range splitEnvironment(t, e) {
			name, value, _ := strings.Cut(a, "=")
			if name == "TESSERA_STATUS_ADDRESS" {
				if host, _, err := net.SplitHostPort(value); err != nil || host != "127.0.0.1" {
					t.Errorf("the unit serves the status on %q, want loopback", value)
				}
				a = name + "=127.0.0.1:0" // a free port, so tests never collide
			}
			if name == "TESSERA_METRICS_ADDRESS" {
				metricsSet = true
				a = name + "=127.0.0.1:0"
			}
			vars = append(vars, a)
		}
	}
	if !metricsSet {
		t.Errorf("the unit does not set TESSERA_METRICS_ADDRESS; the test would bind the default :9472")
	}
	vars = append(vars, "TESSERA_BACKEND=sim:a100-80gb:1")
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Env = vars
	cmd.Dir = "/"
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := e2etest.NewAgentLog()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		log.Read(stderr)
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})

	waitNote := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case n := <-notes:
				if n == want {
					return
				}
			case err := <-exited:
				stopped = true
				t.Fatalf("the agent exited before sending %s: %v", want, err)
			case <-deadline:
				t.Fatalf("the agent sent no %s to $NOTIFY_SOCKET within %v", want, within)
			}
		}
	}
	start := time.Now()
	waitNote("READY=1", 2*time.Minute) // TimeoutStartSec=2min
	t.Logf("READY=1 after %v", time.Since(start).Round(time.Millisecond))
	var addr string
	select {
	case addr = <-log.Addr:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent logged no status server address")
	}
	if inv := e2etest.Status(t, addr); inv.State != agent.StateNone || inv.Desired != nil && inv.Desired.Config != "" || len(inv.Slices()) != 0 {
		t.Errorf("with the installed agent.yaml the agent should only observe; state %q, desired %+v, %d slices", inv.State, inv.Desired, len(inv.Slices()))
	}

	// As systemd/README.md says: choose a layout in agent.yaml, then
	// `systemctl reload` (SIGHUP).
	path := filepath.Join(in.confDir, "agent.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^config: .*$`)
	if !re.Match(data) {
		t.Fatalf("%s has no line `config: ...` for the README's sed to change", path)
	}
	if err := os.WriteFile(path, re.ReplaceAll(data, []byte("config: all-balanced")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		inv := e2etest.Status(t, addr)
		if inv.State == agent.StateSuccess && inv.Desired != nil && inv.Desired.Config == "all-balanced" && len(inv.Slices()) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("all-balanced was not applied within 30 s of editing agent.yaml and SIGHUP; state %q, reason %q, error %q", inv.State, inv.Reason, inv.LastError)
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the agent exited after SIGHUP: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("all-balanced applied %v after SIGHUP", time.Since(start).Round(time.Millisecond))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNote("STOPPING=1", 30*time.Second) // TimeoutStopSec=30s
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("the agent exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the agent did not stop within TimeoutStopSec (30 s) of SIGTERM")
	}
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			t.Errorf("log line is not JSON (ExecStart has --log-format json): %q", l)
		}
	}
}

// unitFile is a parsed systemd unit: its text and each section's
// assignments in order.
type unitFile struct {
	text     string
	sections map[string][][2]string
}

func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{text: string(data), sections: map[string][][2]string{}}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
		default:
			if strings.HasSuffix(l, "\\") {
				t.Fatalf("%s: continued lines are not handled by this test: %q", path, l)
			}
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not an assignment: %q", path, l)
			}
			u.sections[section] = append(u.sections[section], [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return u
}

// service returns the values of key in [Service], in order.
func (u unitFile) service(key string) []string {
	var out []string
	for _, kv := range u.sections["Service"] {
		if kv[0] == key {
			out = append(out, kv[1])
		}
	}
	return out
}

// splitEnvironment splits an Environment= value into assignments: words
// separated by spaces, each optionally in double quotes.
func splitEnvironment(t *testing.T, v string) []string {
	t.Helper()
	var out []string
	for v = strings.TrimSpace(v); v != ""; v = strings.TrimSpace(v) {
		if v[0] == '"' {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				t.Fatalf("Environment=%s: unterminated quote", v)
			}
			out = append(out, v[1:end+1])
			v = v[end+2:]
			continue
		}
		word, rest, _ := strings.Cut(v, " ")
		out = append(out, word)
		v = rest
	}
	return out
}
