"""pyclone.Queue: a message queue between tasks of any mode (jkthreads'
thread with a message queue).

Objects are pickled and sent over a pipe in length-prefixed frames, so
fork-mode children (which share no memory) take part as well as thread-mode
and borrowed ones.  Built on pyclone's eventfd semaphores: a write lock and a
read lock keep several producers and consumers from interleaving frames,
``items`` counts the messages, ``slots`` bounds them when ``maxsize > 0``.
"""
from __future__ import annotations

import fcntl
import os
import pickle
import queue
import struct
import weakref

from . import _rules
from .sync import Semaphore, _check_timeout

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["Queue"]

_HEADER = struct.Struct("=Q")
#: Ask the kernel for a larger pipe buffer (it may give less).
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Queue:
    """``Queue(maxsize=0)``: ``put(obj, block=True, timeout=None)``,
    ``get(block=True, timeout=None)`` (raising ``queue.Full`` /
    ``queue.Empty`` as the standard library does), ``put_nowait``,
    ``get_nowait``, ``qsize()`` (approximate), ``empty()``, ``close()``.

    Works between every pyclone task that has the queue's file descriptors:
    fork-mode children inherit them; thread-mode and borrowed children have
    them (their fd table is a copy, or the same under ``CLONE_FILES``).

    Caveats: a message longer than the pipe's buffer is written while
    consumers read it, so its ``put`` finishes only as a consumer reads; a
    task that dies in the middle of a ``put`` or ``get`` leaves the pipe in
    the middle of a frame.
    """

    def __init__(self, maxsize: int = 0) -> None:
        maxsize = _rules.check_int(maxsize, "maxsize", bool_ok=False)
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, not {maxsize}")
        self.maxsize = maxsize
        self._r, self._w = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(self._w, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass                            # /proc/sys/fs/pipe-max-size
        self._items = Semaphore(0)
        self._slots = Semaphore(maxsize) if maxsize else None
        self._write_lock = Semaphore(1)
        self._read_lock = Semaphore(1)
        self._closed = False
        self._pipe = weakref.finalize(self, _close_fds, self._r, self._w)

    # -- helpers -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("operation on a closed Queue")

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._w, view):]

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._r, n)
            if not chunk:
                raise EOFError("the queue's pipe was closed in the middle of a message")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    # -- the API -----------------------------------------------------------

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Send ``obj``; raise ``queue.Full`` if ``maxsize`` messages are
        waiting and none is taken in time."""
        self._check_open()
        wait = _check_timeout(block, timeout)
        payload = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        if self._slots is not None and not self._slots.acquire(wait != 0, wait if wait > 0 else None):
            raise queue.Full
        with self._write_lock:
            # Count the message before writing it: a consumer must be able
            # to start reading a message larger than the pipe buffer.
            self._items.release()
            self._write_all(_HEADER.pack(len(payload)) + payload)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Receive the next object; raise ``queue.Empty`` if none comes in time."""
        self._check_open()
        wait = _check_timeout(block, timeout)
        if not self._items.acquire(wait != 0, wait if wait > 0 else None):
            raise queue.Empty
        with self._read_lock:
            size, = _HEADER.unpack(self._read_exact(_HEADER.size))
            payload = self._read_exact(size)
        if self._slots is not None:
            self._slots.release()
        return pickle.loads(payload)

    def put_nowait(self, obj: Any) -> None:
        return self.put(obj, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        """Messages waiting (a snapshot: others may be taking them).  Only
        reads the count: a concurrent get_nowait() elsewhere is unaffected."""
        self._check_open()
        return self._items._value()

    def empty(self) -> bool:
        return self.qsize() == 0

    def close(self) -> None:
        """Close this task's ends of the pipe and its semaphores (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._pipe()
        for sem in (self._items, self._slots, self._write_lock, self._read_lock):
            if sem is not None:
                sem.close()

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
