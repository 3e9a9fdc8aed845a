#!/usr/bin/env bash
# in-mountns.sh runs a command — a Go test binary, as go test's -exec wrapper —
# as root in a private mount namespace with a fresh tmpfs on /var/lib/kubelet,
# so tests can run the kubelet's real device manager, whose socket path is
# fixed at /var/lib/kubelet/device-plugins/kubelet.sock, without touching the
# host's folder (or a real kubelet's, on a node that runs one):
#
#   cd e2e/kubelet && go test -exec "$PWD/../scripts/in-mountns.sh" ./...
#
# Give -exec an absolute path: go test runs it from each package's folder.
#
# The namespace and the tmpfs live exactly as long as the command: nothing is
# left mounted afterwards. /var/lib/kubelet itself is created on the host if
# it is missing (an empty folder, left in place: removing it could detach the
# tmpfs of another test binary running at the same time). The tmpfs holds a
# marker (.tessera-e2e-mountns) with the process ID the command runs as and
# the mount namespace it came from; e2e/kubelet/kubeletenv refuses to start
# unless it finds that marker for its own process in a namespace of its own.
set -euo pipefail

if [ $# -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...]   (e.g. go test -exec \"\$PWD/$0\" ./...)" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "in-mountns.sh: needs root (unshare -m and mount); e.g. build with 'go test -c' and run 'sudo $0 ./x.test'" >&2
	exit 1
fi

outer_ns=$(readlink /proc/self/ns/mnt)

# unshare without --fork execs sh in this same process, and sh execs the
# command, so the command keeps the process ID written into the marker.
exec unshare --mount --propagation private -- /bin/sh -ec '
	outer_ns=$1
	shift
	# Nothing mounted below may propagate back to the host namespace.
	mount --make-rprivate /
	mkdir -p /var/lib/kubelet
	mount -t tmpfs -o mode=0750,size=256m tessera-e2e /var/lib/kubelet
	printf "pid=%s\nouter_mnt_ns=%s\n" "$$" "$outer_ns" > /var/lib/kubelet/.tessera-e2e-mountns
	exec "$@"
' in-mountns "$outer_ns" "$@"
