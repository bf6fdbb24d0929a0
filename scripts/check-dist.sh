#!/usr/bin/env bash
# The distributions as a user gets them: build the host's and every plugin's wheel, check their
# metadata, and install them into a fresh virtualenv from those wheels alone (their third-party
# dependencies, torch included, from the package index as usual), then plan the quick suite.
#
# Why: the host's import name, qbench, is also an unrelated PyPI project's. The editable installs
# of scripts/install.sh would hide a plugin that still required that name, or a wheel that lost
# its package data, so this step works only with what pip itself resolves from the built files.
#
# Usage: bash scripts/check-dist.sh [WORKDIR]   (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
dist="$work/dist"
venv="$work/venv"
mkdir -p "$dist"
say() { echo "check-dist: $*" >&2; }

# Build from a copy without build/ and egg-info folders: setuptools stages files in build/lib and
# would ship a module deleted since an earlier build.
src="$work/src"
mkdir -p "$src"
tar --exclude=./.git --exclude=build --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ \
  --exclude=./qbench-runs -cf - . | tar -xf - -C "$src"
say "building wheels into $dist"
python -m build --wheel --outdir "$dist" "$src" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
for p in "$src"/plugins/qbench-*/; do
  python -m build --wheel --outdir "$dist" "$p" >>"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
done
python -m twine check --strict "$dist"/*.whl

say "a fresh virtualenv: $venv"
python -m venv "$venv"
vpip=("$venv/bin/python" -m pip)

say "a plugin alone, before the host: pip must fail to resolve qbench-qat or take it from $dist, never a namesake"
rc=0
"${vpip[@]}" install --dry-run --quiet --report "$work/alone.json" ./plugins/qbench-lsq >"$work/alone.log" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then
  python scripts/check_install_report.py "$work/alone.json" "$dist"
elif grep -q "No matching distribution found for qbench-qat" "$work/alone.log"; then
  say "as expected, no index serves qbench-qat: $(grep -m1 'No matching distribution' "$work/alone.log")"
else
  cat "$work/alone.log" >&2; exit 1
fi
"${vpip[@]}" install --dry-run --quiet --report "$work/with-wheels.json" --find-links "$dist" ./plugins/qbench-lsq
python scripts/check_install_report.py "$work/with-wheels.json" "$dist"

say "installing every wheel into the fresh virtualenv"
"${vpip[@]}" install --quiet --report "$work/install.json" "$dist"/*.whl
python scripts/check_install_report.py "$work/install.json" "$dist"

say "the installed host, from the wheels alone"
cd "$work"  # not the checkout: nothing may come from its files
"$venv/bin/python" -c "import qbench, qbench.api; assert qbench.__file__.startswith('$venv'), qbench.__file__; print('qbench', qbench.__version__, qbench.__file__)"
"$venv/bin/qbench" plugins
QBENCH_WORKSPACE="$work/ws" "$venv/bin/qbench" run --all --dry-run --no-progress | grep '^| ' | sort >"$work/plan-wheels.txt"
cd - >/dev/null
QBENCH_WORKSPACE="$work/ws-checkout" qbench run --all --dry-run --no-progress | grep '^| ' | sort >"$work/plan-checkout.txt"
# the same jobs under the same keys: the wheels carry the suites and every plugin, unchanged
diff "$work/plan-checkout.txt" "$work/plan-wheels.txt" >&2 || { say "the wheels plan other jobs than the checkout"; exit 1; }
say "ok: $(grep -c todo "$work/plan-wheels.txt") jobs planned from the wheels, the checkout's keys"
