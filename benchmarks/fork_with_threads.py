"""Children of a multi-threaded parent: do they hang in malloc?

Threads run sqlite queries (malloc-heavy C code with the GIL released) while
the main thread makes N fork-mode clones whose children allocate and exit.
Run it with GLIBC_TUNABLES=glibc.malloc.arena_max=1 (few arenas make a lock
held by another thread at clone time likely).  A child that has not exited
within --child-timeout seconds counts as hung and is killed.

    python benchmarks/fork_with_threads.py [--flags newuts] [--method raw]

--method raw bypasses pyclone's choice and forces a raw clone, to show what
glibc's fork() handling prevents.  Prints one line of JSON.
"""
import argparse
import json
import os
import signal
import sqlite3
import threading
import time

import pyclone
from pyclone import _clone


# A query that allocates and frees all the time inside sqlite3_step(), which
# the sqlite3 module runs with the GIL released.
HEAVY_QUERY = """
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
SELECT length(group_concat(printf('%0200d-%s', x, hex(randomblob(x % 64))))) FROM c
"""


def sqlite_worker(stop):
    db = sqlite3.connect(":memory:", check_same_thread=False)
    while not stop.is_set():
        db.execute(HEAVY_QUERY).fetchall()


FLAG_SETS = {"plain": 0, "newuts": pyclone.CLONE_NEWUTS,
             "newpid": pyclone.CLONE_NEWPID | pyclone.CLONE_NEWUTS}


def child_work():
    blobs = [bytes(n % 4096) for n in range(2000)]     # malloc in the child
    return len(blobs) % 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clones", type=int, default=150)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--flags", choices=sorted(FLAG_SETS), default="plain")
    ap.add_argument("--method", choices=["auto", "raw"], default="auto")
    ap.add_argument("--child-timeout", type=float, default=5.0)
    opts = ap.parse_args()

    flags = signal.SIGCHLD | FLAG_SETS[opts.flags]
    stop = threading.Event()
    workers = [threading.Thread(target=sqlite_worker, args=(stop,)) for _ in range(opts.threads)]
    for w in workers:
        w.start()
    time.sleep(0.2)
    hangs = errors = 0
    t0 = time.monotonic()
    try:
        for _ in range(opts.clones):
            if opts.method == "raw":
                bits, sig = flags & ~0xFF, flags & 0xFF
                pid = _clone.clone_fork(child_work, (), None, bits, sig, _clone.FORK_RAW, 0)
            else:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = pyclone.clone(child_work, flags)
            deadline = time.monotonic() + opts.child_timeout
            while True:
                got, status = pyclone.waitpid(pid, pyclone.WALL | os.WNOHANG)
                if got:
                    if os.waitstatus_to_exitcode(status) != child_work():
                        errors += 1
                    break
                if time.monotonic() > deadline:
                    hangs += 1
                    os.kill(pid, signal.SIGKILL)
                    pyclone.waitpid(pid)
                    break
                time.sleep(0.002)
    finally:
        stop.set()
        for w in workers:
            w.join()
    print(json.dumps({"clones": opts.clones, "flags": opts.flags, "method": opts.method,
                      "hangs": hangs, "errors": errors,
                      "seconds": round(time.monotonic() - t0, 2),
                      "tunables": os.environ.get("GLIBC_TUNABLES", "")}))


if __name__ == "__main__":
    main()
