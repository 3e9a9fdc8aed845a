package bench

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/migconfig"
	"github.com/tessera-gpu/tessera/scheduler"
)

// planDigest is a SHA-256 of what a plan decides, without floating-point
// sums that could round differently elsewhere (as in the scheduler's
// tests).
func planDigest(p scheduler.Plan) string {
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

// TestNoRepackKeepsPreviousDynamicReplans replays the dynamic scenario
// with two seeds, re-planning every step with and without Migrate with a
// change budget of NoRepack (the migrating plan carried on), and checks
// the plans against digests taken from the planner before the budget and
// the repack existed (commit 301f109).
func TestNoRepackKeepsPreviousDynamicReplans(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the dynamic scenario twice")
	}
	want := map[string]string{
		"20250101 grow-10 migrate false":   "6c9988e0cf35046d",
		"20250101 grow-10 migrate true":    "6c9988e0cf35046d",
		"20250101 shrink-10 migrate false": "d8025a3d98386cf1",
		"20250101 shrink-10 migrate true":  "d8025a3d98386cf1",
		"20250101 shift-50 migrate false":  "c280b221464b764e",
		"20250101 shift-50 migrate true":   "c280b221464b764e",
		"20250101 jitter-10 migrate false": "a770f94cf595ce0e",
		"20250101 jitter-10 migrate true":  "a770f94cf595ce0e",
		"20250101 surge-50 migrate false":  "38128be9687dd757",
		"20250101 surge-50 migrate true":   "38128be9687dd757",
		"20250101 drain-50 migrate false":  "fffd131027c764e5",
		"20250101 drain-50 migrate true":   "baaddb4c6268ac60",
		"20250101 jitter-50 migrate false": "a2c0fe49490fef1f",
		"20250101 jitter-50 migrate true":  "a2c0fe49490fef1f",
		"20250101 settle-10 migrate false": "06db2d99fa21b3e8",
		"20250101 settle-10 migrate true":  "72221f5ebffeea22",
		"20250102 grow-10 migrate false":   "6c9988e0cf35046d",
		"20250102 grow-10 migrate true":    "6c9988e0cf35046d",
		"20250102 shrink-10 migrate false": "d8025a3d98386cf1",
		"20250102 shrink-10 migrate true":  "d8025a3d98386cf1",
		"20250102 shift-50 migrate false":  "ef0d332c4eca3f46",
		"20250102 shift-50 migrate true":   "ef0d332c4eca3f46",
		"20250102 jitter-10 migrate false": "ada7bd4bed99b24d",
		"20250102 jitter-10 migrate true":  "204d02d99721bb12",
		"20250102 surge-50 migrate false":  "2c78c6f7439bcac7",
		"20250102 surge-50 migrate true":   "2c78c6f7439bcac7",
		"20250102 drain-50 migrate false":  "5809b3923947b3c2",
		"20250102 drain-50 migrate true":   "5809b3923947b3c2",
		"20250102 jitter-50 migrate false": "32365aaccfc48e75",
		"20250102 jitter-50 migrate true":  "32365aaccfc48e75",
		"20250102 settle-10 migrate false": "9117688b6ee95032",
		"20250102 settle-10 migrate true":  "243e279327dc25bf",
	}
	cat := migconfig.Builtin()
	pl := scheduler.NewPlanner(cat)
	got := map[string]string{}
	for seed := DynamicSeed; seed < DynamicSeed+2; seed++ {
		sc, err := ScenarioWithSeed("dynamic", seed)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pl.Plan(sc.Cluster, sc.Workload, scheduler.Options{Fresh: true})
		if err != nil {
			t.Fatal(err)
		}
		cur := plan.Applied(sc.Cluster)
		for _, st := range sc.Steps {
			for _, migrate := range []bool{false, true} {
				p, err := pl.Plan(cur, st.Workload, scheduler.Options{Migrate: migrate, MaxChangedGPUs: scheduler.NoRepack})
				if err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprintf("%d %s migrate %v", seed, st.Name, migrate)
				got[key] = planDigest(p)
				if os.Getenv("TESSERA_PRINT_DIGESTS") != "" {
					fmt.Printf("\t\t%q: %q,\n", key, got[key])
				}
				if migrate {
					cur = p.Applied(cur)
				}
			}
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
