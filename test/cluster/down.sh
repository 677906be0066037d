#!/usr/bin/env bash
# Stops the cluster started by up.sh: first unregisters Kueue's webhooks and
# visibility APIService (the Job webhook has failurePolicy Fail: with Kueue gone
# and the webhook left, every Job create or update would be refused), then
# SIGTERM to every process in <state dir>/pids (only if it still is the binary
# we started), SIGKILL after a grace period, then removes the cluster data
# (etcd, PKI, kubeconfigs, Kueue's config).
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
COMPONENTS=(kueue kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

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

# Through the API server with the admin credentials up.sh made; no kubectl, so
# this works before build.sh has run and after a half-finished up.sh.
unregister_kueue() {
  local server path
  server="$(sed -n 's/^ *server: //p' "$CDIR/kubeconfig" 2>/dev/null | head -n1)"
  [[ -n "$server" && -f "$CDIR/pki/admin.key" ]] || return 0
  for path in \
    /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kueue-validating-webhook-configuration \
    /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kueue-mutating-webhook-configuration \
    /apis/apiregistration.k8s.io/v1/apiservices/v1beta2.visibility.kueue.x-k8s.io; do
    curl -s -o /dev/null --max-time 5 -X DELETE --cacert "$CDIR/pki/ca.crt" \
      --cert "$CDIR/pki/admin.crt" --key "$CDIR/pki/admin.key" "$server$path" || true
  done
}
if [[ -n "${PID[kube-apiserver]:-}" ]]; then
  say "unregistering Kueue's webhooks and visibility API"
  unregister_kueue
fi

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
  "$CDIR/kueue-etc" "$CDIR/kueue-config.yaml" "$CDIR"/*.kubeconfig "$CDIR/kubeconfig" "$CDIR/kubeconfig.tmp" "$CDIR/env"
if (( PURGE )); then
  rm -rf "$CDIR/logs"
  rm -f "$CDIR/.lock"
  rmdir "$CDIR" 2>/dev/null || true
fi
say "cluster stopped"
