#!/usr/bin/env python3
"""Where redis-server's time goes, script by script, from a slow log kept with a threshold of 0.

    python3 testdata/profile/slowlog_scripts.py redis.slowlog.csv

The input is `redis-cli --csv slowlog get N` (profile.sh writes it with SCRIPTS=1). Commands a
script runs are left out (their time is in the script's); each EVALSHA is named by its script's
SHA prefix and its first key with ids folded, which tells the scripts apart: the key record for
authenticate, the idempotency key for publish, the drain lease for take, the endpoint for finish
(each script's KEYS are listed at the top of its file in registry/lua/). The slow log keeps at
most 32 arguments of a command, so a script's argument count is capped there.
"""
import collections
import csv
import re
import statistics
import sys

ADDR = re.compile(r'^(\d+\.\d+\.\d+\.\d+:\d+|\[[0-9a-f:]*\]:\d+|\?:0)$')


def entries(row):
    """Yields (µs, args, client) from the flat CSV of SLOWLOG GET: id, time, µs, args..., client, name."""
    i = 0
    while i + 2 < len(row):
        micros, j = int(row[i + 2]), i + 3
        while j < len(row) and not (ADDR.match(row[j]) and (j + 2 >= len(row) or row[j + 2].isdigit())):
            j += 1
        yield micros, row[i + 3:j], row[j] if j < len(row) else ''
        i = j + 2


def label(args):
    if not args or args[0].lower() != 'evalsha':
        return args[0].lower() if args else '?'
    nkeys = int(args[2])
    key = args[3] if nkeys else ''
    key = re.sub(r'\{[^}]*\}', '{…}', key)
    key = re.sub(r'[0-9a-f]{8,}|[A-Za-z0-9_-]{20,}', '…', key)
    return 'evalsha %s %s (%d keys)' % (args[1][:8], key, nkeys)


def main(path):
    csv.field_size_limit(1 << 30)
    row = next(csv.reader(open(path)), [])
    by = collections.defaultdict(list)
    for micros, args, client in entries(row):
        if client != '?:0':  # run by a script: counted in the script's time
            by[label(args)].append(micros)
    total = sum(sum(v) for v in by.values()) or 1
    print('%-58s %8s %10s %6s %8s %8s' % ('command or script', 'calls', 'µs', '%', 'median', 'mean'))
    for name, v in sorted(by.items(), key=lambda kv: -sum(kv[1]))[:20]:
        print('%-58s %8d %10d %5.1f%% %8.1f %8.1f' % (name, len(v), sum(v), 100 * sum(v) / total,
                                                     statistics.median(v), sum(v) / len(v)))


if __name__ == '__main__':
    main(sys.argv[1])
