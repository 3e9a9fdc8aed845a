package migconfig_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestParseDeviceName(t *testing.T) {
	tests := []struct {
		in       string
		want     migconfig.DeviceName
		str      string
		computeC int
	}{
		{"1g.5gb", migconfig.DeviceName{G: 1, GB: 5, Profile: "1g.5gb"}, "1g.5gb", 1},
		{"3g.20gb", migconfig.DeviceName{G: 3, GB: 20, Profile: "3g.20gb"}, "3g.20gb", 3},
		{"1c.3g.20gb", migconfig.DeviceName{C: 1, G: 3, GB: 20, Profile: "3g.20gb"}, "1c.3g.20gb", 1},
		{"1c.3g.20gb+me", migconfig.DeviceName{C: 1, G: 3, GB: 20, Attributes: []string{"+me"}, Profile: "3g.20gb+me"}, "1c.3g.20gb+me", 1},
		{"3c.3g.20gb", migconfig.DeviceName{C: 3, G: 3, GB: 20, Profile: "3g.20gb"}, "3g.20gb", 3},
		{"1g.10gb+me", migconfig.DeviceName{G: 1, GB: 10, Attributes: []string{"+me"}, Profile: "1g.10gb+me"}, "1g.10gb+me", 1},
		{"1g.24gb+me.all", migconfig.DeviceName{G: 1, GB: 24, Attributes: []string{"+me.all"}, Profile: "1g.24gb+me.all"}, "1g.24gb+me.all", 1},
		{"4g.96gb+gfx", migconfig.DeviceName{G: 4, GB: 96, Attributes: []string{"+gfx"}, Profile: "4g.96gb+gfx"}, "4g.96gb+gfx", 4},
		{"1g.24gb-me", migconfig.DeviceName{G: 1, GB: 24, Attributes: []string{"-me"}, Profile: "1g.24gb-me"}, "1g.24gb-me", 1},
		{"1g.5gb+me,gfx", migconfig.DeviceName{G: 1, GB: 5, Attributes: []string{"+gfx", "+me"}, Profile: "1g.5gb+gfx,me"}, "1g.5gb+gfx,me", 1},
		{"01g.05gb", migconfig.DeviceName{G: 1, GB: 5, Profile: "1g.5gb"}, "1g.5gb", 1},
		{"7g.278gb", migconfig.DeviceName{G: 7, GB: 278, Profile: "7g.278gb"}, "7g.278gb", 7},
	}
	for _, tt := range tests {
		got, err := migconfig.ParseDeviceName(tt.in)
		if err != nil {
			t.Errorf("ParseDeviceName(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDeviceName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.String() != tt.str {
			t.Errorf("ParseDeviceName(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if got.ComputeSlices() != tt.computeC {
			t.Errorf("ParseDeviceName(%q).ComputeSlices() = %d, want %d", tt.in, got.ComputeSlices(), tt.computeC)
		}
	}
	for _, bad := range []string{
		"", "1g", "1g.5", "g.5gb", "1g.gb", "1g.5gb.", "1c.1g.5gb.x", "1.1g.5gb", "1c.1g.5gb.6gb",
		"0g.5gb", "1g.0gb", "0c.1g.5gb", "-1g.5gb", "+1g.5gb", "1g.5gb+", "1g.5gb-", "1g.5gb+me,", "1g.5gb+me,me",
		"1g.5gb+.me", "1g.5gb+me.", "1g.5gb+m e", "1g.5gb+me-x", "1g.5gb+1me", " 1g.5gb", "1g.5gb ", "1G.5GB", "12345g.5gb",
		"1g.5gb+" + strings.Repeat("a", 60),
	} {
		if d, err := migconfig.ParseDeviceName(bad); err == nil {
			t.Errorf("ParseDeviceName(%q) = %+v, want an error", bad, d)
		}
	}
}

func TestResourceAndConfigNames(t *testing.T) {
	tests := []struct{ profile, resource, config string }{
		{"1g.10gb", "mig-1g.10gb", "all-1g.10gb"},
		{"1g.10gb+me", "mig-1g.10gb.me", "all-1g.10gb.me"},
		{"1g.24gb+me.all", "mig-1g.24gb.me.all", "all-1g.24gb.me.all"},
		{"4g.96gb+gfx", "mig-4g.96gb.gfx", "all-4g.96gb.gfx"},
		{"1g.24gb-me", "mig-1g.24gb-me", "all-1g.24gb-me"},
	}
	for _, tt := range tests {
		if got := migconfig.ResourceName(tt.profile); got != tt.resource {
			t.Errorf("ResourceName(%q) = %q, want %q", tt.profile, got, tt.resource)
		}
		if got := migconfig.ConfigNameForProfile(tt.profile); got != tt.config {
			t.Errorf("ConfigNameForProfile(%q) = %q, want %q", tt.profile, got, tt.config)
		}
	}
}

func TestSuggest(t *testing.T) {
	a100 := []string{"1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb", "1g.5gb+me", "1g.10gb"}
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"3g.21gb", a100, "3g.20gb"},
		{"7g.41gb", a100, "7g.40gb"},
		{"1g.5gb+m", a100, "1g.5gb+me"},
		{"7g.80gb", []string{"1g.10gb", "7g.79gb"}, "7g.79gb"},
		{"1g.24gb", []string{"1g.23gb", "1g.47gb"}, "1g.23gb"},
		{"9g.99gb", a100, ""},
		{"3g.40gb", a100, "3g.20gb"},
		{"mig-device", []string{"device-filter", "devices", "mig-enabled", "mig-devices"}, "mig-devices"},
		{"x", []string{"y"}, ""},
		{"3g.20gb", a100, ""}, // an exact match is not a suggestion
	}
	for _, tt := range tests {
		if got := migconfig.Suggest(tt.name, tt.candidates); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
