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
