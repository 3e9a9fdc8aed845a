package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Versions of the components this package expects. They must match
// e2e/tools/go.mod, which pins the modules e2e/scripts/components.sh builds
// the binaries from; a test in this package checks that they do.
const (
	// KubernetesVersion is the release of kube-apiserver and kubectl.
	KubernetesVersion = "v1.35.4"
	// EtcdVersion is the release of etcd.
	EtcdVersion = "v3.6.5"
)

// BinEnvVar names the environment variable that, when set, is the folder
// holding the kube-apiserver, kubectl and etcd binaries.
const BinEnvVar = "TESSERA_E2E_BIN"

// binaries are the file names FindBinaries requires in the bin folder.
var binaries = []string{"kube-apiserver", "kubectl", "etcd"}

// ErrBinariesMissing is wrapped by FindBinaries' error when the component
// binaries are not where it looked.
var ErrBinariesMissing = errors.New("control-plane binaries missing")

// DefaultBinDir returns the folder e2e/scripts/components.sh caches the
// binaries in:
// ${TESSERA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-e2e}/k8s-<version>-etcd-<version>/bin.
func DefaultBinDir() (string, error) {
	cache := os.Getenv("TESSERA_E2E_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locating the e2e component cache: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "tessera-e2e")
	}
	return filepath.Join(cache, "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion, "bin"), nil
}

// FindBinaries returns the folder holding the kube-apiserver, kubectl and etcd
// binaries: dir if it is not empty, else $TESSERA_E2E_BIN, else
// DefaultBinDir(). It returns an error wrapping ErrBinariesMissing, which says
// how to build them, when any of the three is absent or not executable.
func FindBinaries(dir string) (string, error) {
	source := "the bin folder given"
	if dir == "" {
		dir = os.Getenv(BinEnvVar)
		source = "$" + BinEnvVar
	}
	if dir == "" {
		d, err := DefaultBinDir()
		if err != nil {
			return "", err
		}
		dir, source = d, "the default cache folder"
	}
	var missing []string
	for _, name := range binaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s not found in %s (%s); build them once per machine with "+
			"`make e2e-components` (or e2e/scripts/components.sh; ~7 min cold), which caches them "+
			"in the default folder, or set %s to a folder that holds them",
			ErrBinariesMissing, strings.Join(missing, ", "), dir, source, BinEnvVar)
	}
	return dir, nil
}
