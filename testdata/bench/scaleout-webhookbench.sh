#!/usr/bin/env bash
# webhookbench --target against webhookd processes on one redis-server or the 6-node cluster.
set -u
CL=127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103,127.0.0.1:17104,127.0.0.1:17105,127.0.0.1:17106
for backend in single cluster; do
  for workers in 1 2; do
    if [ $backend = single ]; then export REDIS_URL=redis://127.0.0.1:17200/0; unset REDIS_CLUSTER_ADDRS;
    else unset REDIS_URL; export REDIS_CLUSTER_ADDRS=$CL; fi
    T=$(/tmp/webhookd tenants create --name sc | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
    K=$(/tmp/webhookd keys create --tenant $T --scopes webhooks:read,webhooks:write,events:write | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
    export WEBHOOKD_LOG_LEVEL=warn WEBHOOKD_RATE_LIMIT_PER_MINUTE=100000000 WEBHOOKD_ALLOW_PRIVATE_CIDRS=127.0.0.0/8 WEBHOOKD_EXTRA_CA_FILE=/tmp/bca/ca.pem WEBHOOKD_CONCURRENCY=64
    pids=()
    WEBHOOKD_ADDR=127.0.0.1:18300 /tmp/webhookd serve --role api >/dev/null 2>/tmp/sc/api.log & pids+=($!)
    for w in $(seq 1 $workers); do /tmp/webhookd serve --role worker >/dev/null 2>/tmp/sc/w$w.log & pids+=($!); done
    sleep 1.5
    /tmp/webhookbench --target http://127.0.0.1:18300 --key $K --ca-dir /tmp/bca --scenario flood --events 15000 --runs 3 > /tmp/sc/$backend-$workers.txt 2>&1
    echo "$backend $workers workers: $(grep -E '^  delivered/s' /tmp/sc/$backend-$workers.txt)"
    grep -E "lost|duplicated|PROBLEM" /tmp/sc/$backend-$workers.txt | head -3
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null
  done
done
