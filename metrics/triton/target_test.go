package triton

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/podresources"
)

func TestPodTargets(t *testing.T) {
	slices := map[string]SliceInfo{
		"MIG-a": {MigProfile: "1g.10gb", GPU: "0"},
		"MIG-b": {MigProfile: "2g.20gb", GPU: "1"},
		"MIG-c": {MigProfile: "1g.10gb", GPU: "0"},
	}
	own := func(ns, pod, container string) podresources.Owner {
		return podresources.Owner{Namespace: ns, Pod: pod, Container: container, Resource: "nvidia.com/mig-1g.10gb"}
	}
	tests := []struct {
		name    string
		pods    []Pod
		owners  map[string]podresources.Owner
		want    []Target
		wantErr []string // substrings, one per error
	}{
		{
			name:   "defaults",
			pods:   []Pod{{Namespace: "ml", Name: "triton-0", IP: "10.0.0.7"}},
			owners: map[string]podresources.Owner{"MIG-a": own("ml", "triton-0", "server")},
			want: []Target{{URL: "http://10.0.0.7:8002/metrics", Slice: "MIG-a", MigProfile: "1g.10gb", GPU: "0",
				Pod: "triton-0", Namespace: "ml", Container: "server"}},
		},
		{
			name: "port and path annotations",
			pods: []Pod{{Namespace: "ml", Name: "p", IP: "10.0.0.8", Annotations: map[string]string{
				AnnotationMetricsPort: "9102", AnnotationMetricsPath: "/v2/metrics"}}},
			owners: map[string]podresources.Owner{"MIG-a": own("ml", "p", "c")},
			want: []Target{{URL: "http://10.0.0.8:9102/v2/metrics", Slice: "MIG-a", MigProfile: "1g.10gb", GPU: "0",
				Pod: "p", Namespace: "ml", Container: "c"}},
		},
		{
			name: "path with a query",
			pods: []Pod{{Namespace: "ml", Name: "p", IP: "10.0.0.8", Annotations: map[string]string{
				AnnotationMetricsPath: "/metrics?format=text"}}},
			owners: map[string]podresources.Owner{"MIG-a": own("ml", "p", "c")},
			want: []Target{{URL: "http://10.0.0.8:8002/metrics?format=text", Slice: "MIG-a", MigProfile: "1g.10gb", GPU: "0",
				Pod: "p", Namespace: "ml", Container: "c"}},
		},
		{
			name: "bad ports and paths skip the pod with a reason",
			pods: []Pod{
				{Namespace: "ml", Name: "word", IP: "10.0.0.1", Annotations: map[string]string{AnnotationMetricsPort: "http"}},
				{Namespace: "ml", Name: "zero", IP: "10.0.0.2", Annotations: map[string]string{AnnotationMetricsPort: "0"}},
				{Namespace: "ml", Name: "big", IP: "10.0.0.3", Annotations: map[string]string{AnnotationMetricsPort: "65536"}},
				{Namespace: "ml", Name: "rel", IP: "10.0.0.4", Annotations: map[string]string{AnnotationMetricsPath: "metrics"}},
				{Namespace: "ml", Name: "abs", IP: "10.0.0.5", Annotations: map[string]string{AnnotationMetricsPath: "http://evil/metrics"}},
				{Namespace: "ml", Name: "ok", IP: "10.0.0.6", Annotations: map[string]string{AnnotationMetricsPort: " 8003 "}},
			},
			owners: map[string]podresources.Owner{
				"MIG-1": own("ml", "word", "c"), "MIG-2": own("ml", "zero", "c"), "MIG-3": own("ml", "big", "c"),
				"MIG-4": own("ml", "rel", "c"), "MIG-5": own("ml", "abs", "c"), "MIG-6": own("ml", "ok", "c"),
			},
			want: []Target{{URL: "http://10.0.0.6:8003/metrics", Slice: "MIG-6", Pod: "ok", Namespace: "ml", Container: "c"}},
			wantErr: []string{
				`pod ml/word: annotation tessera.dev/metrics-port="http": not a port number`,
				`pod ml/zero: annotation tessera.dev/metrics-port="0"`,
				`pod ml/big: annotation tessera.dev/metrics-port="65536"`,
				`pod ml/rel: annotation tessera.dev/metrics-path="metrics": not an absolute path`,
				`pod ml/abs: annotation tessera.dev/metrics-path="http://evil/metrics"`,
			},
		},
		{
			name:   "IPv6",
			pods:   []Pod{{Namespace: "ml", Name: "v6", IP: "fd00:10::7"}},
			owners: map[string]podresources.Owner{"MIG-b": own("ml", "v6", "c")},
			want: []Target{{URL: "http://[fd00:10::7]:8002/metrics", Slice: "MIG-b", MigProfile: "2g.20gb", GPU: "1",
				Pod: "v6", Namespace: "ml", Container: "c"}},
		},
		{
			name:    "not an IP",
			pods:    []Pod{{Namespace: "ml", Name: "p", IP: "node-1"}},
			owners:  map[string]podresources.Owner{"MIG-a": own("ml", "p", "c")},
			wantErr: []string{`pod ml/p: IP "node-1": not an IP address`},
		},
		{
			name: "one target per pod with several slices and containers",
			pods: []Pod{{Namespace: "ml", Name: "multi", IP: "10.0.0.9"}},
			owners: map[string]podresources.Owner{
				"MIG-b": own("ml", "multi", "worker"), "MIG-a": own("ml", "multi", "server"), "MIG-c": own("ml", "multi", "server"),
			},
			want: []Target{{URL: "http://10.0.0.9:8002/metrics", Slice: "MIG-a,MIG-b,MIG-c", MigProfile: "1g.10gb,2g.20gb", GPU: "0,1",
				Pod: "multi", Namespace: "ml", Container: "server,worker"}},
		},
		{
			name:   "a whole GPU the slices map does not know",
			pods:   []Pod{{Namespace: "ml", Name: "full", IP: "10.0.0.10"}},
			owners: map[string]podresources.Owner{"GPU-1234": own("ml", "full", "c")},
			want:   []Target{{URL: "http://10.0.0.10:8002/metrics", Slice: "GPU-1234", Pod: "full", Namespace: "ml", Container: "c"}},
		},
		{
			name: "pods without slices, without IP or in another namespace are skipped silently",
			pods: []Pod{
				{Namespace: "ml", Name: "cpu-only", IP: "10.0.0.11"},
				{Namespace: "ml", Name: "pending", IP: ""},
				{Namespace: "other", Name: "triton-0", IP: "10.0.0.12"},
			},
			owners: map[string]podresources.Owner{"MIG-a": own("ml", "pending", "c"), "MIG-b": own("ml", "triton-0", "c")},
		},
		{
			name: "sorted by URL; a URL two pods share is reported",
			pods: []Pod{
				{Namespace: "ml", Name: "z", IP: "10.0.0.3"},
				{Namespace: "ml", Name: "a", IP: "10.0.0.20"},
				{Namespace: "ml", Name: "host-1", IP: "192.168.1.5"},
				{Namespace: "ml", Name: "host-2", IP: "192.168.1.5"},
			},
			owners: map[string]podresources.Owner{
				"MIG-a": own("ml", "z", "c"), "MIG-b": own("ml", "a", "c"), "MIG-c": own("ml", "host-1", "c"), "MIG-d": own("ml", "host-2", "c"),
			},
			want: []Target{
				{URL: "http://10.0.0.20:8002/metrics", Slice: "MIG-b", MigProfile: "2g.20gb", GPU: "1", Pod: "a", Namespace: "ml", Container: "c"},
				{URL: "http://10.0.0.3:8002/metrics", Slice: "MIG-a", MigProfile: "1g.10gb", GPU: "0", Pod: "z", Namespace: "ml", Container: "c"},
				{URL: "http://192.168.1.5:8002/metrics", Slice: "MIG-c", MigProfile: "1g.10gb", GPU: "0", Pod: "host-1", Namespace: "ml", Container: "c"},
			},
			wantErr: []string{"pod ml/host-2: metrics URL http://192.168.1.5:8002/metrics is also pod ml/host-1's"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := PodTargets(tt.pods, tt.owners, slices)
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("targets\n%+v\nwant\n%+v", got, tt.want)
			}
			if len(errs) != len(tt.wantErr) {
				t.Fatalf("errors %v, want %d", errs, len(tt.wantErr))
			}
			for i, err := range errs {
				if !strings.Contains(err.Error(), tt.wantErr[i]) {
					t.Errorf("error %d: %q does not contain %q", i, err, tt.wantErr[i])
				}
			}
		})
	}
}
