package gpu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/migconfig"
)

// EffectiveCatalog reads the profile table of every distinct MIG-capable
// GPU model on the node from NVML and returns the node's catalog with each
// table read replacing the built-in one (models the catalog lacks are
// added). It also returns the differences between the built-in and the
// observed tables, one line each prefixed with the model key, and logs
// them. A model whose table cannot be read keeps its built-in table; that
// is reported as a difference too.
func (n *Node) EffectiveCatalog(ctx context.Context) (*migconfig.Catalog, []string, error) {
	if err := n.lock(); err != nil {
		return nil, nil, err
	}
	defer n.mu.Unlock()
	count, err := n.deviceCount()
	if err != nil {
		return nil, nil, fmt.Errorf("gpu: effective catalog: %w", err)
	}
	cat := n.cat
	var diffs []string
	seen := map[string]bool{}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("gpu: effective catalog: %w", err)
		}
		g, err := n.device(i)
		if err != nil {
			return nil, nil, fmt.Errorf("gpu: effective catalog: %w", err)
		}
		if !migCapable(g) {
			continue
		}
		key := ""
		if g.model != nil {
			key = g.model.Key
		}
		observed, err := n.readModel(g)
		if key == "" {
			key = observed.Key
			if err != nil {
				key = g.name
			}
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if err != nil {
			msg := fmt.Sprintf("%s: kept the built-in table: %v", key, err)
			if g.model == nil {
				msg = fmt.Sprintf("%s: not in the catalog, and its table could not be read: %v", key, err)
			}
			diffs = append(diffs, msg)
			n.log.Warn("MIG profile table not read from NVML", slog.String("model", key), slog.String("error", err.Error()))
			continue
		}
		for _, d := range migconfig.CompareModels(g.model, &observed) {
			diffs = append(diffs, key+": "+d)
			n.log.Warn("MIG profile table differs from the built-in catalog",
				slog.String("model", key), slog.Int("gpu", g.index), slog.String("difference", d))
		}
		if cat, err = cat.WithModel(observed); err != nil {
			return nil, nil, fmt.Errorf("gpu: effective catalog: model %s read from %s: %w", key, g.label(), err)
		}
	}
	return cat, diffs, nil
}

// migCapable reports whether GetMigMode succeeds on the GPU.
func migCapable(g *gpuDevice) bool {
	_, _, ret := g.dev.GetMigMode()
	return ret == nvml.SUCCESS
}
