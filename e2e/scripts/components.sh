#!/usr/bin/env bash
# components.sh builds the real control-plane binaries the end-to-end tests run
# against (kube-apiserver, kubectl, etcd) from the pinned modules in e2e/tools,
# and caches them in a folder named by their versions:
#
#   ${TESSERA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-e2e}/k8s-<v>-etcd-<v>/bin
#
# It is idempotent: when every binary is already there it only prints the
# folder (about a second). A cold build takes several minutes, most of it
# kube-apiserver. Progress goes to stderr; the last line on stdout is the bin
# folder, so callers can do  TESSERA_E2E_BIN=$(e2e/scripts/components.sh).
#
# Each binary is built under a temporary name and renamed into place, so an
# interrupted build never leaves a half-written file that later counts as
# cached.
set -euo pipefail

GO=${GO:-go}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(cd "$here/../tools" && pwd)

log() { printf 'e2e-components: %s\n' "$*" >&2; }

# The versions come from e2e/tools/go.mod, so bumping a version there names a
# new cache folder and never reuses binaries of another version.
k8s_version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$tools" && "$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)

cache=${TESSERA_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-e2e}
bin="$cache/k8s-$k8s_version-etcd-$etcd_version/bin"

# name:package, in build order (the slow one first, so its estimate is honest).
components=(
	"kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver"
	"kubectl:k8s.io/kubernetes/cmd/kubectl"
	"etcd:go.etcd.io/etcd/server/v3"
)
estimate() {
	case $1 in
	kube-apiserver) echo "~5 min" ;;
	*) echo "~1 min" ;;
	esac
}

# kubectl refuses to parse a version it cannot read, so stamp the release into
# both places Kubernetes reads it from.
minor=${k8s_version#v1.}
minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

mkdir -p "$bin"
tmp=
trap '[ -n "$tmp" ] && rm -f "$tmp"' EXIT

for c in "${components[@]}"; do
	name=${c%%:*}
	pkg=${c#*:}
	if [ -x "$bin/$name" ]; then
		continue
	fi
	log "building $name $( [ "$name" = etcd ] && echo "$etcd_version" || echo "$k8s_version") (first time on this machine, $(estimate "$name"))..."
	start=$SECONDS
	tmp="$bin/.$name.tmp.$$"
	(cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp" "$pkg")
	mv -f "$tmp" "$bin/$name"
	tmp=
	log "built $name in $((SECONDS - start)) s"
done

echo "$bin"
