#!/usr/bin/env bash
# The Python client's CI, called by .ci/run: a venv with the pinned tools, static checks, pytest against
# the real dispatcher on the real control plane (junit XML to $1), then the wheel and sdist, installed
# into a clean venv to prove `pip install` of the wheel works. Exit status: non-zero on any failure,
# including pytest's 5 ("no tests ran").
set -euo pipefail
cd "$(dirname "$0")"
junit="${1:?usage: ci.sh <junit-xml-path>}"
rm -f "$junit"

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .

echo "ruff, mypy"
.venv/bin/ruff check .
.venv/bin/mypy

echo "pytest (against test/cluster and the dispatcher)"
status=0
.venv/bin/pytest --junitxml="$junit" -p no:cacheprovider || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
fi
[ "$status" -eq 0 ] || exit "$status"

echo "python -m build (wheel and sdist)"
rm -rf dist
.venv/bin/python -m build --outdir dist . >/dev/null
wheel=$(ls dist/training_dispatcher-*.whl)
ls dist/training_dispatcher-*.tar.gz >/dev/null
check=$(mktemp -d)
python3 -m venv "$check/venv"
"$check/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
"$check/venv/bin/python" -c "import training_dispatcher as t; from training_dispatcher.receiver import CallbackReceiver; print('installed', t.__version__)"
rm -rf "$check"
ls dist
