"""Many tasks at once: N thread-mode children (CLONE_VM|CLONE_FS|CLONE_FILES|
CLONE_SIGHAND, the seeds' light-weight processes) each blocked on one
pyclone.Semaphore, then released one permit at a time and reaped, against N
threading.Threads on a threading.Semaphore.  Prints start time, release +
reap time and RSS per task (once every task is asleep), for the eventfd
semaphore and the robust (System V) one, and for the eventfd semaphore with
CLONE_THREAD children (threads of this process, joined by tid).  Each row
runs in a fresh interpreter.

Run:  python benchmarks/scale.py [N ...]      (default: 1000 5000)
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pyclone

FLAGS = (pyclone.CLONE_VM | pyclone.CLONE_FS | pyclone.CLONE_FILES | pyclone.CLONE_SIGHAND
         | signal.SIGCHLD)
#: The same children as threads of this process (joined by tid, not reaped).
THREAD_FLAGS = (pyclone.CLONE_VM | pyclone.CLONE_FS | pyclone.CLONE_FILES | pyclone.CLONE_SIGHAND
                | pyclone.CLONE_THREAD)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settled_rss_kib(ready, n, timeout=10.0):
    """RSS once the tasks are all asleep: after each said it is about to
    wait (`ready`), the same in three looks 50 ms apart (right after the
    last start, tasks are still on their way into the wait, their stacks not
    yet at full depth)."""
    for _ in range(n):
        ready.acquire()
    deadline = time.monotonic() + timeout
    looks = [rss_kib()]
    while time.monotonic() < deadline and (len(looks) < 3 or len(set(looks[-3:])) > 1):
        time.sleep(0.05)
        looks.append(rss_kib())
    return looks[-1]


def with_pyclone(n, robust, flags=FLAGS):
    sem, ready = pyclone.Semaphore(0, robust=robust), pyclone.Semaphore(0)

    def task():
        ready.release()
        sem.acquire()
        return 0
    rss0, t0 = rss_kib(), time.perf_counter()
    pids = [pyclone.clone(task, flags) for _ in range(n)]
    started = time.perf_counter() - t0
    rss1 = settled_rss_kib(ready, n)
    t1 = time.perf_counter()
    for _ in range(n):
        sem.release()
    for pid in pids:
        _, status = pyclone.waitpid(pid)
        assert os.waitstatus_to_exitcode(status) == 0
    finished = time.perf_counter() - t1
    sem.close()
    ready.close()
    return started, finished, (rss1 - rss0) / n


def with_threading(n):
    sem, ready = threading.Semaphore(0), threading.Semaphore(0)

    def task():
        ready.release()
        sem.acquire()
    rss0, t0 = rss_kib(), time.perf_counter()
    threads = [threading.Thread(target=task) for _ in range(n)]
    for t in threads:
        t.start()
    started = time.perf_counter() - t0
    rss1 = settled_rss_kib(ready, n)
    t1 = time.perf_counter()
    for _ in range(n):
        sem.release()
    for t in threads:
        t.join()
    return started, time.perf_counter() - t1, (rss1 - rss0) / n


#: The rows: name -> (robust, flags), None for threading.
ROWS = {
    "threading.Thread": None,
    "pyclone, Semaphore": (False, FLAGS),
    "pyclone, Semaphore(robust)": (True, FLAGS),
    "pyclone CLONE_THREAD, Semaphore": (False, THREAD_FLAGS),
}


def row(name, n):
    how = ROWS[name]
    return with_threading(n) if how is None else with_pyclone(n, *how)


def main(sizes):
    """Each row in a fresh interpreter: what a row leaves behind (glibc's
    cache of thread stacks, whose pages are resident already; parked hosts;
    a heap grown by the last row) would make the next one look cheaper."""
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs: N tasks blocked on one "
          "semaphore, then released one permit at a time and reaped/joined")
    print(f"{'N':>6}  {'tasks':<32}{'start s':>9}{'release+reap s':>16}{'KiB/task':>10}"
          f"{'ratio':>8}")
    for n in sizes:
        results = []
        for name in ROWS:
            out = subprocess.run([sys.executable, __file__, "--row", name, str(n)],
                                 check=True, capture_output=True, text=True).stdout
            results.append((name, [float(x) for x in out.split()]))
        ref = results[0][1][1]
        for name, (started, finished, kib) in results:
            print(f"{n:>6}  {name:<32}{started:>9.2f}{finished:>16.2f}{kib:>10.1f}"
                  f"{finished / ref:>8.2f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--row"]:
        print(*row(sys.argv[2], int(sys.argv[3])))
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 5000])
