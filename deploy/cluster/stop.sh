#!/usr/bin/env bash
# Stops what start.sh started in DIR: webhookd first (SIGTERM: attempts in flight finish), then
# the Redis nodes, and returns once every process has exited (a node writes its last AOF and
# RDB on the way out, so DIR is quiet only then).
set -uo pipefail
dir=${1:?usage: stop.sh DIR}

# stop PID...: SIGTERM each, then wait until none is left.
stop() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null; done
  for pid in "$@"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
}

if [ -f "$dir/pids" ]; then
  mapfile -t pids <"$dir/pids"
  stop "${pids[@]}"
fi
redis=()
for pidfile in "$dir"/redis-*/redis.pid; do
  [ -f "$pidfile" ] && redis+=("$(cat "$pidfile")")
done
[ "${#redis[@]}" -gt 0 ] && stop "${redis[@]}"
exit 0
