package migconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DeviceName is a MIG device name as the keys of mig-parted's mig-devices
// spell it: "<g>g.<gb>gb" or "<c>c.<g>g.<gb>gb", optionally followed by
// attributes ("+me", "+me.all", "+gfx", "-me"). For "1c.3g.20gb+me" C is
// 1, G 3, GB 20, Attributes ["+me"] and Profile "3g.20gb+me".
type DeviceName struct {
	// C is the compute slices of each compute instance, as written; 0 when
	// the name has no "<c>c." part (one compute instance over the whole
	// GPU instance).
	C int
	// G is the compute slices of the GPU instance.
	G int
	// GB is the memory of the GPU instance in GB, as the name rounds it.
	GB int
	// Attributes are the attributes with their sign ("+me", "-me"),
	// sorted.
	Attributes []string
	// Profile is the GPU-instance profile name in canonical form: "<g>g.<gb>gb"
	// followed by the attributes ("3g.20gb+me").
	Profile string
}

// ComputeSlices returns the compute slices of each compute instance: C, or
// G when the name has no "<c>c." part.
func (d DeviceName) ComputeSlices() int {
	if d.C == 0 {
		return d.G
	}
	return d.C
}

// SplitsCompute reports whether the name asks for compute instances
// smaller than the GPU instance ("1c.3g.20gb").
func (d DeviceName) SplitsCompute() bool { return d.C != 0 && d.C != d.G }

// String returns the name in canonical form: "<c>c." only when C differs
// from G, numbers without leading zeros, attributes sorted.
func (d DeviceName) String() string {
	if d.SplitsCompute() {
		return fmt.Sprintf("%dc.%s", d.C, d.Profile)
	}
	return d.Profile
}

// validComputeSplit reports whether compute instances of C slices can
// split a GPU instance of G slices, by go-nvlib's rule: C ≤ G and, when
// C < G, 2C ≤ G+1 (so a 4g instance has 1c, 2c and 4c but no 3c).
func (d DeviceName) validComputeSplit() bool {
	c := d.ComputeSlices()
	return c >= 1 && c <= d.G && (c == d.G || 2*c <= d.G+1)
}

// computePerInstance is how many compute instances of C slices one GPU
// instance of G slices holds: floor(G/C).
func (d DeviceName) computePerInstance() int {
	c := d.ComputeSlices()
	if c <= 0 {
		return 1
	}
	return max(d.G/c, 1)
}

// gpuInstancesFor returns how many GPU instances count devices of this
// name take: count itself, or ceil(count / floor(G/C)) for a split name.
func (d DeviceName) gpuInstancesFor(count int) int {
	if !d.SplitsCompute() {
		return count
	}
	per := d.computePerInstance()
	return (count + per - 1) / per
}

// maxDeviceNameLen bounds a device name's length; the longest real one,
// "1c.1g.24gb+me.all", has 17 bytes.
const maxDeviceNameLen = 64

// maxNameNumber bounds the numbers in a device name; real ones are below
// 1000 (GB300's 7g.278gb), and the bound keeps arithmetic far from overflow.
const maxNameNumber = 9999

// ParseDeviceName parses a MIG device name by mig-parted's (go-nvlib's)
// rules: two or three '.'-separated fields "<c>c", "<g>g", "<gb>gb" with
// positive decimal numbers, then optionally '+' or '-' and a
// comma-separated list of attributes (letters, digits and dots, not
// starting with a digit or dot, not ending with a dot, no repeats). A name
// cannot mix '+' and '-' attributes. Whether the attributes exist on a GPU
// is decided when the name is resolved on a model.
func ParseDeviceName(s string) (DeviceName, error) {
	if s == "" {
		return DeviceName{}, errors.New("empty MIG device name")
	}
	if len(s) > maxDeviceNameLen {
		return DeviceName{}, fmt.Errorf("name is %d bytes long; at most %d are allowed", len(s), maxDeviceNameLen)
	}
	plus, minus := strings.IndexByte(s, '+'), strings.IndexByte(s, '-')
	if plus >= 0 && minus >= 0 {
		return DeviceName{}, errors.New("a name cannot have both '+' and '-' attributes")
	}
	fields, sign, attrText := s, "", ""
	if i := max(plus, minus); i >= 0 {
		fields, sign, attrText = s[:i], s[i:i+1], s[i+1:]
	}
	var d DeviceName
	parts := strings.Split(fields, ".")
	var err error
	switch len(parts) {
	case 2:
		if d.G, err = parseNameField(parts[0], "g"); err != nil {
			return DeviceName{}, err
		}
		if d.GB, err = parseNameField(parts[1], "gb"); err != nil {
			return DeviceName{}, err
		}
	case 3:
		if d.C, err = parseNameField(parts[0], "c"); err != nil {
			return DeviceName{}, err
		}
		if d.G, err = parseNameField(parts[1], "g"); err != nil {
			return DeviceName{}, err
		}
		if d.GB, err = parseNameField(parts[2], "gb"); err != nil {
			return DeviceName{}, err
		}
	default:
		return DeviceName{}, fmt.Errorf("expected <g>g.<gb>gb or <c>c.<g>g.<gb>gb, found %d '.'-separated fields", len(parts))
	}
	if sign != "" {
		attrs, err := parseNameAttributes(attrText)
		if err != nil {
			return DeviceName{}, err
		}
		sort.Strings(attrs)
		for _, a := range attrs {
			d.Attributes = append(d.Attributes, sign+a)
		}
		d.Profile = fmt.Sprintf("%dg.%dgb%s%s", d.G, d.GB, sign, strings.Join(attrs, ","))
	} else {
		d.Profile = fmt.Sprintf("%dg.%dgb", d.G, d.GB)
	}
	return d, nil
}

// parseNameField parses "<n><suffix>" with n a positive decimal number.
func parseNameField(s, suffix string) (int, error) {
	num, ok := strings.CutSuffix(s, suffix)
	if !ok || num == "" {
		return 0, fmt.Errorf("expected <n>%s, found %q", suffix, s)
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("expected <n>%s, found %q", suffix, s)
		}
	}
	if len(num) > 4 {
		return 0, fmt.Errorf("number in %q is too large", s)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, fmt.Errorf("malformed number in %q: %w", s, err)
	}
	if n < 1 || n > maxNameNumber {
		return 0, fmt.Errorf("number in %q must be at least 1", s)
	}
	return n, nil
}

// parseNameAttributes parses a comma-separated attribute list.
func parseNameAttributes(s string) ([]string, error) {
	attrs := strings.Split(s, ",")
	seen := make(map[string]bool, len(attrs))
	for _, a := range attrs {
		switch {
		case a == "":
			return nil, errors.New("empty attribute")
		case seen[a]:
			return nil, fmt.Errorf("attribute %q repeated", a)
		case a[0] >= '0' && a[0] <= '9':
			return nil, fmt.Errorf("attribute %q begins with a digit", a)
		case a[0] == '.' || a[len(a)-1] == '.':
			return nil, fmt.Errorf("attribute %q begins or ends with a dot", a)
		}
		for _, r := range a {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '.' {
				return nil, fmt.Errorf("attribute %q has a character other than a letter, digit or dot", a)
			}
		}
		seen[a] = true
	}
	return attrs, nil
}

// ResourceName returns the Kubernetes extended-resource name suffix that
// NVIDIA's device plugin uses for a MIG profile in the mixed strategy: "mig-"
// followed by the name with '+' replaced by '.', so "1g.10gb+me" gives
// "mig-1g.10gb.me" and "1g.24gb-me" gives "mig-1g.24gb-me". Prefix it with
// "nvidia.com/".
func ResourceName(profileName string) string {
	return "mig-" + strings.ReplaceAll(profileName, "+", ".")
}

// ConfigNameForProfile returns the name mig-parted's generate-config and
// default config file give the config that fills a GPU with one profile:
// "all-" followed by the name with '+' replaced by '.' ("all-1g.10gb.me",
// "all-1g.24gb.me.all", "all-1g.24gb-me").
func ConfigNameForProfile(profileName string) string {
	return "all-" + strings.ReplaceAll(profileName, "+", ".")
}

// profileByDeviceName returns the GPU-instance profile of model m that the
// device name's Profile part names. Names are compared after parsing, so
// "01g.5gb" and "3c.3g.20gb" resolve as mig-parted resolves them.
func profileByDeviceName(m *GPUModel, d DeviceName) (*Profile, bool) {
	if p, ok := m.ProfileByName(d.Profile); ok {
		return p, true
	}
	for i := range m.Profiles {
		pd, err := ParseDeviceName(m.Profiles[i].Name)
		if err == nil && !pd.SplitsCompute() && pd.Profile == d.Profile {
			return &m.Profiles[i], true
		}
	}
	return nil, false
}

// SliceNames names a MIG device (compute instance ci of GPU instance in on
// a GPU of model m) the way NVIDIA's device plugin does: profile is the
// GPU-instance profile ("1g.10gb", "1g.10gb+me"), prefixed by the compute
// slices when the instance is split ("1c.3g.40gb"); giProfile is the GPU
// instance's profile. A profile the model lacks is named "profile-<ID>".
func SliceNames(m *GPUModel, in Instance, ci ComputeInstance) (profile, giProfile string) {
	giProfile = fmt.Sprintf("profile-%d", in.Profile)
	var slices int
	if m != nil {
		if p, ok := m.ProfileByID(in.Profile); ok {
			giProfile, slices = p.Name, p.ComputeSlices
		}
	}
	profile = giProfile
	if ci.Slices > 0 && slices > 0 && ci.Slices < slices {
		profile = fmt.Sprintf("%dc.%s", ci.Slices, giProfile)
	}
	return profile, giProfile
}
