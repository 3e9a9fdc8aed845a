package migconfig

import "strings"

// Suggest returns the candidate closest to name by edit distance when it
// is close enough to be a likely typo or a driver's renaming ("3g.21gb" →
// "3g.20gb", "7g.80gb" → "7g.79gb"), and "" otherwise. Close enough means
// at most two edits and fewer than half of name's characters. Among equally
// close candidates the one sharing the longest prefix with name wins
// ("7g.80gb" → "7g.79gb", not "1g.10gb"), then the earlier one, so the
// result is deterministic. A name that is itself a candidate gets "".
func Suggest(name string, candidates []string) string {
	best, bestDist, bestPrefix := "", -1, 0
	limit := min(2, (len(name)-1)/2)
	for _, c := range candidates {
		if c == name {
			return ""
		}
	}
	for _, c := range candidates {
		d := editDistance(name, c, limit)
		if d > limit {
			continue
		}
		pre := commonPrefix(name, c)
		if bestDist < 0 || d < bestDist || (d == bestDist && pre > bestPrefix) {
			best, bestDist, bestPrefix = c, d, pre
		}
	}
	return best
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// suggestProfileName suggests a profile of model m with the same G for an
// unknown device name, keeping the name's "<c>c." prefix.
func suggestProfileName(m *GPUModel, d DeviceName) string {
	names := make([]string, 0, len(m.Profiles))
	for _, p := range m.Profiles {
		// Only profiles of the same size: a mistyped memory size or
		// attribute is a likely slip, a different G is not.
		if pd, err := ParseDeviceName(p.Name); err == nil && pd.G == d.G {
			names = append(names, p.Name)
		}
	}
	s := Suggest(d.Profile, names)
	if s == "" {
		return ""
	}
	if d.SplitsCompute() {
		return d.String()[:strings.IndexByte(d.String(), '.')+1] + s
	}
	return s
}

// editDistance is the Levenshtein distance between a and b over bytes,
// giving up (returning limit+1) once it must exceed limit.
func editDistance(a, b string, limit int) int {
	if suggestAbs(len(a)-len(b)) > limit {
		return limit + 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func suggestAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
