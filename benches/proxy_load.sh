#!/usr/bin/env bash
# Load benchmark for the proxy path: wrk against a tiny upstream directly, then through the
# gateway on a public path, then through the gateway with a session cookie on a protected
# path, then the same through a second gateway with the Redis store (a redis-server of the
# benchmark's own), Debian's nginx as a plain reverse proxy (one worker, no auth) as the
# yardstick, 10,000 distinct session cookies rotated by wrk, and a table comparing them,
# with the gateway's resident memory after the run.
#
#   bash benches/proxy_load.sh                     # 32 connections, 10 s per target
#   CONNECTIONS=64 DURATION=30 bash benches/proxy_load.sh
#   LOG_LEVEL=info bash benches/proxy_load.sh      # with one log line per request
#
# Pinning: wrk runs on CPU 0; the upstream and the gateway share CPU 1. The direct run
# therefore measures the upstream alone on CPU 1, the gateway run the gateway plus the
# upstream on CPU 1, so the ratio is the cost of the gateway's work per request. Everything
# listens on and talks to 127.0.0.1 only. Redis, when measured, runs on CPU 1 as well: its
# work is part of what the Redis store costs. Needs 2 CPUs, taskset, curl, redis-server
# and wrk (installed with apt-get when missing).
set -euo pipefail

CONNECTIONS="${CONNECTIONS:-32}"
DURATION="${DURATION:-10}"
# "warn" keeps the per-request log line out of the measurement; LOG_LEVEL=info measures it.
LOG_LEVEL="${LOG_LEVEL:-warn}"
WARMUP=2
WRK_CPU=0
SERVER_CPU=1

die() {
    echo "proxy_load: $*" >&2
    exit 1
}

[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer, not '$CONNECTIONS'"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer (seconds), not '$DURATION'"
# Replayed cookies must stay fresh (see mint_cookies below).
[ "$DURATION" -lt 55 ] || die "DURATION must stay under the session's touch_interval (60 s) minus the warm-up"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

# --- tools ------------------------------------------------------------------------------
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v curl >/dev/null || die "curl is required"
command -v redis-server >/dev/null || die "redis-server is required (apt-get install redis-server)"
command -v nginx >/dev/null || die "nginx is required (apt-get install nginx)"
if [ "$(nproc)" -lt 2 ]; then
    die "needs at least 2 CPUs for the pinning (nproc = $(nproc))"
fi
if ! command -v wrk >/dev/null; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "wrk is missing and installing it needs root or sudo"
        SUDO=(sudo)
    fi
    echo "proxy_load: installing wrk" >&2
    if ! "${SUDO[@]}" apt-get install -y wrk >&2; then
        "${SUDO[@]}" apt-get update >&2
        "${SUDO[@]}" apt-get install -y wrk >&2
    fi
fi

# --- build ------------------------------------------------------------------------------
echo "proxy_load: building (release, fat LTO: this takes a few minutes)" >&2
cargo build --release --bin sessiongate --example bench_upstream --example bench_session_cookie >&2
GATEWAY_BIN="$ROOT/target/release/sessiongate"
UPSTREAM_BIN="$ROOT/target/release/examples/bench_upstream"

# --- processes and cleanup --------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/proxy_load.XXXXXX")"
PIDS=()
cleanup() {
    local status=$?
    local pid i
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for log in "$WORK"/*.log; do
            [ -s "$log" ] || continue
            echo "--- last lines of $(basename "$log") ---" >&2
            tail -n 20 "$log" >&2
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nobody listens on, other than $1 (bounded number of tries).
free_port() {
    local except=${1:-} port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 40000))
        [ "$port" != "$except" ] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free loopback port found"
}

# Waits until `url` answers 200 (at most ~10 s), failing early if `pid` has exited.
wait_ready() {
    local name=$1 pid=$2 url=$3 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ]; then
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer 200 at $url within 10 s"
}

UPSTREAM_PORT="$(free_port)"
UPSTREAM_CMD=(taskset -c "$SERVER_CPU" "$UPSTREAM_BIN" "127.0.0.1:$UPSTREAM_PORT")
"${UPSTREAM_CMD[@]}" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_ready upstream "${PIDS[-1]}" "http://127.0.0.1:$UPSTREAM_PORT/"

GATEWAY_PORT="$(free_port "$UPSTREAM_PORT")"
SECRET="$("$GATEWAY_BIN" gen-secret)"
CONFIG="$WORK/sessiongate.toml"
cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$GATEWAY_PORT"
public_url = "http://127.0.0.1:$GATEWAY_PORT"
shutdown_grace = "1s"

[upstream]
url = "http://127.0.0.1:$UPSTREAM_PORT"

[oidc]
issuer = "http://127.0.0.1:1/"
client_id = "bench"

[session]
secrets = ["$SECRET"]

[access]
# /public/ is served without a session; everything else needs one (the "session" target).
public_paths = ["/public/"]

[log]
level = "$LOG_LEVEL"
EOF
GATEWAY_CMD=(taskset -c "$SERVER_CPU" "$GATEWAY_BIN" run --config "$CONFIG")
# RUST_LOG would override log.level; the benchmark wants per-request lines off.
env -u RUST_LOG "${GATEWAY_CMD[@]}" >/dev/null 2>"$WORK/gateway.log" &
PIDS+=($!)
wait_ready gateway "${PIDS[-1]}" "http://127.0.0.1:$GATEWAY_PORT/public/"

# A second gateway, the same but for the Redis store, with a Redis of the benchmark's own.
REDIS_PORT="$(free_port "$GATEWAY_PORT")"
REDIS_CMD=(taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no)
"${REDIS_CMD[@]}" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
REDIS_PREFIX="sessiongate-bench:"
REDIS_GATEWAY_PORT="$(free_port "$REDIS_PORT")"
REDIS_CONFIG="$WORK/sessiongate-redis.toml"
sed "s/^listen = .*/listen = \"127.0.0.1:$REDIS_GATEWAY_PORT\"/; s#^public_url = .*#public_url = \"http://127.0.0.1:$REDIS_GATEWAY_PORT\"#" "$CONFIG" >"$REDIS_CONFIG"
sed -i "s#^\[session\]#[session]\nstore = \"redis\"\nredis_url = \"$REDIS_URL\"\nredis_prefix = \"$REDIS_PREFIX\"#" "$REDIS_CONFIG"
REDIS_GATEWAY_CMD=(taskset -c "$SERVER_CPU" "$GATEWAY_BIN" run --config "$REDIS_CONFIG")
env -u RUST_LOG "${REDIS_GATEWAY_CMD[@]}" >/dev/null 2>"$WORK/gateway-redis.log" &
PIDS+=($!)
wait_ready gateway-redis "${PIDS[-1]}" "http://127.0.0.1:$REDIS_GATEWAY_PORT/public/"

# nginx as a plain reverse proxy in front of the same upstream: what operators would run
# instead, with one worker on the servers' CPU.
NGINX_PORT="$(free_port "$REDIS_GATEWAY_PORT")"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
NGINX_CMD=(taskset -c "$SERVER_CPU" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx")
"${NGINX_CMD[@]}" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
wait_ready nginx "${PIDS[-1]}" "http://127.0.0.1:$NGINX_PORT/"

# Valid session cookies, sealed with the gateways' secret, for the authenticated targets.
# A browser stores the cookie the gateway re-issues when the session slides (at most every
# session.touch_interval, 60 s); wrk replays the same bytes, so each set is minted just before
# the run that uses it, and each run is shorter than touch_interval: what real clients send.
mint_cookies() {
    SESSION_COOKIE="$("$ROOT/target/release/examples/bench_session_cookie" "$SECRET")"
    REDIS_COOKIE="$("$ROOT/target/release/examples/bench_session_cookie" "$SECRET" "$REDIS_URL" "$REDIS_PREFIX")"
}
mint_cookies
# 10,000 distinct sessions, one per line, rotated request by request.
mint_rotating_cookies() {
    "$ROOT/target/release/examples/bench_session_cookie" "$SECRET" --count 10000 >"$WORK/cookies.txt"
}
cat >"$WORK/rotate.lua" <<LUA
local cookies = {}
for line in io.lines("$WORK/cookies.txt") do cookies[#cookies + 1] = line end
local next_one = 0
request = function()
    next_one = next_one % #cookies + 1
    return wrk.format("GET", "/app", { ["Cookie"] = cookies[next_one] })
end
LUA

# The gateway must really forward (not answer 401 or 502 itself), on both paths.
direct_body="$(curl -s --max-time 2 "http://127.0.0.1:$UPSTREAM_PORT/")"
gateway_body="$(curl -s --max-time 2 "http://127.0.0.1:$GATEWAY_PORT/public/")"
[ "$direct_body" = "$gateway_body" ] || die "the gateway's answer differs from the upstream's: '$gateway_body'"
session_body="$(curl -s --max-time 2 -H "Cookie: $SESSION_COOKIE" "http://127.0.0.1:$GATEWAY_PORT/app")"
[ "$direct_body" = "$session_body" ] || die "the gateway refused the session cookie: '$session_body'"
redis_body="$(curl -s --max-time 2 -H "Cookie: $REDIS_COOKIE" "http://127.0.0.1:$REDIS_GATEWAY_PORT/app")"
[ "$direct_body" = "$redis_body" ] || die "the Redis gateway refused its session cookie: '$redis_body'"

# --- load -------------------------------------------------------------------------------
# Latency from wrk ("123.45us", "1.20ms", "1.00s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000
        else if (v ~ /ms$/) n += 0
        else if (v ~ /m$/) n *= 60000
        else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# run_wrk NAME URL: a warm-up, then the measured run; sets RPS[NAME], P50[NAME] and
# P99[NAME] (ms), and BAD[NAME] (non-2xx/3xx responses plus socket errors).
COMMANDS=()
declare -A RPS P50 P99 BAD
run_wrk() {
    local name=$1 url=$2 out
    shift 2
    # Any further arguments are extra wrk options (a header).
    local warm=(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$@" "$url")
    local measure=(taskset -c "$WRK_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url")
    local shown_warm="${warm[*]}" shown_measure="${measure[*]}"
    # The session cookie is a credential: print its place, not its value.
    if [ -n "${SESSION_COOKIE:-}" ]; then
        shown_warm="${shown_warm//$SESSION_COOKIE/<session cookie>}"
        shown_measure="${shown_measure//$SESSION_COOKIE/<session cookie>}"
    fi
    if [ -n "${REDIS_COOKIE:-}" ]; then
        shown_warm="${shown_warm//$REDIS_COOKIE/<ticket cookie>}"
        shown_measure="${shown_measure//$REDIS_COOKIE/<ticket cookie>}"
    fi
    COMMANDS+=("$shown_warm  # warm-up" "$shown_measure")
    echo "proxy_load: $name: warm-up ${WARMUP}s, then ${DURATION}s" >&2
    "${warm[@]}" >/dev/null
    out="$WORK/wrk-$name.txt"
    "${measure[@]}" >"$out"
    local rps p50 p99 non2xx errors
    rps="$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
    p50="$(awk '$1 == "50%" { print $2 }' "$out")"
    p99="$(awk '$1 == "99%" { print $2 }' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    errors="$(awk '/Socket errors:/ {
        s = 0
        for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i + 0
        print s
    }' "$out")"
    if [ -z "$rps" ] || [ -z "$p50" ] || [ -z "$p99" ]; then
        cat "$out" >&2
        die "cannot parse wrk's output for $name"
    fi
    RPS[$name]="$rps"
    P50[$name]="$(to_ms "$p50")"
    P99[$name]="$(to_ms "$p99")"
    BAD[$name]="$((${non2xx:-0} + ${errors:-0}))"
}

run_wrk direct "http://127.0.0.1:$UPSTREAM_PORT/"
run_wrk nginx "http://127.0.0.1:$NGINX_PORT/"
run_wrk gateway "http://127.0.0.1:$GATEWAY_PORT/public/"
mint_cookies
run_wrk session "http://127.0.0.1:$GATEWAY_PORT/app" -H "Cookie: $SESSION_COOKIE"
mint_cookies
run_wrk redis "http://127.0.0.1:$REDIS_GATEWAY_PORT/app" -H "Cookie: $REDIS_COOKIE"
mint_rotating_cookies
run_wrk sessions-10k "http://127.0.0.1:$GATEWAY_PORT/app" -s "$WORK/rotate.lua"
# The cookie-store gateway is the second process started (after the upstream): its memory.
GATEWAY_RSS_KB="$(awk '/^VmRSS:/ { print $2 }' "/proc/${PIDS[1]}/status")"

# --- report -----------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

echo
echo "proxy_load: nproc = $(nproc); wrk on CPU $WRK_CPU, upstream and gateway on CPU $SERVER_CPU;" \
    "$CONNECTIONS connections, ${DURATION}s (after ${WARMUP}s warm-up)"
echo "commands:"
printf '  %s\n' "${UPSTREAM_CMD[*]}" "${GATEWAY_CMD[*]}" "${REDIS_CMD[*]}" "${REDIS_GATEWAY_CMD[*]}" "${NGINX_CMD[*]}"
printf '  %s\n' "${COMMANDS[@]}"
echo "config ($CONFIG, removed at exit; secret elided):"
sed 's/^secrets = .*/secrets = ["..."]/; s/^./  &/' "$CONFIG"
echo
printf '%-16s %12s %10s %10s %8s\n' target "req/s" "p50 ms" "p99 ms" errors
for name in direct nginx gateway session sessions-10k redis; do
    printf '%-16s %12s %10s %10s %8s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${BAD[$name]}"
done
for pair in gateway/direct session/direct session/gateway session/nginx sessions-10k/session redis/session; do
    a="${pair%/*}" b="${pair#*/}"
    printf '%-16s %12s %10s %10s\n' "$pair" \
        "$(ratio "${RPS[$a]}" "${RPS[$b]}")" \
        "$(ratio "${P50[$a]}" "${P50[$b]}")" \
        "$(ratio "${P99[$a]}" "${P99[$b]}")"
done
echo "gateway (cookie store) RSS after the run: $((GATEWAY_RSS_KB / 1024)) MiB"
if [ "${BAD[direct]}" -ne 0 ] || [ "${BAD[gateway]}" -ne 0 ] || [ "${BAD[session]}" -ne 0 ] || [ "${BAD[redis]}" -ne 0 ] || [ "${BAD[nginx]}" -ne 0 ] || [ "${BAD[sessions-10k]}" -ne 0 ]; then
    echo "proxy_load: warning: some responses were errors or not 2xx/3xx (see 'errors')" >&2
fi
