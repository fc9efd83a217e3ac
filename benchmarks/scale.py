"""Many tasks at once: N thread-mode children (CLONE_VM|CLONE_FS|CLONE_FILES|
CLONE_SIGHAND, the seeds' light-weight processes) each blocked on one
pyclone.Semaphore, then released one permit at a time and reaped, against N
threading.Threads on a threading.Semaphore.  Prints start time, release +
reap time and RSS per task, for the eventfd semaphore and the robust
(System V) one, and for the eventfd semaphore with CLONE_THREAD children
(threads of this process, joined by tid).

Run:  python benchmarks/scale.py [N ...]      (default: 1000 5000)
"""
import os
import signal
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


def with_pyclone(n, robust, flags=FLAGS):
    sem = pyclone.Semaphore(0, robust=robust)

    def task():
        sem.acquire()
        return 0
    rss0, t0 = rss_kib(), time.perf_counter()
    pids = [pyclone.clone(task, flags) for _ in range(n)]
    started, rss1 = time.perf_counter() - t0, rss_kib()
    t1 = time.perf_counter()
    for _ in range(n):
        sem.release()
    for pid in pids:
        _, status = pyclone.waitpid(pid)
        assert os.waitstatus_to_exitcode(status) == 0
    finished = time.perf_counter() - t1
    sem.close()
    return started, finished, (rss1 - rss0) / n


def with_threading(n):
    sem = threading.Semaphore(0)
    rss0, t0 = rss_kib(), time.perf_counter()
    threads = [threading.Thread(target=sem.acquire) for _ in range(n)]
    for t in threads:
        t.start()
    started, rss1 = time.perf_counter() - t0, rss_kib()
    t1 = time.perf_counter()
    for _ in range(n):
        sem.release()
    for t in threads:
        t.join()
    return started, time.perf_counter() - t1, (rss1 - rss0) / n


def no_parked_hosts(timeout=120.0):
    """Each row starts from an empty host pool: the previous row's hosts park
    and leave once the pool has been quiet for their linger (each deleting
    its spare thread state in turn), and a row that reused them would not
    count its own hosts' memory."""
    deadline = time.monotonic() + timeout
    while pyclone._clone.parked_hosts() and time.monotonic() < deadline:
        time.sleep(0.05)


def main(sizes):
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs: N tasks blocked on one "
          "semaphore, then released one permit at a time and reaped/joined")
    print(f"{'N':>6}  {'tasks':<32}{'start s':>9}{'release+reap s':>16}{'KiB/task':>10}"
          f"{'ratio':>8}")
    for n in sizes:
        ref = with_threading(n)
        rows = [("threading.Thread", ref)]
        for name, robust, flags in [("pyclone, Semaphore", False, FLAGS),
                                    ("pyclone, Semaphore(robust)", True, FLAGS),
                                    ("pyclone CLONE_THREAD, Semaphore", False, THREAD_FLAGS)]:
            no_parked_hosts()
            rows.append((name, with_pyclone(n, robust, flags)))
        for name, (started, finished, kib) in rows:
            print(f"{n:>6}  {name:<32}{started:>9.2f}{finished:>16.2f}{kib:>10.1f}"
                  f"{finished / ref[1]:>8.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000])
