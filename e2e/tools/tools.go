//go:build tools

// Package tools records the commands that e2e/scripts/components.sh builds,
// so that go.mod and go.sum pin every module they need. It is never compiled
// into anything.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
