#!/usr/bin/env bash
# Starts a real Kubernetes control plane on 127.0.0.1 for integration tests:
# etcd, kube-apiserver (TLS, authorization Node,RBAC), kube-controller-manager,
# kube-scheduler and kwok (simulated nodes + pod lifecycles, see kwok-stages.yaml;
# a kubelet-like server for pod logs, see kwok-logs.yaml), then registers the
# fake nodes from nodes.yaml, then starts Kueue (job queueing: CRDs, webhooks by
# URL, the visibility API through the aggregation layer).
#
# State lives in <repo>/.cluster/ (git-ignored):
#   kubeconfig   admin kubeconfig (system:masters), the one tests use
#   pki/         CA, serving cert, client certs, service-account key
#   logs/*.log   one log per component (kept by down.sh)
#   pids/*.pid   one pid file per component
#   env          ports and paths of the running cluster (sourceable)
#
# Env (all optional):
#   TP_CLUSTER_API_PORT        kube-apiserver secure port   (default 6443)
#   TP_CLUSTER_ETCD_PORT       etcd client port; peer = +1  (default 2379)
#   TP_CLUSTER_KCM_PORT        controller-manager https     (default 10257)
#   TP_CLUSTER_SCHEDULER_PORT  scheduler https              (default 10259)
#   TP_CLUSTER_KWOK_PORT       kwok's kubelet-like server, the fake nodes'
#                              kubelet port (pod logs)       (default 10260)
#   TP_CLUSTER_KUEUE_WEBHOOK_PORT     Kueue admission webhooks  (default kwok's + 1)
#   TP_CLUSTER_KUEUE_METRICS_PORT     Kueue metrics (https)     (default kwok's + 2)
#   TP_CLUSTER_KUEUE_HEALTH_PORT      Kueue /healthz, /readyz   (default kwok's + 3)
#   TP_CLUSTER_KUEUE_VISIBILITY_PORT  Kueue visibility API      (default kwok's + 4)
#   TP_CLUSTER_DIR             state dir                    (default <repo>/.cluster)
#   TP_CLUSTER_TIMEOUT         seconds to wait per phase    (default 120)
#   TP_JOB_POD_FAILURE_BACKOFF / TP_JOB_POD_FAILURE_BACKOFF_MAX  Job controller
#                              pod-failure backoff (default 1s / 2s)
#
# Exit status 0 only when /readyz is ok, the default service account exists,
# every node is Ready and untainted by the node lifecycle controller, Kueue is
# ready with its webhooks registered and its visibility APIService Available.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

START=$SECONDS
API_PORT="${TP_CLUSTER_API_PORT:-6443}"
ETCD_PORT="${TP_CLUSTER_ETCD_PORT:-2379}"
ETCD_PEER_PORT=$((ETCD_PORT + 1))
KCM_PORT="${TP_CLUSTER_KCM_PORT:-10257}"
SCHED_PORT="${TP_CLUSTER_SCHEDULER_PORT:-10259}"
KWOK_PORT="${TP_CLUSTER_KWOK_PORT:-10260}"
# Next to kwok's by default, so a cluster given its own ports (up to kwok's)
# does not take another cluster's Kueue ports.
KUEUE_WEBHOOK_PORT="${TP_CLUSTER_KUEUE_WEBHOOK_PORT:-$((KWOK_PORT + 1))}"
KUEUE_METRICS_PORT="${TP_CLUSTER_KUEUE_METRICS_PORT:-$((KWOK_PORT + 2))}"
KUEUE_HEALTH_PORT="${TP_CLUSTER_KUEUE_HEALTH_PORT:-$((KWOK_PORT + 3))}"
KUEUE_VISIBILITY_PORT="${TP_CLUSTER_KUEUE_VISIBILITY_PORT:-$((KWOK_PORT + 4))}"
TIMEOUT="${TP_CLUSTER_TIMEOUT:-120}"
CDIR="${TP_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
PKI="$CDIR/pki"
LOGS="$CDIR/logs"
PIDS="$CDIR/pids"
KUBECONFIG_OUT="$CDIR/kubeconfig"

for tool in openssl curl flock setsid unshare; do
  case "$tool" in setsid | unshare) package=util-linux ;; *) package="$tool" ;; esac
  command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install -y $package)"
done

mkdir -p "$CDIR"
# One up/down at a time per state dir.
exec 8>"$CDIR/.lock"
flock -w 300 8 || die "another up.sh/down.sh holds $CDIR/.lock"

# ---- clean up any previous cluster in this state dir -----------------------
TP_CLUSTER_DIR="$CDIR" TP_CLUSTER_LOCKED=1 bash "$HERE/down.sh" --quiet

# ---- build (no-op when cached) ---------------------------------------------
BIN="$(bash "$HERE/build.sh")"
[[ -d "$BIN" ]] || die "build.sh did not print a bin dir"
KUBECTL="$BIN/kubectl"

mkdir -p "$PKI" "$LOGS" "$PIDS" "$CDIR/kwok-home"
mkdir -m 700 "$CDIR/etcd"
rm -f "$LOGS"/*.log

# On any failure from here on: say which component, show its log, stop everything.
FAILED_COMPONENT=""
on_exit() {
  local rc=$?
  if (( rc != 0 )); then
    if [[ -n "$FAILED_COMPONENT" && -f "$LOGS/$FAILED_COMPONENT.log" ]]; then
      log "----- last 40 lines of $LOGS/$FAILED_COMPONENT.log -----"
      tail -n 40 "$LOGS/$FAILED_COMPONENT.log" >&2 || true
      log "----- end of $FAILED_COMPONENT.log -----"
    fi
    log "cluster start FAILED after $((SECONDS - START))s; stopping what was started (logs kept in $LOGS)"
    TP_CLUSTER_DIR="$CDIR" TP_CLUSTER_LOCKED=1 bash "$HERE/down.sh" --quiet --keep-logs || true
  fi
}
trap on_exit EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT" \
  "$KUEUE_WEBHOOK_PORT" "$KUEUE_METRICS_PORT" "$KUEUE_HEALTH_PORT" "$KUEUE_VISIBILITY_PORT"; do
  if port_in_use "$p"; then
    who="$(ss -ltnpH "sport = :$p" 2>/dev/null || true)"
    die "port 127.0.0.1:$p is already in use (${who:-unknown process}). Stop it, run down.sh, or set TP_CLUSTER_*_PORT."
  fi
done


# ---- PKI ---------------------------------------------------------------------
log "generating PKI in $PKI"
(
  cd "$PKI"
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 3650 -sha256 \
    -subj "/CN=training-platform-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  # issue <name> <subject> <extensions>
  issue() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  client_ext=$'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
  issue apiserver "/CN=kube-apiserver" \
    $'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local'
  issue admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
  issue controller-manager "/CN=system:kube-controller-manager" "$client_ext"
  issue scheduler "/CN=system:kube-scheduler" "$client_ext"
  # kwok plays the kubelet of many nodes; the Node authorizer only admits one
  # node per identity, so it gets cluster-admin like kwokctl gives it.
  issue kwok "/O=system:masters/CN=kwok-controller" "$client_ext"
  # kwok's kubelet-like server (pod logs): the API server dials the node's
  # InternalIP (127.0.0.1) and verifies this cert against ca.crt
  # (--kubelet-certificate-authority) ...
  issue kwok-server "/CN=kwok-kubelet-server" \
    $'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost'
  # ... presenting this client cert (--kubelet-client-certificate). kwok v0.8.0
  # does not authenticate or authorize its clients (it has no client CA flag),
  # so the identity carries no group; a real kubelet would need RBAC for it
  # (e.g. ClusterRole system:kubelet-api-admin).
  issue apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "$client_ext"
  # Kueue runs as a cluster-admin client, as kwok does; its one serving cert
  # covers the webhooks (https://127.0.0.1:<port>), metrics, and the visibility
  # server, which the aggregator reaches as visibility-server.kueue-system.svc.
  issue kueue "/O=system:masters/CN=kueue" "$client_ext"
  mkdir kueue-serving
  issue kueue-serving/tls "/CN=kueue" \
    $'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:visibility-server.kueue-system.svc'
  # Aggregation layer (front proxy): its own CA, so only this client cert can
  # assert X-Remote-User. Without it every component logs errors about the
  # missing requestheader-client-ca-file.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -sha256 \
    -subj "/CN=training-platform-test-front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr \
    -subj "/CN=front-proxy-client" 2>/dev/null
  printf '%s\n' "$client_ext" > front-proxy-client.ext
  openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 -extfile front-proxy-client.ext \
    -out front-proxy-client.crt 2>/dev/null
  rm -f front-proxy-client.csr front-proxy-client.ext
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
) || die "openssl failed to generate the PKI"

write_kubeconfig() { # <file> <user> <cert> <key>
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: training-platform-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$3
    client-key: $PKI/$4
contexts:
- name: training-platform-test
  context:
    cluster: training-platform-test
    user: $2
current-context: training-platform-test
EOF
  chmod 600 "$1"
}
write_kubeconfig "$CDIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager.crt controller-manager.key
write_kubeconfig "$CDIR/scheduler.kubeconfig" system:kube-scheduler scheduler.crt scheduler.key
write_kubeconfig "$CDIR/kwok.kubeconfig" kwok-controller kwok.crt kwok.key
write_kubeconfig "$CDIR/kueue.kubeconfig" kueue kueue.crt kueue.key
# The admin kubeconfig embeds its credentials so it stays valid if copied.
cat > "$KUBECONFIG_OUT.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: training-platform-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/admin.crt")
    client-key-data: $(base64 -w0 < "$PKI/admin.key")
contexts:
- name: training-platform-test
  context:
    cluster: training-platform-test
    user: kubernetes-admin
    namespace: default
current-context: training-platform-test
EOF
chmod 600 "$KUBECONFIG_OUT.tmp"

# ---- process helpers -----------------------------------------------------------
# start <name> <binary> <args...>: detached (own session, no inherited fds),
# output to logs/<name>.log, pid to pids/<name>.pid.
start() {
  local name="$1"; shift
  log "starting $name"
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 8>&- 9>&- &
  echo $! > "$PIDS/$name.pid"
}
alive() { kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
check_alive() {
  local c
  for c in "$@"; do
    if ! alive "$c"; then
      FAILED_COMPONENT="$c"
      die "$c exited unexpectedly (see $LOGS/$c.log)"
    fi
  done
}
# wait_for <what> <component-whose-log-matters> <alive-components...> -- <cmd...>
wait_for() {
  local what="$1" comp="$2"; shift 2
  local watch=()
  while [[ "$1" != "--" ]]; do watch+=("$1"); shift; done
  shift
  local deadline=$((SECONDS + TIMEOUT)) t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    check_alive "${watch[@]}"
    if (( SECONDS >= deadline )); then
      FAILED_COMPONENT="$comp"
      die "timed out after ${TIMEOUT}s waiting for $what"
    fi
    sleep 0.5
  done
  log "$what: ok ($((SECONDS - t0))s)"
}
curl_api() {
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT$1"
}

# ---- etcd --------------------------------------------------------------------
start etcd "$BIN/etcd" \
  --name=training-platform-test \
  --data-dir="$CDIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="training-platform-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) \
  --unsafe-no-fsync \
  --log-level=warn
etcd_ready() { curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
wait_for "etcd /health" etcd etcd -- etcd_ready

# ---- kube-apiserver ------------------------------------------------------------
start kube-apiserver "$BIN/kube-apiserver" \
  --bind-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --allow-privileged=true \
  --enable-admission-plugins=NodeRestriction \
  --cert-dir="$CDIR/apiserver-certs" \
  --profiling=false \
  --v=1
apiserver_ready() { [[ "$(curl_api /readyz)" == ok ]]; }
wait_for "kube-apiserver /readyz" kube-apiserver etcd kube-apiserver -- apiserver_ready
mv "$KUBECONFIG_OUT.tmp" "$KUBECONFIG_OUT"
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_OUT" --request-timeout=10s "$@"; }

# ---- kube-controller-manager ----------------------------------------------------
# --node-monitor-grace-period: the fault tests kill kube-apiserver; the controller
# manager's lease informer then backs off for up to ~30 s before it sees kwok's renewals
# again, which past the default 50 s marks the fake nodes NotReady and taints them,
# failing the next test's pods. No test here needs a node to be declared dead.
TP_JOB_POD_FAILURE_BACKOFF="${TP_JOB_POD_FAILURE_BACKOFF:-1s}" \
TP_JOB_POD_FAILURE_BACKOFF_MAX="${TP_JOB_POD_FAILURE_BACKOFF_MAX:-2s}" \
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$CDIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CDIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CDIR/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --cert-dir="$CDIR/controller-manager-certs" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" \
  --cluster-signing-key-file="$PKI/ca.key" \
  --cluster-name=training-platform-test \
  --allocate-node-cidrs=false \
  --node-monitor-grace-period=3m \
  --profiling=false \
  --v=1

# ---- kube-scheduler ---------------------------------------------------------------
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$CDIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$CDIR/scheduler.kubeconfig" \
  --authorization-kubeconfig="$CDIR/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHED_PORT" \
  --cert-dir="$CDIR/scheduler-certs" \
  --leader-elect=false \
  --profiling=false \
  --v=1

# ---- kwok ---------------------------------------------------------------------------
# HOME is redirected so a developer's ~/.kwok/kwok.yaml is never loaded; it is
# also where kwok-logs.yaml's "~/trainer.log" points.
cp "$HERE/trainer.log" "$CDIR/kwok-home/trainer.log"
# --node-ip/--node-port become every fake node's InternalIP and
# daemonEndpoints.kubeletEndpoint.Port (node-initialize stage): where the API
# server sends pods/log requests. --server-address is kwok's kubelet-like server
# that answers them (HTTPS with kwok-server.crt; plain HTTP on the same port too).
HOME="$CDIR/kwok-home" start kwok "$BIN/kwok" \
  --kubeconfig="$CDIR/kwok.kubeconfig" \
  --config="$HERE/kwok-stages.yaml" \
  --config="$HERE/kwok-logs.yaml" \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 \
  --node-ip=127.0.0.1 \
  --node-port="$KWOK_PORT" \
  --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$PKI/kwok-server.crt" \
  --tls-private-key-file="$PKI/kwok-server.key" \
  --cidr=10.244.0.0/16

ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
healthz() { [[ "$(curl -skf --max-time 2 "https://127.0.0.1:$1/healthz")" == ok ]]; }
wait_for "kube-controller-manager /healthz" kube-controller-manager "${ALL[@]}" -- healthz "$KCM_PORT"
wait_for "kube-scheduler /healthz" kube-scheduler "${ALL[@]}" -- healthz "$SCHED_PORT"
kwok_healthz() { [[ "$(curl -sf --max-time 2 --cacert "$PKI/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz")" == ok ]]; }
wait_for "kwok server /healthz" kwok "${ALL[@]}" -- kwok_healthz

# ---- nodes --------------------------------------------------------------------------
kc create -f "$HERE/nodes.yaml" >/dev/null || { FAILED_COMPONENT=kube-apiserver; die "could not create nodes"; }
nodes_ready() {
  # Every node Ready=True and without the node lifecycle controller's
  # node.kubernetes.io/* taints (not-ready, unreachable, ...).
  local out
  out="$(kc get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" ready="}{.status.conditions[?(@.type=="Ready")].status}{" taints="}{.spec.taints[*].key}{"\n"}{end}')" || return 1
  [[ -n "$out" ]] || return 1
  ! grep -v ' ready=True ' <<<"$out" | grep -q . || return 1
  ! grep -q 'node.kubernetes.io/' <<<"$out"
}
wait_for "nodes Ready" kwok "${ALL[@]}" -- nodes_ready
wait_for "default service account" kube-controller-manager "${ALL[@]}" -- kc get serviceaccount default -n default

# ---- kueue ----------------------------------------------------------------------------
# v1beta2 is the storage version; the CRDs also serve v1beta1 with no conversion
# webhook (strategy None), so nothing here may use v1beta1. Server-side: the
# Workload CRD is too large for kubectl's last-applied annotation.
kc create namespace kueue-system >/dev/null || { FAILED_COMPONENT=kube-apiserver; die "could not create namespace kueue-system"; }
kc apply --server-side --field-manager=test-cluster -f "$BIN/kueue-crds" >/dev/null \
  || { FAILED_COMPONENT=kube-apiserver; die "could not apply the Kueue CRDs"; }
wait_for "Kueue CRDs established" kube-apiserver "${ALL[@]}" -- \
  kc wait --for=condition=Established --timeout=5s -f "$BIN/kueue-crds"

# Out of cluster, as envtest runs it: no internal cert management (up.sh made
# the certs), no leader election (one replica), and only Jobs that carry the
# kueue.x-k8s.io/queue-name label are managed, so every other Job (all tests
# that do not ask for queueing) is left alone by the Job webhook.
cat > "$CDIR/kueue-config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: 127.0.0.1:$KUEUE_HEALTH_PORT
metrics:
  bindAddress: 127.0.0.1:$KUEUE_METRICS_PORT
webhook:
  host: 127.0.0.1
  port: $KUEUE_WEBHOOK_PORT
  certDir: $PKI/kueue-serving
visibilityServer:
  bindAddress: 127.0.0.1
  bindPort: $KUEUE_VISIBILITY_PORT
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
manageJobsWithoutQueueName: false
# API client rate as Kueue's own manifests (config/components/manager/controller_manager_config.yaml)
# and its performance harness set it. The built-in default, 20 requests/s (burst 30), caps admission:
# each admission is at least two writes (the Workload's status, the Job's unsuspend), so about 10/s
# once the burst is spent (bench phase admission).
clientConnection:
  qps: 50
  burst: 100
integrations:
  frameworks:
  - batch/job
EOF

# Kueue reads its metrics and visibility certificates from fixed paths under
# /etc/kueue (see build.sh). It runs in a private mount namespace where /etc is
# an overlay whose upper layer is a tmpfs holding only those files: nothing is
# written to the real /etc, and it all vanishes with the process. Unprivileged,
# the mount namespace needs a user namespace too.
ns_args=(--mount --propagation private)
(( EUID == 0 )) || ns_args=(--user --map-root-user "${ns_args[@]}")
mkdir "$CDIR/kueue-etc"
# shellcheck disable=SC2016 # expanded by the inner shell
start kueue unshare "${ns_args[@]}" -- bash -euc '
  layer="$1" certs="$2"; shift 2
  mount -t tmpfs -o mode=0700 kueue-etc "$layer"
  mkdir "$layer/upper" "$layer/work"
  mount -t overlay kueue-etc -o "lowerdir=/etc,upperdir=$layer/upper,workdir=$layer/work" /etc
  mkdir -p /etc/kueue/metrics
  cp -r "$certs" /etc/kueue/metrics/certs
  cp -r "$certs" /etc/kueue/visibility
  exec "$@"
' kueue-ns "$CDIR/kueue-etc" "$PKI/kueue-serving" \
  "$BIN/kueue" --config="$CDIR/kueue-config.yaml" --kubeconfig="$CDIR/kueue.kubeconfig"
ALL+=(kueue)
kueue_ready() { [[ "$(curl -sf --max-time 2 "http://127.0.0.1:$KUEUE_HEALTH_PORT/readyz")" == ok ]]; }
wait_for "kueue /readyz" kueue "${ALL[@]}" -- kueue_ready

# Registered only now that Kueue answers: the Job webhook has failurePolicy
# Fail, so a Job created before would be refused. down.sh removes them first.
sed -e "s|@WEBHOOK_PORT@|$KUEUE_WEBHOOK_PORT|g" -e "s|@CA_BUNDLE@|$(base64 -w0 < "$PKI/ca.crt")|g" \
  "$HERE/kueue-webhooks.yaml" | kc apply --server-side --field-manager=test-cluster -f - >/dev/null \
  || { FAILED_COMPONENT=kueue; die "could not register Kueue's webhooks"; }

# The visibility API (pending workloads and their positions) is an aggregated
# API: the aggregator resolves an ExternalName Service to its host name, so the
# APIService reaches the out-of-cluster server on localhost.
kc apply --server-side --field-manager=test-cluster -f - >/dev/null <<EOF || { FAILED_COMPONENT=kueue; die "could not register Kueue's visibility API"; }
apiVersion: v1
kind: Service
metadata:
  name: visibility-server
  namespace: kueue-system
spec:
  type: ExternalName
  externalName: localhost
  ports:
  - name: https
    port: $KUEUE_VISIBILITY_PORT
    protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta2.visibility.kueue.x-k8s.io
spec:
  group: visibility.kueue.x-k8s.io
  version: v1beta2
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: $(base64 -w0 < "$PKI/ca.crt")
  service:
    name: visibility-server
    namespace: kueue-system
    port: $KUEUE_VISIBILITY_PORT
EOF
wait_for "Kueue visibility APIService Available" kueue "${ALL[@]}" -- \
  kc wait --for=condition=Available --timeout=5s apiservice/v1beta2.visibility.kueue.x-k8s.io

{
  echo "KUBECONFIG=$KUBECONFIG_OUT"
  echo "TP_CLUSTER_BIN=$BIN"
  echo "TP_CLUSTER_API_PORT=$API_PORT"
  echo "TP_CLUSTER_ETCD_PORT=$ETCD_PORT"
  echo "TP_CLUSTER_KCM_PORT=$KCM_PORT"
  echo "TP_CLUSTER_SCHEDULER_PORT=$SCHED_PORT"
  echo "TP_CLUSTER_KWOK_PORT=$KWOK_PORT"
  echo "TP_CLUSTER_KUEUE_WEBHOOK_PORT=$KUEUE_WEBHOOK_PORT"
  echo "TP_CLUSTER_KUEUE_METRICS_PORT=$KUEUE_METRICS_PORT"
  echo "TP_CLUSTER_KUEUE_HEALTH_PORT=$KUEUE_HEALTH_PORT"
  echo "TP_CLUSTER_KUEUE_VISIBILITY_PORT=$KUEUE_VISIBILITY_PORT"
} > "$CDIR/env"

log "cluster ready in $((SECONDS - START))s: $(curl_api /version | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p') at https://127.0.0.1:$API_PORT"
log "  export KUBECONFIG=$KUBECONFIG_OUT"
log "  kubectl: $KUBECTL"
kc get nodes -L gpu-type >&2 || true
