#!/usr/bin/env bash
# The test command (the README's, and what .ci/run runs): install what the tests need, then run
# the host's tests and every plugin's tests.
#
# System packages, each announced with its reason before it is installed (QBENCH_NO_APT=1 skips,
# as does running without root or apt-get; the tests that need one then skip and say why):
# Debian's Fashion-MNIST for the fmnist suite's data tests, Chromium and its driver for the browser
# tests of the leaderboard pages; install.sh adds gcc for the C kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh

[ -d /usr/share/datasets/fashion-mnist ] || system_packages test.sh \
  "the real Fashion-MNIST files for the fmnist suite's data tests" \
  "the Fashion-MNIST tests skip" dataset-fashion-mnist
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || system_packages test.sh \
  "a browser for the tests that open the leaderboard pages (Playwright drives Debian's binary, never a download)" \
  "the browser tests skip" chromium chromium-driver

bash scripts/install.sh
python -m pytest tests plugins -q -p no:cacheprovider -n 2
