// Package kubelet holds end-to-end tests against the kubelet's real device
// manager and pod-resources server, run in the test process by kubeletenv.
// The tests need root and a private /var/lib/kubelet: run them with
// go test -exec <repo>/e2e/scripts/in-mountns.sh. It has no non-test code.
package kubelet
