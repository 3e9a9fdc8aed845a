package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tessera-gpu/tessera/gpu"
	"github.com/tessera-gpu/tessera/gpu/sim"
	"github.com/tessera-gpu/tessera/migconfig"
)

// backend is the node a command acts on: the real GPUs through NVML, or a
// simulated node whose state may live in a file between invocations.
type backend struct {
	// cat is the catalog to plan with: for NVML, the built-in one with
	// every model on the node replaced by the table NVML reports.
	cat       *migconfig.Catalog
	node      *gpu.Node
	sim       *sim.Node // nil for NVML
	statePath string    // where the simulated state is saved; "" for none
}

// backendHelp documents --backend for every command that takes it.
const backendHelp = `where the GPUs are: "nvml" (this machine's GPUs) or "sim:MODEL[:COUNT]", a simulated node (MODEL one of %s)`

func backendUsage(cat *migconfig.Catalog) string {
	return fmt.Sprintf(backendHelp, strings.Join(cat.Keys(), ", "))
}

// openBackend opens the node named by spec. For a simulated node with a
// statePath, the state is loaded from the file when it exists (and must be
// of the same model), and saved back by close.
func openBackend(ctx context.Context, cat *migconfig.Catalog, spec, statePath string, log *slog.Logger) (*backend, error) {
	b := &backend{statePath: statePath, cat: cat}
	switch {
	case spec == "nvml":
		if statePath != "" {
			return nil, fmt.Errorf("--sim-state applies only to a sim: backend")
		}
		lib := gpu.NewNVML()
		node, err := gpu.Open(ctx, lib, gpu.Options{Catalog: cat, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("backend nvml: %w (is the NVIDIA driver loaded? for simulated GPUs use --backend sim:a100-80gb:8)", err)
		}
		// The profile tables NVML reports win over the built-in ones;
		// EffectiveCatalog logs every difference.
		effective, _, err := node.EffectiveCatalog(ctx)
		node.Close()
		if err != nil {
			return nil, fmt.Errorf("backend nvml: %w", err)
		}
		if node, err = gpu.Open(ctx, lib, gpu.Options{Catalog: effective, Logger: log}); err != nil {
			return nil, fmt.Errorf("backend nvml: %w", err)
		}
		b.node, b.cat = node, effective
		return b, nil
	case strings.HasPrefix(spec, "sim:"):
		s, err := openSim(cat, strings.TrimPrefix(spec, "sim:"), statePath)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", spec, err)
		}
		b.sim = s
		node, err := gpu.Open(ctx, s, gpu.Options{Catalog: cat, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", spec, err)
		}
		b.node = node
		if statePath != "" {
			// A saved node must be the one the spec asks for.
			state, err := node.Snapshot(ctx)
			if err != nil {
				node.Close()
				return nil, fmt.Errorf("backend %s: %w", spec, err)
			}
			want, err := sim.NewFromSpec(cat, strings.TrimPrefix(spec, "sim:"))
			if err != nil {
				node.Close()
				return nil, err
			}
			if got, want := nodeSpec(state), specOfSim(cat, want); got != want {
				node.Close()
				return nil, fmt.Errorf("simulated state %s holds a %s node, not %s; remove the file to start over", statePath, got, want)
			}
		}
		return b, nil
	default:
		return nil, fmt.Errorf(`unknown backend %q: want "nvml" or "sim:MODEL[:COUNT]", MODEL one of %s`, spec, strings.Join(cat.Keys(), ", "))
	}
}

func openSim(cat *migconfig.Catalog, spec, statePath string) (*sim.Node, error) {
	fresh, err := sim.NewFromSpec(cat, spec, sim.WithAmpereAutoReset())
	if err != nil {
		return nil, err
	}
	if statePath == "" {
		return fresh, nil
	}
	data, err := os.ReadFile(statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read simulated state: %w", err)
	}
	saved, err := sim.Load(cat, data, sim.WithAmpereAutoReset())
	if err != nil {
		return nil, fmt.Errorf("load simulated state %s: %w", statePath, err)
	}
	return saved, nil
}

// nodeSpec describes a node as "MODEL:COUNT" (models joined with "+" if
// mixed), to compare a saved simulated node with the one asked for.
func nodeSpec(state migconfig.NodeState) string {
	var models []string
	for _, g := range state.GPUs {
		if len(models) == 0 || models[len(models)-1] != g.Model {
			models = append(models, g.Model)
		}
	}
	return fmt.Sprintf("%s:%d", strings.Join(models, "+"), len(state.GPUs))
}

func specOfSim(cat *migconfig.Catalog, s *sim.Node) string {
	s.Init()
	defer s.Shutdown()
	count, _ := s.DeviceGetCount()
	var models []string
	for i := 0; i < count; i++ {
		d, _ := s.DeviceGetHandleByIndex(i)
		pci, _ := d.GetPciInfo()
		name := fmt.Sprintf("%#08x", pci.PciDeviceId)
		if m, ok := cat.ByDeviceID(pci.PciDeviceId); ok {
			name = m.Key
		}
		if len(models) == 0 || models[len(models)-1] != name {
			models = append(models, name)
		}
	}
	return fmt.Sprintf("%s:%d", strings.Join(models, "+"), count)
}

// close saves a simulated node's state (if it has a file) and shuts NVML
// down.
func (b *backend) close() error {
	var errs []error
	if b.sim != nil && b.statePath != "" {
		data, err := b.sim.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("save simulated state: %w", err))
		} else if err := writeFileAtomic(b.statePath, data); err != nil {
			errs = append(errs, fmt.Errorf("save simulated state: %w", err))
		}
	}
	if b.node != nil {
		errs = append(errs, b.node.Close())
	}
	return errors.Join(errs...)
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so a crash never leaves half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
