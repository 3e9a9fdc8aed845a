package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/e2e/kubeenv"
)

// TestAgentRunsWithDaemonSetSettings runs `tessera agent` as the DaemonSet's
// container would run it — its command, its environment, the layouts
// ConfigMap's files where the volume mounts them, the ServiceAccount's
// token — on a simulated two-GPU A100-80GB node against a real API server,
// and checks that it applies the layout the node's nvidia.com/mig.config
// label names, reports success in nvidia.com/mig.config.state, answers the
// probes' /healthz, follows a label change, logs JSON and stops cleanly.
// Only three things differ from a pod: the simulated GPUs, the status
// address (a free loopback port instead of :9471) and the kubeconfig
// (the in-cluster config needs a cluster's DNS and mounted token).
func TestAgentRunsWithDaemonSetSettings(t *testing.T) {
	t.Parallel()
	objs := parseAgent(t, renderAgent(t))
	c := container(t, objs.daemonSet)
	if len(c.Command) == 0 {
		t.Fatalf("container %s has no command", c.Name)
	}
	dir := t.TempDir()
	binDir := filepath.Join(dir, "bin")
	bin := buildTessera(t, binDir)
	// The image runs `tessera` from its PATH: the command's first word must
	// be the binary's name.
	exe := c.Command[0]
	if !strings.Contains(exe, "/") {
		exe = filepath.Join(binDir, exe)
	}
	if exe != bin {
		t.Fatalf("the container's command %q does not run the tessera binary", c.Command)
	}
	args := append(append([]string{}, c.Command[1:]...), c.Args...)
	checkFlagsExist(t, bin, args, c.Env)

	env := kubeenv.Start(t)
	saCfg, _ := saClient(t, env, objs)
	admin := kubernetes.NewForConfigOrDie(env.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const nodeName = "gpu-node-1"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{agent.ConfigLabel: "all-balanced"}}}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeconfig(t, saCfg, kubeconfig)

	// The container's volume mounts, as folders under dir: the layouts
	// ConfigMap's keys become files, as the kubelet writes them.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range objs.daemonSet.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			if v.ConfigMap.Name != objs.layouts.Name {
				t.Fatalf("volume %s mounts ConfigMap %s, which deploy/agent does not create", v.Name, v.ConfigMap.Name)
			}
			local := filepath.Join(dir, "mounts", filepath.FromSlash(m.MountPath))
			if err := os.MkdirAll(local, 0o755); err != nil {
				t.Fatal(err)
			}
			for k, data := range objs.layouts.Data {
				if err := os.WriteFile(filepath.Join(local, k), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			mounts[m.MountPath] = local
		}
	}

	vars := []string{
		"PATH=" + binDir + ":/usr/bin:/bin",
		"HOME=" + dir,
		"TESSERA_BACKEND=sim:a100-80gb:2",
		"TESSERA_KUBECONFIG=" + kubeconfig,
		"TESSERA_POLL=200ms",
	}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			v = nodeName
		case e.ValueFrom != nil:
			t.Fatalf("env %s: no stand-in for %+v", e.Name, e.ValueFrom)
		case e.Name == "TESSERA_STATUS_ADDRESS", e.Name == "TESSERA_METRICS_ADDRESS":
			v = "127.0.0.1:0"
		case e.Name == "TESSERA_LAYOUTS_FILE":
			local, ok := mounts[path.Dir(v)]
			if !ok {
				t.Fatalf("TESSERA_LAYOUTS_FILE=%s is not in a mounted ConfigMap (mounts %v)", v, mounts)
			}
			v = filepath.Join(local, path.Base(v))
		}
		vars = append(vars, e.Name+"="+v)
	}

	cmd := exec.Command(bin, args...)
	cmd.Env = vars
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := e2etest.NewAgentLog()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		log.Read(stderr)
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})

	var addr string
	select {
	case addr = <-log.Addr:
	case err := <-exited:
		stopped = true
		t.Fatalf("the agent exited: %v", err)
	case <-ctx.Done():
		t.Fatal("the agent logged no status server address")
	}

	waitState := func(config string, slices int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			n, err := admin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			last = fmt.Sprintf("state %q, reason %q", n.Labels[agent.StateLabel], n.Annotations[agent.ReasonAnnotation])
			if n.Labels[agent.StateLabel] == string(agent.StateSuccess) {
				inv := e2etest.Status(t, addr)
				if inv.Desired != nil && inv.Desired.Config == config && len(inv.Slices()) == slices && len(inv.GPUs) == 2 {
					return
				}
				last += fmt.Sprintf("; /status: config %v, %d GPUs, %d slices", inv.Desired, len(inv.GPUs), len(inv.Slices()))
			}
			select {
			case err := <-exited:
				stopped = true
				t.Fatalf("the agent exited: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		t.Fatalf("config %s: node never reached %s=success with %d slices; last %s", config, agent.StateLabel, slices, last)
	}

	start := time.Now()
	waitState("all-balanced", 8) // 2 × (2 × 1g.10gb + 2g.20gb + 3g.40gb)
	t.Logf("all-balanced applied and reported in %v", time.Since(start).Round(time.Millisecond))
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		body, code := httpGet(t, "http://"+addr+p.HTTPGet.Path)
		if code != http.StatusOK {
			t.Errorf("probe GET %s: %d %s", p.HTTPGet.Path, code, body)
		}
	}

	start = time.Now()
	relabel := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"all-1g.10gb"}}}`, agent.ConfigLabel)
	if _, err := admin.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, relabel, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState("all-1g.10gb", 14)
	t.Logf("label change to all-1g.10gb applied and reported in %v", time.Since(start).Round(time.Millisecond))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("the agent exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the agent did not stop within 30 s of SIGTERM")
	}
	if n := len(parseLog(t, log.String())); n == 0 {
		t.Errorf("the agent logged nothing")
	}
}

// buildTessera builds cmd/tessera into dir and returns its path.
func buildTessera(t *testing.T, dir string) string {
	t.Helper()
	return e2etest.BuildTessera(t, dir)
}

// checkFlagsExist fails t unless every TESSERA_* variable of env and every
// flag in args is a flag of the command args run. The binary ignores a
// variable that names no flag, so a misspelt one would pass silently.
func checkFlagsExist(t *testing.T, bin string, args []string, env []corev1.EnvVar) {
	t.Helper()
	var sub []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			sub = append(sub, a)
		}
	}
	help := string(run(t, exec.Command(bin, append(sub, "--help")...)))
	has := func(flag string) bool {
		return strings.Contains(help, "--"+flag+" ") || strings.Contains(help, "--"+flag+"\n")
	}
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !has(name) {
				t.Errorf("the container's argument %s is not a flag of `tessera %s`", a, strings.Join(sub, " "))
			}
		}
	}
	for _, e := range env {
		name, ok := strings.CutPrefix(e.Name, "TESSERA_")
		if !ok {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if !has(flag) {
			t.Errorf("env %s: `tessera %s` has no flag --%s, so the variable would be ignored", e.Name, strings.Join(sub, " "), flag)
		}
	}
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(body), resp.StatusCode
}

// writeKubeconfig writes a kubeconfig for cfg's bearer token.
func writeKubeconfig(t *testing.T, cfg *rest.Config, path string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "agent"}
	kc.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}

// parseLog checks that every line of the agent's log is a JSON object
// (TESSERA_LOG_FORMAT=json) and returns them.
func parseLog(t *testing.T, data string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines(data) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("agent log line is not JSON (TESSERA_LOG_FORMAT=json): %q", l)
			continue
		}
		out = append(out, m)
	}
	return out
}
