// Package bench is Tessera's scheduler benchmark: the per-profile
// throughput table derived from ParvaGPU's profiling data, the demand
// scenarios of shared/reference/scheduling.md §7.1, and the files that
// `tessera bench --export` writes and `tessera plan` reads.
//
// Everything here is pure data and pure functions: the throughput table is
// compiled in (throughput_data.go), so the benchmark runs without the
// ParvaGPU CSV files; the tests re-derive it from them when they are present.
package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tessera-gpu/tessera/scheduler"
)

// Re-derive throughput_data.go from ../../shared/data/parvagpu (or
// $TESSERA_PARVAGPU_DIR).
//go:generate go test -run ^TestThroughputDataMatchesCSV$ -update .

// Source of the throughput data, to be cited wherever it or tables derived
// from it are used.
const (
	// ParvaGPURepo is the upstream repository of the profiling data.
	ParvaGPURepo = "MunQ-Lee/ParvaGPU_SC24"
	// ParvaGPUCommit is the upstream commit the data was copied from.
	ParvaGPUCommit = "5f3de1e18582b4c81896a1c3eb0e2915238dfee6"
	// ParvaGPULicense is the data's licence and copyright.
	ParvaGPULicense = "MIT, copyright (c) 2024 sslab6943"
)

// GPUModel is the catalog key of the GPU the ParvaGPU data was measured on.
const GPUModel = "a100-80gb"

// Sizes of the throughput table.
const (
	// NumModels is the number of DNN models profiled by ParvaGPU.
	NumModels = 11
	// NumProfiles is the number of A100-80GB MIG profiles profiled.
	NumProfiles = 5
	// NumSLOScenarios is the number of ParvaGPU SLO scenarios (rows of
	// the SLO files), numbered 1..NumSLOScenarios.
	NumSLOScenarios = 6
	// NumVariants is the number of throughput variants (NoMPS, MPS3).
	NumVariants = 2
)

// models are the ParvaGPU models in the SLO files' column order
// (alphabetical order of the profile file names).
var models = [NumModels]string{
	"bert", "densenet121", "densenet169", "densenet201", "inceptionv3",
	"mobilenetv2", "resnet101", "resnet152", "resnet50", "vgg16", "vgg19",
}

// profiles are the A100-80GB profile names of the profiled instance
// sizes, in the order of instanceSizes.
var profiles = [NumProfiles]string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}

// instanceSizes are the `Mig instance` values (GPCs) of the profile files.
var instanceSizes = [NumProfiles]int{1, 2, 3, 4, 7}

// Models returns the 11 ParvaGPU models in the SLO files' column order:
// bert, densenet121, densenet169, densenet201, inceptionv3, mobilenetv2,
// resnet101, resnet152, resnet50, vgg16, vgg19.
func Models() []string { return append([]string(nil), models[:]...) }

// Profiles returns the A100-80GB profiles of the throughput table, smallest
// first: 1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb.
func Profiles() []string { return append([]string(nil), profiles[:]...) }

// modelIndex returns the column of model, or -1.
func modelIndex(model string) int {
	for i, m := range models {
		if m == model {
			return i
		}
	}
	return -1
}

// profileIndex returns the index of profile in Profiles, or -1.
func profileIndex(profile string) int {
	for i, p := range profiles {
		if p == profile {
			return i
		}
	}
	return -1
}

// Variant selects how many MPS processes one replica may run inside its
// MIG instance when deriving throughput.
type Variant int

const (
	// NoMPS: one process per instance (P_max = 1). The primary variant:
	// one replica is one process on one slice.
	NoMPS Variant = iota
	// MPS3: up to three MPS processes per instance (P_max = 3), comparable
	// with ParvaGPU's planner (MAX_NUM_PROC 3).
	MPS3
)

// MaxProcesses is P_max, the most processes per instance the variant
// allows.
func (v Variant) MaxProcesses() int {
	if v == MPS3 {
		return 3
	}
	return 1
}

// String names the variant: "nomps" or "mps3".
func (v Variant) String() string {
	switch v {
	case NoMPS:
		return "nomps"
	case MPS3:
		return "mps3"
	}
	return "variant(" + strconv.Itoa(int(v)) + ")"
}

// ProfileRow is one row of a ParvaGPU profile file
// (`Mig instance,Batch size,Workload Number,Throughput,Latency`).
type ProfileRow struct {
	// Instance is the MIG instance size in GPCs: 1, 2, 3, 4 or 7.
	Instance int
	// Batch is the batch size.
	Batch int
	// Processes is the number of MPS processes in the instance.
	Processes int
	// Throughput is requests per second per process; 0 means the
	// configuration is infeasible.
	Throughput float64
	// Latency is the batch latency in seconds.
	Latency float64
}

// profileHeader is the header line of a profile file.
const profileHeader = "Mig instance,Batch size,Workload Number,Throughput,Latency"

// ParseProfile reads a ParvaGPU profile file (<model>.csv). It accepts LF
// or CRLF line endings and a missing final newline. Errors name the line.
func ParseProfile(r io.Reader) ([]ProfileRow, error) {
	var rows []ProfileRow
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			if text != profileHeader {
				return nil, fmt.Errorf("line 1: header %q, want %q", text, profileHeader)
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := strings.Split(text, ",")
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: %d fields, want 5", line, len(f))
		}
		var row ProfileRow
		var err error
		ints := []*int{&row.Instance, &row.Batch, &row.Processes}
		names := []string{"Mig instance", "Batch size", "Workload Number", "Throughput", "Latency"}
		for i, p := range ints {
			if *p, err = strconv.Atoi(strings.TrimSpace(f[i])); err != nil || *p <= 0 {
				return nil, fmt.Errorf("line %d: %s: %q is not a positive integer", line, names[i], f[i])
			}
		}
		if row.Throughput, err = parseNonNegative(f[3]); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", line, names[3], err)
		}
		if row.Latency, err = parseNonNegative(f[4]); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", line, names[4], err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if line == 0 {
		return nil, errors.New("empty file: no header")
	}
	return rows, nil
}

// parseNonNegative parses a finite number ≥ 0.
func parseNonNegative(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a non-negative number", s)
	}
	return v, nil
}

// SLOTable is one ParvaGPU SLO file: [scenario-1][model column] as written
// (fractional values kept, not truncated); 0 means N/A, the model is absent
// from the scenario.
type SLOTable [NumSLOScenarios][NumModels]float64

// ParseSLO reads SLO_req_rate.csv or SLO_latency.csv: no header, one row per
// scenario 1..6, one column per model in Models order, `N/A` for a model
// absent from the scenario.
func ParseSLO(r io.Reader) (SLOTable, error) {
	var t SLOTable
	data, err := io.ReadAll(r)
	if err != nil {
		return t, err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\n")
	if len(lines) != NumSLOScenarios {
		return t, fmt.Errorf("%d rows, want %d (one per scenario)", len(lines), NumSLOScenarios)
	}
	for i, l := range lines {
		f := strings.Split(strings.TrimSuffix(l, "\r"), ",")
		if len(f) != NumModels {
			return t, fmt.Errorf("line %d: %d columns, want %d (one per model)", i+1, len(f), NumModels)
		}
		for j, s := range f {
			if strings.TrimSpace(s) == "N/A" {
				continue
			}
			v, err := parseNonNegative(s)
			if err != nil || v == 0 {
				return t, fmt.Errorf("line %d: column %d (%s): %q is neither N/A nor a positive number", i+1, j+1, models[j], s)
			}
			t[i][j] = v
		}
	}
	return t, nil
}

// Derive computes T[m][p] for one model per scheduling.md §6.2: for each
// profile (instance size), the maximum over rows with that size,
// Throughput > 0, Processes ≤ maxProcesses and Latency×1000 < sloMs/2×0.9
// of Throughput × Processes; 0 when no row qualifies. sloMs is the latency
// SLO in milliseconds as written in SLO_latency.csv (not truncated); 0 (the
// model is absent) gives all zeros. The result is indexed like Profiles.
func Derive(rows []ProfileRow, sloMs float64, maxProcesses int) [NumProfiles]float64 {
	var t [NumProfiles]float64
	if sloMs <= 0 {
		return t
	}
	limit := sloMs / 2 * 0.9
	for _, r := range rows {
		p := -1
		for i, s := range instanceSizes {
			if s == r.Instance {
				p = i
			}
		}
		if p < 0 || r.Throughput <= 0 || r.Processes > maxProcesses || !(r.Latency*1000 < limit) {
			continue
		}
		t[p] = max(t[p], r.Throughput*float64(r.Processes))
	}
	return t
}

// ThroughputData is the benchmark's throughput model: ParvaGPU's SLO files
// and the per-profile throughput derived from its profiles.
type ThroughputData struct {
	// RequestRate is SLO_req_rate.csv (req/s; 0 = model absent).
	RequestRate SLOTable
	// LatencySLO is SLO_latency.csv (ms; 0 = model absent).
	LatencySLO SLOTable
	// Throughput is T[variant][scenario-1][model][profile] in req/s of one
	// replica on a100-80gb, models in Models order and profiles in
	// Profiles order, derived with the scenario's latency row by Derive.
	Throughput [NumVariants][NumSLOScenarios][NumModels][NumProfiles]float64
}

// LoadParvaGPU parses the ParvaGPU files in dir (the 11 <model>.csv,
// SLO_req_rate.csv and SLO_latency.csv) and derives the throughput table.
func LoadParvaGPU(dir string) (ThroughputData, error) {
	var d ThroughputData
	var err error
	if d.RequestRate, err = parseSLOFile(filepath.Join(dir, "SLO_req_rate.csv")); err != nil {
		return d, err
	}
	if d.LatencySLO, err = parseSLOFile(filepath.Join(dir, "SLO_latency.csv")); err != nil {
		return d, err
	}
	for m, model := range models {
		name := filepath.Join(dir, model+".csv")
		data, err := os.ReadFile(name)
		if err != nil {
			return d, err
		}
		rows, err := ParseProfile(bytes.NewReader(data))
		if err != nil {
			return d, fmt.Errorf("%s: %w", name, err)
		}
		for _, v := range []Variant{NoMPS, MPS3} {
			for s := range NumSLOScenarios {
				d.Throughput[v][s][m] = Derive(rows, d.LatencySLO[s][m], v.MaxProcesses())
			}
		}
	}
	return d, nil
}

func parseSLOFile(name string) (SLOTable, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return SLOTable{}, err
	}
	t, err := ParseSLO(bytes.NewReader(data))
	if err != nil {
		return t, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// ParvaGPU returns the compiled-in throughput data (a copy), derived from
// MunQ-Lee/ParvaGPU_SC24 at ParvaGPUCommit (MIT, copyright (c) 2024
// sslab6943).
func ParvaGPU() ThroughputData { return parvaGPU }

// validScenario reports whether scenario is 1..NumSLOScenarios.
func validScenario(scenario int) bool { return scenario >= 1 && scenario <= NumSLOScenarios }

// T returns the throughput of one replica of model on profile (a100-80gb)
// in SLO scenario 1..6 under variant v; 0 when the model is absent from the
// scenario, the profile is unusable, or an argument is unknown.
func (d *ThroughputData) T(v Variant, scenario int, model, profile string) float64 {
	m, p := modelIndex(model), profileIndex(profile)
	if v < 0 || v >= NumVariants || !validScenario(scenario) || m < 0 || p < 0 {
		return 0
	}
	return d.Throughput[v][scenario-1][m][p]
}

// Rates returns model's throughput in scenario 1..6 under variant v as the
// scheduler's per-profile rates on a100-80gb, smallest profile first,
// leaving out unusable profiles; nil when there is none.
func (d *ThroughputData) Rates(v Variant, scenario int, model string) []scheduler.Rate {
	var rs []scheduler.Rate
	for _, p := range profiles {
		if t := d.T(v, scenario, model, p); t > 0 {
			rs = append(rs, scheduler.Rate{GPUModel: GPUModel, Profile: p, RPS: t})
		}
	}
	return rs
}

// Demand returns model's SLO request rate (req/s) in scenario 1..6; 0 when
// the model is absent from it.
func (d *ThroughputData) Demand(scenario int, model string) float64 {
	m := modelIndex(model)
	if !validScenario(scenario) || m < 0 {
		return 0
	}
	return d.RequestRate[scenario-1][m]
}

// TotalDemand returns the sum of the SLO request rates of scenario 1..6.
func (d *ThroughputData) TotalDemand(scenario int) float64 {
	if !validScenario(scenario) {
		return 0
	}
	total := 0.0
	for _, r := range d.RequestRate[scenario-1] {
		total += r
	}
	return total
}
