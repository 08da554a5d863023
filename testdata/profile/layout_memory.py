#!/usr/bin/env python3
"""Redis memory per retained record in the layout webhookd uses, the one before it, and a stream-based one.

Starts its own redis-server on a free loopback port, writes 50,000 records of each kind the
way the stores would (key names, value sizes and encodings of a delivered event with a
150-byte payload and its one delivery), and prints used_memory growth per record. Needs
redis-server and redis-cli on PATH.

    python3 testdata/profile/layout_memory.py
"""
import random, socket, subprocess, tempfile, time

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
    data = "".join("*%d\r\n" % len(c) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in c) for c in cmds)
    subprocess.run(["redis-cli", "-p", port, "--pipe"], input=data.encode(), stdout=subprocess.DEVNULL, check=True)


def rid():
    return "%032x" % random.getrandbits(128)


def uuid():
    h = rid()
    return "-".join([h[:8], h[8:12], h[12:16], h[16:20], h[20:32]])


def delivery_hash(key):
    return [["HSET", key] + DELIVERY, ["EXPIRE", key, "2592000"]]


ep = "wh:{t:%s}:ep:5bf1c755-44e2-4882-8f0f-7bb4443d54cf" % TID
KINDS = [
    ("before: event record (string, SET EX)",
     lambda i: [["SET", "wh:{t:%s}:ev:evt_%s" % (TID, rid()), EVENT, "EX", "2592000"]]),
    ("now: event log entry (zset :evts:TYPE)",
     lambda i: [["ZADD", "wh:{t:%s}:evts:scan.completed" % TID, str(1765054701123 + i), "evt_" + rid()]]),
    ("now: event record, a field of its minute's hash (HSET)",
     lambda i: [["HSET", "wh:{t:%s}:evm:%d" % (TID, 29417578 + i // 10000), "evt_" + rid(), EVENT]]),
    ("before: delivery record (listpack hash, EXPIRE); now a retried one's", lambda i: delivery_hash("wh:{t:%s}:dlv:%s" % (TID, uuid()))),
    ("now: status index entry (zset :dlv:succeeded)",
     lambda i: [["ZADD", ep + ":dlv:succeeded", str(1765054701123 + i), uuid()]]),
    ("now: a first-attempt success, a field of its minute's hash (HSET)",
     lambda i: [["HSET", "wh:{t:%s}:ok:%d" % (TID, 29417578 + i // 10000), uuid(), KEPT]]),
    ("stream: event record and log entry in one (XADD, 2 fields)",
     lambda i: [["XADD", "wh:{t:%s}:log:scan.completed" % TID, "%d-0" % (1765054701123 + i), "id", rid(), "r", EVENT]]),
    ("stream: delivery record and status in one (XADD, 2 fields)",
     lambda i: [["XADD", ep + ":log", "%d-0" % (1765054701123 + i), "id", uuid(), "r", DELIVERY_STRING]]),
]

if __name__ == "__main__":
    main()
