package kubeenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionsMatchTools keeps the constants in step with e2e/tools/go.mod,
// which decides what components.sh builds and names its cache folder after.
func TestVersionsMatchTools(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"k8s.io/kubernetes":         KubernetesVersion,
		"go.etcd.io/etcd/server/v3": EtcdVersion,
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && want[f[0]] != "" {
			if f[1] != want[f[0]] {
				t.Errorf("e2e/tools/go.mod requires %s %s; kubeenv expects %s", f[0], f[1], want[f[0]])
			}
			delete(want, f[0])
		}
	}
	for mod := range want {
		t.Errorf("e2e/tools/go.mod does not require %s", mod)
	}
}

// TestFindBinariesMissing checks that a missing binary gives an error that
// says how to build it.
func TestFindBinariesMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := FindBinaries(dir)
	if !errors.Is(err, ErrBinariesMissing) {
		t.Fatalf("FindBinaries(%s) = %v, want ErrBinariesMissing", dir, err)
	}
	for _, want := range []string{"kube-apiserver, etcd not found", dir, "make e2e-components", "components.sh", BinEnvVar} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestDefaultBinDir checks the cache folder components.sh writes to.
func TestDefaultBinDir(t *testing.T) {
	t.Setenv("TESSERA_E2E_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	got, err := DefaultBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/xdg/tessera-e2e/k8s-v1.35.4-etcd-v3.6.5/bin"; got != want {
		t.Errorf("DefaultBinDir() = %s, want %s", got, want)
	}
	t.Setenv("TESSERA_E2E_CACHE", "/c")
	if got, _ := DefaultBinDir(); got != "/c/k8s-v1.35.4-etcd-v3.6.5/bin" {
		t.Errorf("with TESSERA_E2E_CACHE=/c: DefaultBinDir() = %s", got)
	}
}
