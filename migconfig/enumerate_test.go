package migconfig

import (
	"fmt"
	"strings"
	"testing"
)

// TestMaximalLayoutsMatchTheReference checks the enumeration against
// ../shared/reference/scheduling.md §5 and mig.md §3.4: with the base
// profiles (1g, 2g, 3g, 4g, 7g) an 8-slice GPU has 14 distinct maximal
// multisets, two of which (3×1g+3g and 1g+2g+3g, from a 3g at 0:4) are
// contained in others; with the double-memory 1g there are 38.
func TestMaximalLayoutsMatchTheReference(t *testing.T) {
	m := pkA100()
	base := []ProfileID{19, 14, 9, 5, 0}
	if got := len(maximalMultisets(m, base)); got != 14 {
		t.Errorf("base profiles: %d maximal multisets, want 14", got)
	}
	layouts := MaximalLayouts(m, base)
	if len(layouts) != 12 {
		t.Errorf("base profiles: %d undominated layouts, want 12", len(layouts))
	}
	want := map[string]bool{ // (1g,2g,3g,4g,7g) counts from the reference, less the two dominated
		"7×19": true, "5×19,1×14": true, "4×19,1×9": true, "3×19,2×14": true, "3×19,1×5": true,
		"2×19,1×14,1×9": true, "1×19,3×14": true, "1×19,1×14,1×5": true, "2×14,1×9": true,
		"2×9": true, "1×9,1×5": true, "1×0": true,
	}
	for _, l := range layouts {
		counts := map[ProfileID]int{}
		for _, in := range l.Instances {
			counts[in.Profile]++
		}
		k := countsKey(counts)
		// countsKey orders by profile ID; normalise the expectation.
		found := false
		for w := range want {
			if equalCounts(parseCountsKey(t, w), counts) {
				found = true
				delete(want, w)
				break
			}
		}
		if !found {
			t.Errorf("unexpected layout %s", k)
		}
		if err := ValidateLayout(m, l); err != nil {
			t.Errorf("layout %s is not valid: %v", k, err)
		}
	}
	for w := range want {
		t.Errorf("missing layout %s", w)
	}
	withRev2 := []ProfileID{19, 14, 9, 5, 0, 15}
	if got := len(maximalMultisets(m, withRev2)); got != 38 {
		t.Errorf("with the double-memory 1g: %d maximal multisets, want 38", got)
	}
	// A30: 4g; 2g+2g; 2g+1g+1g; 4×1g (mig.md §3.1).
	if got := len(MaximalLayouts(pkA30(), []ProfileID{0, 5, 14})); got != 4 {
		t.Errorf("A30: %d undominated layouts, want 4 (4g, 2×2g, 2g+2×1g, 4×1g)", got)
	}
}

func parseCountsKey(t *testing.T, k string) map[ProfileID]int {
	t.Helper()
	out := map[ProfileID]int{}
	for _, part := range strings.Split(k, ",") {
		var n, id int
		if _, err := fmt.Sscanf(part, "%d×%d", &n, &id); err != nil {
			t.Fatalf("bad key %q: %v", k, err)
		}
		out[ProfileID(id)] = n
	}
	return out
}
