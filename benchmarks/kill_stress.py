"""SIGKILL thread-mode children at random moments while the parent and the
children all run Python, and count what happens to the parent after each
kill: it goes on working, or it aborts with pyclone's message (the child
died holding or waiting for a lock in shared memory), or it hangs.  Hangs
must be 0: pyclone never hangs silently.

Each worker process kills children until it has done its share or aborted;
the harness starts a new worker after an abort and counts a hang when a
worker makes no progress for --hang-after seconds (it is then killed: it is
a process of its own, so that is safe).

    python benchmarks/kill_stress.py --kills 1000
prints a JSON line: {"kills": ..., "survived": ..., "aborted": ..., "hangs": ...}
"""
import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

ABORT_MESSAGE = b"pyclone: CLONE_VM child"


def worker(kills, seed):
    import pyclone
    rng = random.Random(seed)
    flags = pyclone.CLONE_VM | signal.SIGCHLD

    def child():
        keep = []
        while True:
            keep.append({i: str(i) for i in range(30)})
            if len(keep) > 100:
                keep.clear()

    def busy():
        d = {}
        while True:
            d[len(d) % 500] = [len(d)]
    threading.Thread(target=busy, daemon=True).start()
    for _ in range(kills):
        pid = pyclone.clone(child, flags)
        time.sleep(rng.random() * 0.004)
        os.kill(pid, signal.SIGKILL)
        pyclone.waitpid(pid)
        # The parent still works: Python, allocation, a GIL hand-off.
        assert sum(len(str(i)) for i in range(2000)) > 0
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        os.write(1, b".")
    os.write(1, b"\n")


def harness(kills, hang_after, seed):
    counts = {"kills": 0, "survived": 0, "aborted": 0, "hangs": 0, "workers": 0}
    while counts["kills"] < kills:
        counts["workers"] += 1
        proc = subprocess.Popen([sys.executable, __file__, "--worker",
                                 str(kills - counts["kills"]), "--seed", str(seed + counts["workers"])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = 0
        last = time.monotonic()
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                data = os.read(proc.stdout.fileno(), 4096)
                if not data:
                    break
                done += data.count(b".")
                last = time.monotonic()
            elif time.monotonic() - last > hang_after:
                proc.kill()
                counts["hangs"] += 1
                break
        proc.wait()
        err = proc.stderr.read()
        counts["survived"] += done
        counts["kills"] += done
        if proc.returncode == -signal.SIGABRT and ABORT_MESSAGE in err:
            counts["aborted"] += 1
            counts["kills"] += 1            # the kill that it could not survive
        elif proc.returncode not in (0, -signal.SIGKILL):
            sys.stderr.write(err.decode(errors="replace"))
            raise SystemExit(f"worker ended with {proc.returncode}")
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--hang-after", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker is not None:
        worker(a.worker, a.seed)
        return
    print(json.dumps(harness(a.kills, a.hang_after, a.seed)))


if __name__ == "__main__":
    main()
