#!/usr/bin/env bash
# The test command (the README's, and what .ci/run runs): install what the tests need, including
# the Debian packages (Fashion-MNIST; Chromium for the browser tests; install.sh adds gcc),
# then run the host's tests and every plugin's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

debian=()
[ -d /usr/share/datasets/fashion-mnist ] || debian+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || debian+=(chromium chromium-driver)
if [ ${#debian[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debian[@]}"
  else
    echo "test.sh: not installing ${debian[*]} (needs root and apt-get); the tests that need them skip and say why." >&2
  fi
fi

bash scripts/install.sh
python -m pytest tests plugins -q -p no:cacheprovider -n 2
