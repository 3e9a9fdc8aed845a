package bench

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite throughput_data.go from the ParvaGPU CSV files")

// parvaGPUDirEnv overrides where the tests look for the ParvaGPU files.
const parvaGPUDirEnv = "TESSERA_PARVAGPU_DIR"

// parvaGPUDir returns the directory of the ParvaGPU CSV files, or skips the
// test when it is absent (fails instead under -update).
func parvaGPUDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(parvaGPUDirEnv)
	if dir == "" {
		// The package is bench/ in the repository; shared/ sits beside
		// the repository.
		dir = filepath.Join("..", "..", "shared", "data", "parvagpu")
	}
	if _, err := os.Stat(filepath.Join(dir, "SLO_latency.csv")); err != nil {
		if *update {
			t.Fatalf("-update needs the ParvaGPU files: %v (set %s)", err, parvaGPUDirEnv)
		}
		t.Skipf("ParvaGPU CSV files not found in %s (set %s to their directory): %v", dir, parvaGPUDirEnv, err)
	}
	return dir
}

// goldenRow is one row of scheduling.md §6.3.
type goldenRow struct {
	latencyRow int // first scenario of the latency row: 1 (S1/S2/S6), 3 (S3/S4), 5 (S5)
	model      string
	sloMs      float64
	t          [5]int // rounded T on 1g, 2g, 3g, 4g, 7g
	batch      [5]int // chosen batch size
}

// scenariosOfRow lists the scenarios sharing a latency row.
var scenariosOfRow = map[int][]int{1: {1, 2, 6}, 3: {3, 4}, 5: {5}}

// goldenNoMPS is scheduling.md §6.3, verbatim. The reference rounds half to
// even (resnet101 7g in S5 is 1594.5, printed 1594), so the tests compare
// with math.RoundToEven.
var goldenNoMPS = []goldenRow{
	// Latency row of S1/S2/S6.
	{1, "bert", 6434, [5]int{135, 204, 243, 271, 322}, [5]int{128, 256, 256, 128, 256}},
	{1, "densenet121", 183, [5]int{323, 613, 1039, 1198, 2009}, [5]int{16, 16, 64, 64, 128}},
	{1, "densenet169", 216.5, [5]int{256, 482, 1461, 1619, 1702}, [5]int{16, 16, 128, 128, 128}},
	{1, "densenet201", 168.5, [5]int{186, 382, 600, 695, 1252}, [5]int{8, 16, 32, 16, 64}},
	{1, "inceptionv3", 418.5, [5]int{584, 1149, 1794, 2126, 3273}, [5]int{64, 128, 256, 256, 256}},
	{1, "mobilenetv2", 167, [5]int{745, 1416, 2301, 2622, 4020}, [5]int{32, 16, 32, 32, 32}},
	{1, "resnet101", 211.5, [5]int{253, 516, 864, 1026, 1745}, [5]int{16, 32, 64, 64, 128}},
	{1, "resnet152", 212.5, [5]int{184, 374, 608, 739, 1261}, [5]int{16, 32, 32, 64, 64}},
	{1, "resnet50", 204.5, [5]int{412, 818, 1329, 1548, 2551}, [5]int{32, 64, 64, 128, 128}},
	{1, "vgg16", 399.5, [5]int{262, 521, 832, 1008, 1685}, [5]int{32, 64, 128, 64, 64}},
	{1, "vgg19", 396.5, [5]int{225, 447, 707, 874, 1461}, [5]int{32, 64, 64, 128, 64}},
	// Latency row of S3/S4.
	{3, "bert", 4294, [5]int{135, 204, 243, 271, 322}, [5]int{128, 256, 256, 128, 256}},
	{3, "densenet121", 126, [5]int{323, 613, 985, 1198, 1900}, [5]int{16, 16, 32, 64, 64}},
	{3, "densenet169", 150, [5]int{256, 482, 772, 986, 1583}, [5]int{16, 16, 32, 64, 64}},
	{3, "densenet201", 119, [5]int{186, 382, 600, 695, 1252}, [5]int{8, 16, 32, 16, 64}},
	{3, "inceptionv3", 282, [5]int{584, 1149, 1784, 2126, 3273}, [5]int{64, 128, 128, 256, 256}},
	{3, "mobilenetv2", 113, [5]int{745, 1416, 2301, 2622, 4020}, [5]int{32, 16, 32, 32, 32}},
	{3, "resnet101", 144, [5]int{253, 516, 833, 1026, 1710}, [5]int{16, 32, 32, 64, 64}},
	{3, "resnet152", 146, [5]int{168, 352, 608, 717, 1261}, [5]int{8, 16, 32, 32, 64}},
	{3, "resnet50", 138, [5]int{386, 789, 1329, 1523, 2551}, [5]int{16, 32, 64, 64, 128}},
	{3, "vgg16", 227, [5]int{253, 516, 828, 1008, 1685}, [5]int{16, 32, 64, 64, 64}},
	{3, "vgg19", 265, [5]int{217, 443, 707, 870, 1461}, [5]int{16, 32, 64, 64, 64}},
	// Latency row of S5.
	{5, "bert", 2153, [5]int{135, 202, 242, 271, 322}, [5]int{128, 128, 128, 128, 256}},
	{5, "densenet121", 69, [5]int{296, 613, 952, 1117, 1825}, [5]int{8, 16, 16, 32, 32}},
	{5, "densenet169", 83.5, [5]int{234, 482, 738, 887, 1404}, [5]int{8, 16, 16, 32, 32}},
	{5, "densenet201", 69.5, [5]int{156, 342, 596, 695, 1111}, [5]int{4, 8, 16, 16, 32}},
	{5, "inceptionv3", 145.5, [5]int{560, 1111, 1701, 2109, 3188}, [5]int{32, 64, 64, 128, 128}},
	{5, "mobilenetv2", 59, [5]int{739, 1416, 2301, 2622, 4020}, [5]int{8, 16, 32, 32, 32}},
	{5, "resnet101", 76.5, [5]int{233, 485, 768, 991, 1594}, [5]int{8, 16, 16, 32, 32}},
	{5, "resnet152", 79.5, [5]int{143, 327, 557, 679, 1153}, [5]int{4, 8, 16, 16, 32}},
	{5, "resnet50", 71.5, [5]int{358, 738, 1292, 1492, 2483}, [5]int{8, 16, 32, 32, 64}},
	{5, "vgg16", 114.5, [5]int{239, 501, 820, 991, 1685}, [5]int{8, 16, 32, 32, 64}},
	{5, "vgg19", 133.5, [5]int{204, 431, 701, 866, 1461}, [5]int{8, 16, 32, 32, 64}},
}

// goldenMPS3 is scheduling.md §6.4, verbatim: per model, the latency rows
// S1/S2/S6, S3/S4 and S5, each 1g, 2g, 3g, 4g, 7g.
var goldenMPS3 = map[string][3][5]int{
	"bert":        {{184, 338, 545, 537, 684}, {170, 338, 545, 537, 684}, {151, 287, 442, 513, 684}},
	"densenet121": {{323, 669, 1139, 1286, 2206}, {323, 649, 1139, 1286, 2206}, {296, 619, 1115, 1258, 2206}},
	"densenet169": {{256, 526, 1461, 1619, 3508}, {256, 522, 884, 1043, 1913}, {234, 489, 857, 1005, 1734}},
	"densenet201": {{186, 424, 699, 822, 1342}, {186, 390, 678, 791, 1342}, {156, 342, 636, 731, 1195}},
	"inceptionv3": {{584, 1173, 1916, 2282, 3796}, {584, 1173, 1882, 2282, 3796}, {575, 1147, 1862, 2259, 3714}},
	"mobilenetv2": {{771, 1573, 2703, 3105, 4748}, {771, 1573, 2703, 3105, 4748}, {771, 1573, 2703, 3105, 4748}},
	"resnet101":   {{253, 516, 902, 1060, 1851}, {253, 516, 853, 1060, 1799}, {233, 485, 827, 1003, 1772}},
	"resnet152":   {{184, 382, 678, 768, 1299}, {168, 352, 613, 761, 1288}, {143, 327, 596, 739, 1247}},
	"resnet50":    {{412, 820, 1423, 1620, 2796}, {386, 789, 1370, 1567, 2756}, {358, 747, 1360, 1503, 2671}},
	"vgg16":       {{262, 533, 846, 1027, 1742}, {253, 516, 841, 1015, 1742}, {239, 501, 820, 996, 1720}},
	"vgg19":       {{225, 449, 755, 916, 1531}, {217, 443, 719, 916, 1531}, {204, 431, 703, 866, 1531}},
}

func TestThroughputGoldenNoMPS(t *testing.T) {
	d := ParvaGPU()
	for _, g := range goldenNoMPS {
		for _, s := range scenariosOfRow[g.latencyRow] {
			t.Run(fmt.Sprintf("S%d/%s", s, g.model), func(t *testing.T) {
				if s == 1 && d.Demand(1, g.model) == 0 {
					// S1 has only 6 models; the others have no SLO.
					for _, p := range Profiles() {
						if got := d.T(NoMPS, s, g.model, p); got != 0 {
							t.Errorf("T[%s] = %v for a model absent from S1, want 0", p, got)
						}
					}
					return
				}
				if got := d.LatencySLO[s-1][modelIndex(g.model)]; got != g.sloMs {
					t.Errorf("latency SLO = %v ms, want %v", got, g.sloMs)
				}
				for i, p := range Profiles() {
					got := d.T(NoMPS, s, g.model, p)
					if math.RoundToEven(got) != float64(g.t[i]) {
						t.Errorf("T[%s] = %v (rounded %v), want %d", p, got, math.RoundToEven(got), g.t[i])
					}
				}
			})
		}
	}
}

func TestThroughputGoldenMPS3(t *testing.T) {
	d := ParvaGPU()
	rows := []int{1, 3, 5}
	for model, want := range goldenMPS3 {
		for r, row := range rows {
			for _, s := range scenariosOfRow[row] {
				if d.Demand(s, model) == 0 {
					continue // absent from S1
				}
				for i, p := range Profiles() {
					if got := d.T(MPS3, s, model, p); math.RoundToEven(got) != float64(want[r][i]) {
						t.Errorf("S%d %s T[%s] = %v, want %d", s, model, p, got, want[r][i])
					}
				}
			}
		}
	}
	// The three entries scheduling.md §6.2 says differ from ParvaGPU's
	// truncated SLOs: the derivation must use the SLO as written.
	for _, c := range []struct {
		scenario int
		profile  string
		want     float64
	}{{2, "7g.80gb", 2796}, {6, "7g.80gb", 2796}, {5, "2g.20gb", 747}, {5, "4g.40gb", 1503}} {
		if got := d.T(MPS3, c.scenario, "resnet50", c.profile); math.RoundToEven(got) != c.want {
			t.Errorf("S%d resnet50 T[%s] = %v, want %v (SLO not truncated)", c.scenario, c.profile, got, c.want)
		}
	}
}

func TestSLOTotals(t *testing.T) {
	d := ParvaGPU()
	for _, c := range []struct {
		scenario int
		models   int
		total    float64
	}{
		{1, 6, 2692}, {2, 11, 4360}, {3, 11, 8716}, {4, 11, 13071}, {5, 11, 26229}, {6, 11, 39342},
	} {
		if got := d.TotalDemand(c.scenario); got != c.total {
			t.Errorf("S%d total = %v req/s, want %v", c.scenario, got, c.total)
		}
		n := 0
		for _, m := range Models() {
			if d.Demand(c.scenario, m) > 0 {
				n++
				if d.LatencySLO[c.scenario-1][modelIndex(m)] == 0 {
					t.Errorf("S%d %s has a rate but no latency SLO", c.scenario, m)
				}
			}
		}
		if n != c.models {
			t.Errorf("S%d has %d models, want %d", c.scenario, n, c.models)
		}
	}
	if got := d.TotalDemand(0) + d.TotalDemand(7); got != 0 {
		t.Errorf("TotalDemand of unknown scenarios = %v, want 0", got)
	}
}

// TestThroughputDataMatchesCSV re-derives the table from the CSV files and
// requires the compiled-in data to equal it; with -update it rewrites
// throughput_data.go instead.
func TestThroughputDataMatchesCSV(t *testing.T) {
	dir := parvaGPUDir(t)
	d, err := LoadParvaGPU(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		src, err := generateThroughputData(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("throughput_data.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote throughput_data.go")
		return
	}
	if d != ParvaGPU() {
		t.Fatal("throughput_data.go differs from the table derived from the CSV files; run go generate ./bench")
	}
	// The chosen batch sizes of §6.3 confirm the rows the rule picks.
	for _, g := range goldenNoMPS {
		rows := loadProfile(t, dir, g.model)
		for i, size := range instanceSizes {
			if got := bestBatch(rows, size, g.sloMs, 1); got != g.batch[i] {
				t.Errorf("row S%d %s %dg: best batch %d, want %d", g.latencyRow, g.model, size, got, g.batch[i])
			}
		}
	}
}

func loadProfile(t *testing.T, dir, model string) []ProfileRow {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, model+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ParseProfile(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// bestBatch returns the batch of the row Derive picks for one size.
func bestBatch(rows []ProfileRow, size int, sloMs float64, maxProcs int) int {
	best, batch := 0.0, 0
	for _, r := range rows {
		if r.Instance == size && r.Throughput > 0 && r.Processes <= maxProcs && r.Latency*1000 < sloMs/2*0.9 {
			if v := r.Throughput * float64(r.Processes); v > best {
				best, batch = v, r.Batch
			}
		}
	}
	return batch
}

func TestParseProfile(t *testing.T) {
	const header = "Mig instance,Batch size,Workload Number,Throughput,Latency"
	for _, c := range []struct {
		name    string
		in      string
		want    []ProfileRow
		wantErr string
	}{
		{
			name: "CRLF without final newline",
			in:   header + "\r\n1,1,1,74.408,0.013\r\n7,256,5,168.751,1.517",
			want: []ProfileRow{{1, 1, 1, 74.408, 0.013}, {7, 256, 5, 168.751, 1.517}},
		},
		{
			name: "LF with final newline and zero row",
			in:   header + "\n2,8,3,0,0\n",
			want: []ProfileRow{{2, 8, 3, 0, 0}},
		},
		{name: "empty", in: "", wantErr: "no header"},
		{name: "bad header", in: "a,b,c\r\n1,1,1,1,1", wantErr: "line 1: header"},
		{name: "short row", in: header + "\r\n1,1,1,1", wantErr: "line 2: 4 fields"},
		{name: "bad instance", in: header + "\r\n1g,1,1,1,1", wantErr: "line 2: Mig instance"},
		{name: "zero processes", in: header + "\r\n1,1,0,1,1", wantErr: "line 2: Workload Number"},
		{name: "negative throughput", in: header + "\r\n1,1,1,-1,1", wantErr: "line 2: Throughput"},
		{name: "bad latency", in: header + "\r\n1,1,1,1,x\r\n", wantErr: "line 2: Latency"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseProfile(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseSLO(t *testing.T) {
	row := "1,2,3,4,5,6,7,8,9,10,11"
	six := strings.Repeat(row+"\n", 5) + row
	for _, c := range []struct {
		name    string
		in      string
		check   func(SLOTable) bool
		wantErr string
	}{
		{name: "plain", in: six, check: func(s SLOTable) bool { return s[5][10] == 11 && s[0][0] == 1 }},
		{name: "N/A and fractions", in: "N/A,204.5" + strings.Repeat(",1", 9) + "\n" + strings.Repeat(row+"\n", 5),
			check: func(s SLOTable) bool { return s[0][0] == 0 && s[0][1] == 204.5 }},
		{name: "CRLF", in: strings.ReplaceAll(six, "\n", "\r\n"), check: func(s SLOTable) bool { return s[2][3] == 4 }},
		{name: "five rows", in: strings.Repeat(row+"\n", 5), wantErr: "5 rows"},
		{name: "ten columns", in: strings.Replace(six, ",11", "", 1), wantErr: "line 1: 10 columns"},
		{name: "zero", in: strings.Replace(six, "1,", "0,", 1), wantErr: "line 1: column 1 (bert)"},
		{name: "text", in: strings.Replace(six, "3", "x", 1), wantErr: "column 3 (densenet169)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSLO(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(got) {
				t.Errorf("unexpected table %v", got)
			}
		})
	}
}

func TestDerive(t *testing.T) {
	// SLO 204.5 ms → limit 92.025 ms; truncated (204) it would be 91.8.
	rows := []ProfileRow{
		{Instance: 1, Batch: 8, Processes: 1, Throughput: 100, Latency: 0.050},
		{Instance: 1, Batch: 16, Processes: 1, Throughput: 150, Latency: 0.092},   // 92 < 92.025: in only if not truncated
		{Instance: 1, Batch: 32, Processes: 1, Throughput: 300, Latency: 0.09203}, // 92.03 ≥ limit: out
		{Instance: 2, Batch: 8, Processes: 2, Throughput: 120, Latency: 0.030},    // 240 with MPS
		{Instance: 2, Batch: 8, Processes: 1, Throughput: 200, Latency: 0.030},
		{Instance: 3, Batch: 8, Processes: 4, Throughput: 500, Latency: 0.010}, // 4 processes: never
		{Instance: 4, Batch: 8, Processes: 1, Throughput: 0, Latency: 0},       // infeasible
		{Instance: 5, Batch: 8, Processes: 1, Throughput: 999, Latency: 0.001}, // no such profile
		{Instance: 7, Batch: 8, Processes: 3, Throughput: 400, Latency: 0.080},
	}
	for _, c := range []struct {
		name  string
		slo   float64
		procs int
		want  [NumProfiles]float64
	}{
		{"NoMPS", 204.5, 1, [NumProfiles]float64{150, 200, 0, 0, 0}},
		{"MPS3", 204.5, 3, [NumProfiles]float64{150, 240, 0, 0, 1200}},
		{"truncated SLO loses the 92 ms row", 204, 1, [NumProfiles]float64{100, 200, 0, 0, 0}},
		{"tight SLO", 70, 3, [NumProfiles]float64{0, 240, 0, 0, 0}},
		{"absent model", 0, 3, [NumProfiles]float64{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Derive(rows, c.slo, c.procs); got != c.want {
				t.Errorf("Derive = %v, want %v", got, c.want)
			}
		})
	}
}

func TestThroughputAccessors(t *testing.T) {
	d := ParvaGPU()
	for _, c := range []struct {
		name     string
		v        Variant
		scenario int
		model    string
		profile  string
		want     float64
	}{
		{"unknown model", NoMPS, 6, "gpt2", "1g.10gb", 0},
		{"unknown profile", NoMPS, 6, "bert", "1g.20gb", 0},
		{"scenario 0", NoMPS, 0, "bert", "1g.10gb", 0},
		{"scenario 7", NoMPS, 7, "bert", "1g.10gb", 0},
		{"bad variant", Variant(2), 6, "bert", "1g.10gb", 0},
		{"absent from S1", NoMPS, 1, "vgg16", "7g.80gb", 0},
	} {
		if got := d.T(c.v, c.scenario, c.model, c.profile); got != c.want {
			t.Errorf("%s: T = %v, want %v", c.name, got, c.want)
		}
	}
	rs := d.Rates(NoMPS, 6, "resnet50")
	if len(rs) != NumProfiles {
		t.Fatalf("Rates(resnet50) has %d entries, want %d", len(rs), NumProfiles)
	}
	for i, r := range rs {
		if r.GPUModel != GPUModel || r.Profile != Profiles()[i] || r.RPS != d.T(NoMPS, 6, "resnet50", r.Profile) {
			t.Errorf("Rates[%d] = %+v", i, r)
		}
	}
	if rs := d.Rates(NoMPS, 1, "vgg16"); rs != nil {
		t.Errorf("Rates of a model absent from S1 = %v, want nil", rs)
	}
	if NoMPS.String() != "nomps" || MPS3.String() != "mps3" || NoMPS.MaxProcesses() != 1 || MPS3.MaxProcesses() != 3 {
		t.Error("Variant names or P_max wrong")
	}
	// The accessors hand out copies.
	ms := Models()
	ms[0] = "changed"
	if Models()[0] != "bert" {
		t.Error("Models shares its backing array")
	}
}

// generateThroughputData renders throughput_data.go for d.
func generateThroughputData(d ThroughputData) ([]byte, error) {
	var b bytes.Buffer
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	slo := func(name, doc string, t SLOTable) {
		fmt.Fprintf(&b, "\t// %s\n\t%s: SLOTable{\n", doc, name)
		fmt.Fprintf(&b, "\t\t// %s\n", strings.Join(models[:], ", "))
		for s := range t {
			vs := make([]string, len(t[s]))
			for m, v := range t[s] {
				vs[m] = num(v)
			}
			fmt.Fprintf(&b, "\t\t{%s}, // S%d\n", strings.Join(vs, ", "), s+1)
		}
		b.WriteString("\t},\n")
	}
	b.WriteString(`// Code generated by "go test -run ^TestThroughputDataMatchesCSV$ -update"; DO NOT EDIT.

// The figures below are derived from the profiling and SLO data of
// MunQ-Lee/ParvaGPU_SC24 at commit 5f3de1e18582b4c81896a1c3eb0e2915238dfee6
// (prof_data/<model>.csv, SLO/SLO_req_rate.csv, SLO/SLO_latency.csv;
// MIT licence, copyright (c) 2024 sslab6943; copies and the licence text in
// shared/data/parvagpu).
//
// Derivation (shared/reference/scheduling.md §6.2): for model m, profile p
// and the scenario's latency SLO L_m in ms as written (not truncated),
// T[m][p] = max over rows with Mig instance = p, Throughput > 0,
// Workload Number ≤ P_max and Latency×1000 < L_m/2×0.9 of
// Throughput × Workload Number, or 0 when no row qualifies. NoMPS has
// P_max = 1, MPS3 has P_max = 3. Instance sizes 1, 2, 3, 4, 7 are the
// a100-80gb profiles 1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb.

package bench

// parvaGPU is the compiled-in throughput model; see ParvaGPU.
var parvaGPU = ThroughputData{
`)
	slo("RequestRate", "SLO_req_rate.csv, req/s, 0 = N/A.", d.RequestRate)
	slo("LatencySLO", "SLO_latency.csv, ms, 0 = N/A.", d.LatencySLO)
	b.WriteString("\t// Throughput[variant][scenario-1][model][profile], req/s.\n")
	b.WriteString("\tThroughput: [NumVariants][NumSLOScenarios][NumModels][NumProfiles]float64{\n")
	for _, v := range []Variant{NoMPS, MPS3} {
		vname := map[Variant]string{NoMPS: "NoMPS", MPS3: "MPS3"}[v]
		fmt.Fprintf(&b, "\t\t%s: {\n", vname)
		for s := range NumSLOScenarios {
			fmt.Fprintf(&b, "\t\t\t{ // S%d; %s\n", s+1, strings.Join(profiles[:], ", "))
			for m, model := range models {
				vs := make([]string, NumProfiles)
				for p, x := range d.Throughput[v][s][m] {
					vs[p] = num(x)
				}
				fmt.Fprintf(&b, "\t\t\t\t{%s}, // %s\n", strings.Join(vs, ", "), model)
			}
			b.WriteString("\t\t\t},\n")
		}
		b.WriteString("\t\t},\n")
	}
	b.WriteString("\t},\n}\n")
	return format.Source(b.Bytes())
}
