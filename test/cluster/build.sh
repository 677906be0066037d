#!/usr/bin/env bash
# Builds the test control plane from Go modules with the local Go toolchain:
#   etcd, kube-apiserver, kube-controller-manager (ours, short Job backoff),
#   kube-scheduler, kubectl, kwok, kueue (+ its CRDs, copied from the module
#   into kueue-crds/ so up.sh needs no Go toolchain)
#
# Binaries land in $HOME/.cache/training-platform/bin/<key>/ where <key> hashes
# every input (versions.env, go.mod/go.sum files, our Go sources, this script,
# lib.sh and the Go version: input_key in lib.sh). A warm run only checks that directory and exits.
# Module and build caches live in $HOME/.cache/training-platform/go/{mod,build}.
#
# stdout: exactly one line, the bin dir. Progress and timings go to stderr.
# Env: TP_CACHE (default $HOME/.cache/training-platform), TP_BUILD_FORCE=1 to rebuild.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=versions.env
source "$HERE/versions.env"

BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kueue)

command -v go >/dev/null || die "go is not installed (need Go >= $(awk '$1=="go"{print $2}' "$HERE/kwok/go.mod"))"

# Inputs: anything that changes the binaries must be under these paths.
KEY="$(input_key "$HERE" versions.env build.sh lib.sh k8s etcd kwok kueue)"
BIN_DIR="$TP_CACHE/bin/$KEY"
reuse_or_lock "$BIN_DIR" "${BINARIES[@]}"

start_all=$SECONDS
tmp="$(mktemp -d "$TP_CACHE/bin/.tmp-$KEY.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

common=(-trimpath)

# ---- k8s -------------------------------------------------------------------
cd "$HERE/k8s"
kube_commit="$(go mod download -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]\{40\}\)".*/\1/p' | head -n1)"
kube_time="$(go list -m -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
[[ "$K8S_VERSION" =~ ^v([0-9]+)\.([0-9]+)\. ]]
kube_major="${BASH_REMATCH[1]}" kube_minor="${BASH_REMATCH[2]}"
vflags=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  vflags+=" -X '$pkg.gitVersion=$K8S_VERSION'"
  vflags+=" -X '$pkg.gitMajor=$kube_major'"
  vflags+=" -X '$pkg.gitMinor=$kube_minor'"
  vflags+=" -X '$pkg.gitTreeState=clean'"
  [[ -n "$kube_commit" ]] && vflags+=" -X '$pkg.gitCommit=$kube_commit'"
  [[ -n "$kube_time" ]] && vflags+=" -X '$pkg.buildDate=$kube_time'"
done
timed "building kube-apiserver kube-controller-manager kube-scheduler kubectl ($K8S_VERSION)" \
  go build "${common[@]}" -ldflags "-s -w$vflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    ./cmd/kube-controller-manager

# ---- etcd ------------------------------------------------------------------
cd "$HERE/etcd"
timed "building etcd ($ETCD_VERSION)" \
  go build "${common[@]}" -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3

# ---- kwok ------------------------------------------------------------------
cd "$HERE/kwok"
timed "building kwok ($KWOK_VERSION)" \
  go build "${common[@]}" -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok

# ---- kueue -----------------------------------------------------------------
# The manager reads its visibility server's certificate from the hard-coded
# /visibility (pkg/visibility.certDir) and its metrics certificate from
# /etc/kueue/metrics/certs (a literal in main). Moving the first under /etc/kueue
# lets up.sh provide both with one private overlay of /etc (see start_kueue).
cd "$HERE/kueue"
timed "building kueue ($KUEUE_VERSION)" \
  go build "${common[@]}" -o "$tmp/kueue" -ldflags "-s -w \
    -X 'sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION' \
    -X 'sigs.k8s.io/kueue/pkg/visibility.certDir=/etc/kueue/visibility'" \
    sigs.k8s.io/kueue/cmd/kueue
kueue_src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
mkdir "$tmp/kueue-crds"
cp "$kueue_src"/config/components/crd/bases/*.yaml "$tmp/kueue-crds/"
(( $(find "$tmp/kueue-crds" -name '*.yaml' | wc -l) == 11 )) || die "expected the 11 Kueue CRDs in $kueue_src/config/components/crd/bases"

# Keep this build and the two most recent others.
publish_build "$tmp" "$BIN_DIR" 2 "${BINARIES[@]}"
trap - EXIT
ln -sfn "$KEY" "$TP_CACHE/bin/current"

log "all binaries built in $((SECONDS - start_all))s -> $BIN_DIR"
echo "$BIN_DIR"
