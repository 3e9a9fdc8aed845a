package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/e2e/kubeenv"
)

// The names deploy/agent gives its objects.
const (
	namespace   = "tessera-system"
	agentName   = "tessera-agent"
	layoutsName = "tessera-layouts"
)

// kubectlPath returns the pinned kubectl that e2e/scripts/components.sh
// builds (Debian's is too old for the kustomize features used here).
func kubectlPath(t testing.TB) string {
	t.Helper()
	dir, err := kubeenv.FindBinaries("")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl")
}

// run runs cmd and returns its stdout, failing t with stderr on error.
func run(t testing.TB, cmd *exec.Cmd) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(cmd.Args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes()
}

// render runs `kubectl kustomize dir` and returns the YAML stream.
func render(t testing.TB, dir string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return run(t, exec.CommandContext(ctx, kubectlPath(t), "kustomize", dir))
}

// renderAgent renders deploy/agent.
func renderAgent(t testing.TB) []byte {
	t.Helper()
	return render(t, filepath.Join(e2etest.RepoRoot(t), "deploy", "agent"))
}

// decode splits a YAML stream into objects.
func decode(t testing.TB, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding the rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// encode writes objects as one YAML stream (JSON documents are YAML).
func encode(t testing.TB, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatalf("encoding %s: %v", describe(o), err)
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	return b.Bytes()
}

func describe(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}

// find returns the one object of kind and name, failing t if there is not
// exactly one.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if found != nil {
				t.Fatalf("two %s objects named %s in the rendered manifests", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s named %s in the rendered manifests", kind, name)
	}
	return found
}

// typed converts an object to its API type, e.g. *appsv1.DaemonSet, with
// unknown fields an error so a misspelt field fails here.
func typed[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("%s: %v", describe(o), err)
	}
	return out
}

// agentObjects are deploy/agent's objects, typed.
type agentObjects struct {
	all            []*unstructured.Unstructured
	namespace      *corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.ClusterRole
	binding        *rbacv1.ClusterRoleBinding
	layouts        *corev1.ConfigMap
	daemonSet      *appsv1.DaemonSet
}

func parseAgent(t testing.TB, stream []byte) agentObjects {
	t.Helper()
	objs := decode(t, stream)
	return agentObjects{
		all:            objs,
		namespace:      typed[corev1.Namespace](t, find(t, objs, "Namespace", namespace)),
		serviceAccount: typed[corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", agentName)),
		role:           typed[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", agentName)),
		binding:        typed[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", agentName)),
		layouts:        typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", layoutsName)),
		daemonSet:      typed[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", agentName)),
	}
}

// only returns the objects of the given kinds, in their order.
func only(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// except returns the objects not of the given kinds, in their order.
func except(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
next:
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				continue next
			}
		}
		out = append(out, o)
	}
	return out
}

// kubectlApply pipes objs to `kubectl apply -f -` with extra flags and
// returns its output, failing t on any error.
func kubectlApply(t testing.TB, env *kubeenv.Env, objs []*unstructured.Unstructured, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"apply", "-f", "-"}, flags...)
	cmd := env.KubectlCommand(ctx, args...)
	cmd.Stdin = bytes.NewReader(encode(t, objs))
	return string(run(t, cmd))
}

// container returns the DaemonSet's one container.
func container(t testing.TB, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("DaemonSet %s has %d containers, want 1", ds.Name, len(cs))
	}
	return cs[0]
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
