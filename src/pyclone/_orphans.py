"""Children whose Child object was collected (or is at interpreter exit)
while they still ran: reaped later, their fds closed, never a zombie."""
from __future__ import annotations

import _thread
import atexit
import os

from . import _core
from .flags import WALL

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple

#: (pid, fds) of running children whose Child is gone: reaped at the next
#: Child.start() and at exit.
_orphans: List[Tuple[int, List[int]]] = []
_orphans_lock = _thread.allocate_lock()


def close_all(fds: List[int]) -> None:
    """Closes and empties a list of fds (those already closed are skipped)."""
    while fds:
        fd = fds.pop()
        try:
            os.close(fd)
        except OSError:
            pass


def reap_orphans(block: bool = False) -> None:
    with _orphans_lock:
        pending = list(_orphans)
        _orphans.clear()
    for pid, fds in pending:
        try:
            done = _core.waitpid(pid, WALL | (0 if block else os.WNOHANG))[0] != 0
        except ChildProcessError:
            done = True
        if done:
            close_all(fds)
        else:
            with _orphans_lock:
                _orphans.append((pid, fds))


# Registered before any Child exists, so it runs after weakref.finalize's own
# exit hook (atexit is last-in, first-out), which hands running children of
# uncollected Child objects to abandon().  Like multiprocessing's non-daemon
# processes, they are waited for.
atexit.register(reap_orphans, True)


def abandon(state: Dict[str, Any]) -> None:
    """A Child was collected (or the interpreter is exiting) unjoined:
    ``state`` is its {"pid", "fds", "reaped"} record."""
    pid, fds, reaped = state["pid"], state["fds"], state["reaped"]
    if reaped or pid is None:
        close_all(fds)
        return
    with _orphans_lock:
        _orphans.append((pid, fds))
    reap_orphans()
