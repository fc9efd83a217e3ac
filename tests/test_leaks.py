"""Many clones in each mode leave no fds, mappings, tasks or memory behind."""
import gc
import os
import signal
import sys
import time

import pytest

import pyclone
from conftest import BORROWED, _anon_rw_mappings, _fds

P = pyclone


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def snapshot():
    gc.collect()
    return (_fds(), _anon_rw_mappings(), len(os.listdir("/proc/self/task")), rss_kib(),
            sys.getallocatedblocks())


def churn(n, fn, flags, stack_size=None):
    import warnings
    with warnings.catch_warnings():
        # pytest-timeout's thread is another thread: 3.12+ fork mode warns
        # like os.fork each time, and recorded warnings would count here.
        warnings.simplefilter("ignore", DeprecationWarning)
        for _ in range(n):
            pid = P.clone(fn, flags, stack_size)
            P.waitpid(pid)


def _exit_from_frames():
    def inner(n):
        if n == 0:
            os._exit(0)
        return inner(n - 1)
    inner(20)


OLD_VALUE_STACKS = pytest.mark.xfail(
    sys.version_info < (3, 11), strict=True,
    reason="3.9/3.10 keep a running frame's value-stack extent only in a C local, so the "
           "pending call's arguments in frames a child abandons leak (docs/caveats.md)")


def case(name, fn, flags, stack, n, *marks):
    return pytest.param(fn, flags, stack, n, id=name, marks=marks)


CASES = [
    case("fork", lambda: 0, signal.SIGCHLD, None, 300),
    case("fork-raw", lambda: 0, P.CLONE_FILES | signal.SIGCHLD, None, 300),
    case("borrowed", lambda: 0, BORROWED, None, 3000),
    case("borrowed-mapped-stack", lambda: 0, BORROWED, 64 << 20, 3000),
    case("borrowed-os_exit", _exit_from_frames, BORROWED, None, 3000, OLD_VALUE_STACKS),
    case("borrowed-exception", lambda: {}["x"], BORROWED, None, 2000),
    case("thread", lambda: 0, P.CLONE_VM | signal.SIGCHLD, None, 2000),
    case("thread-os_exit", _exit_from_frames, P.CLONE_VM | signal.SIGCHLD, None, 2000,
         OLD_VALUE_STACKS),
    case("thread-group", lambda: 0, P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD, None, 2000),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fn,flags,stack,n", CASES)
def test_no_growth(fn, flags, stack, n, capfd):
    # Idle host threads of earlier tests leave after 0.5 s, unmapping their
    # stacks: let them go before measuring (the Python threads, such as
    # pytest-timeout's, stay).
    import threading
    for _ in range(1000):
        if len(os.listdir("/proc/self/task")) == threading.active_count():
            break
        time.sleep(0.01)
    churn(n, fn, flags, stack)                # warm up caches, freelists, arenas
    # A leak grows the counts in every round; a cache filled once, or another
    # thread of this process mid-work at a snapshot, in one.  So up to three
    # rounds, the first within bounds passes.  (In the suite, 1 run in about
    # 40 saw 192 blocks in one round of borrowed-exception; never alone.)
    rounds = []
    for _ in range(3):
        before = snapshot()
        churn(n, fn, flags, stack)
        after = snapshot()
        capfd.readouterr()
        fds, maps, tasks, rss, blocks = before
        fds2, maps2, tasks2, rss2, blocks2 = after
        rounds.append(f"blocks +{blocks2 - blocks}, RSS +{rss2 - rss} KiB")
        # Live allocations are exact where RSS is not (freed memory is
        # reused): a leak of one object per clone shows as n blocks.
        if (fds2, maps2, tasks2) == (fds, maps, tasks) and blocks2 - blocks < n // 20 + 16 \
                and rss2 - rss < 512:
            break
    assert fds2 == fds
    assert maps2 == maps
    assert tasks2 == tasks
    assert blocks2 - blocks < n // 20 + 16, f"blocks leaked over {n} clones: {rounds}"
    assert rss2 - rss < 512, f"RSS grew over {n} clones: {rounds}"
