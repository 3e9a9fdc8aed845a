package migconfig

// Diff returns the ordered ops that turn GPU current into desired on model
// m: a mode change if needed, then destroys, then creates with explicit
// placements. Instances that can stay where they are stay; destroys of
// instances with processes are marked Busy.
func Diff(m *GPUModel, current GPUState, desired GPULayout) ([]Op, error) {
	return nil, errNotImplemented
}
