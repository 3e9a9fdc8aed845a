//go:build !dcgm || !cgo

package dcgm

import (
	"context"

	"github.com/tessera-gpu/tessera/metrics"
)

// Open returns ErrNotBuilt: this binary was built without the dcgm build
// tag or without cgo. Build with `go build -tags dcgm` (cgo enabled) for
// DCGM profiling.
func Open(ctx context.Context, opts Options) (metrics.Profiler, error) {
	return nil, ErrNotBuilt
}
