#!/usr/bin/env python3
"""Redis memory per retained record in the layout webhookd uses, the ones before it, and a stream-based one.

Starts its own redis-server on a free loopback port, writes 50,000 records of each kind the
way the stores would (key names, value sizes and encodings of a delivered event with a
150-byte payload and its one delivery), and prints used_memory growth per record. Needs
redis-server and redis-cli on PATH.

    python3 testdata/profile/layout_memory.py
"""
import os, random, socket, subprocess, tempfile, time

N = 50000
TID = "4f2a5bea-1415-4d8a-97f5-a725aeba3a4e"
BODY = '{"type":"scan.completed","timestamp":"2026-12-06T21:05:01.123Z","data":{"x":"' + "a" * 130 + '"}}'
EVENT = "scan.completed|1765054701123|lane-abc||" + BODY
ATTEMPT = "1 1765054701123000000 12 200 0 ok"
DELIVERY = ["webhookId", "5bf1c755-44e2-4882-8f0f-7bb4443d54cf", "eventId", "evt_" + "0" * 32,
            "eventType", "scan.completed", "status", "succeeded", "attemptCount", "1", "runAttempts", "1",
            "generation", "0", "createdAt", "1765054701123", "updatedAt", "1765054701135",
            "nextAttemptAt", "", "first", ATTEMPT]
# The same delivery kept as a field of its minute's hash (registry/kept.go): event, type, end, first attempt.
KEPT = "evt_" + "0" * 32 + "|scan.completed|1765054701135|" + ATTEMPT
# Compact forms (registry/eventrecord.go, body.go, kept.go): a 16-byte id as the field or member, a type code,
# times as offsets, the body without its envelope's fixed parts.
DATA = '{"x":"' + "a" * 130 + '"}'
EVENT_COMPACT = b"\x03b0|" + b"0a1b2c3d4e5f60718293" + b"||\x01" + b"5123456|" + DATA.encode()
KEPT_COMPACT = lambda: b"\x02" + os.urandom(16) + b"b12|1 5:123456 12 200 0 ok"
# The same delivery as one string: endpoint, event, type, status, counts, times, first attempt.
DELIVERY_STRING = "5bf1c755-44e2-4882-8f0f-7bb4443d54cf|evt_" + "0" * 32 + \
    "|scan.completed|succeeded|1|1|0|1765054701123|1765054701135||" + ATTEMPT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = str(free_port())
    srv = subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    try:
        cli = lambda *a: subprocess.run(["redis-cli", "-p", port] + list(a), capture_output=True, text=True).stdout
        while "PONG" not in cli("ping"):
            time.sleep(0.05)
        print(cli("info", "server").split("redis_version:")[1].split()[0], "redis-server;", N, "records a kind")
        for name, gen in KINDS:
            cli("flushall")
            before = used(cli)
            pipe(port, [c for i in range(N) for c in gen(i)])
            print("%-58s %5.0f B" % (name, (used(cli) - before) / N))
    finally:
        srv.terminate()
        srv.wait()


def used(cli):
    return int(cli("info", "memory").split("used_memory:")[1].split()[0])


def pipe(port, cmds):
    raw = lambda a: a if isinstance(a, bytes) else a.encode()
    data = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(raw(a)), raw(a)) for a in c) for c in cmds)
    subprocess.run(["redis-cli", "-p", port, "--pipe"], input=data, stdout=subprocess.DEVNULL, check=True)


def rid():
    return "%032x" % random.getrandbits(128)


def uuid():
    h = rid()
    return "-".join([h[:8], h[8:12], h[12:16], h[16:20], h[20:32]])


def delivery_hash(key):
    return [["HSET", key] + DELIVERY, ["EXPIRE", key, "2592000"]]


ep = "wh:{t:%s}:ep:5bf1c755-44e2-4882-8f0f-7bb4443d54cf" % TID
KINDS = [
    ("earlier: event record (string, SET EX)",
     lambda i: [["SET", "wh:{t:%s}:ev:evt_%s" % (TID, rid()), EVENT, "EX", "2592000"]]),
    ("before: event record, a text field of its minute's hash",
     lambda i: [["HSET", "wh:{t:%s}:evm:%d" % (TID, 29417578 + i // 10000), "evt_" + rid(), EVENT]]),
    ("now: event record, a compact field of its minute's hash",
     lambda i: [["HSET", "wh:{t:%s}:evm:%d" % (TID, 29417578 + i // 10000), os.urandom(16), EVENT_COMPACT]]),
    ("before: event log entry (zset :evts:TYPE, id as text)",
     lambda i: [["ZADD", "wh:{t:%s}:evts:scan.completed" % TID, str(1765054701123 + i), "evt_" + rid()]]),
    ("now: event log entry (zset :evts:TYPE, the id's 16 bytes)",
     lambda i: [["ZADD", "wh:{t:%s}:evts:scan.completed" % TID, str(1765054701123 + i), os.urandom(16)]]),
    ("earlier: delivery record (listpack hash, EXPIRE); now a retried one's", lambda i: delivery_hash("wh:{t:%s}:dlv:%s" % (TID, uuid()))),
    ("now: status index entry (zset :dlv:succeeded)",
     lambda i: [["ZADD", ep + ":dlv:succeeded", str(1765054701123 + i), uuid()]]),
    ("before: a first-attempt success, a text field of its minute's hash",
     lambda i: [["HSET", "wh:{t:%s}:ok:%d" % (TID, 29417578 + i // 10000), uuid(), KEPT]]),
    ("now: a first-attempt success, a compact field of its minute's hash",
     lambda i: [["HSET", "wh:{t:%s}:ok:%d" % (TID, 29417578 + i // 10000), os.urandom(16), KEPT_COMPACT()]]),
    ("before: scan index entry, a scan of one event (text)",
     lambda i: [["HSET", "wh:{t:%s}:scans:20429" % TID, rid()[:20], "evt_" + rid()]]),
    ("now: scan index entry, a scan of one event (bytes)",
     lambda i: [["HSET", "wh:{t:%s}:scans:20429" % TID, os.urandom(10), os.urandom(16)]]),
    ("stream: event record and log entry in one (XADD, 2 fields)",
     lambda i: [["XADD", "wh:{t:%s}:log:scan.completed" % TID, "%d-0" % (1765054701123 + i), "id", rid(), "r", EVENT]]),
    ("stream: delivery record and status in one (XADD, 2 fields)",
     lambda i: [["XADD", ep + ":log", "%d-0" % (1765054701123 + i), "id", uuid(), "r", DELIVERY_STRING]]),
]

if __name__ == "__main__":
    main()
