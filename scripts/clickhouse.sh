#!/usr/bin/env bash
# ClickHouse for tests and the demo.
#
#   scripts/clickhouse.sh install   install clickhouse-server and clickhouse-client (apt)
#   scripts/clickhouse.sh version   print the installed server's version
#
# The program starts its own server (internal/embedded) with its own config,
# ports and data directory, so the package's system daemon is never started:
# install keeps init scripts from starting it, and nothing here runs it.
#
# install is idempotent: when both binaries are already there it does nothing,
# and it runs `apt-get update` only when something must be installed (a fresh
# machine has no package lists; see shared FACTS).
set -euo pipefail

need_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "clickhouse.sh: must run as root (or with sudo) to install packages" >&2
    exit 1
  fi
}

# server_bin prints the server binary's path; /usr/sbin is not on every
# user's PATH.
server_bin() {
  command -v clickhouse-server 2>/dev/null && return 0
  for p in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if [ -x "$p" ]; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

cmd_install() {
  if server_bin >/dev/null && command -v clickhouse-client >/dev/null 2>&1; then
    echo "clickhouse: already installed ($(cmd_version))"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's init script from starting the system daemon: policy-rc.d
  # exiting 101 forbids invoke-rc.d to start services. Put one in place only if
  # the machine has none, and remove only the one we put there.
  local policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    need_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    # shellcheck disable=SC2064
    trap "need_root rm -f '$policy'" EXIT
  fi
  need_root apt-get update
  need_root apt-get install -y --no-install-recommends clickhouse-server clickhouse-client
  echo "clickhouse: installed ($(cmd_version))"
}

cmd_version() {
  if ! server_bin >/dev/null; then
    echo "clickhouse-server not found: run make setup" >&2
    return 1
  fi
  # The 18.16 server has no --version; the client does (e.g. "ClickHouse
  # client version 18.16.1."). Never call --help: the 18.16 client spins on it.
  if command -v clickhouse-client >/dev/null 2>&1; then
    timeout 10 clickhouse-client --version 2>/dev/null | head -n1
  elif command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='clickhouse-server ${Version}\n' clickhouse-server
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  version) cmd_version ;;
  *)
    echo "usage: $0 install|version" >&2
    exit 2
    ;;
esac
