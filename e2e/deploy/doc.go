// Package deploy holds end-to-end tests of the Kubernetes manifests in
// deploy/agent: that the pinned kubectl renders them, that a real
// kube-apiserver accepts the result, that the DaemonSet and RBAC say what
// the agent needs, that the agent's ServiceAccount may do what the agent does
// and no more, and that the agent runs with the DaemonSet's settings. It has
// no non-test code.
package deploy
