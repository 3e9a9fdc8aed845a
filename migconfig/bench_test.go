package migconfig

import "testing"

// BenchmarkPack packs the hardest common layouts of an 8-slice GPU.
func BenchmarkPack(b *testing.B) {
	m := pkA100()
	layouts := map[string]GPULayout{
		"all-balanced": pkLayout(b, m, "1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"),
		"7x1g":         pkLayout(b, m, "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"),
		"3g+4x1g":      pkLayout(b, m, "3g.20gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"),
		"mixed-rev2":   pkLayout(b, m, "1g.10gb", "1g.10gb", "2g.10gb", "1g.5gb"),
	}
	for name, l := range layouts {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Pack(m, l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiff diffs a busy all-balanced GPU against 7×1g, which makes the
// search weigh every packing against the instances it could keep.
func BenchmarkDiff(b *testing.B) {
	m := pkA100()
	cur := pkObserve(b, m, pkLayout(b, m, "1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"), 1, 3)
	want := pkLayout(b, m, "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb")
	for b.Loop() {
		if _, err := Diff(m, cur, want); err != nil {
			b.Fatal(err)
		}
	}
}
