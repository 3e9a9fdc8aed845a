package deploy_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/e2e/kubeenv"
)

// TestAPIServerAccepts has a real kube-apiserver validate everything
// deploy/agent renders: the Namespace is created for real (a server-side
// dry run cannot create objects inside a namespace that does not exist
// yet), then the rest goes through `kubectl apply --dry-run=server`, which
// runs validation and admission without storing anything.
func TestAPIServerAccepts(t *testing.T) {
	t.Parallel()
	objs := decode(t, renderAgent(t))
	env := kubeenv.Start(t)
	out := kubectlApply(t, env, only(objs, "Namespace"))
	if !strings.Contains(out, "namespace/"+namespace+" created") {
		t.Errorf("creating the namespace: %s", out)
	}
	rest := except(objs, "Namespace")
	out = kubectlApply(t, env, rest, "--dry-run=server")
	got := lines(out)
	if len(got) != len(rest) {
		t.Errorf("kubectl apply --dry-run=server printed %d lines for %d objects:\n%s", len(got), len(rest), out)
	}
	for _, l := range got {
		if !strings.HasSuffix(l, " created (server dry run)") {
			t.Errorf("kubectl apply --dry-run=server: %q, want every object created (server dry run)", l)
		}
	}
	t.Logf("accepted:\n%s", out)
}

// saClient applies deploy/agent's Namespace, ServiceAccount and RBAC for
// real, gets a token for the agent's ServiceAccount through the TokenRequest
// API and returns a client authenticated with it, after checking that the
// API server sees it as that ServiceAccount.
func saClient(t *testing.T, env *kubeenv.Env, objs agentObjects) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kubectlApply(t, env, only(objs.all, "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"))
	admin := kubernetes.NewForConfigOrDie(env.RESTConfig())
	tok, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, agentName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", namespace, agentName, err)
	}
	cfg := &rest.Config{
		Host:            env.Host,
		BearerToken:     tok.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.CAData},
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview with the ServiceAccount's token: %v", err)
	}
	if want := "system:serviceaccount:" + namespace + ":" + agentName; review.Status.UserInfo.Username != want {
		t.Fatalf("the token authenticates as %q, want %q", review.Status.UserInfo.Username, want)
	}
	return cfg, cs
}

// TestServiceAccountIsEnoughAndNoMore creates deploy/agent's ServiceAccount
// and RBAC on a real API server and, as that ServiceAccount (a TokenRequest
// token), does what the agent does — get its node, list and watch it with a
// field selector, patch its state label, and run agent.KubeSource itself —
// and checks that what the agent never needs is forbidden.
func TestServiceAccountIsEnoughAndNoMore(t *testing.T) {
	t.Parallel()
	objs := parseAgent(t, renderAgent(t))
	env := kubeenv.Start(t)
	_, sa := saClient(t, env, objs)
	admin := kubernetes.NewForConfigOrDie(env.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const nodeName = "gpu-node-1"
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{agent.ConfigLabel: "all-balanced"}}}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-for-the-agent", Namespace: namespace}, StringData: map[string]string{"k": "v"}}
	if _, err := admin.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Allowed: what KubeSource's informer and Report do.
	if _, err := sa.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err != nil {
		t.Errorf("get node: %v", err)
	}
	own := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", nodeName).String()}
	list, err := sa.CoreV1().Nodes().List(ctx, own)
	if err != nil || len(list.Items) != 1 {
		t.Errorf("list own node: %v (%d items)", err, len(list.Items))
	}
	own.ResourceVersion = list.ResourceVersion
	w, err := sa.CoreV1().Nodes().Watch(ctx, own)
	if err != nil {
		t.Fatalf("watch own node: %v", err)
	}
	defer w.Stop()
	statePatch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"pending"}}}`, agent.StateLabel)
	if _, err := sa.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, statePatch, metav1.PatchOptions{FieldManager: "tessera-agent"}); err != nil {
		t.Errorf("patch node state label: %v", err)
	}
	select {
	case ev := <-w.ResultChan():
		n, ok := ev.Object.(*corev1.Node)
		if ev.Type != watch.Modified || !ok || n.Labels[agent.StateLabel] != "pending" {
			t.Errorf("watch event %s %T, want the node modified with state pending", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no watch event within 10 s of patching the node")
	}

	// Allowed: listing and watching the pods of its node, as the Triton
	// discovery's informer does.
	onNode := metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName}
	if _, err := sa.CoreV1().Pods("").List(ctx, onNode); err != nil {
		t.Errorf("list pods of the node: %v", err)
	}
	if pw, err := sa.CoreV1().Pods("").Watch(ctx, onNode); err != nil {
		t.Errorf("watch pods of the node: %v", err)
	} else {
		pw.Stop()
	}

	// Forbidden: everything else, tried as the agent would if it went wrong.
	forbidden := map[string]error{}
	_, forbidden["patch a Secret"] = sa.CoreV1().Secrets(namespace).Patch(ctx, secret.Name, types.MergePatchType, []byte(`{"stringData":{"k":"x"}}`), metav1.PatchOptions{})
	_, forbidden["get a Secret"] = sa.CoreV1().Secrets(namespace).Get(ctx, secret.Name, metav1.GetOptions{})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "escape", Namespace: namespace},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	_, forbidden["create a Pod"] = sa.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	_, forbidden["get a Pod"] = sa.CoreV1().Pods(namespace).Get(ctx, "escape", metav1.GetOptions{})
	forbidden["delete Pods"] = sa.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_, forbidden["create a Node"] = sa.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "rogue"}}, metav1.CreateOptions{})
	forbidden["delete a Node"] = sa.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{})
	if n, err := admin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err == nil {
		_, forbidden["update (PUT) a Node"] = sa.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	}
	_, forbidden["patch nodes/status"] = sa.CoreV1().Nodes().Patch(ctx, nodeName, types.MergePatchType, []byte(`{"status":{"capacity":{"nvidia.com/gpu":"9"}}}`), metav1.PatchOptions{}, "status")
	_, forbidden["patch the ConfigMap"] = sa.CoreV1().ConfigMaps(namespace).Patch(ctx, layoutsName, types.MergePatchType, []byte(`{"data":{"x":"y"}}`), metav1.PatchOptions{})
	_, forbidden["create an Event"] = sa.CoreV1().Events(namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: nodeName},
	}, metav1.CreateOptions{})
	_, forbidden["patch the ClusterRole"] = sa.RbacV1().ClusterRoles().Patch(ctx, agentName, types.MergePatchType, []byte(`{"rules":[]}`), metav1.PatchOptions{})
	for _, what := range slices.Sorted(maps.Keys(forbidden)) {
		if err := forbidden[what]; !apierrors.IsForbidden(err) {
			t.Errorf("%s as the agent's ServiceAccount: err = %v, want Forbidden", what, err)
		}
	}

	// The agent's own code, agent.KubeSource, with that client: its
	// informer lists and watches the node, and Report patches the state.
	src, err := agent.NewKubeSource(sa, nodeName, agent.KubeSourceOptions{
		LayoutsPath: filepath.Join(e2etest.RepoRoot(t), "deploy", "agent", "config.yaml"),
		Poll:        100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	out := make(chan agent.Desired, 4)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, out) }()
	select {
	case d := <-out:
		if d.Err != nil || d.Config != "all-balanced" || d.File == nil {
			t.Errorf("KubeSource desired = config %q, err %v, file %v; want all-balanced from the label", d.Config, d.Err, d.File != nil)
		}
	case err := <-done:
		t.Fatalf("KubeSource.Run returned early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("KubeSource sent no desired state within 20 s")
	}
	for _, inv := range []agent.Inventory{
		{State: agent.StateFailed, Reason: "apply failed", LastError: "NVML: in use"},
		{State: agent.StateSuccess},
	} {
		if err := src.Report(ctx, inv); err != nil {
			t.Errorf("KubeSource.Report(%s): %v", inv.State, err)
			continue
		}
		n, err := admin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Labels[agent.StateLabel]; got != string(inv.State) {
			t.Errorf("after Report(%s): label %s = %q", inv.State, agent.StateLabel, got)
		}
		_, hasReason := n.Annotations[agent.ReasonAnnotation]
		if hasReason != (inv.State == agent.StateFailed) {
			t.Errorf("after Report(%s): annotation %s present = %v", inv.State, agent.ReasonAnnotation, hasReason)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("KubeSource.Run: %v", err)
	}
}
