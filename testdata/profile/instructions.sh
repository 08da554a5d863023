#!/usr/bin/env bash
# Counts the instructions redis-server executes for the registry's hot paths: an event
# published in a batch of 100 (registry.BenchmarkPublishBatch) and alone, with an idempotency
# key (registry.BenchmarkPublishEvent), and alone with its key's check, an API publish's whole
# round trip (registry.BenchmarkPublishChecked); a delivery taken and recorded by a drain, 16 a batch
# (registry.BenchmarkDrainBatch); a take's fixed cost and its cost per delivery
# (registry.BenchmarkTake: takes of 1 and of 16); and an API request's authentication, alone
# (registry.BenchmarkAuthenticate). The gap between an event alone and one of a batch, and a
# take's fixed cost, are what a script call costs whatever it carries. valgrind's callgrind counts
# the same for the same binary and inputs whatever else the machine does, so a script's change
# shows here to the percent where timings on a shared machine hide it. Everything runs on
# loopback; the counts stay in $OUT (not committed).
#
#   testdata/profile/instructions.sh              # 40 batches published, 200 drain batches, ...
#   PUBLISH=80 SINGLES=800 DRAIN=400 TAKES=400 AUTHS=600 testdata/profile/instructions.sh
#
# redis-server runs under valgrind on REDIS_PORT (default 6412). Each benchmark zeroes the
# counts once its set-up is done (WEBHOOKD_BENCH_COUNT_CMD) and the counts are dumped when it
# ends, so they cover its ops alone: Ir per event or delivery is the total over their number.
set -euo pipefail
cd "$(dirname "$0")/../.."
REDIS_PORT=${REDIS_PORT:-6412}
PUBLISH=${PUBLISH:-40}
DRAIN=${DRAIN:-200}
TAKES=${TAKES:-200}
AUTHS=${AUTHS:-300}
SINGLES=${SINGLES:-400}
OUT=${OUT:-$(mktemp -d /tmp/webhookd-instructions-XXXXXX)}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian package valgrind)"; exit 1; }

valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" redis-server --port "$REDIS_PORT" \
  --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" >"$OUT/valgrind.log" 2>&1 &
VG=$!
trap 'redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill $VG 2>/dev/null; wait $VG 2>/dev/null || true' EXIT
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.2; done
go test -c -o "$OUT/registry.test" ./registry/

# count BENCH OPS UNITS_PER_OP LABEL: runs the benchmark OPS times and prints Ir per unit (also
# left in PER).
count() {
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  WEBHOOKD_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" WEBHOOKD_BENCH_COUNT_CMD="callgrind_control -z $VG" \
    "$OUT/registry.test" -test.run '^$' -test.bench "^$1\$" -test.benchtime "${2}x" >"$OUT/${1//\//-}.txt" 2>&1
  callgrind_control -d "${1//\//-}" "$VG" >/dev/null
  local f total
  f=$(ls -t "$OUT"/callgrind.out.* | head -1)
  total=$(sed -n 's/^summary: //p; s/^totals: //p' "$f" | head -1)
  PER=$((total / ($2 * $3)))
  printf '%-24s %12d instructions of redis-server per %s (%d in all)\n' "$1" "$PER" "$4" $(($2 * $3))
}
count BenchmarkPublishBatch "$PUBLISH" 100 "event published"
count BenchmarkPublishEvent "$SINGLES" 1 "event published alone"
count BenchmarkPublishChecked "$SINGLES" 1 "event published alone with its key's check"
count BenchmarkDrainBatch "$DRAIN" 16 "delivery taken and recorded"
count BenchmarkTake/1 "$TAKES" 1 "take of 1"
one=$PER
count BenchmarkTake/16 "$TAKES" 1 "take of 16"
printf '%-24s %12d instructions a take, fixed, and %d per delivery taken\n' "take" \
  $(((16 * one - PER) / 15)) $(((PER - one) / 15))
count BenchmarkAuthenticate "$AUTHS" 1 "authentication"
