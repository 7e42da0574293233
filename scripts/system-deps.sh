#!/usr/bin/env bash
# System packages the test suite uses beyond Python: redis-server, for the Redis score cache's tests
# (tests/unit/test_service_redis.py starts its own server on a free port). Debian/Ubuntu only; elsewhere,
# or without root, it says what to install and the Redis tests are skipped (they fail under CI=true).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[system-deps] redis-server is missing and this user cannot install packages: apt-get install redis-server" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[system-deps] redis-server is missing and there is no apt-get: install Redis with your package manager" >&2
  exit 0
fi
echo "[system-deps] installing redis-server from the Debian packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends redis-server >/dev/null
}
# The package may start a system-wide server on 6379; the tests start their own on a free port.
command -v redis-server
