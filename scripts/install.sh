#!/usr/bin/env bash
# Install the qbench host (distribution qbench-qat, import name qbench) and every plugin under
# plugins/, editable, with the test, plot and deploy extras.
#
# System packages, each announced with its reason before it is installed (QBENCH_NO_APT=1 skips,
# as does running without root or apt-get): gcc where it is missing, for the C kernels that five
# plugins build at install (dgms, n2uq, lsq, asq, apot). Without it those plugins run their torch
# code instead and say so once: the four with the same numbers, dgms under kernel='torch' (job keys
# of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh

if ! command -v gcc >/dev/null; then
  system_packages install.sh "a C compiler for the C kernels of dgms, n2uq, lsq, asq and apot" \
    "the kernels are not built; those plugins run their torch code instead" gcc
fi

# The host used to be distributed as "qbench", which is also the name of an unrelated PyPI project
# that installs its own import package qbench. Ours under the old name is replaced (two copies
# would register the pytest plugin twice); the other project is never removed behind the user's back.
rc=0
python - <<'PY' || rc=$?
import importlib.metadata as md
import sys

try:
    dist = md.distribution("qbench")
except md.PackageNotFoundError:
    sys.exit(0)
summary = dist.metadata["Summary"] or ""
if "quantization-aware training" in summary:
    print(f"install.sh: removing 'qbench' {dist.version}, this project under its old distribution name "
          "(now qbench-qat)", file=sys.stderr)
    sys.exit(10)
print(f"install.sh: the distribution 'qbench' {dist.version} ({summary}) is installed in this environment: an "
      "unrelated project that also provides the import package 'qbench' and would shadow this one. Fix: "
      "python -m pip uninstall qbench (or use a fresh virtualenv), then rerun.", file=sys.stderr)
sys.exit(11)
PY
case "$rc" in
  0) ;;
  10) python -m pip uninstall -y -q qbench ;;
  *) exit 1 ;;
esac

args=(-e ".[test,plot,deploy]")
for p in plugins/qbench-*/; do args+=(-e "$p"); done
python -m pip install -q "${args[@]}"
