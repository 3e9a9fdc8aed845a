package migconfig

import "errors"

// errNotImplemented is temporary while the packing search is written.
var errNotImplemented = errors.New("not implemented")

// ValidateLayout checks that layout l is possible on model m: every profile
// exists, counts are within MaxCount, explicit placements are valid and
// disjoint, and the unplaced instances can be packed. The error says why not.
func ValidateLayout(m *GPUModel, l GPULayout) error {
	_, err := Pack(m, l)
	return err
}

// Pack returns l with every unplaced instance given a placement, keeping the
// placed ones where they are. The search is exact over the memory-slice
// bitmasks and deterministic; among all packings it prefers the one that
// leaves the largest usable free region.
func Pack(m *GPUModel, l GPULayout) (GPULayout, error) {
	return l, errNotImplemented
}
