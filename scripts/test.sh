#!/usr/bin/env bash
# The test command: install, then run the host's tests and every plugin's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m pytest tests plugins -q -p no:cacheprovider -n 2
