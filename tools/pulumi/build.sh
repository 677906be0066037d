#!/usr/bin/env bash
# Builds the Pulumi engine `npm run pulumi` uses, from Go modules only:
#   pulumi                      the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-nodejs      our Node.js language host (engine/pulumi-language-nodejs/)
#   pulumi-resource-kubernetes  the Kubernetes provider (pulumi-kubernetes/provider/v4)
#
# Binaries land in $HOME/.cache/training-platform/pulumi/<key>/ where <key>
# hashes every input (versions.env, go.mod/go.sum, our Go sources, this script,
# test/cluster/lib.sh and the Go version: input_key there); a warm run only checks that directory. Module and build
# caches are the control plane's ($TP_CACHE/go/{mod,build}, test/cluster/lib.sh).
#
# stdout: exactly one line, the bin dir. Progress and timings go to stderr.
# Env: TP_CACHE (default $HOME/.cache/training-platform), TP_BUILD_FORCE=1 to rebuild.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../test/cluster/lib.sh
source "$HERE/../../test/cluster/lib.sh"
# shellcheck source=versions.env
source "$HERE/versions.env"
log() { printf '[pulumi %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BINARIES=(pulumi pulumi-language-nodejs plugins/pulumi-resource-kubernetes)

command -v go >/dev/null || die "go is not installed (need Go >= $(awk '$1=="go"{print $2}' "$HERE/engine/go.mod"))"

# The SDKs ask the engine for exactly their own versions: a skew is a build error here, not a failed preview later.
npm_version() { sed -n 's/^ *"'"${1//\//\\/}"'": "\([^"]*\)".*/\1/p' "$REPO_ROOT/package.json" | head -n1; }
[[ "$(npm_version @pulumi/pulumi)" == "$PULUMI_VERSION" ]] ||
  die "package.json has @pulumi/pulumi $(npm_version @pulumi/pulumi), versions.env PULUMI_VERSION=$PULUMI_VERSION"
[[ "$(npm_version @pulumi/kubernetes)" == "$KUBERNETES_PROVIDER_VERSION" ]] ||
  die "package.json has @pulumi/kubernetes $(npm_version @pulumi/kubernetes), versions.env KUBERNETES_PROVIDER_VERSION=$KUBERNETES_PROVIDER_VERSION"

KEY="$(input_key "$HERE" versions.env build.sh ../../test/cluster/lib.sh engine provider)"
BIN_DIR="$TP_CACHE/pulumi/$KEY"
reuse_or_lock "$BIN_DIR" "${BINARIES[@]}"

start_all=$SECONDS
tmp="$(mktemp -d "$TP_CACHE/pulumi/.tmp-$KEY.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# ---- CLI and language host (one module graph) -------------------------------
cd "$HERE/engine"
timed "testing the language host" go test -trimpath -count=1 ./pulumi-language-nodejs
timed "building pulumi and pulumi-language-nodejs ($PULUMI_VERSION)" \
  go build -trimpath -o "$tmp/" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION -X main.version=$PULUMI_VERSION" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ./pulumi-language-nodejs

# ---- Kubernetes provider ----------------------------------------------------
# Its main embeds schema-embed.json and terraform-mapping-embed.json, which the
# module's `go generate` (cmd/pulumi-resource-kubernetes/generate.go) writes
# next to it: the module cache is read-only, so build from a writable copy that
# replaces the module, after running that generator there.
provider_pkg=github.com/pulumi/pulumi-kubernetes/provider/v4
src="$tmp/provider"
cp "$HERE/provider/go.mod" "$HERE/provider/go.sum" "$tmp/"
(cd "$HERE/provider" && go mod download "$provider_pkg@$KUBERNETES_PROVIDER_MODULE")
cp -r "$GOMODCACHE/$provider_pkg@$KUBERNETES_PROVIDER_MODULE" "$src"
chmod -R u+w "$src"
mkdir "$tmp/generate"
# generate.go is `//go:build ignore` (a go:generate script); as its own package it needs no tag.
sed '/^\/\/go:build ignore$/d; /^\/\/ +build ignore$/d' "$src/cmd/pulumi-resource-kubernetes/generate.go" >"$tmp/generate/main.go"
cd "$tmp"
go mod edit -replace="$provider_pkg=./provider"
timed "building the provider's schema generator" go build -o "$tmp/generate-schema" ./generate
(cd "$src/cmd/pulumi-resource-kubernetes" && VERSION="$KUBERNETES_PROVIDER_VERSION" "$tmp/generate-schema")
# Not next to the CLI: that directory goes on PATH, and the engine warns about a provider found there.
timed "building pulumi-resource-kubernetes ($KUBERNETES_PROVIDER_VERSION)" \
  go build -trimpath -o "$tmp/plugins/pulumi-resource-kubernetes" \
    -ldflags "-s -w -X $provider_pkg/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" \
    "$provider_pkg/cmd/pulumi-resource-kubernetes"
rm -rf "$src" "$tmp/generate" "$tmp/generate-schema" "$tmp/go.mod" "$tmp/go.sum"

# Keep this build and the most recent other.
publish_build "$tmp" "$BIN_DIR" 1 "${BINARIES[@]}"
trap - EXIT

log "engine built in $((SECONDS - start_all))s -> $BIN_DIR"
echo "$BIN_DIR"
