package kubelet_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/e2e/kubelet/kubeletenv"
)

// sandboxHelperEnv makes TestSandboxHelper report kubeletenv.CheckSandbox's
// verdict for the process it runs in, instead of being skipped.
const sandboxHelperEnv = "TESSERA_KUBELETENV_SANDBOX_HELPER"

// TestSandboxHelper is not a test of its own: TestSandboxRefusals runs this
// binary again, in a prepared mount namespace, with only this test selected.
func TestSandboxHelper(t *testing.T) {
	if os.Getenv(sandboxHelperEnv) == "" {
		t.Skip("helper for TestSandboxRefusals")
	}
	if err := kubeletenv.CheckSandbox(); err != nil {
		fmt.Printf("VERDICT: %v\n", err)
		return
	}
	fmt.Println("VERDICT: ok")
}

// TestSandboxRefusals proves that the harness only runs where it cannot
// touch a real kubelet's folder: it runs the check in child processes whose
// /var/lib/kubelet is anything other than the fresh private tmpfs
// in-mountns.sh makes for that very process, and each is refused with a
// message naming the script. The children live in mount namespaces of
// their own, nested in this test's, so nothing here reaches the host.
func TestSandboxRefusals(t *testing.T) {
	if err := kubeletenv.CheckSandbox(); err != nil {
		t.Fatal(err)
	}
	const marker = `printf "pid=%s\nouter_mnt_ns=%s\n" "$$" "$2" > /var/lib/kubelet/.tessera-e2e-mountns`
	cases := []struct {
		name string
		// setup runs in a new private mount namespace (sh -ec, $2 is a
		// namespace that is not this one) before the check; empty means no
		// new namespace at all.
		setup string
		// viaScript runs the check under the real in-mountns.sh instead.
		viaScript bool
		want      string
	}{
		{"a child of the process the tmpfs is for", "", false, "was mounted for process"},
		{"no mount on the folder", `umount /var/lib/kubelet`, false, "is not a mount point"},
		{"not a tmpfs", `mount -t ramfs ramfs /var/lib/kubelet`, false, "is a ramfs mount, not a tmpfs"},
		{"a tmpfs without the marker", `mount -t tmpfs t /var/lib/kubelet`, false, "has no marker"},
		{"a bad marker", `mount -t tmpfs t /var/lib/kubelet; echo pid= > /var/lib/kubelet/.tessera-e2e-mountns`, false, "bad pid"},
		{"a shared tmpfs", `mount -t tmpfs t /var/lib/kubelet; mount --make-shared /var/lib/kubelet; ` + marker, false, "shared mount"},
		{"the namespace it was started from", `mount -t tmpfs t /var/lib/kubelet; printf "pid=%s\nouter_mnt_ns=%s\n" "$$" "$(readlink /proc/self/ns/mnt)" > /var/lib/kubelet/.tessera-e2e-mountns`, false, "mount namespace it was started from"},
		{"what in-mountns.sh makes", "", true, "ok"},
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{self, "-test.run=^TestSandboxHelper$", "-test.count=1"}
			switch {
			case tc.viaScript:
				// go test runs the binary in the package's folder.
				args = append([]string{filepath.Join("..", "scripts", "in-mountns.sh")}, args...)
			case tc.setup != "":
				script := tc.setup + `; shift 2; exec "$@"`
				args = append([]string{"unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-ec", script, "sh", "x", "mnt:[0]"}, args...)
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), sandboxHelperEnv+"=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			verdict := verdictOf(string(out))
			if !strings.Contains(verdict, tc.want) {
				t.Fatalf("verdict %q, want it to contain %q\n%s", verdict, tc.want, out)
			}
			if tc.want != "ok" && !strings.Contains(verdict, kubeletenv.Script) {
				t.Errorf("refusal %q does not name %s", verdict, kubeletenv.Script)
			}
		})
	}
}

func verdictOf(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "VERDICT: "); ok {
			return v
		}
	}
	return "(no verdict)"
}
