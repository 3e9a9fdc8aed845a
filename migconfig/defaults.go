package migconfig

import _ "embed" // for the embedded default layout file

// DefaultLayoutFileName is the file name of Tessera's default layout file:
// the name to give ParseFile, so that errors name the file.
const DefaultLayoutFileName = "config-default.yaml"

// defaultLayoutFile is config-default.yaml, embedded at build time. It is
// a string, so it cannot be modified.
//
//go:embed config-default.yaml
var defaultLayoutFile string

// DefaultLayoutFile returns a copy of Tessera's default layout file in
// mig-parted's format: all-disabled, all-enabled, all-<profile> at the
// maximum count for every profile of every built-in model, and
// all-balanced, each entry restricted to its models with device-filter.
// Parse it with ParseFile(DefaultLayoutFileName, DefaultLayoutFile()).
func DefaultLayoutFile() []byte { return []byte(defaultLayoutFile) }
