#!/usr/bin/env bash
# Times the README's quickstart from a fresh clone of this repository: clone, then
# `go run ./cmd/webhookd serve` and `go run ./cmd/webhookd listen` as the README writes them,
# then the README's shell block, until listen prints a verified delivery. It uses the
# README's ports (8080 and 9443, which must be free) and a fresh per-user directory.
# COLD=1 starts from empty Go module and build caches (modules come from the module proxy).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
cleanup() {
  # go run does not pass SIGTERM on to the program it runs: stop the programs, then go run.
  for p in $(jobs -p); do
    kill $(ps -o pid= --ppid "$p") "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# The per-user directory is fresh; Go's caches are the user's own (found before HOME changes,
# since their default places are under it), or empty ones with COLD=1.
if [ "${COLD:-0}" = 1 ]; then
  export GOMODCACHE=$work/gomod GOCACHE=$work/gocache
else
  export GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE)
fi
export XDG_CONFIG_HOME=$work/config HOME=$work/home
unset WEBHOOKD_HOME REDIS_URL REDIS_CLUSTER_ADDRS WEBHOOKD_ADDR
mkdir -p "$HOME"
start=$(date +%s.%N)
git clone -q "$repo" "$work/webhookd"
cd "$work/webhookd"
go run ./cmd/webhookd serve >"$work/serve.out" 2>&1 &
go run ./cmd/webhookd listen >"$work/listen.out" 2>&1 &
# Like a person, paste the block once both terminals show they are up.
until grep -q "API listening" "$work/serve.out" 2>/dev/null && grep -q "register this URL" "$work/listen.out" 2>/dev/null; do
  sleep 0.1
done
ready=$(date +%s.%N)
awk '/^## Quickstart/{q=1} q && /^```sh$/{b=1; next} b && /^```$/{exit} b' README.md >"$work/block.sh"
bash "$work/block.sh" >"$work/block.out" 2>&1
until grep -Eq "scan\.completed  evt_[0-9a-f]+  verified$" "$work/listen.out"; do sleep 0.1; done
end=$(date +%s.%N)
grep -E "verified$" "$work/listen.out"
awk -v s="$start" -v r="$ready" -v e="$end" 'BEGIN {
  printf "clone to serve and listen up: %.1f s\nblock to verified delivery: %.1f s\nclone to verified delivery: %.1f s\n", r - s, e - r, e - s
}'
