#!/usr/bin/env bash
# Runs each fuzz target for a bounded time on a scratch copy of its committed seed corpus, so
# the corpus in git stays small, and prints one summary line per target. Exits non-zero,
# naming the input that crashed, if any target did.
#
#   bash fuzz/run.sh                                  # every target, 60 s each
#   FUZZ_SECONDS=300 bash fuzz/run.sh config jwt_jwks # some targets, longer
#
# Crashing inputs are kept in fuzz/artifacts/<target>/, each run's log beside them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-60}"
# cargo-fuzz passes nightly -Z flags; this lets the stable compiler take them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
# Built first, so a build failure stops here instead of passing for a crash.
cargo fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p fuzz/artifacts
summary=()
crashed=0
for target in "${targets[@]}"; do
    cp -r "fuzz/corpus/$target" "$scratch/$target"
    log="fuzz/artifacts/$target.log"
    echo "== $target: ${seconds}s"
    # No standard input: the config target may name /dev/stdin as a secret file.
    if cargo fuzz run "$target" "$scratch/$target" -- \
        -max_total_time="$seconds" -timeout=25 -print_final_stats=1 \
        </dev/null >"$log" 2>&1; then
        outcome="0 crashes"
    else
        artifact="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | cut -d' ' -f5)"
        outcome="CRASHED: ${artifact:-see $log}"
        crashed=1
        grep -A 2 "panicked at" "$log" || tail -n 20 "$log"
    fi
    execs="$(grep -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    if [ -z "$execs" ]; then
        execs="$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)"
    fi
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2 || true)"
    ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2 || true)"
    summary+=("$(printf '%-15s %10s execs  cov %6s  ft %6s  %s' \
        "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$outcome")")
done

echo
printf '%s\n' "${summary[@]}"
exit "$crashed"
