#!/usr/bin/env bash
# Profiles webhookd and redis-server during a webhookbench run (flood by default) and prints
# where the time goes. Everything runs on loopback; the profiles stay in $OUT (not committed).
#
#   testdata/profile/profile.sh                     # flood, 50,000 events
#   SCENARIO=batch EVENTS=50000 testdata/profile/profile.sh
#   WEBHOOKD_BIN=/tmp/webhookd-old testdata/profile/profile.sh   # profile another build
#   SCRIPTS=1 testdata/profile/profile.sh           # also redis-server's time script by script
#
# It starts its own redis-server (REDIS_PORT, default 6399) and `webhookd serve` (API_PORT,
# default 18089) with WEBHOOKD_PPROF_ADDR (PPROF_PORT, default 16060), then runs
# `webhookbench --target` against them and, while it runs: a 15 s CPU profile and the
# allocation profile of webhookd (go tool pprof), perf of redis-server (when perf is
# installed and allowed), and redis-server's INFO commandstats, SLOWLOG and LATENCY. With
# SCRIPTS=1 the slow log keeps every command (a threshold of 0; it measures wall time, so a
# script preempted on a busy machine reads long: go by the medians) and slowlog_scripts.py
# sums it by script.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCENARIO=${SCENARIO:-flood}
EVENTS=${EVENTS:-50000}
REDIS_PORT=${REDIS_PORT:-6399}
API_PORT=${API_PORT:-18089}
PPROF_PORT=${PPROF_PORT:-16060}
SECONDS_CPU=${SECONDS_CPU:-15}
OUT=${OUT:-$(mktemp -d /tmp/webhookd-profile-XXXXXX)}
mkdir -p "$OUT"
echo "profiles in $OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

BIN=${WEBHOOKD_BIN:-$OUT/webhookd}
[ -n "${WEBHOOKD_BIN:-}" ] || go build -o "$BIN" ./cmd/webhookd
go build -o "$OUT/webhookbench" ./cmd/webhookbench

SLOWER_THAN=1000
[ -z "${SCRIPTS:-}" ] || SLOWER_THAN=0
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" \
  --logfile "$OUT/redis.log" --latency-monitor-threshold 1 --slowlog-log-slower-than "$SLOWER_THAN" \
  --slowlog-max-len 10000000 &
pids+=($!)
REDIS_PID=$!
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0

# The receivers' CA: made once by a serverless run, then given to webhookd.
"$OUT/webhookbench" --scenario raw --events 1 --runs 1 --ca-dir "$OUT/ca" >/dev/null

WEBHOOKD_ADDR=127.0.0.1:$API_PORT WEBHOOKD_PPROF_ADDR=127.0.0.1:$PPROF_PORT WEBHOOKD_EXTRA_CA_FILE=$OUT/ca/ca.pem \
  WEBHOOKD_ALLOW_PRIVATE_CIDRS=127.0.0.0/8 WEBHOOKD_RATE_LIMIT_PER_MINUTE=1000000000 WEBHOOKD_LOG_LEVEL=warn \
  WEBHOOKD_CONCURRENCY=64 "$BIN" serve >"$OUT/webhookd.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null; do sleep 0.1; done
TENANT=$("$BIN" tenants create --name profile | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
KEY=$("$BIN" keys create --tenant "$TENANT" --scopes webhooks:read,webhooks:write,events:write |
  sed -n 's/.*"key": *"\([^"]*\)".*/\1/p')

redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
"$OUT/webhookbench" --scenario "$SCENARIO" --events "$EVENTS" --runs 1 --target "http://127.0.0.1:$API_PORT" \
  --key "$KEY" --redis-url "$REDIS_URL" --ca-dir "$OUT/ca" >"$OUT/bench.txt" 2>"$OUT/bench.log" &
BENCH=$!
sleep 3 # registration and the first publishes
curl -s "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$SECONDS_CPU" >"$OUT/webhookd.cpu.pprof" &
CPU=$!
if command -v perf >/dev/null && perf record -F 499 -g -p "$REDIS_PID" -o "$OUT/redis.perf.data" -- sleep "$SECONDS_CPU" \
  >/dev/null 2>&1; then
  perf report -i "$OUT/redis.perf.data" --stdio --no-children --percent-limit 1.5 2>/dev/null |
    grep -E '^ +[0-9]' >"$OUT/redis.perf.txt" || true
fi
wait "$CPU"
curl -s "http://127.0.0.1:$PPROF_PORT/debug/pprof/allocs" >"$OUT/webhookd.allocs.pprof"
wait "$BENCH" || true

redis-cli -p "$REDIS_PORT" info commandstats >"$OUT/redis.commandstats.txt"
redis-cli -p "$REDIS_PORT" slowlog get 20 >"$OUT/redis.slowlog.txt"
[ -z "${SCRIPTS:-}" ] || redis-cli -p "$REDIS_PORT" --csv slowlog get 10000000 >"$OUT/redis.slowlog.csv"
redis-cli -p "$REDIS_PORT" latency latest >"$OUT/redis.latency.txt"
go tool pprof -top -nodecount=40 "$BIN" "$OUT/webhookd.cpu.pprof" >"$OUT/webhookd.cpu.txt" 2>/dev/null
go tool pprof -top -nodecount=40 -cum "$BIN" "$OUT/webhookd.cpu.pprof" >"$OUT/webhookd.cpu.cum.txt" 2>/dev/null
go tool pprof -sample_index=alloc_space -top -nodecount=30 "$BIN" "$OUT/webhookd.allocs.pprof" >"$OUT/webhookd.allocs.txt" 2>/dev/null

grep -E 'delivered/s|all processes CPU|redis commands/delivery|correctness problems' "$OUT/bench.txt" || cat "$OUT/bench.log"
echo "--- webhookd CPU (flat, top 25)"; sed -n '1,31p' "$OUT/webhookd.cpu.txt"
echo "--- webhookd allocations (top 15)"; sed -n '1,21p' "$OUT/webhookd.allocs.txt"
echo "--- redis-server commands by time"
tr ',' ' ' <"$OUT/redis.commandstats.txt" | sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\) usec=\([0-9]*\).*/\3 \2 \1/p' |
  sort -rn | head -12 | awk '{printf "  %-14s %10d calls %10d µs\n", $3, $2, $1}'
[ -s "$OUT/redis.perf.txt" ] && { echo "--- redis-server perf (self, > 1.5 %)"; head -25 "$OUT/redis.perf.txt"; }
if [ -n "${SCRIPTS:-}" ]; then
  echo "--- redis-server time by script (slow log of every command)"
  python3 testdata/profile/slowlog_scripts.py "$OUT/redis.slowlog.csv"
else
  echo "--- slowlog entries over 1 ms: $(grep -c '^[0-9]' "$OUT/redis.slowlog.txt" || true)"
fi
