#!/usr/bin/env bash
# Installs the servers and tools the tests use, from Debian's packages, when they are missing:
# PostgreSQL (ledger store), Redis (shared gateway limits), wrk (load generator), Chromium (dashboard test).
# With --bench, also valgrind (benchmarks/gateway_instructions.py counts the gateway's instructions with it).
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${1:-}" = "--bench" ]; then
  command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own on 127.0.0.1 instead.
$SUDO systemctl disable --now postgresql redis-server >/dev/null 2>&1 || true
