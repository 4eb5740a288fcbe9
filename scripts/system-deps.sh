#!/usr/bin/env bash
# The system binaries the test suites run for real: redis-server/redis-cli, promtool/prometheus
# and nginx. Missing ones are installed from Debian's packages when this runs as root with apt-get
# (CI, containers); otherwise the script names what to install and fails, so no suite silently
# skips.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v nginx >/dev/null 2>&1 && [ -x "$(command -v nginx)" ] || need+=(nginx-light)
[ "${#need[@]}" -eq 0 ] && exit 0
# One package name once.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing the system packages the tests use: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "The tests need these system packages: ${need[*]} (Debian/Ubuntu: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
