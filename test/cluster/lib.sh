# Shared helpers for test/cluster scripts. Source, don't execute.
# shellcheck shell=bash

CLUSTER_DIR_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The repository root (test/cluster/../..): where .cluster/ lives by default.
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT="$(cd "$CLUSTER_DIR_SRC/../.." && pwd)"

TP_CACHE="${TP_CACHE:-$HOME/.cache/training-platform}"
export GOMODCACHE="$TP_CACHE/go/mod"
export GOCACHE="$TP_CACHE/go/build"
# Never let `go` fetch a different toolchain; use the installed one.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- cached builds (build.sh here, tools/pulumi/build.sh) -------------------
# A build lands in <cache>/<key>/, where <key> hashes the Go version and every
# input file; a directory with .complete and every binary is reused as is.

# timed <label> <cmd...>: runs a build step, logging how long it took.
timed() {
  local label="$1" t0=$SECONDS; shift
  log "$label ..."
  "$@" || die "$label failed"
  log "$label: done in $((SECONDS - t0))s"
}

# input_key <dir> <path>...: the key of the build inputs found under <path>...
# (relative to <dir>): Go sources, go.mod/go.sum, scripts and env files.
input_key() {
  local dir="$1"; shift
  (
    cd "$dir"
    go version
    find "$@" -type f \
      \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.sh' -o -name '*.env' \) -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

# build_is_complete <bin dir> <binary>...
build_is_complete() {
  local dir="$1" b; shift
  [[ -f "$dir/.complete" ]] || return 1
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

# reuse_or_lock <bin dir> <binary>...: prints the bin dir and exits when a
# finished build is there; otherwise takes the cache's build lock (fd 9, held
# until exit, so concurrent builds of two shells or CI and a developer queue)
# and checks again, as the build it waited for may have been this one.
# TP_BUILD_FORCE=1 always rebuilds.
reuse_or_lock() {
  local dir="$1"; shift
  if [[ "${TP_BUILD_FORCE:-}" != 1 ]] && build_is_complete "$dir" "$@"; then
    log "up to date: $dir"
    echo "$dir"
    exit 0
  fi
  mkdir -p "$(dirname "$dir")" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$(dirname "$dir")/.build.lock"
  flock 9
  if [[ "${TP_BUILD_FORCE:-}" != 1 ]] && build_is_complete "$dir" "$@"; then
    log "built by a concurrent run: $dir"
    echo "$dir"
    exit 0
  fi
}

# publish_build <tmp dir> <bin dir> <others kept> <binary>...: checks that every
# binary was produced, moves the build into place, and removes all but the most
# recent <others kept> other builds (each is hundreds of MB).
publish_build() {
  local tmp="$1" dir="$2" keep="$3" b; shift 3
  for b in "$@"; do [[ -x "$tmp/$b" ]] || die "expected binary $b was not produced"; done
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 -type d ! -name "$(basename "$dir")" ! -name '.*' -printf '%T@ %p\n' \
    | sort -rn | tail -n +$((keep + 1)) | cut -d' ' -f2- | xargs -r rm -rf -- || true
}
