#!/usr/bin/env bash
# Stops the cluster started by up.sh: SIGTERM to every process in
# <state dir>/pids (only if it still is the binary we started), SIGKILL after a
# grace period, then removes the cluster data (etcd, PKI, kubeconfigs).
# Logs in <state dir>/logs are kept for debugging unless --purge is given.
#
#   bash test/cluster/down.sh [--purge] [--quiet]
#
# Env: TP_CLUSTER_DIR (default <repo>/.cluster), TP_CLUSTER_GRACE (seconds, default 10)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

PURGE=0 QUIET=0
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    --quiet) QUIET=1 ;;
    --keep-logs) ;; # the default; accepted for clarity
    *) die "unknown argument $a (usage: down.sh [--purge] [--quiet])" ;;
  esac
done
say() { (( QUIET )) || log "$@"; }

CDIR="${TP_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
GRACE="${TP_CLUSTER_GRACE:-10}"
[[ -d "$CDIR" ]] || { say "no cluster state in $CDIR"; exit 0; }

if [[ "${TP_CLUSTER_LOCKED:-}" != 1 ]]; then
  exec 8>"$CDIR/.lock"
  flock -w 300 8 || die "another up.sh/down.sh holds $CDIR/.lock"
fi

# Reverse start order: the simulated nodes and controllers first, etcd last.
COMPONENTS=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

# pid of a component if that process is still the binary we started, else empty.
ours() {
  local f="$CDIR/pids/$1.pid" pid exe
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ -r "/proc/$pid/cmdline" ]] || return 0
  exe="$(tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | head -n1 || true)"
  [[ "$(basename -- "${exe:-/}")" == "$1" ]] && echo "$pid"
  return 0
}

declare -A PID=()
for c in "${COMPONENTS[@]}"; do
  p="$(ours "$c")"
  [[ -n "$p" ]] && PID[$c]="$p"
done

if (( ${#PID[@]} > 0 )); then
  for c in "${COMPONENTS[@]}"; do
    [[ -n "${PID[$c]:-}" ]] || continue
    say "stopping $c (pid ${PID[$c]})"
    kill -TERM "${PID[$c]}" 2>/dev/null || true
    # Give each a moment so controllers stop before the apiserver and etcd go.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "${PID[$c]}" 2>/dev/null || break; sleep 0.1; done
  done
  deadline=$((SECONDS + GRACE))
  while :; do
    left=()
    for c in "${!PID[@]}"; do kill -0 "${PID[$c]}" 2>/dev/null && left+=("$c"); done
    (( ${#left[@]} == 0 )) && break
    if (( SECONDS >= deadline )); then
      say "SIGKILL after ${GRACE}s: ${left[*]}"
      for c in "${left[@]}"; do kill -KILL "${PID[$c]}" 2>/dev/null || true; done
      for _ in $(seq 50); do
        alive=0
        for c in "${left[@]}"; do kill -0 "${PID[$c]}" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
      done
      break
    fi
    sleep 0.2
  done
fi

for c in "${COMPONENTS[@]}"; do
  if [[ -n "${PID[$c]:-}" ]] && kill -0 "${PID[$c]}" 2>/dev/null; then
    die "$c (pid ${PID[$c]}) is still running after SIGKILL"
  fi
done

rm -rf "$CDIR/pids" "$CDIR/etcd" "$CDIR/pki" "$CDIR/kwok-home" "$CDIR"/*-certs \
  "$CDIR"/*.kubeconfig "$CDIR/kubeconfig" "$CDIR/kubeconfig.tmp" "$CDIR/env"
if (( PURGE )); then
  rm -rf "$CDIR/logs"
  rm -f "$CDIR/.lock"
  rmdir "$CDIR" 2>/dev/null || true
fi
say "cluster stopped"
