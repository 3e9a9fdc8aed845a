package testproc

import (
	"context"
	"os"
	"testing"
	"time"
)

// KeepEnvVar, when set, keeps a failed test's environment folder (configs,
// logs, data) for inspection.
const KeepEnvVar = "TESSERA_E2E_KEEP"

// TestContext returns a context that ends at t's deadline (go test
// -timeout), or one without a deadline when t has none, e.g. a benchmark.
// The caller must call cancel.
func TestContext(t testing.TB) (ctx context.Context, cancel context.CancelFunc) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			return context.WithDeadline(context.Background(), deadline)
		}
	}
	return context.WithCancel(context.Background())
}

// Cleanup registers the end of a test environment named name (a package,
// e.g. "kubeenv", that prefixes its lines) with t. When the test has
// failed, report runs first to log what explains it, and if $KeepEnvVar is
// set and *removeDir is true, *removeDir is cleared so that stop keeps dir.
// Then stop runs; its error fails the test.
func Cleanup(t testing.TB, name string, report func(), dir string, removeDir *bool, stop func() error) {
	t.Cleanup(func() {
		if t.Failed() {
			report()
			if os.Getenv(KeepEnvVar) != "" && *removeDir {
				*removeDir = false
				t.Logf("%s: %s is set; keeping %s", name, KeepEnvVar, dir)
			}
		}
		if err := stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}
