#!/usr/bin/env bash
# The end-to-end suite: oidc-provider, a sample upstream, the gateway from this tree and
# headless Chromium driven by playwright-core. Installs what it needs, then runs every
# scenario; screenshots land in tests/e2e/out/. `.ci/run` calls this after the cargo tests.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
# Debian's Chromium: playwright-core drives it through executablePath, no browser download.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The debug binary: `cargo test` has built it already, so this costs nothing after the tests.
# E2E_GATEWAY_BIN runs another binary (not SESSIONGATE_*: the gateway reads those as settings).
if [ -z "${E2E_GATEWAY_BIN:-}" ]; then
  (cd ../.. && cargo build --quiet --bin sessiongate)
fi

rm -rf out && mkdir -p out
exec timeout 300 node --test --test-concurrency=1 --test-reporter=spec suite.test.mjs
