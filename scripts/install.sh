#!/usr/bin/env bash
# Install qbench and every method plugin under plugins/ (editable), with the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-e ".[test,plot,deploy]")
for p in plugins/qbench-*/; do args+=(-e "$p"); done
python -m pip install -q "${args[@]}"
