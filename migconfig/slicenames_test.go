package migconfig_test

import (
	"fmt"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestSliceNames(t *testing.T) {
	m, ok := migconfig.Builtin().ByKey("a100-40gb")
	if !ok {
		t.Fatal("a100-40gb not in the catalog")
	}
	p3, _ := m.ProfileByName("3g.20gb")
	pme, _ := m.ProfileByName("1g.5gb+me")
	for _, c := range []struct {
		name          string
		m             *migconfig.GPUModel
		in            migconfig.Instance
		ci            migconfig.ComputeInstance
		profile, want string
	}{
		{"whole instance", m, migconfig.Instance{Profile: p3.ID}, migconfig.ComputeInstance{Slices: 3}, "3g.20gb", "3g.20gb"},
		{"split instance", m, migconfig.Instance{Profile: p3.ID}, migconfig.ComputeInstance{Slices: 1}, "1c.3g.20gb", "3g.20gb"},
		{"media extension", m, migconfig.Instance{Profile: pme.ID}, migconfig.ComputeInstance{Slices: 1}, "1g.5gb+me", "1g.5gb+me"},
		{"unknown profile", m, migconfig.Instance{Profile: 99}, migconfig.ComputeInstance{Slices: 1}, "profile-99", "profile-99"},
		{"no model", nil, migconfig.Instance{Profile: p3.ID}, migconfig.ComputeInstance{Slices: 1}, fmt.Sprintf("profile-%d", p3.ID), fmt.Sprintf("profile-%d", p3.ID)},
	} {
		profile, gi := migconfig.SliceNames(c.m, c.in, c.ci)
		if profile != c.profile || gi != c.want {
			t.Errorf("%s: SliceNames = %q, %q; want %q, %q", c.name, profile, gi, c.profile, c.want)
		}
	}
}
