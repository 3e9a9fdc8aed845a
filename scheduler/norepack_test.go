package scheduler

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
)

// PlanDigest is a SHA-256 of what a plan decides, without floating-point
// sums that could round differently elsewhere: every GPU's slices and
// replicas, the counts of GPUs used, changed, added and released, the
// changes in order, the dip to six places and each service's replicas and
// whether it is met.
func planDigest(p Plan) string {
	var b strings.Builder
	for _, g := range p.GPUs {
		fmt.Fprintf(&b, "%s/%d:", g.Node, g.Index)
		for _, s := range g.Slices {
			fmt.Fprintf(&b, " %s@%s=%s", s.Profile, s.Placement, s.Service)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%d %d %d %d %.6f\n", p.GPUsUsed, p.ChangedGPUs, p.AddedGPUs, p.ReleasedGPUs, p.CapacityDip)
	for _, c := range p.Changes {
		b.WriteString(c.String() + "\n")
	}
	for _, s := range p.Services {
		fmt.Fprintf(&b, "%s %d %v\n", s.Name, s.Replicas, s.Unmet == "")
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(b.String())))[:16]
}

// noRepackReplans re-plans random running clusters after random demand
// steps, with and without Migrate, with MaxChangedGPUs NoRepack. Some
// GPUs lose a free slice first, so that replicas are added to free
// memory of GPUs in use. It returns each plan's digest by case.
func noRepackReplans(t *testing.T) map[string]string {
	t.Helper()
	cat := migconfig.Builtin()
	pl := NewPlanner(cat)
	r := rand.New(rand.NewPCG(2026, 11))
	out := map[string]string{}
	for iter := 0; iter < 12; iter++ {
		w := randomWorkload(r, 2+r.IntN(10))
		c := testCluster(40)
		plan, err := pl.Plan(c, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		run := plan.Applied(c)
		for ni := range run.Nodes {
			for gi := range run.Nodes[ni].GPUs {
				g := &run.Nodes[ni].GPUs[gi]
				for si := 0; si < len(g.Slices); si++ {
					if g.Slices[si].Service == "" && r.IntN(2) == 0 {
						g.Slices = append(g.Slices[:si:si], g.Slices[si+1:]...)
						break
					}
				}
			}
		}
		step := w
		step.Services = append([]Service(nil), w.Services...)
		for i := range step.Services {
			step.Services[i].Demand *= 0.5 + r.Float64()
		}
		for _, migrate := range []bool{false, true} {
			re, err := pl.Plan(run, step, Options{Migrate: migrate, MaxChangedGPUs: NoRepack})
			if err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprintf("iter %d migrate %v", iter, migrate)] = planDigest(re)
		}
	}
	return out
}

// TestNoRepackKeepsPreviousReplans checks that a change budget of
// NoRepack re-plans exactly as re-plans did before the budget and the
// repack existed: the digests were taken from that planner (commit
// 301f109) on the same inputs. Among them are re-plans that add
// instances to free memory (changed GPUs) and migrating ones that drain
// a GPU.
func TestNoRepackKeepsPreviousReplans(t *testing.T) {
	want := map[string]string{
		"iter 0 migrate false":  "aced6af5c62eabd9",
		"iter 0 migrate true":   "aced6af5c62eabd9",
		"iter 1 migrate false":  "582581d82f347574",
		"iter 1 migrate true":   "582581d82f347574",
		"iter 10 migrate false": "2f8d9f3fc05f6488",
		"iter 10 migrate true":  "2f8d9f3fc05f6488",
		"iter 11 migrate false": "3c51b9ca4e39567d",
		"iter 11 migrate true":  "e2a60a063cc39751",
		"iter 2 migrate false":  "56be390099e08ac1",
		"iter 2 migrate true":   "56be390099e08ac1",
		"iter 3 migrate false":  "cf946598d58e7ba6",
		"iter 3 migrate true":   "cf946598d58e7ba6",
		"iter 4 migrate false":  "9036f70ac343c061",
		"iter 4 migrate true":   "246297bf059100fc",
		"iter 5 migrate false":  "ba568fd1d1c49e1a",
		"iter 5 migrate true":   "ba568fd1d1c49e1a",
		"iter 6 migrate false":  "060a933cfebaf0cb",
		"iter 6 migrate true":   "060a933cfebaf0cb",
		"iter 7 migrate false":  "6e451a82ce11ad98",
		"iter 7 migrate true":   "6e451a82ce11ad98",
		"iter 8 migrate false":  "c4d6493a726f36dd",
		"iter 8 migrate true":   "c4d6493a726f36dd",
		"iter 9 migrate false":  "3219157e89f086fa",
		"iter 9 migrate true":   "3219157e89f086fa",
	}
	got := noRepackReplans(t)
	if os.Getenv("TESSERA_PRINT_DIGESTS") != "" {
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("\t\t%q: %q,\n", k, got[k])
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: plan digest %s, want %s", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d cases, want %d", len(got), len(want))
	}
}
