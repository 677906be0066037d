#!/usr/bin/env bash
# `npm run pulumi -- <args>`: the Pulumi CLI built by build.sh (first run: about
# 30 min of CPU; later runs reuse the cache), with our language host next to it
# and the Kubernetes provider installed into $PULUMI_HOME (default ~/.pulumi).
# Run through npm so that `node` is the repository's Node 24.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN_DIR="$(bash "$HERE/build.sh")"
# shellcheck source=versions.env
source "$HERE/versions.env"

# The bundled language host is found next to the CLI; first on PATH so no other install's host wins.
export PATH="$BIN_DIR:$PATH"
export PULUMI_SKIP_UPDATE_CHECK="${PULUMI_SKIP_UPDATE_CHECK:-true}"
# Without this the engine tries to download the plugins of every @pulumi package in node_modules (aws, gcp).
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}"

plugin_dir="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-kubernetes-v$KUBERNETES_PROVIDER_VERSION"
if ! cmp -s "$BIN_DIR/plugins/pulumi-resource-kubernetes" "$plugin_dir/pulumi-resource-kubernetes"; then
  pulumi plugin install resource kubernetes "$KUBERNETES_PROVIDER_VERSION" --reinstall \
    --file "$BIN_DIR/plugins/pulumi-resource-kubernetes" >&2
fi
exec pulumi "$@"
