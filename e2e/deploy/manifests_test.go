package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tessera-gpu/tessera/agent"
	"github.com/tessera-gpu/tessera/e2e/internal/e2etest"
	"github.com/tessera-gpu/tessera/migconfig"
)

// TestLayoutsCopyMatchesDefault fails when deploy/agent/config.yaml, the
// copy kustomize turns into the layouts ConfigMap, has drifted from
// migconfig/config-default.yaml, the file Tessera embeds.
func TestLayoutsCopyMatchesDefault(t *testing.T) {
	root := e2etest.RepoRoot(t)
	want, err := os.ReadFile(filepath.Join(root, "migconfig", "config-default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "deploy", "agent", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/agent/config.yaml differs from migconfig/config-default.yaml (first difference at line %d); "+
			"kustomize cannot read files outside deploy/agent, so it keeps a copy: run\n"+
			"  cp migconfig/config-default.yaml deploy/agent/config.yaml", firstDiffLine(got, want))
	}
	if !bytes.Equal(want, migconfig.DefaultLayoutFile()) {
		t.Fatalf("migconfig/config-default.yaml differs from migconfig.DefaultLayoutFile(); is the e2e module using this checkout?")
	}
}

func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestRenderedObjects checks what `kubectl kustomize deploy/agent` renders:
// exactly the agent's objects, in its namespace, with its labels, and a
// layouts ConfigMap that carries Tessera's default layouts unchanged.
func TestRenderedObjects(t *testing.T) {
	objs := parseAgent(t, renderAgent(t))
	var kinds []string
	for _, o := range objs.all {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		if l := o.GetLabels()["app.kubernetes.io/part-of"]; l != "tessera" {
			t.Errorf("%s: label app.kubernetes.io/part-of = %q, want tessera", describe(o), l)
		}
		switch o.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
		default:
			if o.GetNamespace() != namespace {
				t.Errorf("%s: namespace %q, want %q", describe(o), o.GetNamespace(), namespace)
			}
		}
	}
	slices.Sort(kinds)
	want := []string{
		"ClusterRole/" + agentName, "ClusterRoleBinding/" + agentName, "ConfigMap/" + layoutsName,
		"DaemonSet/" + agentName, "Namespace/" + namespace, "ServiceAccount/" + agentName,
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("rendered objects %v, want %v", kinds, want)
	}

	data, ok := objs.layouts.Data["config.yaml"]
	if !ok || len(objs.layouts.Data) != 1 {
		t.Fatalf("ConfigMap %s has keys %v, want just config.yaml (as NVIDIA's mig-manager reads it)", layoutsName, keys(objs.layouts.Data))
	}
	if data != string(migconfig.DefaultLayoutFile()) {
		t.Errorf("ConfigMap %s config.yaml is not Tessera's default layout file", layoutsName)
	}
	f, err := migconfig.ParseFile("ConfigMap "+layoutsName, []byte(data))
	if err != nil {
		t.Fatalf("layouts: %v", err)
	}
	if err := f.Validate(migconfig.Builtin()); err != nil {
		t.Fatalf("layouts: %v", err)
	}
	if !slices.Contains(f.ConfigNames(), "all-balanced") || !slices.Contains(f.ConfigNames(), "all-disabled") {
		t.Errorf("layouts lack all-balanced or all-disabled: %v", f.ConfigNames())
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestRBACGrantsOnlyNodes checks that the ClusterRole grants exactly get,
// list, watch and patch on core nodes — what KubeSource's informer and its
// state patch use — plus list and watch on pods (the Triton discovery's
// informer on the node's pods), and that the binding gives it to the
// DaemonSet's ServiceAccount and nothing else.
func TestRBACGrantsOnlyNodes(t *testing.T) {
	objs := parseAgent(t, renderAgent(t))
	role := objs.role
	if role.AggregationRule != nil {
		t.Errorf("ClusterRole %s aggregates other roles: %+v", role.Name, role.AggregationRule)
	}
	if len(role.Rules) != 2 {
		t.Fatalf("ClusterRole %s has %d rules, want 2: %+v", role.Name, len(role.Rules), role.Rules)
	}
	for i, want := range []struct {
		resource string
		verbs    []string
	}{{"nodes", []string{"get", "list", "patch", "watch"}}, {"pods", []string{"list", "watch"}}} {
		r := role.Rules[i]
		verbs := slices.Sorted(slices.Values(r.Verbs))
		if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{want.resource}) ||
			!slices.Equal(verbs, want.verbs) || len(r.ResourceNames) != 0 || len(r.NonResourceURLs) != 0 {
			t.Errorf("ClusterRole %s rule %d = %+v, want exactly %v on core %s", role.Name, i, r, want.verbs, want.resource)
		}
	}

	b := objs.binding
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}
	if b.RoleRef != wantRef {
		t.Errorf("ClusterRoleBinding %s roleRef = %+v, want %+v", b.Name, b.RoleRef, wantRef)
	}
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: objs.serviceAccount.Name, Namespace: objs.serviceAccount.Namespace}}
	if !slices.Equal(b.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding %s subjects = %+v, want %+v", b.Name, b.Subjects, wantSubjects)
	}
	spec := objs.daemonSet.Spec.Template.Spec
	if spec.ServiceAccountName != objs.serviceAccount.Name || objs.daemonSet.Namespace != objs.serviceAccount.Namespace {
		t.Errorf("DaemonSet runs as %s/%s, want the bound ServiceAccount %s/%s",
			objs.daemonSet.Namespace, spec.ServiceAccountName, objs.serviceAccount.Namespace, objs.serviceAccount.Name)
	}
}

// registryHost matches an image reference that starts with a registry host:
// a first path element with a dot or a port, or localhost.
var registryHost = regexp.MustCompile(`^([^/]*[.:][^/]*|localhost)/`)

// TestDaemonSet checks the DaemonSet's settings the agent and the later
// device plugin and metrics depend on, as NVIDIA's mig-manager sets them.
func TestDaemonSet(t *testing.T) {
	objs := parseAgent(t, renderAgent(t))
	ds := objs.daemonSet
	spec := ds.Spec.Template.Spec
	c := container(t, ds)

	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy %q, want RollingUpdate", ds.Spec.UpdateStrategy.Type)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q, want system-node-critical", spec.PriorityClassName)
	}
	if want := map[string]string{"nvidia.com/gpu.present": "true"}; !mapsEqual(spec.NodeSelector, want) {
		t.Errorf("nodeSelector %v, want %v", spec.NodeSelector, want)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "nvidia.com/gpu" && tol.Effect == corev1.TaintEffectNoSchedule &&
			(tol.Operator == corev1.TolerationOpExists || tol.Operator == "" && tol.Value == "")
	}) {
		t.Errorf("no toleration for the nvidia.com/gpu NoSchedule taint: %+v", spec.Tolerations)
	}

	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("container %s is not privileged; NVML needs it to change MIG layouts", c.Name)
	}
	if c.Image == "tessera" || c.Image == "" {
		t.Errorf("image %q: kustomization.yaml's images: did not set it", c.Image)
	}
	if registryHost.MatchString(c.Image) {
		t.Errorf("image %q names a registry host; the manifests name none, the user sets one", c.Image)
	}

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s is set twice", e.Name)
		}
		env[e.Name] = e
	}
	for name, want := range map[string]string{
		"TESSERA_SOURCE":             "kubernetes",
		"TESSERA_LAYOUTS_FILE":       agent.DefaultLayoutsPath,
		"TESSERA_STATUS_ADDRESS":     ":9471",
		"TESSERA_METRICS_ADDRESS":    ":9472",
		"TESSERA_LOG_FORMAT":         "json",
		"NVIDIA_VISIBLE_DEVICES":     "all",
		"NVIDIA_MIG_CONFIG_DEVICES":  "all",
		"NVIDIA_MIG_MONITOR_DEVICES": "all",
	} {
		if e, ok := env[name]; !ok || e.Value != want || e.ValueFrom != nil {
			t.Errorf("env %s = %+v, want %q", name, e, want)
		}
	}
	if e := env["TESSERA_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env TESSERA_NODE_NAME = %+v, want the downward API's spec.nodeName", e)
	}

	// The status server's port is exposed and probed on /healthz.
	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].ContainerPort == 9471 {
			port = &c.Ports[i]
		}
	}
	if port == nil || port.Protocol != corev1.ProtocolTCP && port.Protocol != "" {
		t.Fatalf("no TCP containerPort 9471 (TESSERA_STATUS_ADDRESS): %+v", c.Ports)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	if c.StartupProbe != nil {
		probes["startup"] = c.StartupProbe
	}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe %+v, want an HTTP GET of /healthz", name, p)
			continue
		}
		if p.HTTPGet.Path != "/healthz" || !portIs(p.HTTPGet.Port, *port) {
			t.Errorf("%s probe GET %s on port %s, want /healthz on %d", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), port.ContainerPort)
		}
	}

	// The layouts ConfigMap is mounted where TESSERA_LAYOUTS_FILE looks.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	layoutsDir, layoutsKey := path.Split(agent.DefaultLayoutsPath)
	layoutsDir = strings.TrimSuffix(layoutsDir, "/")
	if m, ok := mounts[layoutsDir]; !ok {
		t.Errorf("nothing mounted at %s: %+v", layoutsDir, c.VolumeMounts)
	} else if v := volumes[m.Name]; v.ConfigMap == nil || v.ConfigMap.Name != objs.layouts.Name || len(v.ConfigMap.Items) != 0 {
		t.Errorf("%s: volume %+v, want ConfigMap %s with all its keys", layoutsDir, v.VolumeSource, objs.layouts.Name)
	} else if _, ok := objs.layouts.Data[layoutsKey]; !ok || m.SubPath != "" {
		// A subPath mount would never see the ConfigMap change.
		t.Errorf("%s: ConfigMap %s key %s, subPath %q: want the key without subPath", layoutsDir, objs.layouts.Name, layoutsKey, m.SubPath)
	}
	for _, dir := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources"} {
		m, ok := mounts[dir]
		if !ok {
			t.Errorf("nothing mounted at %s", dir)
			continue
		}
		if v := volumes[m.Name]; v.HostPath == nil || v.HostPath.Path != dir {
			t.Errorf("%s: volume %+v, want hostPath %s", dir, v.VolumeSource, dir)
		}
	}
	if m := mounts["/var/lib/kubelet/device-plugins"]; m.ReadOnly {
		t.Errorf("/var/lib/kubelet/device-plugins is read-only; the device plugin must create its socket there")
	}

	req := c.Resources.Requests
	cpu, mem := req[corev1.ResourceCPU], req[corev1.ResourceMemory]
	if cpu.IsZero() || mem.IsZero() {
		t.Errorf("resource requests %v: want CPU and memory", req)
	}
	if cpu.Cmp(resource.MustParse("100m")) > 0 || mem.Cmp(resource.MustParse("256Mi")) > 0 {
		t.Errorf("resource requests %v: want small ones (at most 100m CPU, 256Mi)", req)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func portIs(p intstr.IntOrString, port corev1.ContainerPort) bool {
	if p.Type == intstr.String {
		return port.Name != "" && p.StrVal == port.Name
	}
	return p.IntVal == port.ContainerPort
}

// TestREADMEOverlays renders the overlays deploy/README.md shows — a
// different node selector, the user's own layouts ConfigMap — on top of
// deploy/agent, so the documented way of changing them keeps working.
func TestREADMEOverlays(t *testing.T) {
	root := e2etest.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlocks(string(readme))
	var overlay map[string]any
	var patches []any
	for _, b := range blocks {
		m := yamlMap(t, b)
		p, ok := m["patches"].([]any)
		if !ok {
			continue
		}
		if _, ok := m["resources"]; ok {
			overlay = m
		} else {
			patches = append(patches, p...)
		}
	}
	if overlay == nil || len(patches) == 0 {
		t.Fatalf("deploy/README.md: want a yaml block with a kustomization (resources, patches) and one with more patches; found %d yaml blocks", len(blocks))
	}

	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(root, "deploy", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	overlay["resources"] = []any{base}
	overlay["patches"] = append(overlay["patches"].([]any), patches...)
	data, err := json.Marshal(overlay)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ds := typed[appsv1.DaemonSet](t, find(t, decode(t, render(t, dir)), "DaemonSet", agentName))
	spec := ds.Spec.Template.Spec
	if _, ok := spec.NodeSelector["nvidia.com/gpu.present"]; ok || len(spec.NodeSelector) != 1 {
		t.Errorf("README's node-selector patch: nodeSelector = %v, want one other label", spec.NodeSelector)
	}
	for _, v := range spec.Volumes {
		if v.Name == "layouts" && (v.ConfigMap == nil || v.ConfigMap.Name == layoutsName) {
			t.Errorf("README's layouts patch: volume layouts = %+v, want another ConfigMap", v.VolumeSource)
		}
	}
	if len(spec.Volumes) != 3 {
		t.Errorf("README's patches changed the number of volumes to %d: %+v", len(spec.Volumes), spec.Volumes)
	}
}

// yamlBlocks returns the contents of the ```yaml fenced blocks of a
// Markdown text, with the fence's indentation removed.
func yamlBlocks(md string) []string {
	var blocks []string
	var cur []string
	indent, in := "", false
	for _, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case !in && trimmed == "```yaml":
			in, indent, cur = true, line[:len(line)-len(trimmed)], nil
		case in && trimmed == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, strings.TrimPrefix(line, indent))
		}
	}
	return blocks
}

func yamlMap(t testing.TB, y string) map[string]any {
	t.Helper()
	data, err := utilyaml.ToJSON([]byte(y))
	if err != nil {
		t.Fatalf("deploy/README.md yaml block:\n%s\n%v", y, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("deploy/README.md yaml block:\n%s\n%v", y, err)
	}
	return m
}
