#!/usr/bin/env bash
# Schemathesis against a live dispatcher, driven by the dispatcher's own /openapi.json: every
# operation, with the bearer token, checking for server errors, undocumented status codes,
# content types and response bodies that break the document. Any failure fails the run.
#
#   bash test/fuzz/run.sh local      [result.json]   dispatcher on the local executor only
#   bash test/fuzz/run.sh kubernetes [result.json]   its own control plane (test/cluster/up.sh,
#                                                    its own ports and folder) + the platform chart
#
# result.json gets {"suite", "passed", "failed"} for .ci/test-summary.ts. FUZZ_MAX_EXAMPLES
# (default 60) bounds the cases per operation, FUZZ_MAX_SECONDS (default 120) the whole run.
# The local executor's trainer is `true`: the fuzzer tests the HTTP API, not training, and
# must not leave thousands of trainers running on the host.
set -euo pipefail
mode=${1:?usage: run.sh local|kubernetes [result.json]}
result=${2:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
st=$(bash test/fuzz/install.sh)
work=$(mktemp -d)
dispatcher=""

cleanup() {
  if [ -n "$dispatcher" ]; then kill "$dispatcher" 2>/dev/null || true; wait "$dispatcher" 2>/dev/null || true; fi
  if [ "$mode" = kubernetes ]; then TP_CLUSTER_DIR="$work/cluster" bash test/cluster/down.sh >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

record() {
  [ -z "$result" ] && return 0
  printf '{"suite":"schemathesis (%s)","passed":%d,"failed":%d}\n' "$mode" "$1" "$2" >"$result"
}
# Until the fuzzer has passed, the run counts as failed (a set -e exit included).
record 0 1

# Ports free now, so this run never collides with a cluster or dispatcher already running here.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)
export DISPATCHER_API_TOKEN="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
env_vars=(PORT="$port" HOST=127.0.0.1 LOCAL_WORK_DIR="$work/local" LOCAL_PYTHON=true)
config="$work/schemathesis.toml"
cp test/fuzz/schemathesis.toml "$config"
case "$mode" in
  local) ;;
  kubernetes)
    # Its own cluster beside any other: its own folder and ports.
    export TP_CLUSTER_DIR="$work/cluster"
    TP_CLUSTER_API_PORT=$(free_port) TP_CLUSTER_ETCD_PORT=$(free_port) TP_CLUSTER_KCM_PORT=$(free_port)
    TP_CLUSTER_SCHEDULER_PORT=$(free_port) TP_CLUSTER_KWOK_PORT=$(free_port)
    TP_CLUSTER_KUEUE_WEBHOOK_PORT=$(free_port) TP_CLUSTER_KUEUE_METRICS_PORT=$(free_port)
    TP_CLUSTER_KUEUE_HEALTH_PORT=$(free_port) TP_CLUSTER_KUEUE_VISIBILITY_PORT=$(free_port)
    export TP_CLUSTER_API_PORT TP_CLUSTER_ETCD_PORT TP_CLUSTER_KCM_PORT TP_CLUSTER_SCHEDULER_PORT TP_CLUSTER_KWOK_PORT \
      TP_CLUSTER_KUEUE_WEBHOOK_PORT TP_CLUSTER_KUEUE_METRICS_PORT TP_CLUSTER_KUEUE_HEALTH_PORT TP_CLUSTER_KUEUE_VISIBILITY_PORT
    bash test/cluster/up.sh >"$work/cluster-up.log" 2>&1 || { cat "$work/cluster-up.log" >&2; exit 1; }
    # shellcheck disable=SC1091
    source "$TP_CLUSTER_DIR/env"
    "$TP_CLUSTER_BIN/kubectl" --kubeconfig "$TP_CLUSTER_DIR/kubeconfig" apply --server-side -f dist/platform.k8s.yaml >/dev/null
    env_vars+=(KUBECONFIG="$TP_CLUSTER_DIR/kubeconfig")
    # kwok serves a followed log until the client hangs up (it has no container to end), where a
    # kubelet ends it with the container: here the fuzzer reads logs without following them;
    # test/integration/front-door.test.ts follows them against the same control plane.
    printf '\n[[operations]]\ninclude-operation-id = "getJobLogs"\nparameters = { "follow" = "false" }\n' >>"$config"
    ;;
  *) echo "unknown mode $mode (local or kubernetes)" >&2; exit 2 ;;
esac

# The project's Node 24 directly (not through npm), so the pid below is the dispatcher itself.
env "${env_vars[@]}" node_modules/.bin/node dispatcher/main.ts >"$work/dispatcher.log" 2>&1 &
dispatcher=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$dispatcher" 2>/dev/null || { cat "$work/dispatcher.log" >&2; exit 1; }
  sleep 0.2
done

status=0
# From the scratch folder: Schemathesis keeps a cache where it runs. One worker: under Python 3.11,
# concurrent workers can trip CPython's "AST constructor recursion depth mismatch" inside Hypothesis.
(cd "$work" && "$st" --config-file "$config" run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${FUZZ_MAX_EXAMPLES:-60}" --max-time "${FUZZ_MAX_SECONDS:-120}" \
  --request-timeout 20 --workers 1 --no-color) || status=$?

# The fuzzer may also have ended the process without any answer being wrong: that fails too.
if ! kill -0 "$dispatcher" 2>/dev/null; then
  echo "the dispatcher died during the fuzz run; its log:" >&2
  tail -n 50 "$work/dispatcher.log" >&2
  status=1
fi
if grep -q '"msg":"unhandled error"' "$work/dispatcher.log"; then
  echo "the dispatcher met errors it did not expect during the fuzz run:" >&2
  grep -m 20 '"msg":"unhandled error"' "$work/dispatcher.log" >&2
  status=1
fi
if [ "$status" -eq 0 ]; then record 1 0; fi
exit "$status"
