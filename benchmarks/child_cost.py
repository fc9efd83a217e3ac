"""Start->join cost of pyclone.Child against clone()+waitpid and a fork-context
multiprocessing.Process (the README's figures, in microseconds per child).

Run pinned to one CPU:  taskset -c 1 python benchmarks/child_cost.py
"""
import multiprocessing
import signal
import statistics
import time
import warnings

import pyclone

ROUNDS, PER_ROUND = 7, 100
FORK = signal.SIGCHLD
BORROWED = pyclone.CLONE_VM | pyclone.CLONE_VFORK | signal.SIGCHLD
THREAD = pyclone.CLONE_VM | signal.SIGCHLD


def work():
    return 1


def by_clone(flags):
    pyclone.waitpid(pyclone.clone(work, flags))


def by_child(flags):
    with pyclone.Child(work, flags=flags).start():
        pass


def by_multiprocessing():
    p = multiprocessing.get_context("fork").Process(target=work)
    p.start()
    p.join()
    p.close()


CASES = [
    ("clone fork", lambda: by_clone(FORK)),
    ("Child fork", lambda: by_child(FORK)),
    ("mp.Process fork", by_multiprocessing),
    ("clone borrowed", lambda: by_clone(BORROWED)),
    ("Child borrowed", lambda: by_child(BORROWED)),
    ("clone thread", lambda: by_clone(THREAD)),
    ("Child thread", lambda: by_child(THREAD)),
]


def main():
    # Idle host threads make 3.12+ warn about forking; they hold no lock.
    warnings.simplefilter("ignore", DeprecationWarning)
    times = {name: [] for name, _ in CASES}
    for _ in range(ROUNDS):              # interleaved, so drift hits all alike
        for name, fn in CASES:
            t0 = time.perf_counter()
            for _ in range(PER_ROUND):
                fn()
            times[name].append((time.perf_counter() - t0) / PER_ROUND * 1e6)
    for name, _ in CASES:
        print(f"{name:18s} {statistics.median(times[name]):8.1f} us")


if __name__ == "__main__":
    main()
