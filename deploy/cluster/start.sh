#!/usr/bin/env bash
# A production-shaped webhookd on one machine, in plain commands: a Redis Cluster of 3 masters
# with a replica each, API processes and worker processes. On real hosts run the same commands
# with each redis-server, API and worker on its own machine (the settings are what matters).
#
#   deploy/cluster/start.sh DIR [API_PROCESSES] [WORKER_PROCESSES]
#   deploy/cluster/stop.sh DIR
#
# Environment: WEBHOOKD (the binary; default: webhookd on PATH), REDIS_PORT (first of six
# ports; default 7000), API_PORT (first API port; default 8080), METRICS_PORT (first worker
# metrics port; default 9100). Everything the processes write goes to DIR.
set -euo pipefail
dir=${1:?usage: start.sh DIR [API_PROCESSES] [WORKER_PROCESSES]}
apis=${2:-2}
workers=${3:-2}
webhookd=${WEBHOOKD:-webhookd}
redis_port=${REDIS_PORT:-7000}
api_port=${API_PORT:-8080}
metrics_port=${METRICS_PORT:-9100}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Six nodes. AOF fsynced every second bounds what a crash of one node loses; a master refuses
# writes while it has no replica within 2 s of it (min-replicas-*), which bounds what a failover
# can lose to about that lag: a promoted replica lacks only what its master acknowledged in the
# last 2 s before it was cut off. cluster-node-timeout 5 s: a dead master's replica takes over
# 5-10 s after the death.
nodes=()
for i in 0 1 2 3 4 5; do
  port=$((redis_port + i))
  mkdir -p "$dir/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis-$port" --daemonize yes \
    --pidfile "$dir/redis-$port/redis.pid" --logfile "$dir/redis-$port/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --appendonly yes --appendfsync everysec \
    --min-replicas-to-write 1 --min-replicas-max-lag 2 \
    --maxmemory-policy noeviction
  nodes+=("127.0.0.1:$port")
done
for n in "${nodes[@]}"; do
  until redis-cli -h 127.0.0.1 -p "${n##*:}" ping >/dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.log"
until redis-cli -p "$redis_port" cluster info | grep -q 'cluster_state:ok'; do sleep 0.2; done
# min-replicas-to-write refuses writes until a master's replica is in sync: wait for each.
for i in 0 1 2 3 4 5; do
  port=$((redis_port + i))
  if redis-cli -p "$port" role | head -1 | grep -q master; then
    until redis-cli -p "$port" info replication | tr -d '\r' | grep -q '^min_slaves_good_slaves:[1-9]'; do
      sleep 0.2
    done
  fi
done

# Every process names the same cluster and the same number of queue shards.
export REDIS_CLUSTER_ADDRS
REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${nodes[*]}")
export WEBHOOKD_QUEUE_SHARDS=16
: >"$dir/pids"
for i in $(seq 0 $((apis - 1))); do
  "$webhookd" serve --role api --addr "127.0.0.1:$((api_port + i))" >"$dir/api-$i.log" 2>&1 &
  echo $! >>"$dir/pids"
done
for i in $(seq 0 $((workers - 1))); do
  "$webhookd" serve --role worker --metrics-addr "127.0.0.1:$((metrics_port + i))" >"$dir/worker-$i.log" 2>&1 &
  echo $! >>"$dir/pids"
done
for i in $(seq 0 $((apis - 1))); do
  until curl -fs "http://127.0.0.1:$((api_port + i))/readyz" >/dev/null; do sleep 0.2; done
done
for i in $(seq 0 $((workers - 1))); do
  until curl -fs "http://127.0.0.1:$((metrics_port + i))/healthz" >/dev/null; do sleep 0.2; done
done
echo "REDIS_CLUSTER_ADDRS=$REDIS_CLUSTER_ADDRS"
echo "API: http://127.0.0.1:$api_port (and $((apis - 1)) more ports after it); worker metrics from :$metrics_port"
