package kubeenv_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/e2e/kubeenv"
)

// TestSmoke starts a control plane and uses it the two ways tests will:
// client-go (create a Node, patch a label, set capacity through the status
// subresource as a kubelet would, read it back) and kubectl.
func TestSmoke(t *testing.T) {
	start := time.Now()
	env := kubeenv.Start(t)
	t.Logf("control plane ready in %v at %s", time.Since(start).Round(time.Millisecond), env.Host)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   "gpu-node-1",
		Labels: map[string]string{"nvidia.com/mig.config": "all-disabled"},
	}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node: %v", err)
	}

	patch := []byte(`{"metadata":{"labels":{"nvidia.com/mig.config":"all-1g.10gb","nvidia.com/mig.config.state":"pending"}}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, "gpu-node-1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch labels: %v", err)
	}
	status := []byte(`{"status":{"capacity":{"nvidia.com/mig-1g.10gb":"7"},"allocatable":{"nvidia.com/mig-1g.10gb":"7"}}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, "gpu-node-1", types.MergePatchType, status, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("patch status: %v", err)
	}

	got, err := cs.CoreV1().Nodes().Get(ctx, "gpu-node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get node: %v", err)
	}
	if v := got.Labels["nvidia.com/mig.config"]; v != "all-1g.10gb" {
		t.Errorf("label nvidia.com/mig.config = %q, want all-1g.10gb", v)
	}
	if v := got.Labels["nvidia.com/mig.config.state"]; v != "pending" {
		t.Errorf("label nvidia.com/mig.config.state = %q, want pending", v)
	}
	if q := got.Status.Allocatable["nvidia.com/mig-1g.10gb"]; q.Cmp(resource.MustParse("7")) != 0 {
		t.Errorf("allocatable nvidia.com/mig-1g.10gb = %s, want 7", q.String())
	}
	if len(got.Spec.Taints) != 0 {
		t.Errorf("new node has taints %v; TaintNodesByCondition should be off", got.Spec.Taints)
	}

	out, err := env.KubectlCommand(ctx, "version", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, out)
	}
	var v struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("kubectl version output: %v\n%s", err, out)
	}
	if v.ClientVersion.GitVersion != kubeenv.KubernetesVersion || v.ServerVersion.GitVersion != kubeenv.KubernetesVersion {
		t.Errorf("kubectl version: client %q, server %q; want %s for both", v.ClientVersion.GitVersion, v.ServerVersion.GitVersion, kubeenv.KubernetesVersion)
	}

	out, err = env.KubectlCommand(ctx, "get", "nodes", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get nodes: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "node/gpu-node-1" {
		t.Errorf("kubectl get nodes -o name = %q, want node/gpu-node-1", out)
	}

	out, err = env.KubectlCommand(ctx, "get", "node", "gpu-node-1", "-o", "jsonpath={.metadata.labels.nvidia\\.com/mig\\.config}").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get node: %v\n%s", err, out)
	}
	if string(out) != "all-1g.10gb" {
		t.Errorf("kubectl reads label nvidia.com/mig.config = %q, want all-1g.10gb", out)
	}
}

// TestStopRemovesEverything checks that Stop ends both processes and removes
// the folder Launch made.
func TestStopRemovesEverything(t *testing.T) {
	if _, err := kubeenv.FindBinaries(""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env, err := kubeenv.Launch(ctx, kubeenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := env.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	if err := env.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(env.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (stat: %v)", env.Dir, err)
	}
	c := &http.Client{Timeout: time.Second}
	if resp, err := c.Get(env.EtcdURL + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("etcd still answers at %s after Stop", env.EtcdURL)
	}
}

// TestAPIServerFailureReported checks that an API server that exits during
// start is reported with the tail of its log, and that a port lost to
// another program is retried and then named.
func TestAPIServerFailureReported(t *testing.T) {
	if _, err := kubeenv.FindBinaries(""); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"bad flag", []string{"--no-such-flag"}, []string{"kube-apiserver exited early", "unknown flag: --no-such-flag"}},
		// A later --secure-port overrides Launch's, so every retry loses.
		{"port taken", []string{"--secure-port=" + busyPort}, []string{"kept losing its port", "address already in use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			env, err := kubeenv.Launch(ctx, kubeenv.Options{APIServerFlags: tc.flags})
			if err == nil {
				env.Stop()
				t.Fatal("Launch succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
