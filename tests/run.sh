#!/usr/bin/env bash
# Every test: the cargo suite (unit tests, integration tests over real sockets with a real
# Redis, nginx in front for forward-auth), then the browser end-to-end suite. Installs and
# starts what they need on a fresh Debian machine, so this one command is the whole set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Redis tests talk to the Redis at 127.0.0.1:6379 and start servers of their own
# (a frozen one, a three-node Cluster) with redis-server and redis-cli.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# The forward-auth test runs Debian's nginx (auth_request) in front of the gateway.
if ! command -v nginx >/dev/null 2>&1; then
  apt-get install -y -qq nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --all-targets 2>&1 | tee "$log"

# The browser suite runs the debug binary the cargo tests just built.
bash tests/e2e/run.sh 2>&1 | tee -a "$log"

# One closing line for the whole run: cargo prints a result per test binary (the last ones,
# examples and benches, hold no tests), node's runner one summary for the browser suite.
awk '
  /^test result:/ { passed += $4; failed += $6 }
  /^ℹ pass / { e2e_passed += $3 }
  /^ℹ fail / { e2e_failed += $3 }
  END {
    printf "tests: %d passed, %d failed; browser e2e: %d passed, %d failed\n", passed, failed, e2e_passed, e2e_failed
  }' "$log"
