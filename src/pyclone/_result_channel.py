"""How a Child that does not share memory with its parent hands back its
result: the child pickles its outcome into a memfd, which the parent reads
after the reap - values of any size cross, with no pipe that could fill."""
from __future__ import annotations

import os
import sys


class ChildError(Exception):
    """The exception of a child that does not share memory with its parent
    (or of one that died by a signal): only its description crosses over.
    ``str()`` is the child's traceback text."""

    def __init__(self, pid: int, exc_type: str, traceback: str):
        super().__init__(pid, exc_type, traceback)
        self.pid = pid
        self.exc_type = exc_type
        self.traceback = traceback

    def __str__(self) -> str:
        return f"in child {self.pid}: {self.traceback.rstrip()}"


def open_channel() -> int:
    """In the parent, before the clone: the memfd the child will write."""
    import pickle  # noqa: F401 - loaded here, so that no child has to import it
    return os.memfd_create("pyclone-child-result", os.MFD_CLOEXEC)


def encode(name: str, value: object = None,
           exc: BaseException | None = None) -> tuple[bytes, bool]:
    """In the child: (bytes to send, whether the outcome is the value)."""
    import pickle
    if exc is None:
        try:
            return pickle.dumps(("ok", value), pickle.HIGHEST_PROTOCOL), True
        except Exception as problem:
            print(f"{name}: the result cannot be pickled: {problem!r}", file=sys.stderr)
            exc = problem
    import traceback
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return pickle.dumps(("exc", type(exc).__qualname__, text)), False


def send(fd: int, data: bytes) -> None:
    """In the child: writes ``data`` at the start of the memfd."""
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def receive(fd: int, pid: int) -> tuple[object, BaseException | None]:
    """In the parent, after the reap: (result, exception); (None, None) when
    the child wrote nothing (it ended without returning)."""
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    if not chunks:
        return None, None
    import pickle
    outcome = pickle.loads(b"".join(chunks))
    if outcome[0] == "ok":
        return outcome[1], None
    return None, ChildError(pid, outcome[1], outcome[2])
