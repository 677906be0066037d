#!/usr/bin/env bash
# Installs Schemathesis, pinned, into a venv under $HOME/.cache/training-platform (once) and
# prints the path of its `st` command.
set -euo pipefail
VERSION=4.32.5
venv="$HOME/.cache/training-platform/schemathesis-$VERSION"
if [ ! -x "$venv/bin/st" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$venv/bin/st"
