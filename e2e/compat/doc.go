// Package compat holds end-to-end tests that check the names Tessera shows
// to Kubernetes — layout-config label values and MIG extended-resource names —
// against a real kube-apiserver's validation. It has no non-test code.
package compat
