"""Stress runs for pyclone's reliability figures (README, "Reliability").

    python benchmarks/stress.py threads --seconds 60
        8 Python threads cloning in each mode at once: clones done, errors,
        hangs (a thread that makes no progress for 20 s).
    python benchmarks/stress.py churn --clones 100000 --round-trips 20000
        many clones in each mode, then fork-mode and Child round trips: fds,
        anonymous mappings, tasks and RSS before and after.
    python benchmarks/stress.py storm --seconds 20
        another process sends SIGUSR1 (handled) as fast as it can while this
        one clones in each mode: no EINTR escapes, no child is lost.

Each prints one JSON line per mode.
"""
import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyclone

MODES = {
    "fork": signal.SIGCHLD,
    "borrowed": pyclone.CLONE_VM | pyclone.CLONE_VFORK | signal.SIGCHLD,
    "thread": pyclone.CLONE_VM | signal.SIGCHLD,
}


def one_clone(flags, value=7):
    pid = pyclone.clone(lambda: value, flags)
    got, status = pyclone.waitpid(pid)
    if got != pid or os.waitstatus_to_exitcode(status) != value:
        raise AssertionError(f"child {pid}: {got}, {status:#x}")


def threads(seconds, nthreads=8):
    for mode, flags in MODES.items():
        done = [0] * nthreads
        errors = []
        stop = time.monotonic() + seconds

        def work(i, flags, stop, done, errors):
            while time.monotonic() < stop:
                try:
                    one_clone(flags)
                    done[i] += 1
                except Exception as exc:       # counted, not raised
                    errors.append(repr(exc))
        ts = [threading.Thread(target=work, args=(i, flags, stop, done, errors))
              for i in range(nthreads)]
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads
            for t in ts:
                t.start()
            for t in ts:
                t.join(seconds + 20)
        hangs = sum(t.is_alive() for t in ts)
        print(json.dumps({"mode": mode, "threads": nthreads, "seconds": seconds,
                          "clones": sum(done), "errors": len(errors), "hangs": hangs,
                          "first_error": errors[0] if errors else None}), flush=True)
        if hangs:
            os._exit(1)


def snapshot():
    gc.collect()
    with open("/proc/self/maps") as f:
        maps = sum(1 for line in f if len(line.split()) == 5)
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return {"fds": len(os.listdir("/proc/self/fd")), "anon_maps": maps,
            "tasks": len(os.listdir("/proc/self/task")), "rss_kib": rss}


def settle():
    """Idle host threads leave after 0.5 s: count tasks without them."""
    for _ in range(300):
        if len(os.listdir("/proc/self/task")) == 1:
            return
        time.sleep(0.01)


def churn(clones, round_trips):
    runs = [("borrowed", clones, lambda: one_clone(MODES["borrowed"])),
            ("thread", clones, lambda: one_clone(MODES["thread"])),
            ("fork", round_trips, lambda: one_clone(MODES["fork"]))]
    for mode in MODES:
        def child_round_trip(flags=MODES[mode]):
            with pyclone.Child(lambda: 5, flags=flags).start() as c:
                pass
            if c.exitcode != 0 or c.result != 5:
                raise AssertionError((c.exitcode, c.result))
        runs.append((f"Child {mode}", round_trips, child_round_trip))
    for name, n, fn in runs:
        for _ in range(min(n, 1000)):         # warm up caches and freelists
            fn()
        settle()
        before = snapshot()
        t0 = time.monotonic()
        for _ in range(n):
            fn()
        seconds = time.monotonic() - t0
        settle()
        after = snapshot()
        print(json.dumps({"run": name, "n": n, "seconds": round(seconds, 1),
                          "before": before, "after": after}), flush=True)


def storm(seconds):
    got = [0]
    signal.signal(signal.SIGUSR1, lambda *a: got.__setitem__(0, got[0] + 1))
    sender = subprocess.Popen([sys.executable, "-c",
                               "import os, sys, time\n"
                               "pid = int(sys.argv[1]); end = time.monotonic() + float(sys.argv[2])\n"
                               "n = 0\n"
                               "while time.monotonic() < end:\n"
                               "    os.kill(pid, 10); n += 1\n"
                               "print(n)\n", str(os.getpid()), str(seconds * len(MODES) + 2)],
                              stdout=subprocess.PIPE, text=True)
    for mode, flags in MODES.items():
        done, errors = 0, []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                one_clone(flags)
                done += 1
            except Exception as exc:
                errors.append(repr(exc))
        # No child may be left: every one was reaped above.
        left = []
        try:
            while True:
                pid, _ = pyclone.waitpid(-1, pyclone.WALL | os.WNOHANG)
                if pid == 0:
                    break
                left.append(pid)
        except ChildProcessError:
            pass
        print(json.dumps({"mode": mode, "seconds": seconds, "clones": done,
                          "errors": len(errors), "first_error": errors[0] if errors else None,
                          "unreaped": len(left), "signals_handled": got[0]}), flush=True)
    sender.wait()
    print(json.dumps({"signals_sent": int(sender.stdout.read())}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("threads")
    p.add_argument("--seconds", type=float, default=60)
    p = sub.add_parser("churn")
    p.add_argument("--clones", type=int, default=100000)
    p.add_argument("--round-trips", type=int, default=20000)
    p = sub.add_parser("storm")
    p.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    if a.what == "threads":
        threads(a.seconds)
    elif a.what == "churn":
        churn(a.clones, a.round_trips)
    else:
        storm(a.seconds)


if __name__ == "__main__":
    main()
