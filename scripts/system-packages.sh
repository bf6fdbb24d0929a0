# Sourced by install.sh and test.sh: install Debian packages the way a user can audit.
#
# Why a helper: both scripts may run as root, and a script that apt-gets packages without saying
# which and why is one nobody should run. Each call names the packages and the reason before it
# installs anything; QBENCH_NO_APT=1 turns every such step into a line saying what is skipped and
# what that costs (the tests that need a skipped package skip and say why).

# system_packages CALLER REASON IF-MISSING PACKAGE...
#   CALLER: the script's name, for the messages; REASON: why these packages are needed;
#   IF-MISSING: what happens without them.
system_packages() {
  local caller="$1" reason="$2" without="$3"
  shift 3
  if [ "${QBENCH_NO_APT:-}" = 1 ]; then
    echo "$caller: not installing Debian package(s) $* (QBENCH_NO_APT=1): $without" >&2
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "$caller: not installing Debian package(s) $* (needs root and apt-get): $without" >&2
    return 0
  fi
  echo "$caller: installing Debian package(s) $*: $reason (QBENCH_NO_APT=1 skips this)" >&2
  if [ -z "${_QBENCH_APT_UPDATED:-}" ]; then
    apt-get update -qq
    _QBENCH_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
