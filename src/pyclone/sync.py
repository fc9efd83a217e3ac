"""Semaphores that work between tasks of every mode.

Nothing here depends on a futex in private memory: a fork-mode child shares
no memory with its parent, so a ``threading``-style futex lock cannot reach
it.  ``Semaphore`` is an eventfd in ``EFD_SEMAPHORE`` mode (the fd is
inherited by fork-mode children and shared under ``CLONE_VM`` or
``CLONE_FILES``) with its count in a ``MAP_SHARED`` page, or with
``robust=True`` a System V semaphore whose permits the kernel gives back
when a holder dies (``SEM_UNDO``).
"""
from __future__ import annotations

import atexit
import errno
import io
import math
import mmap
import os
import struct
import threading
import weakref

from . import _clone, _rules

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Optional, Tuple

__all__ = ["Semaphore", "RecursiveSemaphore"]

#: Largest value of an eventfd counter (the kernel's 0xfffffffffffffffe).
EVENTFD_MAX = 0xFFFFFFFFFFFFFFFE
#: Largest value of a System V semaphore (SEMVMX).
SYSV_MAX = 32767

# A blocking eventfd cannot refuse a write that would overflow its counter:
# it waits.  While every release adds less than this, no program reaches the
# limit (2**44 releases at the least); a larger initial value or release
# first makes the eventfd non-blocking for good, so that it fails instead.
_SMALL_RELEASE = 1 << 20

# The shared page of an eventfd semaphore: the sleeper word and the skip
# countdown (two uint32), then the count's state word (uint64, sem.c).
_STATE_OFFSET = 8
_PAGE_STATE = struct.Struct("=Q")

_sysv_sets: "dict[int, int]" = {}  # id -> creating pid: removed at exit by their creator


@atexit.register
def _remove_sysv_sets() -> None:
    me = os.getpid()
    for sem_id, creator in list(_sysv_sets.items()):
        if creator == me:
            try:
                _clone.sem_sysv_rm(sem_id)
            except OSError:
                pass
    _sysv_sets.clear()


def _check_timeout(blocking: bool, timeout: Optional[float]) -> float:
    """threading's rules: -> seconds to wait (-1 forever, 0 not at all)."""
    if not blocking:
        if timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking acquire")
        return 0.0
    if timeout is None:
        return -1.0
    timeout = float(timeout)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a number >= 0, not {timeout!r}")
    return timeout


class Semaphore(_clone.SemaphoreCore):
    """A counting semaphore usable from any pyclone child and its parent.

    ``Semaphore(value=1, *, robust=False)``: ``acquire(blocking=True,
    timeout=None) -> bool`` waits (without the GIL, no busy loop) until the
    count is positive and decrements it; ``release(n=1)`` adds ``n``.  A
    context manager; ``fileno()`` returns the eventfd, readable while the
    count is positive (selectors and asyncio can wait on it).  The count is
    kept in shared memory, so acquires and releases make no system call
    while nobody waits, until ``fileno()`` moves it into the eventfd.

    ``robust=True`` uses a System V semaphore with ``SEM_UNDO``: if a task
    that acquired it dies without releasing, the kernel gives the permits
    back.  Use it as a lock, released by the task that acquired it (a
    release elsewhere would be undone when that task exits); the count is
    at most 32767; it has no fileno().  The set is removed when the
    creating process closes it or exits normally.
    """

    def __init__(self, value: int = 1, *, robust: bool = False) -> None:
        value = _rules.check_int(value, "value", bool_ok=False)
        limit = SYSV_MAX if robust else EVENTFD_MAX
        if not 0 <= value <= limit:
            raise ValueError(f"value must be 0..{limit}, not {value}")
        self._robust = bool(robust)
        self._creator = os.getpid()
        # An eventfd semaphore keeps its count in a MAP_SHARED page, seen by
        # tasks of every mode: acquire and release make no system call while
        # nobody waits.  Waiters sleep on a second eventfd (the hint one),
        # one of them in read(), the others on an epoll instance, which wakes
        # one per release.  fileno() moves the count into the eventfd for
        # good.  Without RWF_NOWAIT tries, or from a large value on, the
        # count is the eventfd's from the start (no page).
        user_count = (not robust and value < _SMALL_RELEASE
                      and _clone.sem_eventfd_blocking())
        self._page: Optional[mmap.mmap] = None
        self._hint = self._waiter = -1
        fds = []
        try:
            if robust:
                self._handle = _clone.sem_sysv(value)
                _sysv_sets[self._handle] = self._creator
            else:
                self._handle = _clone.sem_eventfd(0 if user_count else value)
                fds.append(self._handle)
                if user_count:
                    self._page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
                    _PAGE_STATE.pack_into(self._page, _STATE_OFFSET, value)
                    self._hint = _clone.sem_eventfd_hint()
                    fds.append(self._hint)
                elif _clone.sem_eventfd_blocking():
                    os.set_blocking(self._handle, False)    # a large value: see above
                self._waiter = _clone.sem_eventfd_waiter(self._handle, self._hint)
                fds.append(self._waiter)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        self._finalizer = weakref.finalize(self, Semaphore._free, self._robust,
                                           self._handle, self._creator,
                                           (self._waiter, self._hint))
        self._closed = False
        # acquire() and release() are ping-pong's whole cost: the C base
        # answers the common calls itself (no Python frame) and passes the
        # rest to _acquire_slow()/_release_slow() below.
        self._bind(self._robust, self._handle, self._hint, self._waiter, self._page)

    @staticmethod
    def _free(robust: bool, handle: int, creator: int, more: Tuple[int, ...] = ()) -> None:
        if robust:
            if os.getpid() == creator and _sysv_sets.pop(handle, None) is not None:
                try:
                    _clone.sem_sysv_rm(handle)
                except OSError:
                    pass
        else:
            for fd in (*more, handle):
                if fd < 0:
                    continue
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _live(self) -> int:
        if self._closed or not self._finalizer.alive:
            raise ValueError("operation on a closed semaphore")
        return self._handle

    # The C base's: it answers acquire() with the defaults and release() of
    # one permit itself and passes other calls to the two methods below.
    # (Named here so that the class documents them.)
    acquire = _clone.SemaphoreCore.acquire
    release = _clone.SemaphoreCore.release

    def _acquire_slow(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """acquire() with every rule: its arguments, a closed semaphore, errors."""
        if self._closed:
            raise ValueError("operation on a closed semaphore")
        wait = -1.0 if blocking is True and timeout is None else _check_timeout(blocking, timeout)
        return self._wait(wait)

    def _release_slow(self, n: int = 1) -> None:
        """release() with every rule: its argument, a closed semaphore, errors."""
        if self._closed:
            raise ValueError("operation on a closed semaphore")
        if type(n) is not int or n != 1:
            n = self._check_release(n)
        try:
            self._post(n)
        except OSError as exc:
            if isinstance(exc, BlockingIOError) or exc.errno == errno.ERANGE:
                limit = SYSV_MAX if self._robust else EVENTFD_MAX
                raise ValueError(f"releasing {n} would take the count past its maximum "
                                 f"({limit})") from exc
            raise

    def _check_release(self, n: object) -> int:
        n = _rules.check_int(n, "n", bool_ok=False)
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        limit = SYSV_MAX if self._robust else EVENTFD_MAX
        if n > limit:
            raise ValueError(f"cannot release {n} permits: the count is at most {limit}")
        if n >= _SMALL_RELEASE and self._page is not None:
            self._share(True)       # the count into the eventfd, non-blocking
        return n

    def _value(self) -> int:
        """The count now, read without touching it: GETVAL for a System V
        semaphore, the shared page's count, or the eventfd-count line of
        /proc/self/fdinfo once the count is in the eventfd (a snapshot:
        other tasks may change it at once)."""
        handle = self._live()
        if self._robust:
            return _clone.sem_sysv_getval(handle)
        in_page = self._user_value()
        if in_page >= 0:
            return in_page
        with open(f"/proc/self/fdinfo/{handle}") as f:
            for line in f:
                if line.startswith("eventfd-count:"):
                    return int(line.split()[1], 16)
        raise OSError(f"/proc/self/fdinfo/{handle} has no eventfd-count")

    def fileno(self) -> int:
        """The eventfd: readable while a permit is available.  Take the
        permit with ``acquire(False)``: the eventfd is blocking (one waiter
        sleeps in its read()), so a plain read may wait.

        The first call moves the count from the shared page into the
        eventfd for good, for every task: from then on each acquire and
        release is a system call, as ``select`` and ``asyncio`` need."""
        if self._robust:
            raise io.UnsupportedOperation("a robust (System V) semaphore has no file descriptor")
        handle = self._live()
        self._share(False)
        return handle

    def close(self) -> None:
        """Release the eventfd (and the epoll fd its waiters sleep on) or, in
        its creating process, the semaphore set.
        Closing twice is allowed; anything else after close raises ValueError."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed or not self._finalizer.alive

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        kind = "robust" if self._robust else "eventfd"
        state = "closed" if self.closed else f"handle={self._handle}"
        return f"<pyclone.Semaphore {kind} {state}>"


def _task_id() -> Tuple[int, int]:
    """(pid, tid) of the calling task: unique across every pyclone mode."""
    return os.getpid(), threading.get_native_id()


class RecursiveSemaphore:
    """A semaphore the holding task (pid and tid) may acquire again.

    ``RecursiveSemaphore(value=1, *, robust=False)``: up to ``value`` tasks
    hold it at once; each may acquire it again without blocking and must
    release it as often as it acquired it.  A release by a task that does
    not hold it raises ``RuntimeError``.  Ownership lives in a shared memory
    page (``MAP_SHARED``), so it works across thread-mode and fork-mode
    tasks alike.
    """

    _SLOT = struct.Struct("iiq")            # pid, tid, recursion count

    def __init__(self, value: int = 1, *, robust: bool = False) -> None:
        value = _rules.check_int(value, "value", bool_ok=False)
        if not 1 <= value <= 4096:
            raise ValueError(f"value must be 1..4096 holders, not {value}")
        self._sem = Semaphore(value, robust=robust)
        self._table_lock = Semaphore(1, robust=robust)
        self._slots = value
        self._table = mmap.mmap(-1, max(mmap.PAGESIZE, value * self._SLOT.size),
                                flags=mmap.MAP_SHARED)

    def _find(self, task: Tuple[int, int]) -> Tuple[Optional[int], int]:
        for i in range(self._slots):
            pid, tid, count = self._SLOT.unpack_from(self._table, i * self._SLOT.size)
            if count and (pid, tid) == task:
                return i, count
        return None, 0

    def _stale(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Take it (again, if the calling task holds it); False on timeout."""
        task = _task_id()
        with self._table_lock:
            slot, count = self._find(task)
            if slot is not None:
                self._SLOT.pack_into(self._table, slot * self._SLOT.size, *task, count + 1)
                return True
        if not self._sem.acquire(blocking, timeout):
            return False
        with self._table_lock:
            for i in range(self._slots):
                pid, _, count = self._SLOT.unpack_from(self._table, i * self._SLOT.size)
                # A free slot, or one whose holder died (robust: its permit
                # came back to the semaphore already).
                if count == 0 or self._stale(pid):
                    self._SLOT.pack_into(self._table, i * self._SLOT.size, *task, 1)
                    return True
        self._sem.release()
        raise RuntimeError("RecursiveSemaphore: no free holder slot (inconsistent state)")

    def release(self) -> None:
        """Release once; the last release by the holder frees it."""
        task = _task_id()
        with self._table_lock:
            slot, count = self._find(task)
            if slot is None:
                raise RuntimeError("cannot release a RecursiveSemaphore held by another task "
                                   "(or not held at all)")
            self._SLOT.pack_into(self._table, slot * self._SLOT.size, *task, count - 1)
        if count == 1:
            self._sem.release()

    def close(self) -> None:
        self._sem.close()
        self._table_lock.close()
        self._table.close()

    def __enter__(self) -> "RecursiveSemaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
