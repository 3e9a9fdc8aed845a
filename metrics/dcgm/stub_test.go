//go:build !dcgm || !cgo

package dcgm

import (
	"context"
	"errors"
	"testing"
)

func TestOpenNotBuilt(t *testing.T) {
	for _, opts := range []Options{{}, {Address: "localhost:5555"}} {
		p, err := Open(context.Background(), opts)
		if !errors.Is(err, ErrNotBuilt) || p != nil {
			t.Errorf("Open(%+v) = %v, %v; want nil, ErrNotBuilt", opts, p, err)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("Open(%+v): %v is ErrUnavailable too", opts, err)
		}
	}
}
