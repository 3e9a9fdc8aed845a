package migconfig_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

func TestDefaultLayoutFileIsACopy(t *testing.T) {
	a := migconfig.DefaultLayoutFile()
	if !bytes.HasPrefix(a, []byte("# ")) || !bytes.Contains(a, []byte("\nversion: v1\n")) {
		t.Fatalf("DefaultLayoutFile does not start with a comment header and version: v1:\n%.200s", a)
	}
	want := string(a)
	for i := range a {
		a[i] = 'x'
	}
	if got := string(migconfig.DefaultLayoutFile()); got != want {
		t.Fatal("DefaultLayoutFile returned a slice shared between calls")
	}
	if migconfig.DefaultLayoutFileName != "config-default.yaml" {
		t.Errorf("DefaultLayoutFileName = %q", migconfig.DefaultLayoutFileName)
	}
}

// defParse parses the embedded default layout file.
func defParse(t *testing.T) *migconfig.File {
	t.Helper()
	f, err := migconfig.ParseFile(migconfig.DefaultLayoutFileName, migconfig.DefaultLayoutFile())
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", migconfig.DefaultLayoutFileName, err)
	}
	return f
}

func TestDefaultLayoutFileValidates(t *testing.T) {
	f := defParse(t)
	if err := f.Validate(migconfig.Builtin()); err != nil {
		t.Fatalf("Validate(Builtin()): %v", err)
	}
}

// defEntryFor returns the entry of config name that applies to a GPU with
// device ID id, failing if more than one does.
func defEntryFor(t *testing.T, f *migconfig.File, name string, id uint32) (migconfig.ConfigEntry, bool) {
	t.Helper()
	entries, ok := f.Config(name)
	if !ok {
		return migconfig.ConfigEntry{}, false
	}
	var found []migconfig.ConfigEntry
	for _, e := range entries {
		if len(e.DeviceFilter) == 0 || slices.ContainsFunc(e.DeviceFilter, func(d migconfig.DeviceFilter) bool {
			return d.Matches(migconfig.GPUState{DeviceID: id})
		}) {
			found = append(found, e)
		}
	}
	if len(found) > 1 {
		t.Errorf("%s: %d entries apply to device %#08x", name, len(found), id)
	}
	if len(found) == 0 {
		return migconfig.ConfigEntry{}, false
	}
	return found[0], true
}

// defDevices formats an entry's mig-devices as "name:count,..." sorted.
func defDevices(e migconfig.ConfigEntry) string {
	var parts []string
	for _, d := range e.MigDevices {
		parts = append(parts, fmt.Sprintf("%s:%d", d.Name, d.Count))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func TestDefaultLayoutFileCommonConfigs(t *testing.T) {
	f := defParse(t)
	names := f.ConfigNames()
	if len(names) < 3 || names[0] != "all-disabled" || names[1] != "all-enabled" {
		t.Errorf("config names start %q, want all-disabled, all-enabled first", names[:min(3, len(names))])
	}
	disabled, _ := f.Config("all-disabled")
	if len(disabled) != 1 || disabled[0].MigEnabled || !disabled[0].Devices.All ||
		len(disabled[0].DeviceFilter) != 0 || len(disabled[0].MigDevices) != 0 {
		t.Errorf("all-disabled = %+v, want one entry: devices all, mig-enabled false", disabled)
	}
	enabled, _ := f.Config("all-enabled")
	if len(enabled) != 1 || !enabled[0].MigEnabled || !enabled[0].Devices.All ||
		len(enabled[0].DeviceFilter) != 0 || len(enabled[0].MigDevices) != 0 {
		t.Errorf("all-enabled = %+v, want one entry: devices all, mig-enabled true, mig-devices {}", enabled)
	}
}

// TestDefaultLayoutFileReferenceConfigs checks named configs against the
// reference's §7.7 tables (written here independently of the catalog).
func TestDefaultLayoutFileReferenceConfigs(t *testing.T) {
	f := defParse(t)
	tests := []struct {
		config string
		models []string
		want   string
	}{
		// §7.7 "all-balanced per GPU".
		{"all-balanced", []string{"a100-40gb"}, "1g.5gb:2,2g.10gb:1,3g.20gb:1"},
		{"all-balanced", []string{"a100-80gb", "h100-80gb"}, "1g.10gb:2,2g.20gb:1,3g.40gb:1"},
		{"all-balanced", []string{"a30"}, "1g.6gb:2,2g.12gb:1"},
		{"all-balanced", []string{"h100-nvl"}, "1g.12gb:2,2g.24gb:1,3g.47gb:1"},
		{"all-balanced", []string{"h100-96gb"}, "1g.12gb:2,2g.24gb:1,3g.48gb:1"},
		{"all-balanced", []string{"h200"}, "1g.18gb:2,2g.35gb:1,3g.71gb:1"},
		{"all-balanced", []string{"gh200-144gb"}, "1g.18gb:2,2g.36gb:1,3g.72gb:1"},
		{"all-balanced", []string{"b200"}, "1g.23gb:2,2g.45gb:1,3g.90gb:1"},
		// §7.7 "all-1g per GPU".
		{"all-1g.5gb", []string{"a100-40gb"}, "1g.5gb:7"},
		{"all-1g.10gb", []string{"a100-40gb"}, "1g.10gb:4"},
		{"all-1g.10gb", []string{"a100-80gb", "h100-80gb"}, "1g.10gb:7"},
		{"all-1g.20gb", []string{"a100-80gb", "h100-80gb"}, "1g.20gb:4"},
		{"all-1g.6gb", []string{"a30"}, "1g.6gb:4"},
		{"all-1g.12gb", []string{"h100-nvl", "h100-96gb"}, "1g.12gb:7"},
		{"all-1g.24gb", []string{"h100-nvl", "h100-96gb"}, "1g.24gb:4"},
		{"all-1g.18gb", []string{"h200", "gh200-144gb"}, "1g.18gb:7"},
		{"all-1g.35gb", []string{"h200"}, "1g.35gb:4"},
		{"all-1g.23gb", []string{"b200"}, "1g.23gb:7"},
		// "+" becomes "." in config names; +me profiles are ×1.
		{"all-1g.10gb.me", []string{"a100-80gb", "h100-80gb"}, "1g.10gb+me:1"},
		{"all-1g.5gb.me", []string{"a100-40gb"}, "1g.5gb+me:1"},
		{"all-2g.12gb.me", []string{"a30"}, "2g.12gb+me:1"},
		{"all-7g.80gb", []string{"a100-80gb", "h100-80gb"}, "7g.80gb:1"},
		{"all-3g.20gb", []string{"a100-40gb"}, "3g.20gb:2"},
		{"all-2g.24gb", []string{"h100-nvl", "h100-96gb"}, "2g.24gb:3"},
	}
	cat := migconfig.Builtin()
	for _, tc := range tests {
		for _, key := range tc.models {
			m, ok := cat.ByKey(key)
			if !ok {
				t.Fatalf("no model %q", key)
			}
			for _, id := range m.DeviceIDs {
				e, ok := defEntryFor(t, f, tc.config, id)
				if !ok {
					t.Errorf("%s: no entry for %s (%#08x)", tc.config, key, id)
					continue
				}
				if got := defDevices(e); got != tc.want || !e.MigEnabled || !e.Devices.All {
					t.Errorf("%s on %s (%#08x) = %s (enabled %v, all %v), want %s",
						tc.config, key, id, got, e.MigEnabled, e.Devices.All, tc.want)
				}
			}
		}
	}
}

// TestDefaultLayoutFileCoversCatalog checks, for every built-in model, that
// every profile has its all-<profile> config at the maximum count and that
// all-balanced exists, that every such layout is valid on the model, and
// that the file has nothing else.
func TestDefaultLayoutFileCoversCatalog(t *testing.T) {
	f := defParse(t)
	cat := migconfig.Builtin()
	expected := map[string]bool{"all-disabled": true, "all-enabled": true, "all-balanced": true}
	for _, m := range cat.Models() {
		t.Run(m.Key, func(t *testing.T) {
			want := map[string]string{} // config → mig-devices
			for _, p := range m.Profiles {
				name := migconfig.ConfigNameForProfile(p.Name)
				want[name] = fmt.Sprintf("%s:%d", p.Name, p.MaxCount)
				expected[name] = true
			}
			for _, id := range m.DeviceIDs {
				for name, devs := range want {
					e, ok := defEntryFor(t, f, name, id)
					if !ok {
						t.Errorf("%s: no entry for device %#08x", name, id)
						continue
					}
					if got := defDevices(e); got != devs {
						t.Errorf("%s on %#08x = %s, want %s", name, id, got, devs)
					}
				}
				for _, name := range []string{"all-disabled", "all-enabled", "all-balanced"} {
					if _, ok := defEntryFor(t, f, name, id); !ok {
						t.Errorf("%s: no entry for device %#08x", name, id)
					}
				}
			}
			// Every layout the file gives this model must be valid on it.
			for _, name := range f.ConfigNames() {
				e, ok := defEntryFor(t, f, name, m.DeviceIDs[0])
				if !ok {
					continue
				}
				l := migconfig.GPULayout{MigEnabled: e.MigEnabled}
				for _, d := range e.MigDevices {
					p, ok := m.ProfileByName(d.Name)
					if !ok {
						t.Errorf("%s: %q is not a profile of %s", name, d.Name, m.Key)
						continue
					}
					for range d.Count {
						l.Instances = append(l.Instances, migconfig.Instance{Profile: p.ID})
					}
				}
				if err := migconfig.ValidateLayout(&m, l); err != nil {
					t.Errorf("%s on %s: %v", name, m.Key, err)
				}
			}
		})
	}
	for _, name := range f.ConfigNames() {
		if !expected[name] {
			t.Errorf("config %q is not derived from the catalog", name)
		}
		entries, _ := f.Config(name)
		for i, e := range entries {
			for _, d := range e.DeviceFilter {
				if _, ok := cat.ByDeviceID(d.DeviceID); !ok || d.SubsystemID != 0 {
					t.Errorf("%s[%d]: device-filter %s is not a catalog device ID", name, i, d)
				}
			}
			if name != "all-disabled" && name != "all-enabled" && len(e.DeviceFilter) == 0 {
				t.Errorf("%s[%d]: no device-filter", name, i)
			}
		}
	}
}
