"""Semaphore, RecursiveSemaphore and Queue between tasks of every mode."""
import asyncio
import math
import mmap
import os
import queue
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyclone
from conftest import reap, wait_for

P = pyclone
FORK = signal.SIGCHLD
# Fork-mode and thread-mode tasks are mixed on purpose here: a host thread
# leaving at that moment makes 3.12+'s os.fork-style warning fire, rightly.
pytestmark = pytest.mark.filterwarnings("ignore:This process:DeprecationWarning")
THREAD = P.CLONE_VM | signal.SIGCHLD
MODES = {"fork": FORK, "thread": THREAD}


def shared_counter():
    """An int in MAP_SHARED memory: visible to fork-mode children too."""
    page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
    return page


def bump(page, sem, rounds):
    """Read-modify-write with a pause in between: loses updates unless the
    semaphore excludes the other tasks."""
    for _ in range(rounds):
        with sem:
            v = struct.unpack_from("q", page)[0]
            time.sleep(0)
            struct.pack_into("q", page, 0, v + 1)


@pytest.mark.parametrize("robust", [False, True], ids=["eventfd", "robust"])
@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_mutual_exclusion(mode, robust):
    sem = P.Semaphore(1, robust=robust)
    page = shared_counter()
    pids = [P.clone(bump, MODES[mode], args=(page, sem, 300)) for _ in range(4)]
    assert [reap(pid) for pid in pids] == [0] * 4
    assert struct.unpack_from("q", page)[0] == 1200
    sem.close()


def test_without_the_semaphore_updates_are_lost():
    """The check above can fail: the same work without exclusion loses.
    The four children start together (a barrier) and each holds the value
    it read for a millisecond, asleep, so the others certainly run between
    its read and its write."""
    page = shared_counter()
    start = threading.Barrier(4)

    def racer():
        start.wait(10)
        for _ in range(50):
            v = struct.unpack_from("q", page)[0]
            time.sleep(0.001)
            struct.pack_into("q", page, 0, v + 1)
    pids = [P.clone(racer, THREAD) for _ in range(4)]
    assert [reap(pid) for pid in pids] == [0] * 4
    assert struct.unpack_from("q", page)[0] < 200


@pytest.mark.parametrize("robust", [False, True], ids=["eventfd", "robust"])
def test_timed_wait_returns_false_after_about_the_timeout(robust):
    sem = P.Semaphore(0, robust=robust)
    t0 = time.monotonic()
    assert sem.acquire(timeout=0.2) is False
    elapsed = time.monotonic() - t0
    assert 0.19 <= elapsed < 1.0
    assert sem.acquire(False) is False
    sem.release()
    assert sem.acquire(timeout=0.2) is True
    sem.close()


def test_timed_wait_is_woken_by_a_release_from_a_child():
    sem = P.Semaphore(0)

    def child():
        time.sleep(0.1)
        sem.release()
    pid = P.clone(child, FORK)
    t0 = time.monotonic()
    assert sem.acquire(timeout=5) is True
    assert time.monotonic() - t0 < 2
    assert reap(pid) == 0
    sem.close()


def test_wait_releases_the_gil():
    sem = P.Semaphore(0)
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1
    t = threading.Thread(target=spin)
    t.start()
    try:
        assert sem.acquire(timeout=0.2) is False
    finally:
        stop.set()
        t.join()
    assert ticks[0] > 1000
    sem.close()


def test_contention_many_waiters_each_released_once():
    sem = P.Semaphore(0)
    got = []

    def waiter():
        got.append(sem.acquire(timeout=5))
    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    sem.release(8)
    for t in threads:
        t.join()
    assert got == [True] * 8
    assert sem.acquire(False) is False
    sem.close()


def _voluntary_switches(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


def _sleeps_in_poll(tid):
    with open(f"/proc/self/task/{tid}/wchan") as f:
        wchan = f.read()
    return "epoll" in wchan or "poll" in wchan


def _start_eight_waiters(sem, timeout):
    """Eight threads in sem.acquire(timeout=timeout): (threads, tids, winners)."""
    winners = []
    tids = {}

    def waiter(i):
        tids[i] = threading.get_native_id()
        if sem.acquire(timeout=timeout):
            winners.append(i)
    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    return threads, tids, winners


def _losers_woken_by_one_release(sem, tids, winners):
    """Releases one permit; the waiters other than its winner that woke."""
    before = {i: _voluntary_switches(tid) for i, tid in tids.items()}
    sem.release()
    wait_for(lambda: winners, timeout=5)
    time.sleep(0.1)
    return [i for i, tid in tids.items()
            if i not in winners and _voluntary_switches(tid) != before[i]]


def test_a_release_wakes_one_waiter_not_all():
    # A poll of the eventfd would wake every waiter for each permit (with
    # thousands of waiters, thousands of wake-ups and GIL hand-offs per
    # release); the epoll instance they sleep on wakes one.  A waiter that
    # wakes and loses the race sleeps again: one more voluntary switch.
    sem = P.Semaphore(0)
    threads, tids, winners = _start_eight_waiters(sem, timeout=10)
    try:
        # Asleep in the wait itself (not, say, still waiting for the GIL).
        wait_for(lambda: len(tids) == 8 and all(_sleeps_in_poll(tid) for tid in tids.values()),
                 timeout=5)
        woken = _losers_woken_by_one_release(sem, tids, winners)
        # Level-triggered epoll may pass the event on once more; never to all.
        assert len(woken) <= 2, f"{len(woken)} of 7 losing waiters woke for one permit"
    finally:
        sem.release(8)
        for t in threads:
            t.join()
        sem.close()


needs_blocking_eventfd = pytest.mark.skipif(
    not P._clone.sem_eventfd_blocking(),
    reason="this kernel's eventfd refuses preadv2(RWF_NOWAIT): the eventfd stays "
           "non-blocking and every waiter sleeps on the epoll instance")


def _sleeper_word(sem):
    return struct.unpack_from("I", sem._page)[0]


def _syscall_nr(tid):
    with open(f"/proc/self/task/{tid}/syscall") as f:
        return f.read().split()[0]


@needs_blocking_eventfd
def test_forever_waiters_one_sleeps_in_read_the_rest_on_epoll():
    # One waiter sleeps in read() of the eventfd (one system call per
    # hand-off); the others on the epoll instance, so a release still wakes
    # at most the reader and one epoll sleeper, not all.
    sem = P.Semaphore(0)
    threads, tids, winners = _start_eight_waiters(sem, timeout=None)
    try:
        wait_for(lambda: len(tids) == 8 and _sleeper_word(sem) == 1
                 and sum(_sleeps_in_poll(tid) for tid in tids.values()) == 7, timeout=5)
        reader = [i for i, tid in tids.items() if not _sleeps_in_poll(tid)]
        assert len(reader) == 1
        calls = {i: _syscall_nr(tid) for i, tid in tids.items()}
        assert len({calls[i] for i in tids if i != reader[0]}) == 1
        assert calls[reader[0]] != calls[(reader[0] + 1) % 8]     # read, not epoll_wait
        woken = _losers_woken_by_one_release(sem, tids, winners)
        assert len(woken) <= 2, f"{len(woken)} of 7 losing waiters woke for one permit"
    finally:
        sem.release(8 - len(winners))
        for t in threads:
            t.join()
    assert len(winners) == 8
    assert sem.acquire(False) is False
    assert _sleeper_word(sem) == 0
    sem.close()


@needs_blocking_eventfd
def test_the_read_sleeper_word_is_shared_with_fork_mode_children():
    sem, done = P.Semaphore(0), P.Semaphore(0)

    def child():
        return 0 if sem.acquire() and done.release() is None else 1
    pid = P.clone(child, FORK)
    try:
        wait_for(lambda: _sleeper_word(sem) == 1, timeout=5)   # the child, asleep in read()
    finally:
        sem.release()
    assert done.acquire(timeout=10)
    assert reap(pid) == 0
    assert _sleeper_word(sem) == 0
    sem.close()
    done.close()


def _skips_left(sem):
    return struct.unpack_from("=I", sem._page, 4)[0]


@needs_blocking_eventfd
def test_after_a_contended_acquire_the_next_skip_the_try_and_still_count_right():
    """With the count in the eventfd (after fileno()), an acquire that had
    to wait makes the next 16 go straight to the wait's read() (no try
    first); a timed or non-blocking acquire still fails in time when there
    is no permit, and every permit is taken once."""
    sem = P.Semaphore(0)
    sem.fileno()
    timer = threading.Timer(0.05, sem.release)
    timer.start()
    assert sem.acquire(timeout=10)          # the try failed: it waited
    timer.join()
    assert _skips_left(sem) == 16
    sem.release(3)
    assert [sem.acquire() for _ in range(3)] == [True] * 3
    assert _skips_left(sem) == 13
    assert sem.acquire(False) is False      # a non-blocking acquire only tries
    assert _skips_left(sem) == 13
    t0 = time.monotonic()
    assert sem.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert sem._value() == 0
    sem.close()


def _eventfd_count(sem):
    with open(f"/proc/self/fdinfo/{sem._handle}") as f:
        for line in f:
            if line.startswith("eventfd-count:"):
                return int(line.split()[1], 16)
    raise AssertionError("no eventfd-count line")


_KERNEL = 1 << 63


def _state(sem):
    """(value, waiters, in the eventfd) from the shared page's count word."""
    word = struct.unpack_from("=Q", sem._page, 8)[0]
    return word & 0xFFFFFFFF, (word & ~_KERNEL) >> 32, bool(word & _KERNEL)


@needs_blocking_eventfd
def test_uncontended_acquire_and_release_keep_the_count_in_shared_memory():
    # No system call while nobody waits: the eventfd's own counter stays 0,
    # the page's count moves, in a fork-mode child as in the parent.
    sem = P.Semaphore(2)
    assert _state(sem) == (2, 0, False)
    assert sem.acquire() and sem.acquire(False) and not sem.acquire(False)
    assert sem._value() == 0 and _eventfd_count(sem) == 0
    sem.release(5)

    def child():
        return 0 if sem.acquire() and sem.acquire(timeout=1) else 1
    assert reap(P.clone(child, FORK)) == 0
    assert _state(sem) == (3, 0, False)
    assert _eventfd_count(sem) == 0
    sem.close()


@needs_blocking_eventfd
def test_a_timed_out_waiter_leaves_no_registration():
    sem = P.Semaphore(0)
    assert sem.acquire(timeout=0.05) is False
    assert _state(sem) == (0, 0, False)
    got = []
    t = threading.Thread(target=lambda: got.append(sem.acquire(timeout=10)))
    t.start()
    wait_for(lambda: _state(sem)[1] == 1, timeout=5)
    sem.release()
    t.join()
    assert got == [True] and _state(sem) == (0, 0, False)
    sem.close()


@needs_blocking_eventfd
def test_fileno_moves_the_count_into_the_eventfd_for_every_task():
    import select
    sem = P.Semaphore(3)
    assert sem.acquire()
    fd = sem.fileno()
    assert _state(sem) == (0, 0, True) and _eventfd_count(sem) == 2
    assert select.select([fd], [], [], 0)[0] == [fd]
    pid = P.clone(lambda: 0 if sem.acquire(False) else 1, FORK)
    assert reap(pid) == 0
    assert sem.acquire(False) is True and sem.acquire(False) is False
    assert select.select([fd], [], [], 0)[0] == []
    sem.release()
    assert _eventfd_count(sem) == 1 and sem._value() == 1
    sem.close()


@needs_blocking_eventfd
def test_fileno_while_tasks_wait_hands_every_waiter_over():
    # Waiters of the page's count (one asleep in read() of the hint eventfd,
    # the others on the epoll instance, one with a timeout, one a fork-mode
    # child) wait for the eventfd once fileno() moved the count there.
    sem, done = P.Semaphore(0), P.Semaphore(0)
    threads, tids, winners = _start_eight_waiters(sem, timeout=None)
    timed = []
    t = threading.Thread(target=lambda: timed.append(sem.acquire(timeout=30)))
    t.start()
    pid = P.clone(lambda: 0 if sem.acquire() and done.release() is None else 1, FORK)
    try:
        wait_for(lambda: _state(sem)[1] == 10 and _sleeper_word(sem) == 1, timeout=5)
        sem.fileno()
        assert _state(sem) == (0, 0, True)
        time.sleep(0.05)
        assert not winners and not timed    # nothing was given yet
    finally:
        sem.release(10)
        for th in threads + [t]:
            th.join()
    assert sorted(winners) == list(range(8)) and timed == [True]
    assert done.acquire(timeout=10)
    assert reap(pid) == 0
    assert sem.acquire(False) is False and _eventfd_count(sem) == 0
    sem.close()
    done.close()


def _hammer(page, sem, rounds, how):
    """bump() with each kind of acquire: waits forever, with a timeout,
    or tries."""
    for _ in range(rounds):
        if how == "timeout":
            while not sem.acquire(timeout=0.001):
                pass
        elif how == "try":
            while not sem.acquire(False):
                time.sleep(0)
        else:
            sem.acquire()
        v = struct.unpack_from("q", page)[0]
        time.sleep(0)
        struct.pack_into("q", page, 0, v + 1)
        sem.release()


def test_mutual_exclusion_with_every_kind_of_acquire_across_modes():
    sem = P.Semaphore(1)
    page = shared_counter()
    kinds = ["forever", "timeout", "try"]
    pids = [P.clone(_hammer, MODES[mode], args=(page, sem, 200, how))
            for mode in ("fork", "thread") for how in kinds]
    assert [reap(pid) for pid in pids] == [0] * 6
    assert struct.unpack_from("q", page)[0] == 1200
    assert sem._value() == 1
    sem.close()


@needs_blocking_eventfd
def test_a_waiter_killed_asleep_in_read_leaves_the_semaphore_working():
    # The sleeper word is a hint: with its holder gone, waiters use the epoll
    # instance, and every permit still reaches one of them.  The dead
    # waiter's registration stays (each release then writes a hint nobody
    # needs), but tries stay exact.
    sem = P.Semaphore(0)
    pid = P.clone(lambda: 0 if sem.acquire() else 1, FORK)
    try:
        wait_for(lambda: _state(sem)[1] == 1 and _sleeper_word(sem) == 1, timeout=5)
    finally:
        os.kill(pid, signal.SIGKILL)        # fork mode: its own interpreter
    assert reap(pid) == -signal.SIGKILL
    assert _sleeper_word(sem) == 1
    sem.release()
    assert sem.acquire(False) is True and sem.acquire(False) is False
    got = []
    t = threading.Thread(target=lambda: got.append(sem.acquire()))
    t.start()
    wait_for(lambda: t.native_id is not None and _sleeps_in_poll(t.native_id)
             and _state(sem)[1] == 2, timeout=5)
    sem.release()
    t.join(timeout=10)
    assert got == [True] and _state(sem) == (0, 1, False)
    sem.close()


@needs_blocking_eventfd
def test_a_large_release_makes_the_eventfd_non_blocking_so_overflow_still_raises():
    # A blocking eventfd would make a release past the counter's limit wait
    # for ever; a release of 2**20 or more switches it to non-blocking first,
    # and a reader already asleep in read() still gets its permit.
    sem = P.Semaphore(0)
    got = []
    t = threading.Thread(target=lambda: got.append(sem.acquire()))
    t.start()
    wait_for(lambda: _sleeper_word(sem) == 1, timeout=5)
    assert os.get_blocking(sem.fileno())
    sem.release(P.sync.EVENTFD_MAX)
    t.join(timeout=10)
    assert got == [True]
    assert not os.get_blocking(sem.fileno())
    with pytest.raises(ValueError, match="past its maximum"):
        sem.release(2)                      # count: EVENTFD_MAX - 1
    assert sem.acquire() is True            # no reader in read() again: it is EAGAIN now
    sem.close()
    big = P.Semaphore(P.sync.EVENTFD_MAX - 1)
    assert not os.get_blocking(big.fileno())
    with pytest.raises(ValueError, match="past its maximum"):
        big.release(2)
    big.close()


@pytest.mark.parametrize("robust", [False, True], ids=["plain", "robust"])
def test_a_holder_that_dies_while_holding(robust):
    """robust=True: the kernel gives the dead holder's permit back
    (SEM_UNDO); a plain semaphore stays taken."""
    sem = P.Semaphore(1, robust=robust)

    def holder():
        sem.acquire()
        os._exit(0)
    assert reap(P.clone(holder, FORK)) == 0
    assert sem.acquire(timeout=0.2) is robust
    sem.close()


def test_errors():
    with pytest.raises(ValueError):
        P.Semaphore(-1)
    with pytest.raises(ValueError):
        P.Semaphore(40000, robust=True)
    with pytest.raises(TypeError):
        P.Semaphore(1.5)
    sem = P.Semaphore(P.sync.EVENTFD_MAX - 1)
    with pytest.raises(ValueError, match="past its maximum"):
        sem.release(2)                      # eventfd counter overflow
    with pytest.raises(ValueError, match="at least 1"):
        sem.release(0)
    for bad in (-1, float("nan"), -0.5):
        with pytest.raises(ValueError, match="timeout"):
            sem.acquire(timeout=bad)
    with pytest.raises(ValueError, match="non-blocking"):
        sem.acquire(False, 1)
    sem.close()
    sem.close()                             # idempotent
    for op in (sem.acquire, sem.release, sem.fileno):
        with pytest.raises(ValueError, match="closed"):
            op()
    robust = P.Semaphore(1, robust=True)
    with pytest.raises(ValueError, match="at most 32767"):
        robust.release(40000)
    full = P.Semaphore(32767, robust=True)
    with pytest.raises(ValueError, match="past its maximum"):
        full.release(1)                     # the kernel's ERANGE
    full.close()
    with pytest.raises(OSError):
        robust.fileno()
    robust.close()


@pytest.mark.parametrize("robust", [False, True], ids=["eventfd", "robust"])
def test_acquire_and_release_agree_in_c_and_in_python(robust):
    """acquire() with the defaults and release() of one permit are answered
    in C; any other call goes through the Python rules: both count alike."""
    sem = P.Semaphore(0, robust=robust)
    sem.release()                                   # C
    assert sem.acquire() is True                    # C
    sem.release(n=1)                                # a keyword: Python
    assert sem.acquire(blocking=True) is True       # a keyword: Python
    sem.release(1)                                  # C
    assert sem.acquire(True, None) is True          # two arguments: Python
    assert sem.acquire(False) is False
    assert sem.acquire(timeout=0.01) is False
    with pytest.raises(TypeError):
        sem.release(True)                           # a bool is no count
    with pytest.raises(TypeError):
        sem.acquire(True, None, 3)
    assert sem._value() == 0
    sem.close()


def test_signal_handler_exception_interrupts_a_wait():
    sem = P.Semaphore(0)

    def handler(*a):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            sem.acquire(timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    sem.close()


def test_fileno_with_asyncio():
    sem = P.Semaphore(0)

    async def main():
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(sem.fileno(), lambda: ready.done() or ready.set_result(True))
        pid = P.clone(lambda: sem.release() or 0, FORK)
        try:
            await asyncio.wait_for(ready, 5)
        finally:
            loop.remove_reader(sem.fileno())
        return pid
    pid = asyncio.run(main())
    assert reap(pid) == 0
    assert sem.acquire(False) is True
    sem.close()


def test_robust_sets_are_removed_when_their_creator_exits():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import pyclone
        sems = [pyclone.Semaphore(1, robust=True) for _ in range(3)]
        closed = pyclone.Semaphore(1, robust=True)
        print(*[s._handle for s in sems + [closed]])
        closed.close()
    """)], capture_output=True, text=True, timeout=30, check=True)
    ids = set(out.stdout.split())
    listing = subprocess.run(["ipcs", "-s"], capture_output=True, text=True).stdout
    present = {line.split()[1] for line in listing.splitlines()
               if len(line.split()) > 1 and line.split()[1].isdigit()}
    assert ids and not ids & present


# ---- RecursiveSemaphore ----------------------------------------------------

def test_recursive_ownership():
    rs = P.RecursiveSemaphore()
    assert rs.acquire() and rs.acquire() and rs.acquire(timeout=0)
    other = []
    t = threading.Thread(target=lambda: other.append(rs.acquire(timeout=0.1)))
    t.start()
    t.join()
    assert other == [False]
    for _ in range(3):
        rs.release()
    t = threading.Thread(target=lambda: other.append(rs.acquire(timeout=1) and rs.release()))
    t.start()
    t.join()
    assert other == [False, None]
    rs.close()


@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_recursive_release_by_another_task_raises(mode):
    rs = P.RecursiveSemaphore()
    rs.acquire()
    errors = P.Queue()

    def child():
        try:
            rs.release()
        except RuntimeError as exc:
            errors.put(str(exc))
    assert reap(P.clone(child, MODES[mode])) == 0
    assert "another task" in errors.get(timeout=5)
    rs.release()
    errors.close()
    rs.close()


@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_recursive_across_tasks(mode):
    """A child holds it (twice); the parent cannot get it until the child
    released it as often as it took it."""
    rs = P.RecursiveSemaphore()
    step = P.Semaphore(0)
    go = P.Semaphore(0)

    def child():
        rs.acquire()
        rs.acquire()
        step.release()
        go.acquire()
        rs.release()
        rs.release()
    pid = P.clone(child, MODES[mode])
    assert step.acquire(timeout=5)
    assert rs.acquire(timeout=0.1) is False
    go.release()
    assert rs.acquire(timeout=5) is True
    rs.release()
    assert reap(pid) == 0
    for s in (rs, step, go):
        s.close()


def test_recursive_robust_holder_dies():
    rs = P.RecursiveSemaphore(robust=True)
    assert reap(P.clone(lambda: rs.acquire() and os._exit(0), FORK)) == 0
    assert rs.acquire(timeout=1) is True
    rs.release()
    rs.close()


# ---- Queue -----------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_queue_ping_pong_10000(mode):
    to_child, to_parent = P.Queue(), P.Queue()

    def child():
        while True:
            n = to_child.get()
            if n is None:
                return 0
            to_parent.put(n + 1)
    pid = P.clone(child, MODES[mode])
    n = 0
    for _ in range(10000):
        to_child.put(n)
        n = to_parent.get(timeout=10)
    to_child.put(None)
    assert reap(pid) == 0
    assert n == 10000
    to_child.close()
    to_parent.close()


def test_queue_messages_larger_than_the_pipe_buffer():
    q = P.Queue()
    big = os.urandom(3 * 1024 * 1024)
    pid = P.clone(lambda: q.put(big) or q.put(["after", big[:10]]), FORK)
    assert q.get(timeout=20) == big
    assert q.get(timeout=20) == ["after", big[:10]]
    assert reap(pid) == 0
    q.close()


@pytest.mark.timeout(120)
def test_queue_several_producers_and_consumers():
    q, results = P.Queue(), P.Queue()
    producers, per = 4, 500

    def producer(p):
        for i in range(per):
            q.put((p, i, b"x" * (i % 2000)))      # frames of many sizes

    def consumer():
        seen = []
        while True:
            item = q.get(timeout=30)
            if item is None:
                break
            p, i, payload = item
            assert payload == b"x" * (i % 2000)
            seen.append((p, i))
        results.put(seen)
    cons = [P.clone(consumer, FORK) for _ in range(3)] + [P.clone(consumer, THREAD)]
    prods = [P.clone(producer, m, args=(p,)) for p, m in
             zip(range(producers), [FORK, THREAD, FORK, THREAD])]
    assert [reap(pid) for pid in prods] == [0] * producers
    for _ in cons:
        q.put(None)
    assert [reap(pid) for pid in cons] == [0] * len(cons)
    got = []
    for _ in cons:
        got.extend(results.get(timeout=10))
    assert sorted(got) == [(p, i) for p in range(producers) for i in range(per)]
    q.close()
    results.close()


def test_queue_empty_full_timeouts():
    q = P.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert 0.19 <= time.monotonic() - t0 < 1.5
    q.put(1)
    q.put(2)
    assert q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.1)
    assert q.get() == 1
    q.put(3, timeout=1)
    assert [q.get(), q.get()] == [2, 3]
    assert q.empty()
    q.close()
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    with pytest.raises(ValueError):
        P.Queue(-1)
    with pytest.raises(ValueError, match="timeout"):
        with P.Queue() as q2:
            q2.get(timeout=math.nan)


def test_queue_in_borrowed_mode():
    q = P.Queue()
    assert reap(P.clone(lambda: q.put("from borrowed") or 0,
                        P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD)) == 0
    assert q.get(timeout=5) == "from borrowed"
    q.close()


def test_pingpong_benchmark_runs_every_kind():
    """The latency benchmark (benchmarks/sem_pingpong.py) completes for each
    semaphore kind and mode, robust ones included."""
    from pyclone import bench
    for name, ref, mode in bench.PINGPONG:
        for kind in (name, ref):
            assert 0 < bench.pingpong(kind, mode, 50) < 0.1


def test_qsize_only_reads():
    """A concurrent get_nowait() never finds the queue empty because of a
    qsize() elsewhere (qsize reads the count, it does not take it)."""
    q = P.Queue()
    n = 300
    for i in range(n):
        q.put(i)
    stop = threading.Event()

    def look():
        while not stop.is_set():
            assert 0 <= q.qsize() <= n
    t = threading.Thread(target=look)
    t.start()
    try:
        got = [q.get_nowait() for _ in range(n)]
    finally:
        stop.set()
        t.join()
    assert got == list(range(n))
    assert q.qsize() == 0 and q.empty()
    q.close()
