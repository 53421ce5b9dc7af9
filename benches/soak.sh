#!/usr/bin/env bash
# Soak with faults: virtual users against the gateway (release build, Redis store) while the
# provider, the upstream and Redis fail and recover on a schedule; loopback only. Prints a
# report (also benches/soak/out/report.json) and exits non-zero when a goal is missed.
#
#   bash benches/soak.sh                      # 10 minutes, 30 users
#   SOAK_SECONDS=120 bash benches/soak.sh     # a short run
#
# Also: SOAK_USERS, SOAK_SOCKET_SHARE, SESSIONGATE_BIN (a gateway binary to use instead).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get install -y -qq redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
fi
# The provider comes from the end-to-end suite's packages; the soak's own is `ws`.
for dir in tests/e2e benches/soak; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
if [ -z "${SESSIONGATE_BIN:-}" ]; then
  nice -n 10 cargo build --quiet --release --bin sessiongate
fi

seconds="${SOAK_SECONDS:-600}"
# A bound on the whole run, however it goes: the soak, a minute of stragglers, start and stop.
exec timeout $((seconds + 180)) node benches/soak/soak.mjs
