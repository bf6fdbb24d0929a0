#!/usr/bin/env bash
# Install qbench and every method plugin under plugins/ (editable), with the test extras.
# Five plugins build a small C kernel at install (dgms, n2uq, lsq, asq, apot): gcc is installed
# first where it is missing and this runs as root with apt-get; otherwise dgms says how to fix it
# and the other four run their torch code (the same numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gcc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc
  else
    echo "install.sh: no gcc (needs root and apt-get to install it); the C kernels will not be built." >&2
  fi
fi
args=(-e ".[test,plot,deploy]")
for p in plugins/qbench-*/; do args+=(-e "$p"); done
python -m pip install -q "${args[@]}"
