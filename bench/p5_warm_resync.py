#!/usr/bin/env python3
"""P5's unchanged re-sync with the relay's hash cache warm (docs/benchmarks.md).

`codeflow-bench p5` starts its re-sync relays about a second after it wrote the tree, so their
files are younger than the hash cache's 2 s racy margin and every relay reads and hashes them
all again. This measures the case of a relay restarted on a tree older than that: it writes a
10,000-file / 100 MB tree (if missing) with mtimes 10 minutes back, starts codeflow-server on a
fresh data dir, then N relays one after the other on the tree (the first syncs the mirror and
fills the cache; the others are the unchanged re-syncs). Each relay is driven on its stdio as
the bench does it: `initialize`, then `tools/call health_check` (answered once synced).

    flock /work/.bench.lock bench/p5_warm_resync.py target/release /dev/shm/p5tree [relays]
"""
import json, math, os, random, shutil, subprocess, sys, tempfile, time

bindir, tree = sys.argv[1], sys.argv[2]
relays = int(sys.argv[3]) if len(sys.argv) > 3 else 4

if not os.path.isdir(tree):
    rng = random.Random(1)
    big = [rng.randint(900_000, 3_200_000) for _ in range(20)]
    small = [math.exp(rng.uniform(math.log(60), math.log(40_000))) for _ in range(9_980)]
    scale = (100_000_000 - sum(big)) / sum(small)
    for i, size in enumerate(big + [max(1, int(s * scale)) for s in small]):
        d = os.path.join(tree, f"pkg{i % 20:02}/mod{(i // 20) % 10:02}/sub{(i // 200) % 5}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"file{i:05}.txt"), "wb") as f:
            f.write((b"x = 1  # line of code\n" * (size // 22 + 1))[:size])
    old = time.time() - 600
    for dirpath, _, names in os.walk(tree):
        for n in names:
            os.utime(os.path.join(dirpath, n), (old, old))

data = tempfile.mkdtemp(prefix="p5-warm-")
port = 47400 + os.getpid() % 500
server = subprocess.Popen([f"{bindir}/codeflow-server", "--port", str(port), "--data-dir", data],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1)
try:
    for n in range(relays):
        t0 = time.time()
        p = subprocess.Popen([f"{bindir}/codeflow-client", "--server", f"ws://127.0.0.1:{port}/ws",
                              "--project", "p5warm", "--root", tree],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def send(m):
            p.stdin.write((json.dumps(m) + "\n").encode())
            p.stdin.flush()

        def answer(i):
            while True:
                line = p.stdout.readline()
                if not line:
                    raise SystemExit("the relay exited")
                m = json.loads(line)
                if m.get("id") == i:
                    return m

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "p5-warm", "version": "1"}}})
        answer(1)
        t1 = time.time()
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "health_check", "arguments": {}}})
        answer(2)
        t2 = time.time()
        what = "initial sync" if n == 0 else "unchanged re-sync"
        print(f"relay {n}: {what}: spawn → initialized {1000 * (t1 - t0):.0f} ms, "
              f"→ synced {1000 * (t2 - t1):.0f} ms, total {1000 * (t2 - t0):.0f} ms")
        p.kill()
        p.wait()
finally:
    server.kill()
    server.wait()
    shutil.rmtree(data, ignore_errors=True)
