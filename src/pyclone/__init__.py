"""pyclone: Linux clone() for Python.

A Python callable runs in a new task whose sharing with its parent (memory,
file descriptors, cwd/umask, signal handlers, namespaces, thread group) is
chosen flag by flag, as the system call offers it.  See docs/ (or `make docs`).
"""
from __future__ import annotations

from ._core import clone, terminate, wait4, waitpid
from ._exit import Terminated
from ._rules import DEFAULT_STACK_SIZE, MIN_STACK_SIZE
from .flags import CSIGNAL, FLAG_VALUES as _FLAG_VALUES, WALL, WCLONE, WNOTHREAD
from ._version import __version__ as __version__

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    # What __getattr__ imports at first use, spelled out for type checkers.
    from typing import Any, List

    from ._clone3 import CloneResult as CloneResult, clone3 as clone3
    from .child import Child as Child, ChildError as ChildError, run as run
    from .flags import CloneFlags as CloneFlags
    from .msgqueue import Queue as Queue
    from .sync import RecursiveSemaphore as RecursiveSemaphore, Semaphore as Semaphore
    from .flags import (  # the constants as ints; at run time CloneFlags members
        CLONE_NEWTIME as CLONE_NEWTIME,
        CLONE_VM as CLONE_VM,
        CLONE_FS as CLONE_FS,
        CLONE_FILES as CLONE_FILES,
        CLONE_SIGHAND as CLONE_SIGHAND,
        CLONE_PIDFD as CLONE_PIDFD,
        CLONE_PTRACE as CLONE_PTRACE,
        CLONE_VFORK as CLONE_VFORK,
        CLONE_PARENT as CLONE_PARENT,
        CLONE_THREAD as CLONE_THREAD,
        CLONE_NEWNS as CLONE_NEWNS,
        CLONE_SYSVSEM as CLONE_SYSVSEM,
        CLONE_SETTLS as CLONE_SETTLS,
        CLONE_PARENT_SETTID as CLONE_PARENT_SETTID,
        CLONE_CHILD_CLEARTID as CLONE_CHILD_CLEARTID,
        CLONE_DETACHED as CLONE_DETACHED,
        CLONE_UNTRACED as CLONE_UNTRACED,
        CLONE_CHILD_SETTID as CLONE_CHILD_SETTID,
        CLONE_NEWCGROUP as CLONE_NEWCGROUP,
        CLONE_NEWUTS as CLONE_NEWUTS,
        CLONE_NEWIPC as CLONE_NEWIPC,
        CLONE_NEWUSER as CLONE_NEWUSER,
        CLONE_NEWPID as CLONE_NEWPID,
        CLONE_NEWNET as CLONE_NEWNET,
        CLONE_IO as CLONE_IO,
        CLONE_CLEAR_SIGHAND as CLONE_CLEAR_SIGHAND,
        CLONE_INTO_CGROUP as CLONE_INTO_CGROUP,
    )

# `import pyclone` loads only what clone() needs (a few milliseconds); the
# rest is imported at its first use: Child needs pickle, select and
# traceback, Queue needs pickle and queue, the flag enum needs enum.
_LAZY = {
    "clone3": "_clone3", "CloneResult": "_clone3",
    "Child": "child", "ChildError": "child", "run": "child",
    "Semaphore": "sync", "RecursiveSemaphore": "sync", "Queue": "msgqueue",
    "CloneFlags": "flags",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = __import__(f"{__name__}.{_LAZY[name]}", fromlist=[name])
        value = getattr(module, name)
    elif name in _FLAG_VALUES:
        # Every flag as a module constant, as in C (a CloneFlags member: an int).
        value = getattr(__getattr__("CloneFlags"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ["clone", "clone3", "CloneResult", "Child", "ChildError", "run", "waitpid", "wait4",
           "terminate", "Terminated", "Semaphore", "RecursiveSemaphore", "Queue",
           "CloneFlags", "CSIGNAL", "WALL", "WCLONE",
           "WNOTHREAD", "DEFAULT_STACK_SIZE", "MIN_STACK_SIZE",
           "CLONE_NEWTIME",
           "CLONE_VM",
           "CLONE_FS",
           "CLONE_FILES",
           "CLONE_SIGHAND",
           "CLONE_PIDFD",
           "CLONE_PTRACE",
           "CLONE_VFORK",
           "CLONE_PARENT",
           "CLONE_THREAD",
           "CLONE_NEWNS",
           "CLONE_SYSVSEM",
           "CLONE_SETTLS",
           "CLONE_PARENT_SETTID",
           "CLONE_CHILD_CLEARTID",
           "CLONE_DETACHED",
           "CLONE_UNTRACED",
           "CLONE_CHILD_SETTID",
           "CLONE_NEWCGROUP",
           "CLONE_NEWUTS",
           "CLONE_NEWIPC",
           "CLONE_NEWUSER",
           "CLONE_NEWPID",
           "CLONE_NEWNET",
           "CLONE_IO",
           "CLONE_CLEAR_SIGHAND",
           "CLONE_INTO_CGROUP",
           ]
