package migconfig_test

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// FuzzParseFile checks that ParseFile never panics, that every rejection
// is a non-empty ErrorList of errors that each carry a line, that every
// accepted file marshals (YAML and JSON) to a file that parses back equal,
// that Validate and Resolve never panic on what ParseFile accepts, and that
// ResolveDetail agrees with Resolve and reports only overrides of earlier
// entries by later ones.
func FuzzParseFile(f *testing.F) {
	for _, p := range lfFixtures(f) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"~",
		"version: v1",
		"version: v1\nmig-configs: {}\n",
		lfHeader + "  a:\n    - devices: all\n      mig-enabled: false\n",
		lfHeader + "  a:\n    - devices: [0, 1]\n      device-filter: 0x20B010DE:0x145F10DE\n      mig-enabled: yes\n      mig-devices: {\"1c.3g.20gb\": 4, \"1g.5gb+me\": 1}\n      placements: {\"1c.3g.20gb\": [4, 0]}\n",
		lfHeader + "  a: &x\n    - &y\n      devices: all\n      mig-enabled: true\n      mig-devices: {}\n  b: *x\n  c:\n    - <<: *y\n      devices: [3]\n",
		"x: &a [*a]\nversion: v1\nmig-configs: *a\n",
		lfHeader + "  a:\n    - &x\n      devices: all\n      <<: *x\n",
		"{\"version\": \"v1\", \"mig-configs\": {\"\\u00e9\\n\": [{\"devices\": \"all\", \"mig-enabled\": false}]}}",
		lfHeader + "  \"<<\":\n    - devices: all\n      mig-enabled: false\n  \"123\":\n    - devices: []\n      mig-enabled: false\n",
		"version: v1\n---\nversion: v1\n",
		"\t",
		"\t bad",
		"version: v1\nmig-configs:\n  a: [\n",
		"version: v1\nmig-configs:\n  a:\n    - devices: all\n     mig-enabled: true\n",
		"version: v1\nmig-configs:\n  a:\n    - devices: \"all\n",
		"version: v1\nmig-configs:\n  a:\n    - {devices: all\n",
		"a: \x01\r\nb: \xff\u2028c: *x\n",
	} {
		f.Add([]byte(s))
	}
	cat, err := migconfig.NewCatalog(lfA100(), lfA30())
	if err != nil {
		f.Fatal(err)
	}
	node := lfNode(lfGPU(0, lfA100ID), lfGPU(1, lfA30ID), lfT4(2), lfGPU(3, lfA100ID))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := migconfig.ParseFile("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("ParseFile returned a File with an error")
			}
			var list migconfig.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("badly formed error %#v", e)
				}
				if e.Line <= 0 || e.Column < 0 {
					t.Fatalf("error without a line: %s\ninput: %q", e, data)
				}
			}
			return
		}
		lfCheckRoundTrip(t, file)
		_ = file.Validate(cat)
		for _, name := range file.ConfigNames() {
			layouts, err := file.Resolve(cat, name, node)
			if err == nil && layouts == nil {
				t.Fatalf("Resolve(%q) returned neither layouts nor an error", name)
			}
			res, derr := file.ResolveDetail(cat, name, node)
			if (err == nil) != (derr == nil) || (err == nil && !reflect.DeepEqual(res.Layouts, layouts)) {
				t.Fatalf("ResolveDetail(%q) = %+v, %v; Resolve = %+v, %v", name, res, derr, layouts, err)
			}
			if res == nil {
				continue
			}
			for _, o := range res.Overrides {
				if _, ok := layouts[o.GPU]; !ok || o.Replaced >= o.Entry || o.Config != name {
					t.Fatalf("ResolveDetail(%q): bad override %+v of layouts %+v", name, o, layouts)
				}
			}
		}
	})
}
